//! The output Secret (pure): what a validated configuration looks like to applications, the
//! fingerprint of the inputs it was validated with, and whether an existing Secret is ours.

use crate::crd::EmailSettings;
use crate::smtp::target::Prepared;
use crate::smtp::{Auth, Outcome};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Annotation: the EmailSettings generation the published configuration was validated for.
pub const VALIDATED_GENERATION: &str = "email.ops.dev/validated-generation";
/// Annotation: when the published configuration last passed the connection test.
pub const VALIDATED_AT: &str = "email.ops.dev/validated-at";
/// Annotation: the fingerprint of the inputs (settings and referenced Secrets) that passed.
pub const INPUTS_HASH: &str = "email.ops.dev/inputs-hash";
/// Label and annotation: the EmailSettings that publishes the Secret. The annotation holds its
/// name; the label, for selecting, the name when it fits a label value (see [`label_value`]).
pub const SETTINGS_LABEL: &str = "email.ops.dev/email-settings";

/// A label value standing for an object name: the name itself when it has at most 63
/// characters (a label value's limit; a name is a DNS subdomain, so its characters fit),
/// otherwise its first 52 characters and a 10-digit digest of the whole, so distinct names keep
/// distinct values (apimachinery `pkg/util/validation`, `IsValidLabelValue`).
pub fn label_value(name: &str) -> String {
    const MAX: usize = 63;
    if name.len() <= MAX {
        return name.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let hex: String = digest.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let head = name
        .get(..MAX - hex.len() - 1)
        .unwrap_or(name)
        .trim_end_matches(['.', '-']);
    format!("{head}-{hex}")
}

/// A digest of everything the connection test depends on, secrets included (as a digest: it is
/// stored only on the Secret itself, next to the values it digests).
pub fn fingerprint(p: &Prepared, extra: &BTreeMap<String, String>) -> String {
    let t = &p.target;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |s: &[u8]| {
        ctx.update(&(s.len() as u64).to_be_bytes());
        ctx.update(s);
    };
    field(t.host.as_bytes());
    field(&t.port.to_be_bytes());
    match t.implicit_tls {
        Some(i) => {
            field(&i.port.to_be_bytes());
            field(&[u8::from(i.fallback)]);
        }
        None => field(b"-"),
    }
    field(&[u8::from(t.start_tls)]);
    match &t.auth {
        Some(Auth::Password { username, password }) => {
            field(b"password");
            field(username.as_bytes());
            field(password.expose().as_bytes());
        }
        // The token changes hourly; the grant below is what identifies the configuration.
        Some(Auth::XOAuth2 { username, .. }) => {
            field(b"xoauth2");
            field(username.as_bytes());
        }
        None => field(b"none"),
    }
    field(p.username.as_bytes());
    if let Some(g) = &p.oauth2 {
        field(g.token_url.as_bytes());
        field(g.client_id.as_bytes());
        field(g.client_secret.expose().as_bytes());
        field(g.scopes.join(" ").as_bytes());
    }
    field(t.from.as_bytes());
    field(t.ca_bundle_pem.as_deref().unwrap_or_default());
    for (k, v) in extra {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    let digest = ctx.finish();
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Percent-encodes a URL userinfo part (RFC 3986 unreserved characters pass).
fn userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The keys applications read: `host`, `port`, `username`, `password`, `from`, `tls`
/// (`none|starttls|implicit`), `url`, `authentication` (`password|oauth2|none`), the OAuth2
/// grant for XOAUTH2 clients, and `extra` (e.g. `configurationSet`).
pub fn data(
    p: &Prepared,
    outcome: &Outcome,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let t = &p.target;
    let tls = outcome.path.tls();
    let password = match &t.auth {
        Some(Auth::Password { password, .. }) => password.expose().to_string(),
        _ => String::new(),
    };
    let authentication = match (&t.auth, &p.oauth2) {
        (_, Some(_)) => "oauth2",
        (Some(Auth::Password { .. }), None) => "password",
        _ => "none",
    };
    let scheme = if tls == "implicit" { "smtps" } else { "smtp" };
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    let credentials = match authentication {
        "password" => format!("{}:{}@", userinfo(&p.username), userinfo(&password)),
        "oauth2" => format!("{}@", userinfo(&p.username)),
        _ => String::new(),
    };
    let mut out = BTreeMap::from([
        ("host".to_string(), t.host.clone()),
        ("port".to_string(), outcome.port.to_string()),
        ("username".to_string(), p.username.clone()),
        ("password".to_string(), password),
        ("from".to_string(), t.from.clone()),
        ("tls".to_string(), tls.to_string()),
        ("authentication".to_string(), authentication.to_string()),
        (
            "url".to_string(),
            format!("{scheme}://{credentials}{host}:{}", outcome.port),
        ),
    ]);
    if let Some(g) = &p.oauth2 {
        out.insert("oauth2TokenUrl".into(), g.token_url.clone());
        out.insert("oauth2ClientId".into(), g.client_id.clone());
        out.insert(
            "oauth2ClientSecret".into(),
            g.client_secret.expose().to_string(),
        );
        out.insert("oauth2Scopes".into(), g.scopes.join(" "));
    }
    out.extend(extra.clone());
    out
}

/// What a published Secret says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub generation: Option<i64>,
    pub validated_at: Option<Timestamp>,
    pub inputs_hash: Option<String>,
    /// The Secret's data, as strings.
    pub data: BTreeMap<String, String>,
}

impl Published {
    pub fn of(secret: &Secret) -> Self {
        let a = secret.annotations();
        Self {
            generation: a.get(VALIDATED_GENERATION).and_then(|g| g.parse().ok()),
            validated_at: a.get(VALIDATED_AT).and_then(|t| t.parse().ok()),
            inputs_hash: a.get(INPUTS_HASH).cloned(),
            data: secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect(),
        }
    }
}

/// Who published an existing output Secret, as far as `es` is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// `es` did: it is the Secret's owner.
    Ours,
    /// An earlier EmailSettings of the same name, since deleted and created again: the
    /// garbage collector deletes the Secret with its owner. It is not taken over: changing an
    /// object's owner references needs `delete` on it where `OwnerReferencesPermissionEnforcement`
    /// is on (OpenShift and many hardened clusters), which the operator is not granted.
    Predecessor,
    /// Someone else's.
    Foreign,
}

/// Whose `secret` is (see [`Ownership`]).
pub fn ownership(secret: &Secret, es: &EmailSettings) -> Ownership {
    let same_name = |o: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference| {
        o.kind == "EmailSettings"
            && o.api_version.starts_with(crate::crd::GROUP)
            && o.name == es.name_any()
    };
    let owners: Vec<_> = secret.owner_references().iter().filter(same_name).collect();
    if owners.is_empty() {
        Ownership::Foreign
    } else if es
        .uid()
        .is_none_or(|uid| owners.iter().any(|o| o.uid == uid))
    {
        Ownership::Ours
    } else {
        Ownership::Predecessor
    }
}

/// Whether `secret` was published for `es`.
pub fn is_ours(secret: &Secret, es: &EmailSettings) -> bool {
    ownership(secret, es) == Ownership::Ours
}

/// The Secret as applied by server-side apply: data, labels, annotations and the controlling
/// owner reference (so it is garbage-collected with the EmailSettings).
pub fn manifest(
    es: &EmailSettings,
    data: &BTreeMap<String, String>,
    generation: i64,
    validated_at: Timestamp,
    inputs_hash: &str,
) -> Value {
    let encoded: BTreeMap<&String, String> = data
        .iter()
        .map(|(k, v)| {
            (
                k,
                base64::engine::general_purpose::STANDARD.encode(v.as_bytes()),
            )
        })
        .collect();
    let owner = es.controller_owner_ref(&());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": es.output_secret_name(),
            "namespace": es.namespace(),
            "labels": {
                "app.kubernetes.io/managed-by": "email-operator",
                SETTINGS_LABEL: label_value(&es.name_any()),
            },
            "annotations": {
                SETTINGS_LABEL: es.name_any(),
                VALIDATED_GENERATION: generation.to_string(),
                VALIDATED_AT: validated_at.to_string(),
                INPUTS_HASH: inputs_hash,
            },
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "type": "Opaque",
        "data": encoded,
    })
}
