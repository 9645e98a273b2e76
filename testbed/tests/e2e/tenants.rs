//! Tenants as the tenancy and security suites play them: the chart's RBAC, and each tenant a
//! ServiceAccount bound only to Kubernetes' `edit` role in its namespace.

use super::Bed;
use super::chart::{self, NAMESPACE as NS, SERVICE_ACCOUNT as SA};
use email_operator::crd::{EmailSettings, SenderIdentity, SenderPolicy};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The bed without the suites' company-wide policy, the namespaces `namespaces`, the chart's
/// RBAC (rendered with `values`) applied, and the operator's kubeconfig (its ServiceAccount's
/// token).
pub async fn platform(values: &[&str], namespaces: &[&str]) -> Option<(Bed, Vec<Value>, PathBuf)> {
    let docs = chart::render(values)?;
    let bed = Bed::up_without_policy(&["--audit-log", "audit.log"]).await;
    for ns in [NS].iter().chain(namespaces) {
        bed.namespace(ns).await;
    }
    for doc in chart::rbac(docs.clone()) {
        chart::put(&bed.client, &doc).await;
    }
    let kubeconfig = bed.service_account_kubeconfig(NS, SA).await;
    Some((bed, docs, kubeconfig))
}

/// A client for the ServiceAccount `ns/team`, bound only to `edit` in `ns`.
pub async fn tenant_client(bed: &Bed, ns: &str) -> Client {
    bed.namespace(ns).await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "team", "namespace": ns}})).expect("sa");
    let _ = Api::<ServiceAccount>::namespaced(bed.client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await;
    chart::put(
        &bed.client,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "team-edit", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "ServiceAccount", "name": "team", "namespace": ns}]}),
    )
    .await;
    let path = bed.service_account_kubeconfig(ns, "team").await;
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Server-side apply by a tenant (a GitOps tool acting as the team).
/// Server-side apply of `doc` as the field manager "team".
async fn apply_as<K>(client: &Client, ns: &str, name: &str, doc: &Value) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("team").force(),
            &Patch::Apply(doc),
        )
        .await
        .map(drop)
}

pub async fn tenant_apply(client: &Client, doc: &Value) -> Result<(), kube::Error> {
    let ns = doc["metadata"]["namespace"].as_str().expect("namespace");
    let name = doc["metadata"]["name"].as_str().expect("name");
    match doc["kind"].as_str() {
        Some("EmailSettings") => apply_as::<EmailSettings>(client, ns, name, doc).await,
        Some("SenderIdentity") => apply_as::<SenderIdentity>(client, ns, name, doc).await,
        Some("Secret") => apply_as::<Secret>(client, ns, name, doc).await,
        Some("SenderPolicy") => apply_as::<SenderPolicy>(client, ns, name, doc).await,
        other => panic!("a tenant applies no {other:?}"),
    }
}
