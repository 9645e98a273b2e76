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
struct Fetched(HashMap<String, BTreeMap<String, Vec<u8>>>);

impl SecretSource for Fetched {
    fn get(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        self.0.get(name)?.get(key).cloned()
    }
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
    for name in names {
        if let Some(s) = ctx.secrets.get(&ctx.client, namespace, name).await? {
            out.insert(name.clone(), secret_data(&s));
        }
    }
    Ok(Fetched(out))
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
    let prepared = match target::for_settings(es, &secrets, &ctx.config.smtp.ses_endpoint) {
        Ok(Some(p)) => p,
        Ok(None) => match default_relay(es, ctx).await? {
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
    }))
}

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
) -> Result<Result<Prepared, Problem>, kube::Error> {
    let Some((rns, rname)) = &ctx.config.smtp.default_relay else {
        return Ok(Err(relay_not_configured()));
    };
    Ok(match ctx.secrets.get(&ctx.client, rns, rname).await? {
        None => Err(Problem {
            reason: reasons::DEFAULT_RELAY_INVALID,
            message: format!(
                "the default relay Secret {rns}/{rname} does not exist; ask the platform team to create it"
            ),
        }),
        Some(s) => target::default_relay(&secret_data(&s), &es.spec.from).map_err(|e| Problem {
            reason: reasons::DEFAULT_RELAY_INVALID,
            message: format!("the default relay Secret {rns}/{rname} {}", e.0),
        }),
    })
}
