//! Applying the example manifests as `kubectl apply --server-side -R -f` would, and the
//! environment file a shell sources to reach the test bed.

use std::path::{Path, PathBuf};

use ::kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::discovery::{Discovery, Scope};
use serde_json::Value;

use super::FIELD_MANAGER;
use crate::control::{AwsTestbed, export_line};

/// A client of the Kubernetes stand-in.
pub fn client(kube_url: &str) -> Result<::kube::Client, String> {
    let config = ::kube::Config::new(
        kube_url
            .parse()
            .map_err(|e| format!("bad URL {kube_url}: {e}"))?,
    );
    ::kube::Client::try_from(config).map_err(|e| format!("kube client: {e}"))
}

/// Writes `DIR/env` (the SES/DNS/control lines plus `KUBECONFIG`) and returns its path.
pub fn write_env(
    dir: &Path,
    aws: &AwsTestbed,
    region: &str,
    kubeconfig: &Path,
) -> Result<PathBuf, String> {
    let kubeconfig = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.to_path_buf());
    let mut lines = aws.env_lines(region);
    lines.push(export_line("KUBECONFIG", &kubeconfig.display().to_string()));
    // The SES SMTP stand-in's CA, for the operator's `--ses-smtp-ca-file`.
    let ca = dir.join("ses-smtp-ca.pem");
    aws.ses_smtp
        .write_ca(&ca)
        .map_err(|e| format!("cannot write {}: {e}", ca.display()))?;
    let ca = std::path::absolute(&ca).unwrap_or(ca);
    lines.push(export_line(
        "TESTBED_SES_SMTP_CA",
        &ca.display().to_string(),
    ));
    let path = dir.join("env");
    std::fs::write(&path, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Server-side applies every document under `dir` (Namespaces first), like
/// `kubectl apply --server-side -R -f dir`. Returns how many objects were applied.
pub async fn apply_examples(kube_url: &str, dir: &Path) -> Result<usize, String> {
    apply_manifests(kube_url, dir).await.map(|a| a.len())
}

/// [`apply_examples`], returning the objects applied (as written in the files).
pub async fn apply_manifests(kube_url: &str, dir: &Path) -> Result<Vec<DynamicObject>, String> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    files.sort();
    let mut documents: Vec<(PathBuf, DynamicObject)> = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let values: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        for value in values.into_iter().filter(|v| !v.is_null()) {
            let object: DynamicObject = serde_json::from_value(value)
                .map_err(|e| format!("{}: not a Kubernetes object: {e}", file.display()))?;
            documents.push((file.clone(), object));
        }
    }
    // Namespaces before what lives in them.
    documents.sort_by_key(|(_, o)| o.types.as_ref().is_none_or(|t| t.kind != "Namespace"));

    let client = client(kube_url)?;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut failures = Vec::new();
    let mut applied = Vec::new();
    for (file, object) in documents {
        let Some(types) = object.types.clone() else {
            failures.push(format!(
                "{}: object without apiVersion/kind",
                file.display()
            ));
            continue;
        };
        let name = object.metadata.name.clone().unwrap_or_default();
        let what = format!(
            "{} {}/{name}",
            types.kind,
            object.metadata.namespace.as_deref().unwrap_or("-")
        );
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| format!("{what}: {e}"))?;
        let Some((resource, capabilities)) = discovery.resolve_gvk(&gvk) else {
            failures.push(format!(
                "{what}: the API server does not serve {}/{}",
                types.api_version, types.kind
            ));
            continue;
        };
        let api: Api<DynamicObject> = if capabilities.scope == Scope::Namespaced {
            let namespace = object
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            Api::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        match api.patch(&name, &params, &Patch::Apply(&object)).await {
            Ok(_) => applied.push(object),
            Err(error) => failures.push(format!("{what} ({}): {error}", file.display())),
        }
    }
    if failures.is_empty() {
        Ok(applied)
    } else {
        Err(format!(
            "applying {} failed:\n  {}",
            dir.display(),
            failures.join("\n  ")
        ))
    }
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    Ok(())
}
