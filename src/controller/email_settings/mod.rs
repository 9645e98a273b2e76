//! The EmailSettings controller: how a tenant's mail leaves, tested before it is published.
//!
//! Each reconcile is the controller pipeline: [`dereference`] (its Secrets or the default relay,
//! its output Secret, its namespace's other EmailSettings and its SenderIdentities) →
//! [`decide`] (pure: is a connection test due, what may be published, when to come back) →
//! [`apply`] (the test, the Secret, the status write) → [`status`] (pure).
//!
//! Only a configuration that passed the test reaches the output Secret; a failing edit leaves
//! the last validated Secret exactly as it was.

mod apply;
pub mod decide;
pub mod dereference;
pub mod publish;
pub mod status;
pub mod test_message;
#[cfg(test)]
mod tests;

use crate::controller::Context;
use crate::controller::backends::Backends;
use crate::controller::packed::{Packed, cache_ref};
use crate::crd::EmailSettings;
use crate::crd::conditions::reasons;
use crate::crd::email_settings::Delivery;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;

pub use dereference::referenced_secrets;

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
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR,
            Self::NoNamespace => reasons::NO_NAMESPACE,
        }
    }
}

/// Entry point from the controller runtime.
pub async fn reconcile<B: Backends>(
    cached: Arc<Packed<EmailSettings>>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    // Its SenderIdentities are not all cached yet (see `CacheSync`).
    ctx.caches.sync.wait().await;
    // Always well-formed: the watch delivers EmailSettings it could read.
    let Some(es) = cached.get() else {
        return Ok(Action::await_change());
    };
    crate::metrics::reconcile("EmailSettings", Error::reason, pipeline(&es, &ctx)).await
}

/// Transient API failures back off; the next watch event or this delay retries.
pub fn error_policy<B: Backends>(
    es: Arc<Packed<EmailSettings>>,
    err: &Error,
    _ctx: Arc<Context<B>>,
) -> Action {
    tracing::warn!(name = %es.name_any(), namespace = es.namespace().unwrap_or_default(), reason = err.reason(), error = %err, "reconcile failed");
    Action::requeue(decide::BACKOFF)
}

/// dereference → decide → apply (→ status).
#[tracing::instrument(skip_all, fields(namespace = es.namespace().unwrap_or_default(), name = es.name_any()))]
async fn pipeline<B: Backends>(es: &EmailSettings, ctx: &Context<B>) -> Result<Action, Error> {
    es.namespace().ok_or(Error::NoNamespace)?;
    if es.metadata.deletion_timestamp.is_some() {
        // The output Secret goes with it (owner reference); nothing else is ours.
        return Ok(Action::await_change());
    }
    // Whole seconds: the time is written to annotations and compared with them.
    let now = Timestamp::from_second(ctx.clock.now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let read = dereference::read(es, ctx).await?;
    let step = decide::test_step(es, &read, now);
    // A namespace runs at most a few tests at once; the others come back shortly.
    let _slot = match &step {
        decide::TestStep::Run { .. } => match ctx.test_slot(&read.namespace) {
            Some(slot) => Some(slot),
            None => return Ok(Action::requeue(decide::FAIR_SHARE_RETRY)),
        },
        decide::TestStep::Known(_) => None,
    };
    let (test, fresh) = apply::test(ctx, &read, step, now).await;
    let hints: &[String] = match &read.subject {
        Ok(s) => &s.hints,
        Err(_) => &[],
    };
    if fresh && !hints.is_empty() {
        ctx.event(es, true, reasons::PROVIDER_LIMITS, hints.join("; "))
            .await;
    }
    let publication = decide::publication_of(es, &read, &test);
    let published_generation = match apply::publish(es, ctx, &read, publication).await? {
        Ok(generation) => generation,
        Err(action) => return Ok(action),
    };
    let prior = ctx.settings_prior(es);
    let account = account(es, ctx, &read, now).await;
    let sent = apply::send_test(es, ctx, &read, &prior, published_generation, now).await;
    let new = status::compute(
        &prior,
        &status::Inputs {
            es,
            now,
            test: &test,
            hints,
            published_generation,
            publish_problem: read.publish_problem.as_ref(),
            senders: read.senders.as_ref(),
            inputs: read.subject.as_ref().ok().map(|s| s.inputs.as_str()),
            account: account
                .as_ref()
                .map(|(region, reading)| (region.as_str(), reading)),
            test_message: sent.as_ref(),
        },
    );
    apply::write_status(es, ctx, &read, &prior, &new).await?;
    let next = match &test {
        status::Test::Known(next) => Some(next),
        status::Test::Unavailable(_) => None,
    };
    let mut after = decide::come_back(next, now);
    if let Some((_, reading)) = &account {
        let due = reading.due(ctx.accounts.every());
        after = after.min(due.duration_since(now).unsigned_abs());
    }
    Ok(Action::requeue(after))
}

/// AdvancedSmtp whose location the policy allows (what is tested can be): the SES account's
/// standing there ([`crate::controller::account`]; one GetAccount per location per interval).
async fn account<B: Backends>(
    es: &EmailSettings,
    ctx: &Context<B>,
    read: &dereference::Read,
    now: Timestamp,
) -> Option<(String, crate::controller::account::Reading)> {
    let a = es
        .spec
        .advanced_smtp
        .as_ref()
        .filter(|_| es.spec.delivery == Delivery::AdvancedSmtp && read.subject.is_ok())?;
    let location = crate::crd::sender_identity::SesLocation {
        region: a.region.clone(),
        role_arn: a.role_arn.clone(),
    };
    let key = crate::controller::SesKey::of(&location, &read.namespace);
    let ses = ctx.backends.ses(&key).await;
    let reading = ctx.accounts.read(&key, &ses, now).await;
    Some((a.region.clone(), reading))
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
) -> Vec<ObjectRef<Packed<EmailSettings>>> {
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
        .map(|es| cache_ref(es.as_ref()))
        .collect()
}
