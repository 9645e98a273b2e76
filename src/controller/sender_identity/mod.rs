//! The SenderIdentity controller: dereference (EmailSettings, sibling SenderIdentities) →
//! policy → SES apply ([`step`]) → status ([`status`]). The finalizer removes our claim on the
//! SES identity and deletes it only when we were its last owner and `deletionPolicy: Delete`.

mod cleanup;
pub mod dns_endpoint;
mod records;
pub mod status;
pub mod step;

use super::{ADOPT_ANNOTATION, Context, FINALIZER, RETRY_ANNOTATION, SesKey, apply_status};
use crate::crd::sender_identity::{DeletionPolicy, SesLocation};
use crate::crd::{EmailSettings, SenderIdentity};
use crate::names::IdentityName;
use crate::policy::{self, Verdict};
use crate::ses::{IdentityDetails, Owner, SesApi, SesError};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use step::{Facts, Step, next_step, recheck_after};

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SES: {0}")]
    Ses(#[from] SesError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    /// Stable CamelCase reason (Event reason, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Ses(e) => e.reason(),
            Self::Kube(_) => "KubernetesApiError",
            Self::Finalizer(_) => "FinalizerError",
            Self::NoNamespace => "NoNamespace",
        }
    }
}

/// Entry point from the controller runtime.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<SenderIdentity>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.caches.synced() {
        // Its EmailSettings or siblings may not be cached yet (see `CacheSync`).
        return Ok(Action::requeue(crate::controller::UNSYNCED_RETRY));
    }
    let si = match &guard.0 {
        Ok(si) => Arc::new(si.clone()),
        Err(invalid) => {
            // Malformed (e.g. written under an older schema): say so and leave it alone.
            let note = format!(
                "the object cannot be read as a SenderIdentity: {}",
                invalid.error
            );
            ctx.event(guard.as_ref(), true, "InvalidObject", note).await;
            return Ok(Action::await_change());
        }
    };
    crate::metrics::reconcile("SenderIdentity", Error::reason, reconcile_inner(si, ctx)).await
}

#[tracing::instrument(skip_all, fields(namespace = si.namespace().unwrap_or_default(), name = si.name_any()))]
async fn reconcile_inner(si: Arc<SenderIdentity>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = si.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<SenderIdentity> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, si, |event| async {
        match event {
            Finalizer::Apply(si) => apply(&si, &api, &ctx).await,
            Finalizer::Cleanup(si) => cleanup::cleanup(&si, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// Transient failures back off; the next watch event or this delay retries.
pub fn error_policy(
    guard: Arc<DeserializeGuard<SenderIdentity>>,
    err: &Error,
    _ctx: Arc<Context>,
) -> Action {
    let si = guard.as_ref();
    tracing::warn!(name = %si.name_any(), namespace = si.namespace().unwrap_or_default(), reason = err.reason(), error = %err, "reconcile failed");
    match err {
        Error::Ses(e) if !e.is_transient() => Action::requeue(Duration::from_secs(300)),
        _ => Action::requeue(Duration::from_secs(15)),
    }
}

pub(super) fn owner(si: &SenderIdentity, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_id.clone(),
        namespace: si.namespace().unwrap_or_default(),
        name: si.name_any(),
        deletion_policy: match si.spec.deletion_policy {
            DeletionPolicy::Delete => "Delete".into(),
            DeletionPolicy::Retain => "Retain".into(),
        },
    }
}

fn location_of(es: &EmailSettings) -> Option<SesLocation> {
    es.spec.advanced_smtp.as_ref().map(|a| SesLocation {
        region: a.region.clone(),
        role_arn: a.role_arn.clone(),
    })
}

pub(super) fn key_of(loc: &SesLocation) -> SesKey {
    SesKey {
        region: loc.region.clone(),
        role_arn: loc.role_arn.clone(),
    }
}

/// The identity name as SES knows it.
pub(super) fn ses_name(id: &IdentityName) -> String {
    id.to_string()
}

async fn apply(
    si: &SenderIdentity,
    api: &Api<SenderIdentity>,
    ctx: &Context,
) -> Result<Action, Error> {
    let ns = si.namespace().ok_or(Error::NoNamespace)?;
    let now = ctx.clock.now();
    let mut prior: crate::crd::SenderIdentityStatus =
        ctx.prior_status(&si.uid().unwrap_or_default(), si.status.as_ref());
    let generation = si.metadata.generation;

    // Dereference: the EmailSettings and every SenderIdentity of the namespace.
    let settings_name = &si.spec.email_settings_ref.name;
    let settings = ctx.settings.get(&ObjectRef::new(settings_name).within(&ns));
    let siblings: Vec<SenderIdentity> = ctx.identities_in(&ns);

    // Policy: a rejected identity never reaches SES.
    let verdicts = policy::decide(settings_name, settings.as_deref(), &siblings);
    let id = match verdicts.get(&si.name_any()) {
        Some(Verdict::Admitted(id)) => id.clone(),
        Some(Verdict::Rejected { reason, message }) => {
            return reject(si, api, ctx, reason, message).await;
        }
        None => return Ok(Action::await_change()),
    };
    let Some(location) = settings.as_deref().and_then(location_of) else {
        return Ok(Action::await_change());
    };
    let key = key_of(&location);
    let name = ses_name(&id);
    // A move (the EmailSettings' region or role changed) is not quiet: `prior.ses` still says
    // where it was.
    status::track_move(&mut prior, &location);
    let retry = si.annotations().get(RETRY_ANNOTATION).cloned();

    // Refused for the account's quota: nothing is tried again until someone acts (a spec or
    // retry-annotation change), or every such identity would spend SES's 1 call a second.
    let on_quota = prior.conditions.iter().any(|c| {
        c.type_ == crate::crd::conditions::types::READY
            && c.reason == crate::crd::conditions::reasons::SES_QUOTA_EXCEEDED
    });
    if on_quota
        && generation == prior.observed_generation
        && retry == prior.observed_retry
        && prior.ses.as_ref() == Some(&location)
    {
        return Ok(Action::await_change());
    }

    // Only read SES when something could have changed: frugal at steady state.
    let dirty = ctx.take_dirty(&key, &name);
    let last_status = prior.verification_status.as_deref().map(to_ses_status);
    let uid = si.uid().unwrap_or_default();
    let checked_at = ctx
        .last_checked(&uid)
        .into_iter()
        .chain(prior.last_checked_time.as_ref().map(|t| t.0))
        .max();
    // A status that still says "rejected" must be rewritten now that the policy admits it.
    let was_accepted = prior
        .conditions
        .iter()
        .any(|c| c.type_ == crate::crd::conditions::types::ACCEPTED && c.status == "True");
    // Nothing changed since SES was last read: only time (or the bulk listing, which marks
    // the identity dirty) brings it back.
    let quiet = generation == prior.observed_generation
        && was_accepted
        && retry == prior.observed_retry
        && !dirty
        && prior.ses.as_ref() == Some(&location)
        && !release_due(&prior, settings.as_deref());
    let due_in = match (&checked_at, &last_status) {
        (Some(checked), Some(st)) if quiet => {
            let next = next_read(ctx, st, &prior, now, id.is_domain());
            let reads = next.map(|n| n.saturating_sub(now.duration_since(*checked).unsigned_abs()));
            [reads, key_length_due(ctx, &prior, now)]
                .into_iter()
                .flatten()
                .min()
        }
        _ => Some(Duration::ZERO),
    };
    if quiet
        && status::dns_endpoint_failing(&prior)
        && let Some(action) = retry_dns_endpoint(si, api, ctx, &mut prior, now).await?
    {
        return Ok(action);
    }
    match due_in {
        None => return Ok(Action::await_change()),
        Some(d) if !d.is_zero() => return Ok(Action::requeue(d)),
        _ => {}
    }
    // A pending identity's SES status comes from the bulk listing (one call per 1,000
    // identities), so its own timer looks only at DNS — unless its window has closed and SES
    // must be asked whether to re-create or re-send.
    if quiet
        && ctx.config.baseline_poll.is_none()
        && !prior.dns_records.is_empty()
        && !window_closed(&prior, now, id.is_domain(), &ctx.config.windows)
        && let Some(st) = &last_status
    {
        return refresh_dns(si, api, ctx, &prior, &id, st, now).await;
    }

    let ses = ctx.ses(&key).await;
    let me = owner(si, ctx);
    let mut details = get(&ses, &name).await?;
    let mut pending_since = prior.pending_since.as_ref().map(|t| t.0);
    let mut attempts = prior.verification_attempts.unwrap_or(0);
    let mut key_length_changed = prior.dkim_key_length_changed_time.as_ref().map(|t| t.0);
    let facts = Facts {
        ses: details.as_ref(),
        owner_key: &me.tag_key(),
        adopt: si
            .annotations()
            .get(ADOPT_ANNOTATION)
            .is_some_and(|v| v == "true"),
        is_domain: id.is_domain(),
        spec: &si.spec,
        prior: &prior,
        retry: retry.as_deref(),
        generation,
        now,
    };
    let key_length = id.is_domain().then(|| {
        si.spec
            .dkim
            .as_ref()
            .map(|d| d.key_length)
            .unwrap_or_default()
            .as_str()
    });
    let mail_from = si
        .spec
        .mail_from_domain
        .as_deref()
        .filter(|_| id.is_domain());
    match next_step(&facts, &ctx.config.windows) {
        Step::Create => {
            // Where it is going is recorded first: a deletion then finds it, whatever fails
            // between here and the status written at the end.
            if prior.ses.as_ref() != Some(&location) {
                let recorded = status::creating(&prior, &id, &location, generation, now);
                apply_status(api, si, &recorded).await?;
                ctx.wrote_status(&uid, &recorded);
                prior = recorded;
            }
            let created = create(&ses, &name, &me.creation_tags(), key_length, mail_from).await;
            details = match created {
                Err(Error::Ses(SesError::QuotaExceeded(detail))) => {
                    let msg = format!(
                        "SES refused to create {name} in {}: the account's quota of identities in the region is reached (SES allows 10,000 per region; {detail}). Delete identities the account no longer uses, or ask AWS for a higher quota, then change this SenderIdentity or the annotation {RETRY_ANNOTATION} to try again",
                        location.region
                    );
                    let new = status::stalled(
                        &prior,
                        crate::crd::conditions::reasons::SES_QUOTA_EXCEEDED,
                        &msg,
                        generation,
                        now,
                    );
                    let new = crate::crd::SenderIdentityStatus {
                        observed_retry: retry,
                        ..new
                    };
                    if new != prior {
                        transition_events(si, ctx, &prior, &new).await;
                        apply_status(api, si, &new).await?;
                        ctx.wrote_status(&uid, &new);
                    }
                    return Ok(Action::await_change());
                }
                Ok(Created::AlreadyThere) => return Ok(already_there(ctx, &key, &name)),
                Ok(Created::New(details)) => details,
                Err(e) => return Err(e),
            };
            pending_since = Some(now);
            attempts += 1;
            ctx.event(
                si,
                false,
                "IdentityCreated",
                format!("created {name} in SES ({})", location.region),
            )
            .await;
        }
        Step::NotOwned => {
            let msg = format!(
                "{name} already exists in SES {} and is not tagged as managed by email-operator; it is left untouched. Set the annotation {ADOPT_ANNOTATION}: \"true\" to adopt it",
                location.region
            );
            return reject(
                si,
                api,
                ctx,
                crate::crd::conditions::reasons::IDENTITY_NOT_OWNED,
                &msg,
            )
            .await;
        }
        Step::Claim { adopt } => {
            let mut tags = vec![(me.tag_key(), me.tag_value())];
            if adopt {
                tags.push((
                    crate::ses::MANAGED_BY_KEY.into(),
                    crate::ses::MANAGED_BY_VALUE.into(),
                ));
            }
            let existing = details
                .as_ref()
                .map(|d| d.tags.as_slice())
                .unwrap_or_default();
            let count = crate::ses::tag_count_after(existing, &tags);
            if count > crate::ses::MAX_TAGS {
                let msg = format!(
                    "{name} in SES {} carries {} tags, and SES allows {} per identity: one is ours (email.ops.dev/managed-by), one is each SenderIdentity sharing it, the rest were added by hand. Delete a SenderIdentity that shares it, or remove tags added by hand, for this one to claim it",
                    location.region,
                    crate::ses::tag_count_after(existing, &[]),
                    crate::ses::MAX_TAGS
                );
                reject(
                    si,
                    api,
                    ctx,
                    crate::crd::conditions::reasons::SES_TAG_LIMIT_REACHED,
                    &msg,
                )
                .await?;
                // A sharer elsewhere may let go of it; nothing here would say so.
                return Ok(Action::requeue(Duration::from_secs(600)));
            }
            ses.tag_identity(&name, &tags).await?;
            let (reason, note) = if adopt {
                (
                    "IdentityAdopted",
                    format!("adopted the existing SES identity {name}"),
                )
            } else {
                (
                    "IdentityShared",
                    format!(
                        "{name} already exists in SES for another SenderIdentity; this one now shares it"
                    ),
                )
            };
            ctx.event(si, false, reason, note).await;
            if pending_since.is_none() {
                pending_since = Some(now);
            }
            attempts = attempts.max(1);
            details = get(&ses, &name).await?;
        }
        Step::Recreate { reason, message } => {
            match ses.delete_identity(&name).await {
                Ok(()) | Err(SesError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            // Its tags go with it, but not AWS's own (a request may not carry them).
            let tags = details
                .as_ref()
                .map(|d| crate::ses::carried_tags(&d.tags))
                .unwrap_or_else(|| me.creation_tags());
            details = match create(&ses, &name, &tags, key_length, mail_from).await? {
                Created::New(details) => details,
                Created::AlreadyThere => return Ok(already_there(ctx, &key, &name)),
            };
            pending_since = Some(now);
            attempts = if reason == "RetryRequested" {
                1
            } else {
                attempts + 1
            };
            ctx.event(si, true, reason, message).await;
        }
        Step::Configure {
            mail_from,
            key_length,
        } => {
            if let Some(mf) = mail_from {
                ses.put_mail_from(&name, mf.as_deref()).await?;
            }
            if let Some(kl) = key_length {
                match ses.put_dkim_key_length(&name, &kl).await {
                    Ok(()) => key_length_changed = Some(now),
                    // Changed in SES within the day by someone else: SES says no until a day
                    // has passed, which is counted from now (SES does not say since when).
                    Err(SesError::Rejected(why)) => {
                        tracing::info!(reason = why, "SES refused the key length change");
                        key_length_changed = Some(now);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            details = get(&ses, &name).await?;
        }
        Step::WaitForRetry | Step::Observe => {}
    }
    let Some(details) = details else {
        // Gone between our write and read: look again soon rather than act on a guess.
        return Ok(Action::requeue(Duration::from_secs(5)));
    };

    let records = records::records(&id, si, &details, &location, &ctx.dns).await;
    let new = status::observed(
        &prior,
        status::Observation {
            identity: &id,
            details: &details,
            records,
            location,
            pending_since: pending_since.or(Some(now)),
            attempts: attempts.max(1),
            observed_retry: retry,
            generation,
            now,
            mail_from,
            key_length: id
                .is_domain()
                .then(|| si.spec.dkim.as_ref().map(|d| d.key_length.as_str()))
                .flatten(),
            key_length_changed,
            windows: &ctx.config.windows,
        },
    );
    ctx.set_checked(&uid, Some(now));
    // Verified here: what it held before a move is let go (a failure is retried, and said).
    let mut new = new;
    let mut release_failed = None;
    if release_due(&new, settings.as_deref()) {
        for former in std::mem::take(&mut new.former_locations) {
            if let Err(e) = cleanup::release(si, ctx, &id, &former).await {
                new.former_locations.push(former);
                release_failed.get_or_insert(e);
            }
        }
    }
    // The DNSEndpoint follows the records, and the spec (provider switched on or off).
    // A generation never observed before has no DNSEndpoint of ours to take back.
    let spec_changed =
        prior.observed_generation.is_some() && generation != prior.observed_generation;
    let mut endpoint_failing = false;
    if new.dns_records != prior.dns_records || spec_changed || status::dns_endpoint_failing(&prior)
    {
        endpoint_failing = sync_dns_endpoint(si, ctx, &mut new, spec_changed, now).await?;
    }
    if needs_write(&prior, &new, now) {
        transition_events(si, ctx, &prior, &new).await;
        apply_status(api, si, &new).await?;
        ctx.wrote_status(&si.uid().unwrap_or_default(), &new);
    }
    if let Some(e) = release_failed {
        return Err(e);
    }
    let after = [
        next_read(ctx, &details.verification_status, &new, now, id.is_domain()),
        key_length_due(ctx, &new, now),
        endpoint_failing.then_some(DNS_ENDPOINT_RETRY),
    ]
    .into_iter()
    .flatten()
    .min();
    Ok(after.map_or_else(Action::await_change, Action::requeue))
}

/// How soon a DNSEndpoint that could not be written (CRD missing, not permitted) is tried again.
const DNS_ENDPOINT_RETRY: Duration = Duration::from_secs(300);

/// Applies (or removes) the DNSEndpoint for the records in `status` and says how it went in
/// its `DnsEndpointReady` condition; true while it cannot be written. A missing CRD or
/// permission is not a failed reconcile but a problem to report, so the status — and with it
/// where the SES identity lives — is still written.
async fn sync_dns_endpoint(
    si: &SenderIdentity,
    ctx: &Context,
    status: &mut crate::crd::SenderIdentityStatus,
    spec_changed: bool,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<bool, Error> {
    let written = dns_endpoint::reconcile(&ctx.client, si, &status.dns_records, spec_changed).await;
    let problem = match written {
        Ok(()) => None,
        Err(e) => match dns_endpoint::unavailable(&e) {
            Some(problem) => {
                tracing::warn!(reason = problem.0, error = %e, "cannot write the DNSEndpoint");
                Some(problem)
            }
            None => return Err(e.into()),
        },
    };
    status::dns_endpoint(
        status,
        dns_endpoint::wanted(si),
        problem.as_ref(),
        si.metadata.generation,
        now,
    );
    Ok(problem.is_some())
}

/// A quiet identity whose DNSEndpoint could not be written: only that is tried again (no SES
/// call). `Some` while it still fails, `None` once written (the status now says so).
async fn retry_dns_endpoint(
    si: &SenderIdentity,
    api: &Api<SenderIdentity>,
    ctx: &Context,
    prior: &mut crate::crd::SenderIdentityStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Option<Action>, Error> {
    let mut new = prior.clone();
    let failing = sync_dns_endpoint(si, ctx, &mut new, false, now).await?;
    if new != *prior {
        transition_events(si, ctx, prior, &new).await;
        apply_status(api, si, &new).await?;
        ctx.wrote_status(&si.uid().unwrap_or_default(), &new);
        *prior = new;
    }
    Ok(failing.then(|| Action::requeue(DNS_ENDPOINT_RETRY)))
}

/// Whether identities held before a move are to be released now: the one where the
/// EmailSettings points is verified for sending, and the EmailSettings has published the
/// configuration of its current spec (until then applications still send from the old one).
fn release_due(
    status: &crate::crd::SenderIdentityStatus,
    settings: Option<&crate::crd::EmailSettings>,
) -> bool {
    !status.former_locations.is_empty()
        && status.verified_for_sending == Some(true)
        && settings.is_some_and(crate::crd::EmailSettings::publishes_current_spec)
}

/// Whether the pending identity's window (72 h for a domain's DKIM, 24 h for an email's link)
/// has closed, so that SES must be read to decide on re-creating or re-sending.
fn window_closed(
    prior: &crate::crd::SenderIdentityStatus,
    now: k8s_openapi::jiff::Timestamp,
    is_domain: bool,
    w: &step::Windows,
) -> bool {
    let window = if is_domain {
        w.domain_pending
    } else {
        w.email_link
    };
    prior
        .pending_since
        .as_ref()
        .is_none_or(|since| now.duration_since(since.0).unsigned_abs() >= window)
}

/// The timer of a pending identity between bulk listings: its records are looked up again in
/// DNS (no SES call), and the status is written only when what DNS shows changed.
async fn refresh_dns(
    si: &SenderIdentity,
    api: &Api<SenderIdentity>,
    ctx: &Context,
    prior: &crate::crd::SenderIdentityStatus,
    id: &IdentityName,
    verification_status: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Action, Error> {
    let records = records::check(id.domain(), prior.dns_records.clone(), &ctx.dns).await;
    let uid = si.uid().unwrap_or_default();
    ctx.set_checked(&uid, Some(now));
    if records != prior.dns_records {
        let mut new = crate::crd::SenderIdentityStatus {
            dns_records: records,
            ..prior.clone()
        };
        sync_dns_endpoint(si, ctx, &mut new, false, now).await?;
        apply_status(api, si, &new).await?;
        ctx.wrote_status(&uid, &new);
    }
    let after = next_read(ctx, verification_status, prior, now, id.is_domain());
    Ok(after.map_or_else(Action::await_change, Action::requeue))
}

/// When the identity is next looked at by itself: a pending one has its records re-checked in
/// DNS (its SES status comes from the bulk listing, see [`refresh_dns`]), a verified one never
/// (only through the bulk listing) — or, in the benchmark baseline, it is read from SES on its
/// fixed period whatever its state.
///
/// An identity with a custom MAIL FROM domain is also read by itself (the listing does not
/// carry its MAIL FROM status): every `mail_from_every` once that is verified, every
/// `pending_max` while it is on its way, not at all once it failed (that waits for a retry).
fn next_read(
    ctx: &Context,
    verification_status: &str,
    status: &crate::crd::SenderIdentityStatus,
    now: k8s_openapi::jiff::Timestamp,
    is_domain: bool,
) -> Option<Duration> {
    let w = &ctx.config.windows;
    if let Some(every) = ctx.config.baseline_poll {
        return Some(every);
    }
    let pending_since = status.pending_since.as_ref().map(|t| t.0);
    let own = recheck_after(verification_status, pending_since, now, is_domain, w);
    let mail_from = match status.mail_from_status.as_deref() {
        Some("Success") => Some(w.mail_from_every),
        Some("Pending" | "TemporaryFailure") => Some(w.pending_max),
        _ => None,
    };
    [own, mail_from].into_iter().flatten().min()
}

/// How long until a DKIM key length change that waits for SES's once-a-day allowance may be
/// made, when one waits.
fn key_length_due(
    ctx: &Context,
    status: &crate::crd::SenderIdentityStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<Duration> {
    let deferred = status.conditions.iter().any(|c| {
        c.type_ == crate::crd::conditions::types::DKIM_KEY_LENGTH_APPLIED
            && c.reason == crate::crd::conditions::reasons::KEY_LENGTH_CHANGE_DEFERRED
    });
    let at = step::key_length_change_allowed_at(status, now, &ctx.config.windows)
        .filter(|_| deferred)?;
    Some(at.duration_since(now).unsigned_abs() + Duration::from_secs(1))
}

/// Whether the new status says more than a fresher `lastCheckedTime` that is not due yet.
fn needs_write(
    prior: &crate::crd::SenderIdentityStatus,
    new: &crate::crd::SenderIdentityStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    let mut same = new.clone();
    same.last_checked_time = prior.last_checked_time.clone();
    let heartbeat_due = prior
        .last_checked_time
        .as_ref()
        .is_none_or(|t| now.duration_since(t.0).unsigned_abs() >= super::STATUS_HEARTBEAT);
    same != *prior || heartbeat_due
}

/// `TemporaryFailure` → `TEMPORARY_FAILURE`.
pub fn to_ses_status(display: &str) -> String {
    let mut out = String::new();
    for (i, c) in display.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An identity found already there when creating it: read again at once (see
/// [`Created::AlreadyThere`]).
fn already_there(ctx: &Context, key: &SesKey, name: &str) -> Action {
    ctx.mark_dirty(key, name);
    Action::requeue(Duration::ZERO)
}

/// What creating an identity came to.
#[derive(Debug)]
enum Created {
    /// Created by us, with its MAIL FROM domain: its details (read when the answer lacked
    /// them; `None` if it vanished meanwhile).
    New(Option<IdentityDetails>),
    /// Created since it was read, perhaps by someone else, perhaps for another namespace.
    /// Nothing is done to it here: the next reconcile reads it, and its tags decide (share it,
    /// leave it alone, or configure it if it is ours).
    AlreadyThere,
}

/// Creates the identity with its MAIL FROM domain.
async fn create(
    ses: &impl SesApi,
    name: &str,
    tags: &[(String, String)],
    key_length: Option<&str>,
    mail_from: Option<&str>,
) -> Result<Created, Error> {
    let created = match ses.create_identity(name, tags, key_length).await {
        Ok(created) => created,
        Err(SesError::AlreadyExists) => return Ok(Created::AlreadyThere),
        Err(e) => return Err(e.into()),
    };
    if let Some(mf) = mail_from {
        ses.put_mail_from(name, Some(mf)).await?;
    }
    let created = created.map(|d| IdentityDetails {
        mail_from_domain: mail_from.map(str::to_string),
        ..d
    });
    match created {
        Some(details) => Ok(Created::New(Some(details))),
        None => get(ses, name).await.map(Created::New),
    }
}

pub(super) async fn get(ses: &impl SesApi, name: &str) -> Result<Option<IdentityDetails>, Error> {
    match ses.get_identity(name).await {
        Ok(d) => Ok(Some(d)),
        Err(SesError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn reject(
    si: &SenderIdentity,
    api: &Api<SenderIdentity>,
    ctx: &Context,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    let uid = si.uid().unwrap_or_default();
    let prior: crate::crd::SenderIdentityStatus = ctx.prior_status(&uid, si.status.as_ref());
    let new = status::rejected(
        &prior,
        reason,
        message,
        si.metadata.generation,
        ctx.clock.now(),
    );
    if new != prior {
        transition_events(si, ctx, &prior, &new).await;
        apply_status(api, si, &new).await?;
        ctx.wrote_status(&uid, &new);
    }
    Ok(Action::await_change())
}

/// The Events of a status change (see [`status::transitions`]).
async fn transition_events(
    si: &SenderIdentity,
    ctx: &Context,
    prior: &crate::crd::SenderIdentityStatus,
    new: &crate::crd::SenderIdentityStatus,
) {
    for t in status::transitions(prior, new) {
        ctx.event(si, t.warning, &t.reason, t.note).await;
    }
}

#[cfg(test)]
mod tests;
