//! The world the examples live in, on this machine: the mail servers and the token endpoint
//! their hosts name ([`crate::mail`]), resolved through the test bed's DNS, and what a platform
//! team and a relay's administrator would hand out by hand — the default relay's Secret, the
//! internal relay's password and CA, an IAM key for SES SMTP.
//!
//! Its accounts are fixed where the examples ship a credential (`examples/external-smtp.yaml`'s
//! password, `examples/microsoft-365-oauth2.yaml`'s client secret are the real ones here), so a
//! changed credential fails as it would against the real server; where the examples reference a
//! Secret they do not ship, the demo creates it with the account it made.
//!
//! The servers listen on ephemeral ports of 127.0.0.1; the operator reaches them under their
//! real names and ports through `--connect-to`, with the egress rules opened for exactly those
//! ports (`--egress-allow`), and trusts their CA through `--smtp-ca-file` / `--oauth2-ca-file`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use serde_json::{Value, json};

use super::FIELD_MANAGER;
use crate::control::AwsTestbed;
use crate::mail::{
    Dialect, Login, OAuthClient, Security, SmtpServer, SmtpServerOptions, TokenServer,
    TokenServerOptions,
};
use crate::ses::smtp::tls::TestCa;

/// The company's SMTP server (`examples/external-smtp.yaml`) and its account; the password is
/// the one that example's Secret holds.
pub const COMPANY_SMTP: (&str, u16) = ("smtp.yourcompany.com", 587);
const COMPANY_USER: &str = "notifications@yourcompany.com";
const COMPANY_PASSWORD: &str = "replace-with-the-real-password";
/// The internal relay with a private CA (`examples/implicit-tls.yaml`).
pub const INTERNAL_RELAY: (&str, u16) = ("relay.internal.yourcompany.com", 465);
const INTERNAL_USER: &str = "reports@yourcompany.com";
/// Microsoft 365 (`examples/microsoft-365-oauth2.yaml`).
pub const OFFICE365: (&str, u16) = ("smtp.office365.com", 587);
const OFFICE365_MAILBOX: &str = "support@yourcompany.com";
/// Entra ID's token endpoint, its tenant and the registered application (client secret as
/// that example's Secret holds it).
pub const ENTRA: (&str, u16) = ("login.microsoftonline.com", 443);
const TENANT: &str = "00000000-0000-0000-0000-000000000000";
const CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";
const CLIENT_SECRET: &str = "replace-with-the-client-secret";
const OFFICE365_SCOPE: &str = "https://outlook.office365.com/.default";
/// The platform's relay behind `delivery: Default`.
pub const DEFAULT_RELAY: (&str, u16) = ("mail.platform.yourcompany.com", 587);
const DEFAULT_RELAY_USER: &str = "email-operator@yourcompany.com";
/// Where the operator's default relay Secret lives (the examples' policy namespace).
pub const PLATFORM_NAMESPACE: &str = "email-system";
const DEFAULT_RELAY_SECRET: &str = "default-relay";
/// The SES SMTP port the operator connects to.
const SES_SMTP_PORT: u16 = 587;

/// One server the operator reaches under a real name.
pub struct Host {
    /// Its name and the port the examples use.
    pub name: String,
    /// The well-known port the operator connects to.
    pub port: u16,
    /// Where it really listens.
    pub addr: SocketAddr,
    /// Whether tenants name it (then the egress rules must let the operator through).
    pub tenant: bool,
    /// What it is, for the start-up lines.
    pub what: String,
}

/// The running servers and what the operator needs to reach them.
pub struct World {
    /// Every name the operator reaches, with where it really listens.
    pub hosts: Vec<Host>,
    relays: Vec<(String, SmtpServer, Account)>,
    _tokens: TokenServer,
    /// The demo CA (PEM), which signs every server certificate but the internal relay's.
    ca_pem: String,
    /// The internal relay's own CA (PEM): what `relay-ca` holds.
    relay_ca_pem: String,
    /// `--smtp-ca-file`: the demo CA and the SES SMTP stand-in's.
    pub smtp_roots: PathBuf,
    /// `--oauth2-ca-file`.
    pub oauth2_roots: PathBuf,
}

/// A relay account.
#[derive(Clone)]
struct Account {
    username: String,
    password: String,
}

impl World {
    /// Makes the CAs, starts the servers, publishes their A records in the test bed's DNS and
    /// writes the CA files into `dir`.
    pub async fn start(
        aws: &AwsTestbed,
        dir: &Path,
        ses_regions: &[String],
    ) -> Result<Self, String> {
        let ca = TestCa::new("testbed demo CA")?;
        let relay_ca = TestCa::new("yourcompany internal relay CA")?;
        let idle = Duration::from_secs(30);
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let relay = |name: &str, ca: &TestCa, security, login, senders: &[&str]| {
            Ok::<_, String>(SmtpServerOptions {
                addr: any,
                name: name.to_string(),
                dialect: Dialect::Postfix,
                security,
                tls: ca.server_config(name, &[name.to_string()])?,
                login,
                senders: senders.iter().map(|s| s.to_string()).collect(),
                idle,
            })
        };
        let password_login = |a: &Account| Login::Password {
            username: a.username.clone(),
            password: a.password.clone(),
        };
        let accounts = [
            Account {
                username: COMPANY_USER.into(),
                password: COMPANY_PASSWORD.into(),
            },
            Account {
                username: INTERNAL_USER.into(),
                password: crate::random_text(24),
            },
            Account {
                username: DEFAULT_RELAY_USER.into(),
                password: crate::random_text(24),
            },
        ];
        let started = |e: std::io::Error| format!("cannot start a demo mail server: {e}");
        let company = SmtpServer::start(relay(
            COMPANY_SMTP.0,
            &ca,
            Security::StartTls,
            password_login(&accounts[0]),
            &["yourcompany.com"],
        )?)
        .await
        .map_err(started)?;
        let internal = SmtpServer::start(relay(
            INTERNAL_RELAY.0,
            &relay_ca,
            Security::Implicit,
            password_login(&accounts[1]),
            &["yourcompany.com"],
        )?)
        .await
        .map_err(started)?;
        let platform = SmtpServer::start(relay(
            DEFAULT_RELAY.0,
            &ca,
            Security::StartTls,
            password_login(&accounts[2]),
            &["yourcompany.com"],
        )?)
        .await
        .map_err(started)?;
        let tokens = TokenServer::start(TokenServerOptions {
            addr: any,
            tls: ca.server_config(ENTRA.0, &[ENTRA.0.to_string()])?,
            clients: vec![OAuthClient {
                tenant: TENANT.into(),
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                scopes: vec![OFFICE365_SCOPE.into()],
            }],
            lifetime: Duration::from_secs(3599),
        })
        .await
        .map_err(started)?;
        let mut office = relay(
            OFFICE365.0,
            &ca,
            Security::StartTls,
            Login::XOAuth2 {
                tokens: tokens.tokens(),
                scope: OFFICE365_SCOPE.into(),
                grants: vec![(CLIENT_ID.into(), OFFICE365_MAILBOX.into())],
            },
            &[OFFICE365_MAILBOX],
        )?;
        office.dialect = Dialect::Microsoft365;
        let office = SmtpServer::start(office).await.map_err(started)?;

        let mut hosts = vec![
            Host {
                name: COMPANY_SMTP.0.to_string(),
                port: COMPANY_SMTP.1,
                addr: company.addr(),
                tenant: true,
                what: "STARTTLS, password".into(),
            },
            Host {
                name: INTERNAL_RELAY.0.to_string(),
                port: INTERNAL_RELAY.1,
                addr: internal.addr(),
                tenant: true,
                what: "implicit TLS, private CA, password".into(),
            },
            Host {
                name: OFFICE365.0.to_string(),
                port: OFFICE365.1,
                addr: office.addr(),
                tenant: true,
                what: "STARTTLS, XOAUTH2".into(),
            },
            Host {
                name: ENTRA.0.to_string(),
                port: ENTRA.1,
                addr: tokens.addr(),
                tenant: true,
                what: "OAuth 2.0 client credentials, HTTPS".into(),
            },
            Host {
                name: DEFAULT_RELAY.0.to_string(),
                port: DEFAULT_RELAY.1,
                addr: platform.addr(),
                tenant: false,
                what: "the default relay: STARTTLS, password".into(),
            },
        ];
        for region in ses_regions {
            hosts.push(Host {
                name: email_operator::smtp::ses_password::smtp_endpoint(region),
                port: SES_SMTP_PORT,
                addr: aws.ses_smtp.addr(),
                tenant: false,
                what: "the SES SMTP stand-in".into(),
            });
        }
        for host in &hosts {
            aws.dns
                .zone()
                .add(&host.name, "A", &host.addr.ip().to_string(), None)
                .await
                .map_err(|e| format!("cannot publish {}: {e}", host.name))?;
        }

        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok::<_, String>(std::path::absolute(&path).unwrap_or(path))
        };
        let smtp_roots = write(
            "smtp-ca.pem",
            format!("{}{}", ca.pem(), aws.ses_smtp.ca_pem()),
        )?;
        let oauth2_roots = write("oauth2-ca.pem", ca.pem().to_string())?;
        let relays = vec![
            (COMPANY_SMTP.0.to_string(), company, accounts[0].clone()),
            (INTERNAL_RELAY.0.to_string(), internal, accounts[1].clone()),
            (DEFAULT_RELAY.0.to_string(), platform, accounts[2].clone()),
            (
                OFFICE365.0.to_string(),
                office,
                Account {
                    username: OFFICE365_MAILBOX.into(),
                    password: String::new(),
                },
            ),
        ];
        Ok(Self {
            hosts,
            relays,
            _tokens: tokens,
            ca_pem: ca.pem().to_string(),
            relay_ca_pem: relay_ca.pem().to_string(),
            smtp_roots,
            oauth2_roots,
        })
    }

    /// The operator's flags that send it to these servers and trust them.
    pub fn operator_args(&self) -> Vec<String> {
        let mut args = vec![
            "--smtp-ca-file".to_string(),
            self.smtp_roots.display().to_string(),
            "--oauth2-ca-file".to_string(),
            self.oauth2_roots.display().to_string(),
            "--default-relay-secret".to_string(),
            format!("{PLATFORM_NAMESPACE}/{DEFAULT_RELAY_SECRET}"),
        ];
        for host in &self.hosts {
            // An empty ADDR: the name is resolved through --dns-server, where its A record is.
            args.push("--connect-to".into());
            args.push(format!("{}:{}::{}", host.name, host.port, host.addr.port()));
        }
        let allowed: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| h.tenant)
            .map(|h| h.addr.to_string())
            .collect();
        if !allowed.is_empty() {
            args.push("--egress-allow".into());
            args.push(allowed.join(","));
        }
        args
    }

    /// Logins each relay accepted and refused so far, by host name.
    pub fn logins(&self) -> BTreeMap<String, (u64, u64)> {
        self.relays
            .iter()
            .map(|(name, server, _)| (name.clone(), server.logins()))
            .collect()
    }

    /// Creates what a platform team and the relays' administrators hand out, where the applied
    /// examples reference it and do not ship it: the default relay Secret; for each
    /// ExternalSmtp EmailSettings on one of these relays, its password and CA bundle Secrets;
    /// for each AdvancedSmtp one, an IAM key registered with the SES SMTP stand-in. Returns
    /// what it created, as `Secret NAMESPACE/NAME (why)`.
    pub async fn hand_out(
        &self,
        client: &::kube::Client,
        aws: &AwsTestbed,
        settings: &[DynamicObject],
    ) -> Result<Vec<String>, String> {
        let mut created = vec![];
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        namespaces
            .patch(
                PLATFORM_NAMESPACE,
                &params,
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLATFORM_NAMESPACE}})),
            )
            .await
            .map_err(|e| format!("Namespace {PLATFORM_NAMESPACE}: {e}"))?;
        let (_, _, relay) = self
            .relays
            .iter()
            .find(|(name, _, _)| name == DEFAULT_RELAY.0)
            .ok_or("no default relay")?;
        let data = BTreeMap::from([
            ("host", DEFAULT_RELAY.0.to_string()),
            ("port", DEFAULT_RELAY.1.to_string()),
            ("tls", "starttls".to_string()),
            ("username", relay.username.clone()),
            ("password", relay.password.clone()),
        ]);
        put_secret(client, PLATFORM_NAMESPACE, DEFAULT_RELAY_SECRET, &data).await?;
        created.push(format!(
            "Secret {PLATFORM_NAMESPACE}/{DEFAULT_RELAY_SECRET} (the default relay)"
        ));

        for es in settings {
            let namespace = es.metadata.namespace.clone().unwrap_or_default();
            let spec = es.data.get("spec").cloned().unwrap_or(Value::Null);
            let delivery = spec
                .get("delivery")
                .and_then(Value::as_str)
                .unwrap_or("Default");
            if delivery == "ExternalSmtp" {
                let smtp = spec.get("externalSmtp").cloned().unwrap_or(Value::Null);
                let host = smtp.get("host").and_then(Value::as_str).unwrap_or_default();
                let Some((_, _, account)) = self.relays.iter().find(|(n, _, _)| n == host) else {
                    continue;
                };
                if let Some((name, key)) = secret_ref(&smtp, "passwordSecretRef")
                    && !account.password.is_empty()
                    && missing(client, &namespace, &name, &key).await?
                {
                    let data = BTreeMap::from([(key.as_str(), account.password.clone())]);
                    put_secret(client, &namespace, &name, &data).await?;
                    created.push(format!(
                        "Secret {namespace}/{name} (the password of {host})"
                    ));
                }
                if let Some((name, key)) = secret_ref(&smtp, "caBundleSecretRef")
                    && missing(client, &namespace, &name, &key).await?
                {
                    let pem = if host == INTERNAL_RELAY.0 {
                        self.relay_ca_pem.clone()
                    } else {
                        self.ca_pem.clone()
                    };
                    let data = BTreeMap::from([(key.as_str(), pem)]);
                    put_secret(client, &namespace, &name, &data).await?;
                    created.push(format!("Secret {namespace}/{name} (the CA of {host})"));
                }
            } else if delivery == "AdvancedSmtp" {
                let Some(name) = spec
                    .pointer("/advancedSmtp/smtpCredentialsSecretRef/name")
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                if !missing(client, &namespace, name, "secretAccessKey").await? {
                    continue;
                }
                let access_key_id =
                    format!("AKIADEMO{}", crate::random_text(12).to_ascii_uppercase());
                let secret_access_key = crate::random_text(40);
                aws.ses
                    .state()
                    .smtp_credentials
                    .register(&access_key_id, &secret_access_key)
                    .map_err(|e| format!("SES SMTP credentials: {e}"))?;
                let data = BTreeMap::from([
                    ("accessKeyId", access_key_id),
                    ("secretAccessKey", secret_access_key),
                ]);
                put_secret(client, &namespace, name, &data).await?;
                created.push(format!(
                    "Secret {namespace}/{name} (an IAM key SES SMTP accepts)"
                ));
            }
        }
        Ok(created)
    }
}

/// `(name, key)` of a Secret key reference in `smtp`.
fn secret_ref(smtp: &Value, field: &str) -> Option<(String, String)> {
    let r = smtp.get(field)?;
    Some((
        r.get("name")?.as_str()?.to_string(),
        r.get("key")?.as_str()?.to_string(),
    ))
}

/// Whether Secret `namespace/name` lacks `key`.
async fn missing(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<bool, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| format!("Secret {namespace}/{name}: {e}"))?;
    Ok(secret.is_none_or(|s| {
        !s.data.as_ref().is_some_and(|d| d.contains_key(key))
            && !s.string_data.as_ref().is_some_and(|d| d.contains_key(key))
    }))
}

async fn put_secret(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    data: &BTreeMap<&str, String>,
) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    });
    secrets
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(|e| format!("Secret {namespace}/{name}: {e}"))?;
    Ok(())
}
