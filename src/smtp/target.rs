//! From an EmailSettings and its referenced Secrets to what the connection test needs (pure):
//! an external server ([`external`]), the operator's default relay ([`default_relay`]) or the
//! SES SMTP endpoint of a region ([`ses`]). Used by the controller and by `plan --check-smtp`
//! (which reads Secrets from manifests).

use super::oauth2::ClientCredentials;
use super::{Auth, ImplicitTls, Secret, Target};
use crate::crd::email_settings::{Authentication, Delivery};
use crate::crd::{EmailSettings, SecretKeyRef};

/// A referenced Secret or key that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Secret {name} has no key {key:?} (or does not exist)")]
pub struct MissingSecret {
    pub name: String,
    pub key: String,
}

impl MissingSecret {
    /// Stable reason.
    pub fn reason(&self) -> &'static str {
        crate::crd::conditions::reasons::SECRET_NOT_FOUND
    }
}

/// What the test needs, with the OAuth2 grant still to be exchanged for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub target: Target,
    /// For OAuth2: the grant whose token goes into `target.auth` (see [`Prepared::with_token`]).
    pub oauth2: Option<ClientCredentials>,
    /// The account the test authenticates as; empty when the relay needs no authentication.
    pub username: String,
}

impl Prepared {
    /// Authenticates with XOAUTH2 using `token` (obtained from [`Prepared::oauth2`]).
    pub fn with_token(mut self, token: Secret) -> Self {
        self.target.auth = Some(Auth::XOAuth2 {
            username: self.username.clone(),
            token,
        });
        self
    }
}

/// Looks a Secret key up: `(secret name, key) -> bytes`.
pub trait SecretSource {
    fn get(&self, name: &str, key: &str) -> Option<Vec<u8>>;
}

fn read(secrets: &dyn SecretSource, r: &SecretKeyRef) -> Result<Vec<u8>, MissingSecret> {
    secrets.get(&r.name, &r.key).ok_or_else(|| MissingSecret {
        name: r.name.clone(),
        key: r.key.clone(),
    })
}

fn text(secrets: &dyn SecretSource, r: &SecretKeyRef) -> Result<Secret, MissingSecret> {
    let bytes = read(secrets, r)?;
    Ok(Secret::new(
        String::from_utf8_lossy(&bytes)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    ))
}

/// Where the SES SMTP interface is reached: `email-smtp.<region>.amazonaws.com:587` unless
/// overridden (tests, or a TLS-intercepting egress proxy with its own CA).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SesEndpoint {
    /// `host:port` used instead of the region's endpoint.
    pub address: Option<(String, u16)>,
    /// PEM roots for that endpoint.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

/// Why an AdvancedSmtp EmailSettings cannot be tested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SesUnavailable {
    #[error(
        "advancedSmtp.smtpCredentialsSecretRef is not set: applications need SES SMTP credentials; reference a Secret with an IAM access key (accessKeyId, secretAccessKey) allowed to ses:SendRawEmail"
    )]
    NoCredentials,
    #[error(transparent)]
    Missing(#[from] MissingSecret),
}

impl SesUnavailable {
    /// Stable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoCredentials => crate::crd::conditions::reasons::SMTP_CREDENTIALS_NOT_CONFIGURED,
            Self::Missing(m) => m.reason(),
        }
    }
}

/// The connection test of an AdvancedSmtp EmailSettings: the region's SES SMTP endpoint on 587
/// with STARTTLS, authenticated with the access key id and the SMTP password derived from the
/// secret access key for that region. None for other deliveries.
pub fn ses(
    es: &EmailSettings,
    secrets: &dyn SecretSource,
    endpoint: &SesEndpoint,
) -> Result<Option<Prepared>, SesUnavailable> {
    let Some(ses) = es
        .spec
        .advanced_smtp
        .as_ref()
        .filter(|_| es.spec.delivery == Delivery::AdvancedSmtp)
    else {
        return Ok(None);
    };
    let r = ses
        .smtp_credentials_secret_ref
        .as_ref()
        .ok_or(SesUnavailable::NoCredentials)?;
    let key = |k: &str| {
        text(
            secrets,
            &SecretKeyRef {
                name: r.name.clone(),
                key: k.to_string(),
            },
        )
    };
    let access_key_id = key("accessKeyId")?;
    let secret_access_key = key("secretAccessKey")?;
    let password = super::ses_password::smtp_password(secret_access_key.expose(), &ses.region);
    let username = access_key_id.expose().to_string();
    let (host, port) = endpoint
        .address
        .clone()
        .unwrap_or_else(|| (super::ses_password::smtp_endpoint(&ses.region), 587));
    Ok(Some(Prepared {
        target: Target {
            host,
            port,
            implicit_tls: None,
            start_tls: true,
            auth: Some(Auth::Password {
                username: username.clone(),
                password: Secret::new(password),
            }),
            from: es.spec.from.clone(),
            ca_bundle_pem: endpoint.ca_bundle_pem.clone(),
            // The SES endpoint (or its override) is the platform's.
            restricted: false,
        },
        oauth2: None,
        username,
    }))
}

/// The operator-wide default relay Secret is unusable; the message names the key, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the default relay Secret {0}")]
pub struct InvalidRelay(pub String);

/// The connection test of the operator's default relay, for mail from `from`. The relay Secret
/// has the keys of a published Secret plus how to authenticate:
///
/// * `host` (required), `port` (required), `tls`: `none`, `starttls` (default) or `implicit`;
/// * `authentication`: `UsernamePassword` (default when `username` is set), `OAuth2`, or `None`
///   (default otherwise);
/// * `username`, `password`; for OAuth2 `oauth2TokenUrl`, `oauth2ClientId`,
///   `oauth2ClientSecret`, `oauth2Scopes` (space-separated);
/// * `caBundle`: PEM roots for a private relay.
pub fn default_relay(
    data: &std::collections::BTreeMap<String, Vec<u8>>,
    from: &str,
) -> Result<Prepared, InvalidRelay> {
    let get = |k: &str| {
        data.get(k).map(|v| {
            String::from_utf8_lossy(v)
                .trim_end_matches(['\r', '\n'])
                .to_string()
        })
    };
    let required = |k: &str| {
        get(k)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| InvalidRelay(format!("has no key {k:?}")))
    };
    let host = required("host")?.trim().to_string();
    let port = required("port")?
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| InvalidRelay("key \"port\" is not a TCP port between 1 and 65535".into()))?;
    let (implicit_tls, start_tls) = match get("tls").as_deref().map(str::trim) {
        None | Some("") | Some("starttls") => (None, true),
        Some("none") => (None, false),
        Some("implicit") => (
            Some(ImplicitTls {
                port,
                fallback: false,
            }),
            false,
        ),
        Some(_) => {
            return Err(InvalidRelay(
                "key \"tls\" must be none, starttls or implicit".into(),
            ));
        }
    };
    let username = get("username")
        .map(|u| u.trim().to_string())
        .unwrap_or_default();
    let default_auth = if username.is_empty() {
        "None"
    } else {
        "UsernamePassword"
    };
    let authentication = get("authentication").unwrap_or_else(|| default_auth.to_string());
    let (auth, oauth2) = match authentication.trim() {
        "None" => (None, None),
        "UsernamePassword" => {
            if username.is_empty() {
                return Err(InvalidRelay("has no key \"username\"".into()));
            }
            let password =
                get("password").ok_or_else(|| InvalidRelay("has no key \"password\"".into()))?;
            (
                Some(Auth::Password {
                    username: username.clone(),
                    password: Secret::new(password),
                }),
                None,
            )
        }
        "OAuth2" => {
            if username.is_empty() {
                return Err(InvalidRelay("has no key \"username\"".into()));
            }
            let grant = ClientCredentials {
                token_url: required("oauth2TokenUrl")?,
                client_id: required("oauth2ClientId")?,
                client_secret: Secret::new(required("oauth2ClientSecret")?),
                scopes: get("oauth2Scopes")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            };
            (None, Some(grant))
        }
        _ => {
            return Err(InvalidRelay(
                "key \"authentication\" must be UsernamePassword, OAuth2 or None".into(),
            ));
        }
    };
    Ok(Prepared {
        target: Target {
            host,
            port,
            implicit_tls,
            start_tls,
            auth,
            from: from.to_string(),
            ca_bundle_pem: data.get("caBundle").cloned(),
            // The default relay is the platform's.
            restricted: false,
        },
        oauth2,
        username,
    })
}

/// How an application reaches the server from a Secret the operator published (its keys are
/// the relay Secret's, with `authentication` written `password`, `oauth2` or `none`, and the
/// sender in `from`): what a test message goes through. The Secret holds no CA: `ca_bundle_pem`
/// is the EmailSettings' own (or the SES endpoint's); `restricted` whether the host came from
/// the tenant. The error names the key, never a value.
pub fn published(
    data: &std::collections::BTreeMap<String, String>,
    ca_bundle_pem: Option<Vec<u8>>,
    restricted: bool,
) -> Result<Prepared, String> {
    let mut relay: std::collections::BTreeMap<String, Vec<u8>> = data
        .iter()
        .filter(|(k, _)| k.as_str() != "caBundle")
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    if let Some(a) = data.get("authentication") {
        let as_relay = match a.trim() {
            "password" => "UsernamePassword",
            "oauth2" => "OAuth2",
            "none" => "None",
            _ => return Err("key \"authentication\" must be password, oauth2 or none".into()),
        };
        relay.insert("authentication".into(), as_relay.into());
    }
    let from = data
        .get("from")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .ok_or("has no key \"from\"")?;
    let mut prepared = default_relay(&relay, from).map_err(|InvalidRelay(why)| why)?;
    prepared.target.ca_bundle_pem = ca_bundle_pem;
    prepared.target.restricted = restricted;
    Ok(prepared)
}

/// Why the connection test of an EmailSettings cannot run: a stable reason and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprepared {
    pub reason: &'static str,
    pub message: String,
}

impl From<MissingSecret> for Unprepared {
    fn from(m: MissingSecret) -> Self {
        Self {
            reason: m.reason(),
            message: format!("{m}; create it or correct the reference"),
        }
    }
}

/// The connection test of an ExternalSmtp or AdvancedSmtp EmailSettings, as the controller and
/// `plan --check-smtp` both run it; None for `delivery: Default` (the operator's relay).
pub fn for_settings(
    es: &EmailSettings,
    secrets: &dyn SecretSource,
    endpoint: &SesEndpoint,
) -> Result<Option<Prepared>, Unprepared> {
    let missing_block = |block: &str| Unprepared {
        reason: crate::crd::conditions::reasons::INVALID,
        message: format!(
            "{block} is required when delivery is {:?}",
            es.spec.delivery
        ),
    };
    match es.spec.delivery {
        Delivery::Default => Ok(None),
        Delivery::ExternalSmtp => external(es, secrets)?
            .map(Some)
            .ok_or_else(|| missing_block("externalSmtp")),
        Delivery::AdvancedSmtp => match ses(es, secrets, endpoint) {
            Ok(p) => p.map(Some).ok_or_else(|| missing_block("advancedSmtp")),
            Err(SesUnavailable::Missing(m)) => Err(m.into()),
            Err(e) => Err(Unprepared {
                reason: e.reason(),
                message: e.to_string(),
            }),
        },
    }
}

/// The connection test of an ExternalSmtp EmailSettings; None for other deliveries.
pub fn external(
    es: &EmailSettings,
    secrets: &dyn SecretSource,
) -> Result<Option<Prepared>, MissingSecret> {
    let Some(smtp) = es
        .spec
        .external_smtp
        .as_ref()
        .filter(|_| es.spec.delivery == Delivery::ExternalSmtp)
    else {
        return Ok(None);
    };
    let (auth, oauth2) = match smtp.authentication {
        Authentication::UsernamePassword => {
            let password = match &smtp.password_secret_ref {
                Some(r) => text(secrets, r)?,
                None => Secret::new(""),
            };
            (
                Some(Auth::Password {
                    username: smtp.username.clone(),
                    password,
                }),
                None,
            )
        }
        Authentication::OAuth2 => {
            let grant = match &smtp.oauth2 {
                Some(o) => Some(ClientCredentials {
                    token_url: o.token_url.clone(),
                    client_id: o.client_id.clone(),
                    client_secret: text(secrets, &o.client_secret_ref)?,
                    scopes: o.scopes.clone(),
                }),
                None => None,
            };
            (None, grant)
        }
    };
    let ca_bundle_pem = smtp
        .ca_bundle_secret_ref
        .as_ref()
        .map(|r| read(secrets, r))
        .transpose()?;
    let implicit_tls = smtp.socket_factory.as_ref().and_then(|sf| {
        let port = u16::try_from(sf.port?).ok()?;
        sf.class.as_ref()?;
        Some(ImplicitTls {
            port,
            fallback: sf.fallback,
        })
    });
    Ok(Some(Prepared {
        target: Target {
            host: smtp.host.clone(),
            port: u16::try_from(smtp.port).unwrap_or(25),
            implicit_tls,
            start_tls: smtp.start_tls,
            auth,
            from: es.spec.from.clone(),
            ca_bundle_pem,
            restricted: true,
        },
        oauth2,
        username: smtp.username.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<(String, String), Vec<u8>>);
    impl SecretSource for Map {
        fn get(&self, name: &str, key: &str) -> Option<Vec<u8>> {
            self.0.get(&(name.to_string(), key.to_string())).cloned()
        }
    }

    fn es(yaml: &str) -> EmailSettings {
        serde_saphyr::from_str(&format!(
            "apiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {{name: n, namespace: billing}}\nspec:\n  from: billing@yourcompany.com\n  delivery: ExternalSmtp\n  externalSmtp:\n{yaml}"
        ))
        .expect("yaml")
    }

    #[test]
    fn password_settings_become_a_target() {
        let secrets = Map(HashMap::from([(
            ("smtp".into(), "password".into()),
            b"pw\n".to_vec(),
        )]));
        let p = external(
            &es("    host: smtp.yourcompany.com\n    port: 25\n    authentication: UsernamePassword\n    username: u@yourcompany.com\n    passwordSecretRef: {name: smtp, key: password}\n    socketFactory: {class: javax.net.ssl.SSLSocketFactory, port: 465}\n"),
            &secrets,
        )
        .expect("ok")
        .expect("external");
        assert_eq!(p.target.port, 25);
        assert_eq!(
            p.target.implicit_tls,
            Some(ImplicitTls {
                port: 465,
                fallback: true
            })
        );
        assert_eq!(
            p.target.auth,
            Some(Auth::Password {
                username: "u@yourcompany.com".into(),
                password: Secret::new("pw")
            })
        );
        assert_eq!(
            format!("{:?}", p.target).matches("pw").count(),
            0,
            "Debug never shows the password"
        );
    }

    #[test]
    fn a_missing_secret_is_named() {
        let err = external(
            &es("    host: h\n    port: 587\n    authentication: OAuth2\n    username: u@yourcompany.com\n    oauth2: {tokenUrl: 'https://t.example/token', clientId: c, clientSecretRef: {name: oauth, key: secret}}\n"),
            &Map(HashMap::new()),
        )
        .unwrap_err();
        assert_eq!(
            err,
            MissingSecret {
                name: "oauth".into(),
                key: "secret".into()
            }
        );
        assert_eq!(err.reason(), "SecretNotFound");
    }

    #[test]
    fn a_published_secret_is_read_as_an_application_reads_it() {
        let data = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let smtp = data(&[
            ("host", "smtp.yourcompany.com"),
            ("port", "465"),
            ("tls", "implicit"),
            ("authentication", "password"),
            ("username", "u@yourcompany.com"),
            ("password", "pw"),
            ("from", "billing@yourcompany.com"),
        ]);
        let p = published(&smtp, Some(b"CA".to_vec()), true).expect("readable");
        assert_eq!(
            (
                p.target.host.as_str(),
                p.target.port,
                p.target.from.as_str()
            ),
            ("smtp.yourcompany.com", 465, "billing@yourcompany.com")
        );
        assert_eq!(
            p.target.implicit_tls.map(|t| (t.port, t.fallback)),
            Some((465, false))
        );
        assert!(!p.target.start_tls && p.target.restricted);
        assert_eq!(p.target.ca_bundle_pem.as_deref(), Some(&b"CA"[..]));
        assert!(matches!(p.target.auth, Some(Auth::Password { .. })));

        let relay = data(&[
            ("host", "relay.internal"),
            ("port", "25"),
            ("tls", "none"),
            ("authentication", "none"),
            ("from", "billing@yourcompany.com"),
        ]);
        let p = published(&relay, None, false).expect("readable");
        assert!(p.target.auth.is_none() && !p.target.start_tls);

        let mut no_from = smtp.clone();
        no_from.remove("from");
        assert_eq!(
            published(&no_from, None, true).unwrap_err(),
            "has no key \"from\""
        );
        let mut odd = smtp.clone();
        odd.insert("authentication".into(), "kerberos".into());
        let err = published(&odd, None, true).unwrap_err();
        assert!(
            err.contains("authentication") && !err.contains("pw"),
            "{err}"
        );
    }
}
