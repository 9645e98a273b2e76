//! The SenderIdentity controller: a domain or address verified in SES for an EmailSettings.
//!
//! Each reconcile is the controller pipeline: [`dereference`] (its EmailSettings and siblings,
//! from the caches) → [`decide`] (pure: the policy's verdict is in hand; is SES due, or only
//! DNS, or nothing) → [`apply`] (the SES step [`step`] chooses, records checked in DNS, the
//! DNSEndpoint, the status write) → [`status`] (pure). The finalizer ([`cleanup`]) removes our
//! claim on the SES identity and deletes it only when we were its last owner and
//! `deletionPolicy: Delete`.

mod apply;
mod cleanup;
pub mod decide;
pub mod dereference;
pub mod dns_endpoint;
mod records;
pub mod status;
pub mod step;

use crate::controller::backends::Backends;
use crate::controller::packed::Packed;
use crate::controller::{Context, FINALIZER};
use crate::crd::SenderIdentity;
use crate::crd::conditions::reasons;
use crate::ses::SesError;
use decide::Plan;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};
use std::sync::Arc;

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SES: {0}")]
    Ses(#[from] SesError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    /// Stable CamelCase reason (Event reason, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ses(e) => e.reason(),
            Self::Kube(_) => reasons::KUBERNETES_API_ERROR,
            Self::Finalizer(_) => reasons::FINALIZER_ERROR,
            Self::NoNamespace => reasons::NO_NAMESPACE,
        }
    }
}

/// Entry point from the controller runtime.
pub async fn reconcile<B: Backends>(
    cached: Arc<Packed<SenderIdentity>>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    // Its EmailSettings or siblings may not be cached yet (see `CacheSync`).
    ctx.caches.sync.wait().await;
    let guard = cached.unpack();
    let si = match &guard.0 {
        Ok(si) => Arc::new(si.clone()),
        Err(invalid) => {
            // Malformed (e.g. written under an older schema): say so and leave it alone.
            let note = format!(
                "the object cannot be read as a SenderIdentity: {}",
                invalid.error
            );
            ctx.event(&guard, true, reasons::INVALID_OBJECT, note).await;
            return Ok(Action::await_change());
        }
    };
    crate::metrics::reconcile("SenderIdentity", Error::reason, reconcile_inner(si, ctx)).await
}

#[tracing::instrument(skip_all, fields(namespace = si.namespace().unwrap_or_default(), name = si.name_any()))]
async fn reconcile_inner<B: Backends>(
    si: Arc<SenderIdentity>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let ns = si.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<SenderIdentity> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, si, |event| async {
        match event {
            Finalizer::Apply(si) => pipeline(&si, &api, &ctx).await,
            Finalizer::Cleanup(si) => cleanup::cleanup(&si, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    })
}

/// dereference → decide → apply (→ status).
async fn pipeline<B: Backends>(
    si: &SenderIdentity,
    api: &Api<SenderIdentity>,
    ctx: &Context<B>,
) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let read = dereference::read(si, ctx);
    let rights = match &read.admission {
        dereference::Admission::Admitted(t) => t.rights.clone(),
        _ => Default::default(),
    };
    let apply = apply::Apply {
        si,
        api,
        ctx,
        now,
        rights,
    };
    match decide::plan(&read, now, &ctx.config.recheck.windows) {
        Plan::Reject { reason, message } => apply.reject(reason, &message).await,
        Plan::Wait(after) => Ok(after.map_or_else(Action::await_change, Action::requeue)),
        Plan::RetryDnsEndpoint => apply.retry_dns_endpoint(&read.prior).await,
        Plan::RefreshDns(target) => apply.refresh_dns(&read, &target).await,
        Plan::Converge(target) => apply.converge(read, &target).await,
    }
}

/// Transient failures back off; the next watch event or this delay retries.
pub fn error_policy<B: Backends>(
    cached: Arc<Packed<SenderIdentity>>,
    err: &Error,
    _ctx: Arc<Context<B>>,
) -> Action {
    let si = cached.as_ref();
    tracing::warn!(name = %si.name_any(), namespace = si.namespace().unwrap_or_default(), reason = err.reason(), error = %err, "reconcile failed");
    let transient = !matches!(err, Error::Ses(e) if !e.is_transient());
    Action::requeue(decide::backoff(transient))
}

#[cfg(test)]
mod tests;
