//! `SenderPolicy`: which namespaces may send as which domains — the platform team's grant,
//! honoured only in the operator's policy namespace (`--policy-namespace`, the namespace the
//! operator runs in), which tenants cannot write to.

use crate::names::domain_pattern;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A DNS label: what a namespace name is.
const NAMESPACE_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The specification of a SenderPolicy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "email.ops.dev",
    version = "v1alpha1",
    kind = "SenderPolicy",
    plural = "senderpolicies",
    singular = "senderpolicy",
    shortname = "spol",
    category = "email",
    namespaced,
    cel,
    doc = "Which namespaces may send as which domains: the platform team's grant. Honoured only in the operator's policy namespace. A domain no policy names is held by the first namespace that claims it; a domain a policy names may be claimed only by the namespaces a policy grants it to.",
    printcolumn = r#"{"name": "Domains", "type": "string", "jsonPath": ".spec.domains"}"#,
    printcolumn = r#"{"name": "Namespaces", "type": "string", "jsonPath": ".spec.namespaces"}"#,
    printcolumn = r#"{"name": "Share", "type": "boolean", "jsonPath": ".spec.shareIdentities"}"#,
    printcolumn = r#"{"name": "Default-Relay", "type": "boolean", "jsonPath": ".spec.defaultRelay"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new("size(self.namespaces) > 0 || has(self.namespaceSelector)")
        .message("name the namespaces this policy grants (namespaces) or select them by label (namespaceSelector)")
)]
#[serde(rename_all = "camelCase")]
pub struct SenderPolicySpec {
    /// The namespaces granted, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.all(n, n.matches('{NAMESPACE_PATTERN}'))"))
        .message("every namespaces entry must be a namespace name (lower-case letters, digits and -)"))]
    pub namespaces: Vec<String>,

    /// The namespaces granted, by their labels (in addition to `namespaces`). Evaluated when
    /// the operator watches the whole cluster; an operator installed for a list of namespaces
    /// cannot read namespaces' labels, and grants by name only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// The domains granted, each with its subdomains (`yourcompany.com` grants
    /// `en.yourcompany.com`): granted namespaces may verify them as SenderIdentities and send
    /// from addresses in them. Once a policy names a domain, only the namespaces a policy
    /// grants it to may claim it (or a subdomain, or a parent domain of it).
    #[schemars(length(min = 1, max = 100), inner(length(max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.all(d, d.matches('{}'))", domain_pattern()))
        .message("every domains entry must be a domain such as yourcompany.com"))]
    pub domains: Vec<String>,

    /// Whether the granted namespaces may share one SES identity of these domains (in the
    /// same account and region): the case of production and its API sandbox sharing one
    /// verification. Without it the first namespace to claim an identity keeps it, and
    /// another namespace's SenderIdentity for it is refused.
    #[serde(default)]
    pub share_identities: bool,

    /// Whether the granted namespaces may use the operator's default relay
    /// (`delivery: Default`) with a `from` address in these domains.
    #[serde(default)]
    pub default_relay: bool,
}
