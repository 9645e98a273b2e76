//! The EmailSettings controller: resolve the referenced Secrets → decide whether the
//! connection must be tested ([`decide`]) → test → publish the validated configuration
//! ([`publish`]) → status ([`status`]) and Events on transitions.
//!
//! Only a configuration that passed the test reaches the output Secret; a failing edit leaves
//! the last validated Secret exactly as it was.

pub mod decide;
pub mod publish;
pub mod status;
#[cfg(test)]
mod tests;

use super::{Context, FIELD_MANAGER, apply_status};
use crate::crd::conditions::{reasons, types};
use crate::crd::email_settings::Delivery;
use crate::crd::{EmailSettings, EmailSettingsStatus};
use crate::policy::{self, Verdict};
use crate::smtp::target::{self, Prepared, SecretSource};
use crate::smtp::{Failure, Outcome};
use decide::{Memo, Next};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use publish::Published;
use status::{Problem, Test};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A failed reconcile (the connection test failing is not one: it is a status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    /// Stable CamelCase reason (metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApiError",
            Self::NoNamespace => "NoNamespace",
        }
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

/// Secrets read from the API for one reconcile.
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

async fn fetch(ctx: &Context, namespace: &str, names: &[String]) -> Result<Fetched, kube::Error> {
    let mut out = HashMap::new();
    for name in names {
        if let Some(s) = ctx.secrets.get(&ctx.client, namespace, name).await? {
            out.insert(name.clone(), secret_data(&s));
        }
    }
    Ok(Fetched(out))
}

/// What to test, the extra keys to publish, and the host hints apply to.
struct Subject {
    prepared: Prepared,
    extra: BTreeMap<String, String>,
    hints: Vec<String>,
}

/// Resolves the delivery method and its Secrets into what to test.
async fn subject(
    es: &EmailSettings,
    ctx: &Context,
    namespace: &str,
) -> Result<Result<Subject, Problem>, kube::Error> {
    let secrets = fetch(ctx, namespace, &referenced_secrets(es)).await?;
    let hints = |p: &Prepared| match es.spec.delivery {
        Delivery::AdvancedSmtp => vec![],
        _ => crate::smtp::provider_hints(&p.target.host),
    };
    let prepared = match target::for_settings(es, &secrets, &ctx.config.ses_endpoint) {
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
    Ok(Ok(Subject {
        hints: hints(&prepared),
        prepared,
        extra,
    }))
}

/// The operator's default relay, for `delivery: Default`.
async fn default_relay(
    es: &EmailSettings,
    ctx: &Context,
) -> Result<Result<Prepared, Problem>, kube::Error> {
    let Some((rns, rname)) = &ctx.config.default_relay else {
        return Ok(Err(Problem {
            reason: reasons::DEFAULT_RELAY_NOT_CONFIGURED,
            message: "the operator was started without a default relay (--default-relay-secret); ask the platform team to configure one, or use delivery ExternalSmtp or AdvancedSmtp".into(),
        }));
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

/// Runs the test and measures it.
async fn run_test(ctx: &Context, prepared: &Prepared) -> (Result<Outcome, Failure>, Duration) {
    let started = std::time::Instant::now();
    let result = crate::smtp::run_test(&ctx.prober, &ctx.tokens, prepared).await;
    (result, started.elapsed())
}

/// Entry point from the controller runtime.
pub async fn reconcile(es: Arc<EmailSettings>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.caches.synced() {
        // Its SenderIdentities are not all cached yet (see `CacheSync`).
        return Ok(Action::requeue(crate::controller::UNSYNCED_RETRY));
    }
    crate::metrics::reconcile("EmailSettings", Error::reason, reconcile_inner(&es, &ctx)).await
}

/// Transient API failures back off; the next watch event or this delay retries.
pub fn error_policy(es: Arc<EmailSettings>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %es.name_any(), namespace = es.namespace().unwrap_or_default(), reason = err.reason(), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// The condition of a type in a status, as (status, reason).
fn state(status: &EmailSettingsStatus, t: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tracing::instrument(skip_all, fields(namespace = es.namespace().unwrap_or_default(), name = es.name_any()))]
async fn reconcile_inner(es: &EmailSettings, ctx: &Context) -> Result<Action, Error> {
    let ns = es.namespace().ok_or(Error::NoNamespace)?;
    let uid = es.uid().unwrap_or_default();
    if es.metadata.deletion_timestamp.is_some() {
        // The output Secret goes with it (owner reference); nothing else is ours.
        ctx.forget_test(&uid);
        ctx.forget_status(&uid);
        return Ok(Action::await_change());
    }
    // Whole seconds: the time is written to annotations and compared with them.
    let now = Timestamp::from_second(ctx.clock.now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let generation = es.metadata.generation.unwrap_or_default();
    let prior: EmailSettingsStatus = ctx.prior_status(&uid, es.status.as_ref());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let revalidate = decide::revalidate_every(es.spec.revalidate_every.as_deref());

    // The output Secret: ours (published before), someone else's, or none yet.
    let out_name = es.output_secret_name();
    let existing = ctx.secrets.peek(&ctx.client, &ns, &out_name).await?;
    let published = existing
        .as_ref()
        .filter(|s| publish::is_ours(s, es))
        .map(|s| Published::of(s));
    let mut publish_problem = match existing.as_ref().map(|s| publish::ownership(s, es)) {
        Some(publish::Ownership::Foreign) => Some(Problem {
            reason: reasons::OUTPUT_SECRET_NOT_OWNED,
            message: format!(
                "Secret {out_name} exists and was not published by this EmailSettings; it is left alone: delete it or set spec.outputSecretName"
            ),
        }),
        Some(publish::Ownership::Predecessor) => Some(Problem {
            reason: reasons::OUTPUT_SECRET_OF_PREDECESSOR,
            message: format!(
                "Secret {out_name} was published by an earlier EmailSettings of this name, since deleted; the garbage collector deletes it with its owner, then this EmailSettings publishes its own"
            ),
        }),
        _ => None,
    };
    let namespace_settings: Vec<EmailSettings> =
        ctx.settings_in(&ns).iter().map(|o| (**o).clone()).collect();
    if let Some(Verdict::Rejected { reason, message }) =
        policy::output_secret_conflicts(&namespace_settings).get(&es.name_any())
    {
        publish_problem = Some(Problem {
            reason,
            message: message.clone(),
        });
    }

    // The test: only when the inputs changed, the last pass is older than revalidateEvery, or a
    // failure's backoff has run out.
    let subject = subject(es, ctx, &ns).await?;
    let (test, hints, fresh) = match &subject {
        Err(problem) => (Test::Unavailable(problem.clone()), vec![], false),
        Ok(s) => {
            let fingerprint = publish::fingerprint(&s.prepared, &s.extra);
            let memo = ctx.last_test(&uid);
            let mut next = decide::next(
                now,
                &fingerprint,
                memo.as_ref(),
                published.as_ref(),
                revalidate,
            );
            let mut fresh = false;
            if next == Next::Test {
                let (result, duration) = run_test(ctx, &s.prepared).await;
                let outcome = match &result {
                    Ok(_) => reasons::SUCCEEDED,
                    Err(f) => f.reason(),
                };
                crate::metrics::smtp_test(outcome);
                tracing::info!(
                    outcome,
                    duration_ms = duration.as_millis() as u64,
                    "connection test"
                );
                fresh = memo.as_ref().is_none_or(|m| m.fingerprint != fingerprint);
                let m = Memo::record(memo.as_ref(), &fingerprint, now, duration, result);
                next = decide::next(now, &fingerprint, Some(&m), None, revalidate);
                ctx.record_test(&uid, m);
            }
            (Test::Known(next), s.hints.clone(), fresh)
        }
    };
    if fresh && !hints.is_empty() {
        ctx.event(es, true, "ProviderLimits", hints.join("; "))
            .await;
    }

    // AdvancedSmtp: the from address must be covered by a verified SenderIdentity.
    let senders = (es.spec.delivery == Delivery::AdvancedSmtp)
        .then(|| status::senders(es, &ctx.identities_in(&ns)));

    // Publish: a passed test of the current inputs, a Secret we may write, a covered sender.
    let mut published_generation = published.as_ref().and_then(|p| p.generation);
    if let (Ok(s), Test::Known(Next::Passed { at, outcome, .. }), None) =
        (&subject, &test, &publish_problem)
        && senders.as_ref().is_none_or(|s| s.sender_verified.is_some())
    {
        let fingerprint = publish::fingerprint(&s.prepared, &s.extra);
        let data = match (outcome, &published) {
            (Some(o), _) => Some(publish::data(&s.prepared, o, &s.extra)),
            (None, Some(p)) => Some(p.data.clone()),
            (None, None) => None,
        };
        if let Some(data) = data {
            let current = published.as_ref().is_some_and(|p| {
                p.data == data
                    && p.generation == Some(generation)
                    && p.inputs_hash.as_deref() == Some(fingerprint.as_str())
                    && p.validated_at == Some(*at)
            });
            if !current {
                // Absent by the watch: make sure before writing. A Secret someone created a
                // moment ago (the watch lagging) is not ours to overwrite; its watch event
                // brings this EmailSettings back to judge it.
                if existing.is_none()
                    && ctx
                        .secrets
                        .get(&ctx.client, &ns, &out_name)
                        .await?
                        .is_some()
                {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                let manifest = publish::manifest(es, &data, generation, *at, &fingerprint);
                let written = secrets
                    .patch(
                        &out_name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&manifest),
                    )
                    .await?;
                ctx.secrets.remember(&written);
                published_generation = Some(generation);
                if published.as_ref().is_none_or(|p| p.data != data) {
                    ctx.event(
                        es,
                        false,
                        reasons::PUBLISHED,
                        format!(
                            "published the configuration validated for generation {generation} to Secret {out_name}"
                        ),
                    )
                    .await;
                }
            }
        }
    }

    let new = status::compute(
        &prior,
        &status::Inputs {
            es,
            now,
            test: &test,
            hints: &hints,
            published_generation,
            publish_problem: publish_problem.as_ref(),
            senders: senders.as_ref(),
        },
    );
    if new != prior {
        let api: Api<EmailSettings> = Api::namespaced(ctx.client.clone(), &ns);
        apply_status(&api, es, &new).await?;
        ctx.wrote_status(&uid, &new);
    }
    // One Event per transition; Ready repeats a reason just reported by the other two.
    let mut reported = vec![];
    for t in [
        types::CONNECTION_VERIFIED,
        types::SENDER_VERIFIED,
        types::READY,
    ] {
        let (before, after) = (state(&prior, t), state(&new, t));
        if let Some((status, reason, message)) = after
            && before.as_ref().map(|b| (&b.0, &b.1)) != Some((&status, &reason))
            && !reported.contains(&reason)
        {
            ctx.event(es, status != "True", &reason, message).await;
            reported.push(reason);
        }
    }

    // Come back when the pass expires or the failure's backoff runs out; Secret and
    // SenderIdentity changes arrive as watch events.
    let due = match &test {
        Test::Known(Next::Passed { due, .. } | Next::Failed { due, .. }) => {
            Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
        }
        _ => Duration::from_secs(300),
    };
    Ok(Action::requeue(due.max(Duration::from_secs(1))))
}

/// Whether the Secret `secret_ns/secret_name` is the operator's default relay.
pub fn is_default_relay(
    secret_ns: Option<&str>,
    secret_name: &str,
    default_relay: Option<&(String, String)>,
) -> bool {
    default_relay.is_some_and(|(ns, name)| Some(ns.as_str()) == secret_ns && name == secret_name)
}

/// The EmailSettings a change to a Secret concerns: its publisher (owner), the EmailSettings
/// that reference it, and for the default relay Secret every `delivery: Default`.
pub fn settings_for_secret(
    secret_ns: Option<&str>,
    secret_name: &str,
    owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    default_relay: Option<&(String, String)>,
    settings: &[Arc<EmailSettings>],
) -> Vec<ObjectRef<EmailSettings>> {
    let is_relay = is_default_relay(secret_ns, secret_name, default_relay);
    settings
        .iter()
        .filter(|es| {
            let same_ns = es.namespace().as_deref() == secret_ns;
            (is_relay && es.spec.delivery == Delivery::Default)
                || (same_ns
                    && (referenced_secrets(es).iter().any(|n| n == secret_name)
                        || owners
                            .iter()
                            .any(|o| o.kind == "EmailSettings" && o.name == es.name_any())))
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}
