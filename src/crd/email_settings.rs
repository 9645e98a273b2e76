//! `EmailSettings`: how a tenant's mail leaves the cluster — the operator's default relay, an
//! external SMTP server, or Amazon SES — and the Secret applications mount once the
//! connection has been tested.

use super::{SecretKeyRef, SecretRef};
use crate::names::{email_pattern, hostname_pattern, ipv6_pattern};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: the value is an email address.
fn email_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches('{}')", email_pattern())).message(
        kube::core::Message::Message(format!(
            "{field} must be an email address such as billing@yourcompany.com"
        )),
    )
}

/// CEL: the value is a TCP port.
fn port_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new("self >= 1 && self <= 65535").message(kube::core::Message::Message(
        format!("{field} must be a TCP port between 1 and 65535"),
    ))
}

/// How to deliver this EmailSettings' mail. Default: `Default`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Delivery {
    /// The operator-wide default relay, configured when the operator is installed.
    #[default]
    Default,
    /// Your own SMTP server, described in `externalSmtp`.
    ExternalSmtp,
    /// Amazon SES with DKIM, described in `advancedSmtp`; senders must be verified
    /// SenderIdentities.
    AdvancedSmtp,
}

/// How the operator authenticates to an external SMTP server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Authentication {
    /// AUTH LOGIN/PLAIN with `username` and the password in `passwordSecretRef`.
    UsernamePassword,
    /// XOAUTH2 with a token obtained from `oauth2` by the client-credentials grant.
    OAuth2,
}

/// The specification of an EmailSettings.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "email.ops.dev",
    version = "v1alpha1",
    kind = "EmailSettings",
    plural = "emailsettings",
    singular = "emailsettings",
    shortname = "emset",
    category = "email",
    namespaced,
    status = "EmailSettingsStatus",
    cel,
    doc = "How a tenant's applications send email: the delivery method, its connection settings, and the Secret the operator publishes once the connection test passes.",
    printcolumn = r#"{"name": "Delivery", "type": "string", "jsonPath": ".spec.delivery"}"#,
    printcolumn = r#"{"name": "From", "type": "string", "jsonPath": ".spec.from"}"#,
    printcolumn = r#"{"name": "Connection", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"ConnectionVerified\")].reason"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new("self.delivery != 'ExternalSmtp' || has(self.externalSmtp)")
        .message("externalSmtp is required when delivery is ExternalSmtp"),
    validation = kube::core::Rule::new("self.delivery != 'AdvancedSmtp' || has(self.advancedSmtp)")
        .message("advancedSmtp is required when delivery is AdvancedSmtp"),
    validation = kube::core::Rule::new("self.delivery == 'ExternalSmtp' || !has(self.externalSmtp)")
        .message("externalSmtp is only used when delivery is ExternalSmtp; remove it or set delivery: ExternalSmtp"),
    validation = kube::core::Rule::new("self.delivery == 'AdvancedSmtp' || !has(self.advancedSmtp)")
        .message("advancedSmtp is only used when delivery is AdvancedSmtp; remove it or set delivery: AdvancedSmtp")
)]
#[serde(rename_all = "camelCase")]
pub struct EmailSettingsSpec {
    /// The address notifications are sent from (`mail.from`), e.g. billing@yourcompany.com.
    /// With AdvancedSmtp it must be covered by a verified SenderIdentity.
    #[schemars(length(max = 254))]
    #[x_kube(validation = email_rule("from"))]
    pub from: String,

    /// How mail leaves: `Default` (the operator's relay), `ExternalSmtp` (your server, see
    /// `externalSmtp`) or `AdvancedSmtp` (Amazon SES with DKIM, see `advancedSmtp`).
    #[serde(default)]
    pub delivery: Delivery,

    /// The tenant's active users. A SenderIdentity is admitted only for an active user's email
    /// domain or a subdomain of it: `employee@yourcompany.com` admits `yourcompany.com`,
    /// `en.yourcompany.com`, `contact@yourcompany.com` and `noreply@en.yourcompany.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 254)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.all(u, u.matches('{}'))", email_pattern()))
        .message("every activeUsers entry must be an email address such as employee@yourcompany.com"))]
    pub active_users: Vec<String>,

    /// Connection settings of your own SMTP server; required when delivery is ExternalSmtp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_smtp: Option<ExternalSmtp>,

    /// Amazon SES settings; required when delivery is AdvancedSmtp, and the region in which
    /// this EmailSettings' SenderIdentities are verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_smtp: Option<AdvancedSmtp>,

    /// Name of the Secret the validated configuration is published to, in this namespace.
    /// Default: `<metadata.name>-smtp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("outputSecretName must be a lower-case DNS subdomain name, e.g. notifications-smtp"))]
    pub output_secret_name: Option<String>,

    /// How often a working connection is tested again (catches rotated passwords and moved
    /// hosts), as a duration such as `24h` or `90m`; between `1m` and `8760h`. Default: `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^([0-9]{1,6}(h|m|s))+$') && duration(self) >= duration('1m') && duration(self) <= duration('8760h')")
        .message("revalidateEvery must be a duration between 1m and 8760h, such as 24h or 90m"))]
    pub revalidate_every: Option<String>,
}

/// Connection settings of an external SMTP server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new("self.authentication != 'UsernamePassword' || has(self.passwordSecretRef)")
        .message("passwordSecretRef is required when authentication is UsernamePassword"),
    validation = kube::core::Rule::new("self.authentication == 'UsernamePassword' || !has(self.passwordSecretRef)")
        .message("passwordSecretRef is only allowed when authentication is UsernamePassword"),
    validation = kube::core::Rule::new("self.authentication != 'OAuth2' || has(self.oauth2)")
        .message("oauth2 is required when authentication is OAuth2"),
    validation = kube::core::Rule::new("self.authentication == 'OAuth2' || !has(self.oauth2)")
        .message("oauth2 is only allowed when authentication is OAuth2")
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSmtp {
    /// Host name or IP address of the SMTP server, without scheme or port
    /// (e.g. smtp.yourcompany.com).
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new(format!("self.matches('{}') || self.matches('{}')", hostname_pattern(), ipv6_pattern()))
        .message("host must be a host name or IP address without scheme or port, e.g. smtp.yourcompany.com"))]
    pub host: String,

    /// The port to connect to (587 for submission with STARTTLS, 25 for relay). When
    /// `socketFactory` is set, it is used only for the plain fallback connection.
    #[x_kube(validation = port_rule("port"))]
    pub port: i32,

    /// The authentication scheme: `UsernamePassword` or `OAuth2`.
    pub authentication: Authentication,

    /// Upgrade the connection with STARTTLS before authenticating. When true the upgrade is
    /// required: a server that does not offer it fails the test instead of falling back to
    /// plain text. Default: false.
    #[serde(default)]
    pub start_tls: bool,

    /// The sender's account on the SMTP server, an email address.
    #[schemars(length(max = 254))]
    #[x_kube(validation = email_rule("username"))]
    pub username: String,

    /// The Secret key holding the password; required iff authentication is UsernamePassword.
    /// (For Gmail this must be an app password.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,

    /// The OAuth 2.0 provider; required iff authentication is OAuth2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,

    /// A Secret key holding PEM CA certificates to trust for a private relay, instead of the
    /// public web PKI roots. Certificates are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeyRef>,

    /// Implicit TLS (an SSL socket from the first byte, usually port 465), as Java mail's
    /// socket factory settings describe it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_factory: Option<SocketFactory>,
}

/// The OAuth 2.0 client-credentials provider used for XOAUTH2.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// The provider's token endpoint, e.g. https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.
    /// Must be `https://`: the client secret is sent there.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("isURL(self) && self.matches('^https://[^/]+')")
        .message("tokenUrl must be an absolute https:// URL (the client secret is sent there)"))]
    pub token_url: String,

    /// The OAuth 2.0 client id.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,

    /// The Secret key holding the client secret.
    pub client_secret_ref: SecretKeyRef,

    /// Scopes to request, e.g. https://outlook.office365.com/.default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 256)))]
    pub scopes: Vec<String>,
}

/// Implicit-TLS socket settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.class) || has(self.port)")
        .message("socketFactory.port is required when socketFactory.class is set"),
    validation = kube::core::Rule::new("has(self.class) || !has(self.port)")
        .message("socketFactory.port is only used together with socketFactory.class")
)]
#[serde(rename_all = "camelCase")]
pub struct SocketFactory {
    /// The socket factory class; the only accepted value is `javax.net.ssl.SSLSocketFactory`
    /// (implicit TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self == 'javax.net.ssl.SSLSocketFactory'")
        .message("socketFactory.class must be javax.net.ssl.SSLSocketFactory"))]
    pub class: Option<String>,

    /// The implicit-TLS port (usually 465), used instead of `port`; required when `class` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = port_rule("socketFactory.port"))]
    pub port: Option<i32>,

    /// When the TLS socket cannot be opened, retry with a plain connection on `port`.
    /// Default: true.
    #[serde(default = "default_true")]
    pub fallback: bool,
}

fn default_true() -> bool {
    true
}

/// Amazon SES settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedSmtp {
    /// The SES region, e.g. us-east-1. Identities are verified and mail is sent there.
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')")
        .message("region must be an AWS region such as us-east-1"))]
    pub region: String,

    /// An IAM role to assume for SES calls, for identities in another AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$')")
        .message("roleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/ses-identities"))]
    pub role_arn: Option<String>,

    /// An SES configuration set applied to sent mail (event publishing, tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9_-]+$')")
        .message("configurationSetName may contain only letters, digits, '_' and '-'"))]
    pub configuration_set_name: Option<String>,

    /// A Secret with an IAM access key (`accessKeyId`, `secretAccessKey`) allowed to
    /// `ses:SendRawEmail`; the operator derives the region's SES SMTP password from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_credentials_secret_ref: Option<SecretRef>,
}

/// The observed state of an EmailSettings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailSettingsStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `ConnectionVerified`, and for AdvancedSmtp `SenderVerified` and `DmarcAligned`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The most recent connection test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connection_test: Option<ConnectionTest>,

    /// The published Secret and the generation it was validated for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_secret: Option<OutputSecret>,

    /// How many identity slots this EmailSettings' SenderIdentities use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_usage: Option<IdentityUsage>,

    /// The last test message sent on request (annotation `email.ops.dev/send-test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test_message: Option<TestMessage>,

    /// AdvancedSmtp: the SES account's standing in the region, as GetAccount last reported it
    /// (read every 12 hours by default, once for all EmailSettings of the account and region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ses_account: Option<SesAccount>,
}

/// One test message, sent when the annotation `email.ops.dev/send-test` was set to a new
/// recipient: through the published Secret, as an application sends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestMessage {
    /// The recipient asked for (the annotation's value). Setting the annotation to another
    /// value sends again; the same value is never sent twice (add a `+label` to send to the
    /// same mailbox again, e.g. `bounce+2@simulator.amazonses.com`).
    pub recipient: String,
    /// When it was sent.
    pub time: Time,
    /// True when the server accepted the message for delivery.
    pub accepted: bool,
    /// `TestMessageAccepted`, `TestMessageRefused` (the server refused the recipient or the
    /// message), `InvalidRecipient`, or why no server took it (as in `lastConnectionTest`,
    /// e.g. `BadCredentials`).
    pub reason: String,
    /// The server's reply code to the recipient or the message, when it answered them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The server's reply (its first line), or what failed.
    pub reply: String,
    /// The id the server gave the message, when its reply names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The Secret the message went through.
    pub secret: String,
    /// The EmailSettings generation validated in that Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// What the outcome means and what to do.
    pub message: String,
}

/// The SES account's standing in one region.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SesAccount {
    /// The region this describes.
    pub region: String,
    /// False while the region is in the SES sandbox: mail goes only to verified addresses and
    /// domains and to the mailbox simulator, within the sandbox's quota.
    pub production_access: bool,
    /// False while sending is paused for the account in the region.
    pub sending_enabled: bool,
    /// `HEALTHY`, `PROBATION` (under review; still sending) or `SHUTDOWN` (sending stopped).
    pub enforcement_status: String,
    /// Messages the account may send in 24 hours.
    pub max24_hour_send: i64,
    /// Messages the account may send per second.
    pub max_send_rate: i64,
    /// Messages sent in the last 24 hours when it was read.
    pub sent_last24_hours: i64,
    /// When GetAccount was read.
    pub checked_time: Time,
}

/// The outcome of one connection test.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTest {
    /// When the test ran.
    pub time: Time,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// `Succeeded`, or the failure reason (e.g. `BadCredentials`).
    pub reason: String,
    /// Which connection path worked: `implicit`, `starttls`, `plain`, or `fallback-plain`
    /// when the implicit-TLS socket failed and the plain fallback succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the failed test found (no secret is ever in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Consecutive failed tests of these inputs: the next waits longer with each (and a
    /// restarted operator keeps waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// Which version of the inputs was tested (the generation and the Secrets' versions, as
    /// a digest; nothing secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
}

/// The Secret applications mount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputSecret {
    /// Name of the Secret in this namespace.
    pub name: String,
    /// The EmailSettings generation whose configuration the Secret holds.
    pub validated_generation: i64,
}

/// Identity slots in use, as `used/limit`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityUsage {
    /// Domain identities admitted, of at most 1 (e.g. `1/1`).
    pub domain: String,
    /// Email identities admitted, of at most 3 (e.g. `2/3`).
    pub email: String,
}

impl EmailSettings {
    /// Whether the published Secret holds the configuration of the current spec.
    pub fn publishes_current_spec(&self) -> bool {
        let published = self.status.as_ref().and_then(|s| s.output_secret.as_ref());
        published.is_some_and(|o| Some(o.validated_generation) == self.metadata.generation)
    }

    /// The Secret the validated configuration is published to.
    pub fn output_secret_name(&self) -> String {
        self.spec.output_secret_name.clone().unwrap_or_else(|| {
            format!("{}-smtp", self.metadata.name.as_deref().unwrap_or_default())
        })
    }
}
