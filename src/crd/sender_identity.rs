//! `SenderIdentity`: a domain or an email address to verify in Amazon SES for an
//! EmailSettings, with the DNS records to publish and the verification state SES reports.

use super::LocalObjectRef;
use crate::names::{domain_pattern, email_pattern};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The specification of a SenderIdentity.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "email.ops.dev",
    version = "v1alpha1",
    kind = "SenderIdentity",
    plural = "senderidentities",
    singular = "senderidentity",
    shortname = "sid",
    category = "email",
    namespaced,
    status = "SenderIdentityStatus",
    cel,
    doc = "A domain or email address verified in Amazon SES for an EmailSettings: the operator creates the SES identity and reports the DNS records to publish and the verification state.",
    printcolumn = r#"{"name": "Identity", "type": "string", "jsonPath": ".spec.identity"}"#,
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".status.identityType"}"#,
    printcolumn = r#"{"name": "Verification", "type": "string", "jsonPath": ".status.verificationStatus"}"#,
    printcolumn = r#"{"name": "DKIM", "type": "string", "jsonPath": ".status.dkimStatus"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.mailFromDomain) || !self.identity.contains('@')")
        .message("mailFromDomain can only be set on a domain identity"),
    validation = kube::core::Rule::new("!has(self.mailFromDomain) || self.identity.contains('@') || self.mailFromDomain.lowerAscii().endsWith('.' + self.identity.lowerAscii())")
        .message("mailFromDomain must be a subdomain of the identity, e.g. bounce.yourcompany.com for yourcompany.com")
)]
#[serde(rename_all = "camelCase")]
pub struct SenderIdentitySpec {
    /// The EmailSettings (same namespace) whose active users admit this identity and whose
    /// `advancedSmtp` region and role are used in SES.
    pub email_settings_ref: LocalObjectRef,

    /// The domain (`yourcompany.com`) or email address (`noreply@yourcompany.com`) to verify.
    /// An identity containing `@` is an email identity, anything else a domain identity.
    /// Immutable.
    #[schemars(length(min = 1, max = 254))]
    #[x_kube(
        validation = kube::core::Rule::new(format!("self.matches('{}') || self.matches('{}')", domain_pattern(), email_pattern()))
            .message("identity must be a domain such as yourcompany.com or an email address such as noreply@yourcompany.com"),
        validation = kube::core::Rule::new("self == oldSelf")
            .message("identity is immutable; create a new SenderIdentity instead")
    )]
    pub identity: String,

    /// Easy DKIM settings (domain identities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<Dkim>,

    /// A custom MAIL FROM domain, a subdomain of a domain identity (e.g.
    /// bounce.yourcompany.com), so SPF aligns with the sender's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.matches('{}')", domain_pattern()))
        .message("mailFromDomain must be a domain name such as bounce.yourcompany.com"))]
    pub mail_from_domain: Option<String>,

    /// What happens to the SES identity when this object is deleted: `Delete` removes it
    /// (unless another SenderIdentity still uses it), `Retain` keeps it. Default: `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// How the DNS records get published. Default: `provider: None` (you publish them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// Easy DKIM settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dkim {
    /// The DKIM key length SES generates. Default: `RSA_2048_BIT`.
    #[serde(default)]
    pub key_length: DkimKeyLength,
}

/// DKIM signing key length.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DkimKeyLength {
    /// 1024-bit RSA keys (for DNS providers that cannot hold longer TXT values).
    #[serde(rename = "RSA_1024_BIT")]
    Rsa1024,
    /// 2048-bit RSA keys.
    #[default]
    #[serde(rename = "RSA_2048_BIT")]
    Rsa2048,
}

impl DkimKeyLength {
    /// The SES API's name of the key length.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa1024 => "RSA_1024_BIT",
            Self::Rsa2048 => "RSA_2048_BIT",
        }
    }
}

/// What happens to the SES identity when the SenderIdentity is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the SES identity when no other SenderIdentity uses it.
    #[default]
    Delete,
    /// Keep the SES identity.
    Retain,
}

impl DeletionPolicy {
    /// As written in the spec (and in SES owner tags).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "Delete",
            Self::Retain => "Retain",
        }
    }
}

/// DNS publication settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// `None`: the records appear in status for you to publish. `ExternalDNS`: the operator
    /// also writes them into a DNSEndpoint (externaldns.k8s.io/v1alpha1) it owns.
    #[serde(default)]
    pub provider: DnsProvider,

    /// With ExternalDNS, also publish the SPF TXT and MAIL FROM MX/TXT records (external-dns
    /// ignores TXT and MX unless configured with `--managed-record-types`). Default: false,
    /// only the DKIM CNAMEs.
    #[serde(default)]
    pub include_txt_and_mx: bool,
}

/// Who publishes the DNS records.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DnsProvider {
    /// Nobody: publish the records shown in status yourself.
    #[default]
    #[serde(rename = "None")]
    Manual,
    /// external-dns, through a DNSEndpoint the operator owns.
    #[serde(rename = "ExternalDNS")]
    ExternalDns,
}

/// Whether the identity is a domain or an email address.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IdentityType {
    /// A whole domain (and its subdomains) is verified via DKIM CNAMEs.
    Domain,
    /// One address is verified via a link SES emails to it.
    Email,
}

/// The observed state of a SenderIdentity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderIdentityStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Accepted`, `Verified`, `DkimVerified` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// `Domain` or `Email`, derived from `spec.identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<IdentityType>,

    /// SES verification status: Pending, Success, Failed, TemporaryFailure or NotStarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_status: Option<String>,

    /// SES Easy DKIM status: Pending, Success, Failed, TemporaryFailure or NotStarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim_status: Option<String>,

    /// Whether SES lets mail be sent from this identity now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_for_sending: Option<bool>,

    /// SES status of the custom MAIL FROM domain: Pending, Success, Failed or
    /// TemporaryFailure. Failed means SES cannot find its MX record (or it was removed): mail
    /// then leaves with amazonses.com as MAIL FROM and SPF no longer aligns with the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_from_status: Option<String>,

    /// When the operator last changed the DKIM key length SES generates next. SES allows that
    /// at most once a day, so a further change waits until a day after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim_key_length_changed_time: Option<Time>,

    /// The DNS records to publish for this identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_records: Vec<DnsRecord>,

    /// When the current verification attempt started (the 72 h / 24 h windows count from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Time>,

    /// When this identity was last read from SES. Between reads its verification status is
    /// followed through the bulk listing of all identities, which does not change this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<Time>,

    /// How many times verification has been started (creations and re-sent emails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_attempts: Option<i32>,

    /// The value of the `email.ops.dev/retry` annotation last acted on; changing the
    /// annotation retries a Failed verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_retry: Option<String>,

    /// Where the SES identity lives, kept so it can be cleaned up even after the EmailSettings
    /// is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ses: Option<SesLocation>,

    /// Where this SenderIdentity held an SES identity before its EmailSettings moved it to
    /// another region or role. Each is released (deleted as its last owner with
    /// `deletionPolicy: Delete`, otherwise only our owner tag is removed) once the identity is
    /// verified for sending where it is now and the EmailSettings has published that
    /// location's configuration, so applications keep a verified sender during the move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_locations: Vec<SesLocation>,
}

/// The SES account (role) and region of an identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SesLocation {
    /// The SES region.
    pub region: String,
    /// The IAM role assumed for SES calls, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// One DNS record to publish.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    /// Fully qualified record name, e.g. abc123._domainkey.yourcompany.com.
    pub name: String,
    /// Record type: CNAME, TXT or MX.
    #[serde(rename = "type")]
    pub type_: String,
    /// Record value, e.g. abc123.dkim.amazonses.com, or `10 feedback-smtp.us-east-1.amazonses.com` for MX.
    pub value: String,
    /// Why it exists: DKIM, SPF, MailFromMX or MailFromSPF.
    pub purpose: String,
    /// Whether the operator's own DNS lookup found the record published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,
}
