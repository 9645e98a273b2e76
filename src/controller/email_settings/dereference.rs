//! Step 1 of an EmailSettings' reconcile: read what it refers to — the Secrets its delivery
//! method names (or the operator's default relay), the output Secret it publishes to, the other
//! EmailSettings of its namespace, its SenderIdentities — and what this process remembers of
//! its last test. Reads only (the Secrets through [`SecretCache`](crate::controller::secrets),
//! which answers from memory while their version is current).

use super::decide::Memo;
use super::publish::{self, Ownership, Published};
use super::status::{Problem, PublishProblem, Senders};
use crate::controller::Context;
use crate::controller::backends::Backends;
use crate::controller::tenancy;
use crate::crd::EmailSettings;
use crate::crd::conditions::{Progress, reasons};
use crate::crd::email_settings::Delivery;
use crate::policy::{self, Verdict};
use crate::smtp::target::{self, Prepared, SecretSource};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What to test, the extra keys to publish, and the provider hints for the host.
pub struct Subject {
    pub prepared: Prepared,
    pub extra: BTreeMap<String, String>,
    pub hints: Vec<String>,
    /// Which version of the inputs this is — the spec's generation and the versions of the
    /// Secrets read — without anything secret in it (it goes to the status, where a failed
    /// test's backoff is found again after a restart).
    pub inputs: String,
}

/// Everything the decision and the test read.
pub struct Read {
    pub namespace: String,
    pub uid: String,
    /// The output Secret as it is (None: absent, as far as the Secret watch knows).
    pub existing: Option<Arc<Secret>>,
    /// What the output Secret holds, when this EmailSettings published it.
    pub published: Option<Published>,
    /// Why the output Secret cannot be written, if it cannot.
    pub publish_problem: Option<PublishProblem>,
    /// What to test, or why nothing can be.
    pub subject: Result<Subject, Problem>,
    /// AdvancedSmtp: whether verified SenderIdentities cover `from`.
    pub senders: Option<Senders>,
    /// The last connection test this process ran.
    pub memo: Option<Memo>,
}

/// Reads what the EmailSettings refers to.
pub async fn read<B: Backends>(es: &EmailSettings, ctx: &Context<B>) -> Result<Read, kube::Error> {
    let namespace = es.namespace().unwrap_or_default();
    let out_name = es.output_secret_name();
    let existing = ctx.secrets.peek(&ctx.client, &namespace, &out_name).await?;
    let ownership = existing.as_ref().map(|s| publish::ownership(s, es));
    let published = existing
        .as_ref()
        .filter(|_| ownership == Some(Ownership::Ours))
        .map(|s| Published::of(s));
    let namespace_settings: Vec<EmailSettings> = ctx
        .settings_in(&namespace)
        .iter()
        .map(|o| (**o).clone())
        .collect();
    let conflict = policy::output_secret_conflicts(&namespace_settings)
        .get(&es.name_any())
        .cloned();
    let senders = (es.spec.delivery == Delivery::AdvancedSmtp)
        .then(|| super::status::senders(es, &ctx.identities_in(&namespace)));
    Ok(Read {
        publish_problem: publish_problem(&out_name, ownership, conflict),
        subject: subject(es, ctx, &namespace).await?,
        memo: ctx.memory.tests.get(&es.uid().unwrap_or_default()),
        uid: es.uid().unwrap_or_default(),
        namespace,
        existing,
        published,
        senders,
    })
}

/// Why the output Secret cannot be written: someone else's, a deleted predecessor's (waits for
/// the garbage collector), or another EmailSettings of the namespace publishes to it.
fn publish_problem(
    out_name: &str,
    ownership: Option<Ownership>,
    conflict: Option<Verdict>,
) -> Option<PublishProblem> {
    if let Some(Verdict::Rejected { reason, message }) = conflict {
        return Some(PublishProblem {
            problem: Problem { reason, message },
            progress: Progress::Stalled,
        });
    }
    match ownership? {
        Ownership::Ours => None,
        Ownership::Foreign => Some(PublishProblem {
            problem: Problem {
                reason: reasons::OUTPUT_SECRET_NOT_OWNED,
                message: format!(
                    "Secret {out_name} exists and was not published by this EmailSettings; it is left alone: delete it or set spec.outputSecretName"
                ),
            },
            progress: Progress::Stalled,
        }),
        Ownership::Predecessor => Some(PublishProblem {
            problem: Problem {
                reason: reasons::OUTPUT_SECRET_OF_PREDECESSOR,
                message: format!(
                    "Secret {out_name} was published by an earlier EmailSettings of this name, since deleted; the garbage collector deletes it with its owner, then this EmailSettings publishes its own"
                ),
            },
            progress: Progress::Reconciling,
        }),
    }
}

/// Names of the Secrets (in its namespace) an EmailSettings reads.
pub fn referenced_secrets(es: &EmailSettings) -> Vec<String> {
    let mut names = vec![];
    if let Some(s) = &es.spec.external_smtp {
        names.extend(s.password_secret_ref.as_ref().map(|r| r.name.clone()));
        names.extend(s.oauth2.as_ref().map(|o| o.client_secret_ref.name.clone()));
        names.extend(s.ca_bundle_secret_ref.as_ref().map(|r| r.name.clone()));
    }
    if let Some(a) = &es.spec.advanced_smtp {
        names.extend(
            a.smtp_credentials_secret_ref
                .as_ref()
                .map(|r| r.name.clone()),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// Secrets read for one reconcile.
struct Fetched(HashMap<String, BTreeMap<String, Vec<u8>>>, Vec<String>);

impl SecretSource for Fetched {
    fn get(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        self.0.get(name)?.get(key).cloned()
    }
}

/// `namespace/name@resourceVersion`.
fn version_of(s: &Secret) -> String {
    format!(
        "{}/{}@{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default(),
        s.metadata.resource_version.as_deref().unwrap_or_default()
    )
}

/// The inputs' version: a digest of the generation and the Secrets' versions.
fn inputs_version(es: &EmailSettings, versions: &[String]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&es.metadata.generation.unwrap_or_default().to_be_bytes());
    for v in versions {
        ctx.update(&(v.len() as u64).to_be_bytes());
        ctx.update(v.as_bytes());
    }
    ctx.finish().as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

async fn fetch<B: Backends>(
    ctx: &Context<B>,
    namespace: &str,
    names: &[String],
) -> Result<Fetched, kube::Error> {
    let mut out = HashMap::new();
    let mut versions = Vec::new();
    for name in names {
        if let Some(s) = ctx.secrets.get(&ctx.client, namespace, name).await? {
            versions.push(version_of(&s));
            out.insert(name.clone(), secret_data(&s));
        }
    }
    Ok(Fetched(out, versions))
}

/// Resolves the delivery method and its Secrets into what to test.
async fn subject<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    namespace: &str,
) -> Result<Result<Subject, Problem>, kube::Error> {
    if es.spec.delivery == Delivery::Default && ctx.config.smtp.default_relay.is_none() {
        return Ok(Err(relay_not_configured()));
    }
    // Who may send as the from domain comes next: a refused claim reads no Secret.
    if let Some(claim) = tenancy::settings_claim(es)
        && let Verdict::Rejected { reason, message } = tenancy::judge(ctx, &claim)
    {
        return Ok(Err(Problem { reason, message }));
    }
    let secrets = fetch(ctx, namespace, &referenced_secrets(es)).await?;
    let mut versions = secrets.1.clone();
    let prepared = match target::for_settings(es, &secrets, &ctx.config.smtp.ses_endpoint) {
        Ok(Some(p)) => p,
        Ok(None) => match default_relay(es, ctx, &mut versions).await? {
            Ok(p) => p,
            Err(problem) => return Ok(Err(problem)),
        },
        Err(problem) => return Ok(Err(problem)),
    };
    let extra = es
        .spec
        .advanced_smtp
        .as_ref()
        .filter(|_| es.spec.delivery == Delivery::AdvancedSmtp)
        .and_then(|a| a.configuration_set_name.clone())
        .map(|c| BTreeMap::from([("configurationSet".to_string(), c)]))
        .unwrap_or_default();
    let hints = match es.spec.delivery {
        Delivery::AdvancedSmtp => vec![],
        _ => crate::smtp::provider_hints(&prepared.target.host),
    };
    Ok(Ok(Subject {
        hints,
        prepared,
        extra,
        inputs: inputs_version(es, &versions),
    }))
}

/// The keys of the default relay's Secret that are a credential (replaced by a namespace's own).
const RELAY_CREDENTIAL_KEYS: &[&str] = &[
    "username",
    "password",
    "authentication",
    "oauth2TokenUrl",
    "oauth2ClientId",
    "oauth2ClientSecret",
    "oauth2Scopes",
];

fn relay_not_configured() -> Problem {
    Problem {
        reason: reasons::DEFAULT_RELAY_NOT_CONFIGURED,
        message: "the operator was started without a default relay (--default-relay-secret); ask the platform team to configure one, or use delivery ExternalSmtp or AdvancedSmtp".into(),
    }
}

/// The operator's default relay, for `delivery: Default`.
async fn default_relay<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    versions: &mut Vec<String>,
) -> Result<Result<Prepared, Problem>, kube::Error> {
    let Some((rns, rname)) = &ctx.config.smtp.default_relay else {
        return Ok(Err(relay_not_configured()));
    };
    let Some(relay) = ctx.secrets.get(&ctx.client, rns, rname).await? else {
        return Ok(Err(Problem {
            reason: reasons::DEFAULT_RELAY_INVALID,
            message: format!(
                "the default relay Secret {rns}/{rname} does not exist; ask the platform team to create it"
            ),
        }));
    };
    versions.push(version_of(&relay));
    let mut data = secret_data(&relay);
    // The namespace's own credential on the relay, when a policy names one: the platform's
    // never reaches the tenant's Secret.
    let namespace = es.namespace().unwrap_or_default();
    let own = crate::names::EmailAddress::parse(&es.spec.from)
        .ok()
        .and_then(|from| tenancy::relay_credentials(ctx, &namespace, &from));
    if let Some(name) = own {
        let policies = &ctx.config.tenancy.policy_namespace;
        let Some(creds) = ctx.secrets.get(&ctx.client, policies, &name).await? else {
            return Ok(Err(Problem {
                reason: reasons::DEFAULT_RELAY_INVALID,
                message: format!(
                    "the relay credentials Secret {policies}/{name} a SenderPolicy names for this namespace does not exist; ask the platform team to create it"
                ),
            }));
        };
        versions.push(version_of(&creds));
        data.retain(|k, _| !RELAY_CREDENTIAL_KEYS.contains(&k.as_str()));
        data.extend(
            secret_data(&creds)
                .into_iter()
                .filter(|(k, _)| RELAY_CREDENTIAL_KEYS.contains(&k.as_str())),
        );
    }
    Ok(
        target::default_relay(&data, &es.spec.from).map_err(|e| Problem {
            reason: reasons::DEFAULT_RELAY_INVALID,
            message: format!("the default relay Secret {rns}/{rname} {}", e.0),
        }),
    )
}
