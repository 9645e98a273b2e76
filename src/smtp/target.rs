//! From an EmailSettings and its referenced Secrets to what the connection test needs (pure).
//! Used by the controller and by `plan --check-smtp` (which reads Secrets from manifests).

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
        "SecretNotFound"
    }
}

/// What the test needs, with the OAuth2 grant still to be exchanged for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub target: Target,
    /// For OAuth2: the grant whose token goes into `target.auth`.
    pub oauth2: Option<ClientCredentials>,
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
        },
        oauth2,
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
}
