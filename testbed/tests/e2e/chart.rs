//! The Helm chart rendered by `helm template`, for the suites that run the operator under the
//! chart's RBAC. helm comes from `.ci/setup-kubectl.sh` (`.tools/bin/helm`); outside CI (`CI`
//! unset) a missing helm skips those suites with the reason printed, in CI it fails.

use super::workspace;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The release's namespace and ServiceAccount (the chart's full name for release
/// `email-operator`).
pub const NAMESPACE: &str = "email-system";
pub const SERVICE_ACCOUNT: &str = "email-operator";

pub fn helm() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("HELM")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend([workspace().join(".tools/bin/helm"), PathBuf::from("helm")]);
    let found = candidates.into_iter().find(|h| {
        Command::new(h)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "helm is not installed (CI must install it: .ci/setup-kubectl.sh)"
        );
        eprintln!("SKIPPED: helm is not installed; run .ci/setup-kubectl.sh");
    }
    found
}

/// `helm template email-operator charts/email-operator -n email-system` with `args` (e.g.
/// `--set`, `watchNamespaces={a,b}`), as documents; None when helm is missing (outside CI).
pub fn render(args: &[&str]) -> Option<Vec<Value>> {
    let out = Command::new(helm()?)
        .args(["template", "email-operator"])
        .arg(workspace().join("charts/email-operator"))
        .args(["-n", NAMESPACE])
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML"))
}

/// The ServiceAccount and RBAC objects among rendered documents.
pub fn rbac(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some(
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .collect()
}

/// The container arguments of the rendered Deployment (after `run`).
pub fn run_args(docs: &[Value]) -> Vec<String> {
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .skip_while(|a| a == "run")
        .collect()
}

fn resource_of(kind: &str) -> ApiResource {
    let (group, version, plural) = match kind {
        "ServiceAccount" => ("", "v1", "serviceaccounts"),
        "ClusterRole" => ("rbac.authorization.k8s.io", "v1", "clusterroles"),
        "ClusterRoleBinding" => ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles"),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings"),
        other => panic!("not an RBAC kind: {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Server-side apply of a rendered document (or a changed copy) by the admin.
pub async fn put(admin: &Client, doc: &Value) {
    let ar = resource_of(doc["kind"].as_str().expect("kind"));
    let name = doc["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &ar),
        None => Api::all_with(admin.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("helm").force(),
        &Patch::Apply(doc),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", doc["kind"]));
}
