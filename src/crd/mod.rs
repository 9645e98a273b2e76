//! The API: `EmailSettings`, `SenderIdentity` and `SenderPolicy` (group `email.ops.dev`,
//! version `v1alpha1`).
//!
//! Per-object rules live in the schema as CEL (`x-kubernetes-validations`) so the API server
//! rejects bad input at admission; cross-object rules live in [`crate::policy`].

pub mod conditions;
pub mod email_settings;
pub mod reason_catalog;
pub mod reference;
pub mod sender_identity;
pub mod sender_policy;

pub use email_settings::{EmailSettings, EmailSettingsSpec, EmailSettingsStatus};
pub use sender_identity::{SenderIdentity, SenderIdentitySpec, SenderIdentityStatus};
pub use sender_policy::{SenderPolicy, SenderPolicySpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind.
pub const GROUP: &str = "email.ops.dev";
/// API version of every kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "email.ops.dev/v1alpha1";

/// Every CRD with the file each is kept in under `crds/`, in the order `email-operator crds`
/// prints them.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("emailsettings.yaml", definition::<EmailSettings>()),
        ("senderidentities.yaml", definition::<SenderIdentity>()),
        ("senderpolicies.yaml", definition::<SenderPolicy>()),
    ]
}

/// A doc comment as the schema's description: the source's line wrapping undone, so that
/// `kubectl explain` flows it to the terminal's width instead of breaking mid-sentence.
/// Paragraphs (blank lines), list items (`* `, `- `, `1. `) and fenced code are kept.
pub fn flow(text: &str) -> String {
    fn is_item(line: &str) -> bool {
        let l = line.trim_start();
        l.starts_with("* ")
            || l.starts_with("- ")
            || l.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    }
    let mut paragraphs: Vec<Vec<String>> = vec![vec![]];
    let mut in_code = false;
    for line in text.lines() {
        let current = paragraphs.last_mut().expect("one paragraph at least");
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            current.push(line.to_string());
        } else if in_code {
            current.push(line.to_string());
        } else if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(vec![]);
            }
        } else if is_item(line)
            || current.is_empty()
            || current
                .last()
                .is_some_and(|l| l.trim_start().starts_with("```"))
        {
            current.push(line.trim_end().to_string());
        } else {
            let last = current.last_mut().expect("not empty");
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    paragraphs
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.join("\n"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The CRD of `K` as installed: the generated one without `nullable`, so an explicit `null`
/// is pruned by the API server like an absent field (and `has()` in a CEL rule is false for
/// it) instead of slipping past "required when" rules; descriptions flow ([`flow`]).
pub fn definition<K: CustomResourceExt>() -> CustomResourceDefinition {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map.get("nullable") == Some(&serde_json::Value::Bool(true)) {
                    map.remove("nullable");
                }
                if let Some(serde_json::Value::String(d)) = map.get_mut("description") {
                    *d = flow(d);
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let crd = K::crd();
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    if let Some(versions) = value["spec"]["versions"].as_array_mut() {
        for v in versions {
            strip(&mut v["schema"]["openAPIV3Schema"]);
        }
    }
    serde_json::from_value(value).unwrap_or(crd)
}

/// One CRD as a YAML document led by `---` (the content of its file in `crds/`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!("---\n{}", serde_saphyr::to_string(crd)?))
}

/// What `email-operator crds` prints: every CRD as one multi-document stream.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    all().iter().map(|(_, crd)| crd_yaml(crd)).collect()
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret, in the same namespace as the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to another object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object, in the same namespace as the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::flow;

    #[test]
    fn descriptions_flow_but_keep_paragraphs_lists_and_code() {
        assert_eq!(
            flow(
                "What happens to the SES identity: `Delete` removes it\n(unless another uses it), `Retain` keeps it."
            ),
            "What happens to the SES identity: `Delete` removes it (unless another uses it), `Retain` keeps it."
        );
        let text = "Two kinds:\n* `Delete` removes\n  it.\n* `Retain` keeps it.\n\nSee:\n```\nkubectl get sid\n  -A\n```\nThen act.";
        assert_eq!(
            flow(text),
            "Two kinds:\n* `Delete` removes it.\n* `Retain` keeps it.\n\nSee:\n```\nkubectl get sid\n  -A\n```\nThen act."
        );
        assert_eq!(flow("1. first\n2. second"), "1. first\n2. second");
        assert_eq!(flow("one line"), "one line");
    }
}
