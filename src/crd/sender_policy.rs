//! `SenderPolicy`: which namespaces may send as which domains — the platform team's grant,
//! honoured only in the operator's policy namespace (`--policy-namespace`, the namespace the
//! operator runs in), which tenants cannot write to.

use crate::names::domain_pattern;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A DNS label: what a namespace name is.
const NAMESPACE_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An IAM role ARN, or every role of an account (`role/*`).
const ROLE_PATTERN: &str = "^arn:aws[a-z-]*:iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_/-]+|[*])$";

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
    validation = kube::core::Rule::new("(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)")
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
    /// (`delivery: Default`) with a `from` address in these domains. Their published Secret
    /// then holds the relay's credential: the platform's own — this grant accepts that — unless
    /// `relayCredentialsSecretRef` names theirs.
    #[serde(default)]
    pub default_relay: bool,

    /// A Secret in this policy's namespace with the granted namespaces' own credential on the
    /// default relay (keys as the relay's Secret: `username`, `password`, `authentication`,
    /// `oauth2ClientId`, `oauth2ClientSecret` …): the relay is tested and published with it,
    /// and the platform's credential never reaches a tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_credentials_secret_ref: Option<super::LocalObjectRef>,

    /// Whether the granted namespaces may adopt SES identities of these domains that exist
    /// outside the operator (the annotation `email.ops.dev/adopt: "true"`). The operator never
    /// deletes an adopted identity, whatever the SenderIdentity's `deletionPolicy`: only its
    /// claim is removed.
    #[serde(default)]
    pub adopt_existing: bool,

    /// The IAM roles the granted namespaces may have the operator assume
    /// (`advancedSmtp.roleArn`); `arn:aws:iam::111122223333:role/*` for every role of an
    /// account. The operator assumes a role with the external id
    /// `email-operator:<cluster-id>:<namespace>` and the session tags
    /// `email-operator/namespace` and `email-operator/cluster`, so a role's trust policy can
    /// tell tenants apart. Without a grant a namespace uses the operator's own credentials only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 2048)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.all(r, r.matches('{ROLE_PATTERN}'))"))
        .message("every roleArns entry must be an IAM role ARN such as arn:aws:iam::111122223333:role/ses-billing, or arn:aws:iam::111122223333:role/* for every role of an account"))]
    pub role_arns: Vec<String>,

    /// Whether the granted namespaces' SenderIdentities may publish their records for these
    /// domains through external-dns (`dns.provider: ExternalDNS`).
    #[serde(default)]
    pub publish_records: bool,
}
