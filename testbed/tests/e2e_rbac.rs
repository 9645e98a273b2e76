//! The operator under the Helm chart's own RBAC, rendered by `helm template` and enforced by
//! the test bed's API server with the ServiceAccount `email-system/email-operator`'s token:
//!
//! * sufficient — the real `email-operator run`, as that ServiceAccount, takes its Lease,
//!   publishes an EmailSettings' Secret, verifies a SenderIdentity (finalizer, status, an owned
//!   DNSEndpoint) and records Events, with `OwnerReferencesPermissionEnforcement` on, and the
//!   audit log shows no request of it refused;
//! * minimal — for every rule, and every verb of every rule, of the rendered ClusterRole and
//!   Role, taking it away makes a request the operator makes fail with kube-apiserver's exact
//!   403, and the operator's own log and objects show it for a few of them — except the grants
//!   listed in [`UNUSED_GRANTS`], which the test shows no request of the operator needs (every
//!   request still succeeds without each of them).
//!
//! The chart is rendered by helm ([`chart`]).

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use e2e::chart::{self, put};
use e2e::*;
use email_operator::controller::sender_identity::dns_endpoint;
use email_operator::controller::{FIELD_MANAGER, FINALIZER, apply_status, events};
use email_operator::crd::{
    EmailSettings, EmailSettingsStatus, SenderIdentity, SenderIdentityStatus, SenderPolicy,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use testbed::kube::{AdmissionPlugin, KubeOptions, KubeServer};

const NS: &str = "email-system";
const SA: &str = "email-operator";
const USER: &str = "system:serviceaccount:email-system:email-operator";
const TENANT: &str = "billing";
const ORPE: &str = "OwnerReferencesPermissionEnforcement";

// --- The chart's RBAC --------------------------------------------------------------------------

/// The ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding of
/// `helm template email-operator charts/email-operator -n email-system
/// --set externalDns.enabled=true`; None when helm is missing (outside CI).
fn chart_rbac() -> Option<Vec<Value>> {
    chart_rbac_with(true)
}

/// Like [`chart_rbac`], with `externalDns.enabled` as given (the chart's default is false).
fn chart_rbac_with(external_dns: bool) -> Option<Vec<Value>> {
    let docs = chart::render(&["--set", &format!("externalDns.enabled={external_dns}")])?;
    let rbac = chart::rbac(docs);
    // The ServiceAccount; the operator's ClusterRole and binding; in the release namespace its
    // leader-election and policy Roles and bindings; the tenant roles.
    assert_eq!(rbac.len(), 9, "{rbac:#?}");
    let sa = kind(&rbac, "ServiceAccount");
    assert_eq!(
        (
            sa["metadata"]["namespace"].as_str(),
            sa["metadata"]["name"].as_str()
        ),
        (Some(NS), Some(SA)),
        "the chart's ServiceAccount is the fullname"
    );
    Some(rbac)
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The roles the chart grants the operator (not the tenant roles it aggregates into
/// admin/edit/view): its ClusterRole and its Roles in the release namespace.
fn operator_roles(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
        .filter(|d| {
            d["metadata"]["labels"].as_object().is_none_or(|l| {
                !l.keys()
                    .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to"))
            })
        })
        .collect()
}

async fn namespace(admin: &Client, ns: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
    let _ = api.create(&PostParams::default(), &obj).await;
}

/// `doc` (a ClusterRole or Role) without `verb` for `resource` in rule `index` (the rule's
/// other resources and verbs stay); `verb` None drops the whole rule.
fn without(doc: &Value, index: usize, resource: &str, verb: Option<&str>) -> Value {
    let mut doc = doc.clone();
    let rules = doc["rules"].as_array_mut().expect("rules");
    let rule = rules.remove(index);
    if let Some(verb) = verb {
        let strings = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let others: Vec<String> = strings("resources")
            .into_iter()
            .filter(|r| r != resource)
            .collect();
        if !others.is_empty() {
            let mut kept = rule.clone();
            kept["resources"] = json!(others);
            rules.push(kept);
        }
        let verbs: Vec<String> = strings("verbs").into_iter().filter(|v| v != verb).collect();
        if !verbs.is_empty() {
            let mut reduced = rule.clone();
            reduced["resources"] = json!([resource]);
            reduced["verbs"] = json!(verbs);
            rules.push(reduced);
        }
    }
    doc
}

/// Every (apiGroup, resource, verb) a rendered role grants, with its rule's index.
fn grants(doc: &Value) -> Vec<(usize, String, String, String)> {
    let mut out = Vec::new();
    for (i, rule) in doc["rules"].as_array().expect("rules").iter().enumerate() {
        let list = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    out.push((i, group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

// --- What the operator does with each permission -----------------------------------------------

/// Each permission the operator needs, as (apiGroup, resource, verb), with the request of the
/// operator that needs it in [`perform`]. The end-to-end test checks against the audit log
/// that the operator's requests are exactly these.
const OPERATIONS: &[(&str, &str, &str)] = &[
    // The EmailSettings and SenderIdentity watches (list, then watch), in all namespaces.
    ("email.ops.dev", "emailsettings", "list"),
    ("email.ops.dev", "emailsettings", "watch"),
    ("email.ops.dev", "senderidentities", "list"),
    ("email.ops.dev", "senderidentities", "watch"),
    // kube-runtime's finalizer helper: a JSON patch of metadata.finalizers.
    ("email.ops.dev", "senderidentities", "patch"),
    // Status by server-side apply.
    ("email.ops.dev", "emailsettings/status", "patch"),
    ("email.ops.dev", "senderidentities/status", "patch"),
    // Referenced Secrets and the default relay (get), the metadata watch of all Secrets, and the
    // published Secret by server-side apply (patch; create when it does not exist yet).
    ("", "secrets", "get"),
    ("", "secrets", "list"),
    ("", "secrets", "watch"),
    ("", "secrets", "create"),
    ("", "secrets", "patch"),
    // Events, each transition its own (never patched into a series).
    ("events.k8s.io", "events", "create"),
    // The SenderPolicies of the operator's namespace (list, then watch).
    ("email.ops.dev", "senderpolicies", "list"),
    ("email.ops.dev", "senderpolicies", "watch"),
    // Namespaces' labels, for policies' selectors (a cluster-wide install).
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    // The owned DNSEndpoint: probe (list limit=1) and watch, apply, and get + delete when
    // ExternalDNS is no longer asked for.
    ("externaldns.k8s.io", "dnsendpoints", "get"),
    ("externaldns.k8s.io", "dnsendpoints", "list"),
    ("externaldns.k8s.io", "dnsendpoints", "watch"),
    ("externaldns.k8s.io", "dnsendpoints", "create"),
    ("externaldns.k8s.io", "dnsendpoints", "patch"),
    ("externaldns.k8s.io", "dnsendpoints", "delete"),
    // Leader election on the Lease `email-operator`: get, create when missing, update (replace)
    // to renew, take over and release.
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "update"),
];

/// What the chart grants that no request of the operator needs: without any one of them every
/// request in [`OPERATIONS`] still succeeds. Kept here so the list is visible and shrinks with
/// the chart (the test fails when one is no longer granted, or another turns out unneeded).
///
/// The `/finalizers` rule is among them: OwnerReferencesPermissionEnforcement checks `update`
/// on `<owner>/finalizers` only for owner references with `blockOwnerDeletion: true`, and the
/// operator's owner references (kube's `controller_owner_ref`) do not set it — the test bed
/// runs with the plugin on, so the day they do, this test says the rule is needed.
const UNUSED_GRANTS: &[(&str, &str, &str)] = &[];

/// kube-apiserver's 403 message for `verb` on `resource` (maybe `resource/sub`) of `group`.
fn refusal(
    group: &str,
    resource: &str,
    verb: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> String {
    let base = resource.split('/').next().unwrap_or(resource);
    let qualified = if group.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{group}")
    };
    let subject = match name {
        Some(n) => format!("{qualified} {n:?}"),
        None => qualified,
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    format!(
        "{subject} is forbidden: User {USER:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
    )
}

/// The refusal of a creating server-side apply: the authorizer's (empty) reason alone.
fn create_on_apply_refusal(qualified: &str, name: &str) -> String {
    format!("{qualified} {name:?} is forbidden: ")
}

/// The objects the operator's requests are about, and the two clients.
struct Fixture {
    admin: Client,
    operator: Client,
    es: EmailSettings,
    /// `yourcompany-com`, DNS left to the user.
    si: SenderIdentity,
    /// The same object asking for an ExternalDNS DNSEndpoint.
    si_external: SenderIdentity,
}

fn records() -> Vec<email_operator::crd::sender_identity::DnsRecord> {
    serde_json::from_value(
        json!([{"name": "abc._domainkey.yourcompany.com", "type": "CNAME",
                                   "value": "abc.dkim.amazonses.com", "purpose": "DKIM"}]),
    )
    .expect("records")
}

fn published_secret(es: &EmailSettings) -> Value {
    let data = [("host".to_string(), "smtp.example.com".to_string())]
        .into_iter()
        .collect();
    email_operator::controller::email_settings::publish::manifest(
        es,
        &data,
        1,
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        "inputs",
    )
}

fn dns_endpoints(client: &Client, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = dns_endpoint::api_resource();
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn lease() -> Lease {
    serde_json::from_value(json!({"metadata": {"name": "email-operator", "namespace": NS},
                                  "spec": {"holderIdentity": "email-operator-0", "leaseDurationSeconds": 15}}))
    .expect("lease")
}

async fn fixture(server: &KubeServer, docs: &[Value]) -> Fixture {
    let admin = client_from(&server.kubeconfig()).await;
    namespace(&admin, NS).await;
    namespace(&admin, TENANT).await;
    for doc in docs {
        put(&admin, doc).await;
    }
    let operator = client_from(&server.service_account_kubeconfig(NS, SA).expect("token")).await;
    let es: EmailSettings = Api::namespaced(admin.clone(), TENANT)
        .patch(
            "notifications",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(settings(TENANT, &["employee@yourcompany.com"])),
        )
        .await
        .expect("EmailSettings");
    let si: SenderIdentity = Api::namespaced(admin.clone(), TENANT)
        .patch(
            "yourcompany-com",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(identity(TENANT, "yourcompany-com", "yourcompany.com")),
        )
        .await
        .expect("SenderIdentity");
    let mut si_external = si.clone();
    si_external.spec.dns = serde_json::from_value(json!({"provider": "ExternalDNS"})).expect("dns");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), TENANT);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "smtp"}, "stringData": {"password": "x"}}),
            )
            .expect("secret"),
        )
        .await
        .expect("Secret smtp");
    Fixture {
        admin,
        operator,
        es,
        si,
        si_external,
    }
}

async fn client_from(kubeconfig: &str) -> Client {
    let kc = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Put the world in the state the operation expects (as the admin).
async fn prepare(fx: &Fixture, resource: &str, verb: &str) {
    let secrets: Api<Secret> = Api::namespaced(fx.admin.clone(), TENANT);
    let endpoints = dns_endpoints(&fx.admin, Some(TENANT));
    let leases: Api<Lease> = Api::namespaced(fx.admin.clone(), NS);
    let published = fx.es.output_secret_name();
    match (resource, verb) {
        ("senderidentities", "patch") => {
            Api::<SenderIdentity>::namespaced(fx.admin.clone(), TENANT)
                .patch(
                    "yourcompany-com",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await
                .expect("finalizers cleared");
        }
        ("secrets", "create") => {
            let _ = secrets.delete(&published, &DeleteParams::default()).await;
        }
        ("secrets", "patch") => {
            secrets
                .patch(
                    &published,
                    &PatchParams::apply("seed").force(),
                    &Patch::Apply(published_secret(&fx.es)),
                )
                .await
                .expect("seed the published Secret");
        }
        ("dnsendpoints", "create") => {
            let _ = endpoints
                .delete("yourcompany-com", &DeleteParams::default())
                .await;
        }
        ("dnsendpoints", "patch" | "get" | "delete") => {
            dns_endpoint::reconcile(&fx.admin, &fx.si_external, &records(), false, true)
                .await
                .expect("seed the DNSEndpoint");
        }
        ("leases", "create") => {
            let _ = leases
                .delete("email-operator", &DeleteParams::default())
                .await;
        }
        ("leases", "get" | "update") => {
            // Already there unless a create attempt was refused.
            let _ = leases.create(&PostParams::default(), &lease()).await;
        }
        _ => {}
    }
}

/// Make the operator's request that needs (`resource`, `verb`), as the operator's
/// ServiceAccount — through the operator's own functions where they are public.
async fn perform(fx: &Fixture, resource: &str, verb: &str, n: usize) -> Result<(), kube::Error> {
    let op = &fx.operator;
    let lp = ListParams::default();
    let wp = WatchParams::default().timeout(1);
    match (resource, verb) {
        ("emailsettings", "list") => Api::<EmailSettings>::all(op.clone())
            .list(&lp)
            .await
            .map(drop),
        ("emailsettings", "watch") => Api::<EmailSettings>::all(op.clone())
            .watch(&wp, "0")
            .await
            .map(drop),
        ("senderidentities", "list") => Api::<SenderIdentity>::all(op.clone())
            .list(&lp)
            .await
            .map(drop),
        ("senderidentities", "watch") => Api::<SenderIdentity>::all(op.clone())
            .watch(&wp, "0")
            .await
            .map(drop),
        ("senderidentities", "patch") => {
            let current = Api::<SenderIdentity>::namespaced(fx.admin.clone(), TENANT)
                .get("yourcompany-com")
                .await
                .expect("get");
            let api: Api<SenderIdentity> = Api::namespaced(op.clone(), TENANT);
            let added = kube::runtime::finalizer::finalizer(
                &api,
                FINALIZER,
                Arc::new(current),
                |_| async { Ok::<_, kube::Error>(Action::await_change()) },
            )
            .await;
            match added {
                Ok(_) => Ok(()),
                Err(kube::runtime::finalizer::Error::AddFinalizer(e)) => Err(e),
                Err(other) => panic!("finalizer: {other}"),
            }
        }
        ("emailsettings/status", "patch") => {
            let api: Api<EmailSettings> = Api::namespaced(op.clone(), TENANT);
            apply_status(&api, &fx.es, &EmailSettingsStatus::default()).await
        }
        ("senderidentities/status", "patch") => {
            let api: Api<SenderIdentity> = Api::namespaced(op.clone(), TENANT);
            apply_status(&api, &fx.si, &SenderIdentityStatus::default()).await
        }
        ("secrets", "create" | "patch") => Api::<Secret>::namespaced(op.clone(), TENANT)
            .patch(
                &fx.es.output_secret_name(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(published_secret(&fx.es)),
            )
            .await
            .map(drop),
        ("dnsendpoints", "create" | "patch") => {
            dns_endpoint::reconcile(op, &fx.si_external, &records(), false, true).await
        }
        ("dnsendpoints", "get" | "delete") => {
            dns_endpoint::reconcile(op, &fx.si, &records(), true, true).await
        }
        ("secrets", "get") => Api::<Secret>::namespaced(op.clone(), TENANT)
            .get_opt("smtp")
            .await
            .map(drop),
        ("secrets", "list") => Api::<Secret>::all(op.clone())
            .list_metadata(&lp)
            .await
            .map(drop),
        ("secrets", "watch") => Api::<Secret>::all(op.clone())
            .watch_metadata(&wp, "0")
            .await
            .map(drop),
        ("events", "create") => {
            let reporter = events::Reporter {
                controller: "email-operator".into(),
                instance: Some("email-operator-0".into()),
            };
            let event = events::build(
                &reporter,
                &fx.es.object_ref(&()),
                false,
                "Published",
                &format!("attempt {n}"),
                k8s_openapi::jiff::Timestamp::now(),
            );
            events::publish(op, &event).await
        }
        ("senderpolicies", "list") => Api::<SenderPolicy>::namespaced(op.clone(), NS)
            .list(&lp)
            .await
            .map(drop),
        ("senderpolicies", "watch") => Api::<SenderPolicy>::namespaced(op.clone(), NS)
            .watch(&wp, "0")
            .await
            .map(drop),
        ("namespaces", "list") => Api::<Namespace>::all(op.clone())
            .list_metadata(&lp)
            .await
            .map(drop),
        ("namespaces", "watch") => Api::<Namespace>::all(op.clone())
            .watch_metadata(&wp, "0")
            .await
            .map(drop),
        ("dnsendpoints", "list") => dns_endpoints(op, None)
            .list(&ListParams::default().limit(1))
            .await
            .map(drop),
        ("dnsendpoints", "watch") => dns_endpoints(op, None).watch(&wp, "0").await.map(drop),
        ("leases", "create") => Api::<Lease>::namespaced(op.clone(), NS)
            .create(&PostParams::default(), &lease())
            .await
            .map(drop),
        ("leases", "get") => Api::<Lease>::namespaced(op.clone(), NS)
            .get_opt("email-operator")
            .await
            .map(drop),
        ("leases", "update") => {
            let current = Api::<Lease>::namespaced(fx.admin.clone(), NS)
                .get("email-operator")
                .await
                .expect("lease");
            Api::<Lease>::namespaced(op.clone(), NS)
                .replace("email-operator", &PostParams::default(), &current)
                .await
                .map(drop)
        }
        other => panic!("no operation for {other:?}"),
    }
}

/// The exact refusal of [`perform`] when (`resource`, `verb`) is all that is missing.
async fn expected(fx: &Fixture, group: &str, resource: &str, verb: &str) -> String {
    let published = fx.es.output_secret_name();
    match (resource, verb) {
        ("emailsettings" | "senderidentities" | "secrets" | "dnsendpoints", "list" | "watch") => {
            refusal(group, resource, verb, None, None)
        }
        ("senderidentities", "patch") | ("senderidentities/status", "patch") => {
            refusal(group, resource, verb, Some(TENANT), Some("yourcompany-com"))
        }
        ("emailsettings/status", "patch") => {
            refusal(group, resource, verb, Some(TENANT), Some("notifications"))
        }
        ("secrets", "get") => refusal(group, resource, verb, Some(TENANT), Some("smtp")),
        ("secrets", "create") => create_on_apply_refusal("secrets", &published),
        ("secrets", "patch") => refusal(group, resource, verb, Some(TENANT), Some(&published)),
        ("events", "create") => refusal(group, resource, verb, Some(TENANT), None),
        ("senderpolicies", "list" | "watch") => refusal(group, resource, verb, Some(NS), None),
        ("namespaces", "list" | "watch") => refusal(group, resource, verb, None, None),
        ("dnsendpoints", "create") => {
            create_on_apply_refusal("dnsendpoints.externaldns.k8s.io", "yourcompany-com")
        }
        ("dnsendpoints", _) => {
            refusal(group, resource, verb, Some(TENANT), Some("yourcompany-com"))
        }
        ("leases", "create") => refusal(group, resource, verb, Some(NS), None),
        ("leases", _) => refusal(group, resource, verb, Some(NS), Some("email-operator")),
        other => panic!("no refusal for {other:?}"),
    }
}

fn assert_refused(result: Result<(), kube::Error>, message: &str, what: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{what}: {status:?}");
            assert_eq!(status.message, message, "{what}");
        }
        Err(e) => panic!("{what}: expected 403 {message:?}, got {e}"),
        Ok(()) => panic!("{what}: expected 403 {message:?}, the request succeeded"),
    }
}

/// Every request in [`OPERATIONS`] succeeds (they are independent of each other's state).
async fn all_operations_succeed(fx: &Fixture, n: &mut usize, without: &str) {
    for (_, resource, verb) in OPERATIONS {
        *n += 1;
        prepare(fx, resource, verb).await;
        perform(fx, resource, verb, *n)
            .await
            .unwrap_or_else(|e| panic!("{resource} {verb} {without}: {e}"));
    }
}

fn needed(group: &str, resource: &str, verb: &str) -> bool {
    OPERATIONS
        .iter()
        .any(|(g, r, v)| *g == group && *r == resource && *v == verb)
}

#[tokio::test]
async fn every_grant_of_the_charts_rbac_is_needed_by_a_request_of_the_operator_or_listed_unused() {
    let Some(docs) = chart_rbac() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = KubeServer::start(KubeOptions {
        crd_dirs: vec![workspace().join("crds")],
        admission_plugins: vec![AdmissionPlugin::OwnerReferencesPermissionEnforcement],
        ..KubeOptions::default()
    })
    .await
    .expect("server");
    let fx = fixture(&server, &docs).await;
    let mut n = 0;

    // With the chart's RBAC every one of the operator's requests is allowed.
    all_operations_succeed(&fx, &mut n, "under the chart's RBAC").await;

    let mut unused = BTreeSet::new();
    for role in operator_roles(&docs) {
        let rule_count = role["rules"].as_array().expect("rules").len();
        let granted = grants(role);
        for (index, group, resource, verb) in &granted {
            // Take away this one verb for this one resource.
            put(&fx.admin, &without(role, *index, resource, Some(verb))).await;
            if needed(group, resource, verb) {
                // The request that needs it fails with kube-apiserver's 403.
                n += 1;
                prepare(&fx, resource, verb).await;
                let result = perform(&fx, resource, verb, n).await;
                let message = expected(&fx, group, resource, verb).await;
                assert_refused(result, &message, &format!("without {resource} {verb}"));
            } else {
                // Nothing the operator does needs it.
                all_operations_succeed(&fx, &mut n, &format!("without {resource} {verb}")).await;
                unused.insert((group.clone(), resource.clone(), verb.clone()));
            }
            put(&fx.admin, role).await;
        }
        // Take away each whole rule: each request of its permissions is refused.
        for index in 0..rule_count {
            let of_rule: Vec<_> = granted.iter().filter(|(i, ..)| *i == index).collect();
            put(&fx.admin, &without(role, index, "", None)).await;
            let mut refused = 0;
            for (_, group, resource, verb) in of_rule.iter().filter(|(_, g, r, v)| needed(g, r, v))
            {
                n += 1;
                prepare(&fx, resource, verb).await;
                match perform(&fx, resource, verb, n).await {
                    Err(kube::Error::Api(s)) if s.code == 403 => refused += 1,
                    other => panic!("without rule {index}, {group} {resource} {verb}: {other:?}"),
                }
            }
            if refused == 0 {
                // A rule nothing needs: every request still succeeds without it, and each of
                // its grants is in UNUSED_GRANTS (checked below).
                all_operations_succeed(&fx, &mut n, &format!("without rule {index}")).await;
            }
            put(&fx.admin, role).await;
        }
    }
    let listed: BTreeSet<(String, String, String)> = UNUSED_GRANTS
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        unused, listed,
        "what the chart grants that no request of the operator needs"
    );
}

// --- The real operator under the chart's RBAC --------------------------------------------------

/// A test bed with the chart's RBAC applied (and OwnerReferencesPermissionEnforcement on and
/// an audit log), `docs` possibly changed; returns the bed and the operator's kubeconfig.
async fn bed_with(docs: &[Value]) -> (Bed, PathBuf) {
    let bed = Bed::up_with(&[
        "--audit-log",
        "audit.log",
        "--enable-admission-plugins",
        ORPE,
    ])
    .await;
    bed.namespace(NS).await;
    for doc in docs {
        put(&bed.client, doc).await;
    }
    let kubeconfig = bed.service_account_kubeconfig(NS, SA).await;
    (bed, kubeconfig)
}

/// A bed with the chart's RBAC (`docs`), a relay (a real SMTP server) in the Secret
/// `email-system/relay`, and the operator running as the chart's ServiceAccount with it as the
/// default relay; returns the bed, the operator's log and the relay (kept running). None when
/// the SMTP test servers are missing (outside CI).
async fn with_default_relay(docs: &[Value]) -> Option<(Bed, PathBuf, support::Server)> {
    let relay = support::smtp_server("starttls-auth", &[])?;
    let (mut bed, kubeconfig) = bed_with(docs).await;
    put_secret(
        &bed,
        NS,
        "relay",
        json!({"host": "localhost", "port": relay.port.to_string(), "tls": "starttls",
               "username": support::USER, "password": support::PASSWORD,
               "caBundle": std::fs::read_to_string(support::cert_dir().join("ca.pem")).expect("ca.pem")}),
    )
    .await;
    let mut args = FAST.to_vec();
    args.extend([
        "--default-relay-secret",
        "email-system/relay",
        "--default-relay-namespaces",
        "support",
    ]);
    let log = bed.start_operator_as(&kubeconfig, NS, &args);
    Some((bed, log, relay))
}

async fn put_secret(bed: &Bed, ns: &str, name: &str, data: Value) {
    bed.apply::<Secret>(
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data}),
    )
    .await;
}

async fn es(bed: &Bed, ns: &str, name: &str) -> Option<EmailSettings> {
    get_es(bed, ns, name).await
}

fn es_ready(es: &Option<EmailSettings>) -> Option<(String, String)> {
    condition_of(es.as_ref(), "Ready").map(|(s, r, _)| (s, r))
}

/// Every string in the operator's JSON log lines, for searching.
fn log_text(log: &std::path::Path) -> String {
    fn strings(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => strings(&v, &mut out),
            Err(_) => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The (apiGroup, resource[/subresource], verb) of every request the operator made, from the
/// audit log; a server-side apply answered 201 created the object, so it needed create too.
fn used_permissions(bed: &Bed) -> (BTreeSet<(String, String, String)>, Vec<Value>) {
    let mut used = BTreeSet::new();
    let mut refused = Vec::new();
    for e in bed
        .audit()
        .into_iter()
        .filter(|e| e["user"]["username"] == USER)
    {
        let code = e["responseStatus"]["code"].as_u64().unwrap_or(0);
        if code == 401 || code == 403 {
            refused.push(e.clone());
        }
        let Some(r) = e.get("objectRef").filter(|_| e["verb"].is_string()) else {
            continue;
        };
        let field = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let resource = if field("subresource").is_empty() {
            field("resource")
        } else {
            format!("{}/{}", field("resource"), field("subresource"))
        };
        let verb = e["verb"].as_str().unwrap_or("").to_string();
        if verb == "patch" && code == 201 {
            used.insert((field("apiGroup"), resource.clone(), "create".to_string()));
        }
        used.insert((field("apiGroup"), resource, verb));
    }
    (used, refused)
}

#[tokio::test]
async fn the_operator_works_under_the_charts_rbac() {
    let Some(docs) = chart_rbac() else {
        return;
    };
    let Some((mut bed, log, _relay)) = with_default_relay(&docs).await else {
        return;
    };

    // An EmailSettings on the default relay: tested, published to its Secret, Events.
    bed.namespace("support").await;
    bed.apply::<EmailSettings>(
        "support",
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": "notifications", "namespace": "support"},
               "spec": {"from": "support@yourcompany.com"}}),
    )
    .await;
    eventually(
        "support/notifications Ready=True (Published)",
        WAIT,
        || es(&bed, "support", "notifications"),
        |e| es_ready(e).is_some_and(|(s, r)| s == "True" && r == "Published"),
    )
    .await;
    let published = Api::<Secret>::namespaced(bed.client.clone(), "support")
        .get("notifications-smtp")
        .await
        .expect("the published Secret");
    let owner = &published.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("EmailSettings", Some(true))
    );

    // A SenderIdentity with an ExternalDNS DNSEndpoint: finalizer, records, Ready.
    tenant(&bed, TENANT, &["employee@yourcompany.com"]).await;
    let mut si = identity(TENANT, "yourcompany-com", "yourcompany.com");
    si["spec"]["dns"] = json!({"provider": "ExternalDNS"});
    bed.apply::<SenderIdentity>(TENANT, si).await;
    let si = wait_records(&bed, TENANT, "yourcompany-com", WAIT).await;
    assert!(
        si.finalizers().iter().any(|f| f == FINALIZER),
        "{:?}",
        si.finalizers()
    );
    let endpoints = dns_endpoints(&bed.client, Some(TENANT));
    eventually(
        "the DNSEndpoint",
        WAIT,
        || async { endpoints.get_opt("yourcompany-com").await.expect("get") },
        Option::is_some,
    )
    .await;
    assert_eq!(publish_dkim(&bed, &si).await, 3);
    wait_condition(
        &bed,
        TENANT,
        "yourcompany-com",
        "Ready",
        "True",
        Some("Ready"),
    )
    .await;

    // DNS back to the user: the operator deletes its DNSEndpoint.
    let mut si = identity(TENANT, "yourcompany-com", "yourcompany.com");
    si["spec"]["dns"] = json!({"provider": "None"});
    bed.apply::<SenderIdentity>(TENANT, si).await;
    eventually(
        "the DNSEndpoint deleted",
        WAIT,
        || async { endpoints.get_opt("yourcompany-com").await.expect("get") },
        Option::is_none,
    )
    .await;

    // Events, reported by this replica.
    let events: Vec<K8sEvent> = Api::<K8sEvent>::all(bed.client.clone())
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Published")
                && e.metadata.namespace.as_deref() == Some("support")
                && e.reporting_instance.as_deref() == Some("email-operator-0")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.metadata.namespace.as_deref() == Some(TENANT)),
        "{events:#?}"
    );
    // The Lease in the operator's namespace, held by this replica.
    let lease = Api::<Lease>::namespaced(bed.client.clone(), NS)
        .get("email-operator")
        .await
        .expect("the Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("email-operator-0")
    );

    // Deleting the SenderIdentity runs the finalizer's cleanup as the ServiceAccount.
    bed.delete_object::<SenderIdentity>(TENANT, "yourcompany-com")
        .await;
    eventually(
        "the SenderIdentity gone",
        WAIT,
        || sid(&bed, TENANT, "yourcompany-com"),
        Option::is_none,
    )
    .await;

    // The Lease is renewed (updated) every retry period.
    eventually(
        "a renewal of the Lease",
        WAIT,
        || async { used_permissions(&bed).0 },
        |used| {
            used.contains(&(
                "coordination.k8s.io".into(),
                "leases".into(),
                "update".into(),
            ))
        },
    )
    .await;
    // Nothing the operator asked for was refused, and what it asked for is what the chart's
    // minimality test takes away one by one.
    let (used, refused) = used_permissions(&bed);
    assert!(
        refused.is_empty(),
        "refused requests: {refused:#?}\n{}",
        log_text(&log)
    );
    let known: BTreeSet<(String, String, String)> = OPERATIONS
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "requests not in OPERATIONS: {unknown:?}"
    );
    let unseen: Vec<_> = known.difference(&used).collect();
    assert!(
        unseen.is_empty(),
        "OPERATIONS the operator did not make: {unseen:?}"
    );
    bed.signal_operator(0, "TERM");
}

#[tokio::test]
async fn without_status_patch_an_email_settings_never_gets_a_status() {
    let Some(mut docs) = chart_rbac() else {
        return;
    };
    for doc in docs
        .iter_mut()
        .filter(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == SA)
    {
        // emailsettings/status: patch taken away.
        let index = doc["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .position(|r| r["resources"][0] == "emailsettings/status")
            .expect("the status rule");
        *doc = without(doc, index, "emailsettings/status", Some("patch"));
    }
    let (mut bed, kubeconfig) = bed_with(&docs).await;
    let log = bed.start_operator_as(&kubeconfig, NS, &[]);
    bed.namespace(TENANT).await;
    bed.apply::<EmailSettings>(
        TENANT,
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": "notifications", "namespace": TENANT},
               "spec": {"from": "billing@yourcompany.com"}}),
    )
    .await;
    let message = refusal(
        "email.ops.dev",
        "emailsettings/status",
        "patch",
        Some(TENANT),
        Some("notifications"),
    );
    eventually(
        "the operator's log shows the 403",
        WAIT,
        || async { log_text(&log) },
        |text| text.contains(&message),
    )
    .await;
    assert!(
        es(&bed, TENANT, "notifications")
            .await
            .expect("exists")
            .status
            .is_none(),
        "no status without emailsettings/status patch"
    );
    // Nothing else was refused.
    let (_, refused) = used_permissions(&bed);
    assert!(
        refused
            .iter()
            .all(|e| e["objectRef"]["resource"] == "emailsettings"
                && e["objectRef"]["subresource"] == "status"),
        "{refused:#?}"
    );
    bed.signal_operator(0, "TERM");
}

#[tokio::test]
async fn without_the_lease_role_the_operator_never_leads_and_never_reconciles() {
    let Some(docs) = chart_rbac() else {
        return;
    };
    let docs: Vec<Value> = docs
        .into_iter()
        .filter(|d| {
            !d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-leader-election"))
        })
        .collect();
    let (mut bed, kubeconfig) = bed_with(&docs).await;
    let log = bed.start_operator_as(&kubeconfig, NS, &[]);
    bed.namespace(TENANT).await;
    bed.apply::<EmailSettings>(
        TENANT,
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": "notifications", "namespace": TENANT},
               "spec": {"from": "billing@yourcompany.com"}}),
    )
    .await;
    let message = refusal(
        "coordination.k8s.io",
        "leases",
        "get",
        Some(NS),
        Some("email-operator"),
    );
    eventually(
        "the operator's log shows the 403 on its Lease",
        WAIT,
        || async { log_text(&log) },
        |text| text.contains(&message),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        es(&bed, TENANT, "notifications")
            .await
            .expect("exists")
            .status
            .is_none(),
        "a replica that cannot lead does not reconcile"
    );
    assert!(
        Api::<Lease>::namespaced(bed.client.clone(), NS)
            .get_opt("email-operator")
            .await
            .expect("get")
            .is_none()
    );
    bed.signal_operator(0, "KILL");
}

#[tokio::test]
async fn a_recreated_email_settings_publishes_once_the_old_secret_is_collected() {
    let Some(docs) = chart_rbac() else {
        return;
    };
    let Some((mut bed, log, _relay)) = with_default_relay(&docs).await else {
        return;
    };
    bed.namespace("support").await;
    let manifest = json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
                          "metadata": {"name": "notifications", "namespace": "support"},
                          "spec": {"from": "support@yourcompany.com"}});
    let published = |bed: &Bed| {
        let client = bed.client.clone();
        async move {
            let es = get_es_with(&client, "support", "notifications").await;
            let secret = Api::<Secret>::namespaced(client, "support")
                .get_opt("notifications-smtp")
                .await
                .expect("get");
            (es, secret)
        }
    };
    let is_published_by = |(es, secret): &(Option<EmailSettings>, Option<Secret>)| {
        let ready = es_ready(es).is_some_and(|(s, r)| s == "True" && r == "Published");
        let owner = secret
            .as_ref()
            .and_then(|s| s.metadata.owner_references.as_ref())
            .and_then(|o| o.first())
            .map(|o| o.uid.clone());
        ready && owner.is_some() && owner == es.as_ref().and_then(|e| e.uid())
    };
    bed.apply::<EmailSettings>("support", manifest.clone())
        .await;
    let (first, _) = eventually("published", WAIT, || published(&bed), is_published_by).await;

    // Deleted and created again at once, before the garbage collector has caught up with the
    // old Secret: the new one waits for it rather than re-point its owner reference, which
    // OwnerReferencesPermissionEnforcement refuses without delete on Secrets.
    bed.delete_object::<EmailSettings>("support", "notifications")
        .await;
    bed.apply::<EmailSettings>("support", manifest).await;
    let (second, _) = eventually(
        "published again, by the new EmailSettings",
        WAIT,
        || published(&bed),
        is_published_by,
    )
    .await;
    assert_ne!(first.and_then(|e| e.uid()), second.and_then(|e| e.uid()));
    let (_, refused) = used_permissions(&bed);
    assert!(
        refused.is_empty(),
        "refused requests: {refused:#?}\n{}",
        log_text(&log)
    );
    bed.signal_operator(0, "TERM");
}

async fn get_es_with(client: &Client, ns: &str, name: &str) -> Option<EmailSettings> {
    Api::<EmailSettings>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get")
}

#[tokio::test]
async fn without_dns_endpoint_permissions_the_identity_says_so_and_is_still_cleaned_up() {
    // The chart's default: no grant on DNSEndpoints.
    let Some(docs) = chart_rbac_with(false) else {
        return;
    };
    let (mut bed, kubeconfig) = bed_with(&docs).await;
    let log = bed.start_operator_as(&kubeconfig, NS, FAST);
    tenant(&bed, TENANT, &["employee@yourcompany.com"]).await;
    let mut si = identity(TENANT, "yourcompany-com", "yourcompany.com");
    si["spec"]["dns"] = json!({"provider": "ExternalDNS"});
    bed.apply::<SenderIdentity>(TENANT, si).await;
    let si = wait_condition(
        &bed,
        TENANT,
        "yourcompany-com",
        "DnsEndpointReady",
        "False",
        Some("DnsEndpointForbidden"),
    )
    .await;
    assert!(
        condition_message(&si, "DnsEndpointReady").contains("externalDns.enabled"),
        "{}",
        condition_message(&si, "DnsEndpointReady")
    );
    assert!(
        si.status.as_ref().and_then(|s| s.ses.as_ref()).is_some(),
        "where the SES identity lives is in status"
    );
    delete_and_wait_until_ses_is_empty(&bed, TENANT, "yourcompany-com").await;
    // The only refusals are the DNSEndpoint writes (and the start-up probe) it was told about.
    let (_, refused) = used_permissions(&bed);
    assert!(
        refused
            .iter()
            .all(|e| e["objectRef"]["resource"] == "dnsendpoints"),
        "refused requests: {refused:#?}\n{}",
        log_text(&log)
    );
    bed.signal_operator(0, "TERM");
}
