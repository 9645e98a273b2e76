//! The SenderIdentity state machine (pure): from what SES reports, what the status remembers
//! and the time, decide the one SES action to take now and when to look again.
//!
//! Safety rules encoded here: an identity not tagged as ours is never touched (unless adoption
//! is asked for); a transient error never reaches this function (the caller retries instead),
//! so only a *reported* state re-creates anything; of several owners of a shared identity only
//! the first (by tag key) re-creates it, so they never race.

use crate::crd::SenderIdentitySpec;
use crate::crd::conditions::reasons;
use crate::crd::sender_identity::SenderIdentityStatus;
use crate::ses::{IdentityDetails, VerificationStatus, is_managed, owner_tags};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

pub use crate::controller::config::Windows;

/// Why an identity is deleted and created again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recreation {
    /// Failed, and the retry annotation (or the spec) changed.
    RetryRequested,
    /// A domain still pending when its 72 h window closed: fresh DKIM tokens.
    VerificationExpired,
    /// An email identity's link expired unconfirmed: a new verification email.
    EmailResent,
}

impl Recreation {
    /// The Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::RetryRequested => reasons::RETRY_REQUESTED,
            Self::VerificationExpired => reasons::VERIFICATION_EXPIRED,
            Self::EmailResent => reasons::VERIFICATION_EMAIL_RESENT,
        }
    }
}

/// The one SES action to take now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No identity in SES: create it, tagged as ours.
    Create,
    /// It exists and is not ours: leave it alone.
    NotOwned,
    /// It exists and we may use it: add our owner tag (and the managed-by tag when adopting).
    Claim { adopt: bool },
    /// Delete and create again.
    Recreate { cause: Recreation, message: String },
    /// Bring MAIL FROM or the DKIM key length in line with the spec.
    Configure {
        mail_from: Option<Option<String>>,
        key_length: Option<String>,
    },
    /// Failed: nothing happens until the retry annotation or the spec changes.
    WaitForRetry,
    /// Nothing to do but report.
    Observe,
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub ses: Option<&'a IdentityDetails>,
    /// Our owner tag key.
    pub owner_key: &'a str,
    /// `email.ops.dev/adopt: "true"`, and a policy lets the namespace adopt the identity.
    pub adopt: bool,
    /// It may reconfigure or re-create the SES identity (see `apply::may_change`): not
    /// adopted, and no other namespace's or cluster's claim on it.
    pub may_change: bool,
    pub is_domain: bool,
    pub spec: &'a SenderIdentitySpec,
    pub prior: &'a SenderIdentityStatus,
    /// The `email.ops.dev/retry` annotation.
    pub retry: Option<&'a str>,
    pub generation: Option<i64>,
    pub now: Timestamp,
}

impl Facts<'_> {
    fn retry_requested(&self) -> bool {
        self.retry.is_some() && self.retry != self.prior.observed_retry.as_deref()
    }

    fn spec_changed(&self) -> bool {
        self.prior.observed_generation.is_some()
            && self.generation != self.prior.observed_generation
    }

    fn pending_for(&self) -> SignedDuration {
        let since = self.prior.pending_since.as_ref().map_or(self.now, |t| t.0);
        self.now.duration_since(since)
    }

    /// First owner by tag key: the one that re-creates a shared identity.
    fn is_first_owner(&self, details: &IdentityDetails) -> bool {
        owner_tags(&details.tags)
            .iter()
            .map(|(k, _)| k.as_str())
            .min()
            .is_none_or(|first| first == self.owner_key)
    }
}

fn exceeds(d: SignedDuration, window: Duration) -> bool {
    d.as_secs() >= 0 && d.unsigned_abs() > window
}

/// Decides the next step.
pub fn next_step(f: &Facts, w: &Windows) -> Step {
    let Some(details) = f.ses else {
        return Step::Create;
    };
    let ours = owner_tags(&details.tags)
        .iter()
        .any(|(k, _)| k == f.owner_key);
    if !is_managed(&details.tags) {
        return if f.adopt {
            Step::Claim { adopt: true }
        } else {
            Step::NotOwned
        };
    }
    if !ours {
        return Step::Claim { adopt: false };
    }
    let first = f.is_first_owner(details) && f.may_change;
    match details.verification_status {
        VerificationStatus::Failed => {
            if f.may_change && (f.retry_requested() || f.spec_changed()) {
                return Step::Recreate {
                    cause: Recreation::RetryRequested,
                    message:
                        "verification failed; retrying as requested: the identity is created again"
                            .into(),
                };
            }
            if !f.is_domain && first && resends_left(f, w) {
                return resend(f);
            }
            return Step::WaitForRetry;
        }
        VerificationStatus::Pending | VerificationStatus::NotStarted => {
            if first && f.is_domain && exceeds(f.pending_for(), w.domain_pending) {
                return Step::Recreate {
                    cause: Recreation::VerificationExpired,
                    message: format!(
                        "still pending after {} h: re-created with fresh DKIM tokens; publish the new records",
                        w.domain_pending.as_secs() / 3600
                    ),
                };
            }
            if first && !f.is_domain && exceeds(f.pending_for(), w.email_link) && resends_left(f, w)
            {
                return resend(f);
            }
        }
        _ => {}
    }
    if !f.may_change {
        return Step::Observe;
    }
    configure(f, details, w)
}

fn resends_left(f: &Facts, w: &Windows) -> bool {
    f.prior.verification_attempts.unwrap_or(1) <= w.max_resends
}

fn resend(f: &Facts) -> Step {
    Step::Recreate {
        cause: Recreation::EmailResent,
        message: format!(
            "the verification link for {} expired unconfirmed: a new verification email was sent (attempt {})",
            f.spec.identity,
            f.prior.verification_attempts.unwrap_or(1) + 1
        ),
    }
}

/// When the DKIM key length may change again (a day after the operator last changed it), if
/// that is still to come.
pub fn key_length_change_allowed_at(
    status: &SenderIdentityStatus,
    now: Timestamp,
    w: &Windows,
) -> Option<Timestamp> {
    let at = status
        .dkim_key_length_changed_time
        .as_ref()?
        .0
        .checked_add(SignedDuration::try_from(w.key_length_change).ok()?)
        .ok()?;
    (at > now).then_some(at)
}

fn configure(f: &Facts, details: &IdentityDetails, w: &Windows) -> Step {
    if !f.is_domain {
        return Step::Observe;
    }
    let want_mail_from = f
        .spec
        .mail_from_domain
        .as_ref()
        .map(|d| d.to_ascii_lowercase());
    let have_mail_from = details
        .mail_from_domain
        .as_ref()
        .map(|d| d.to_ascii_lowercase());
    // A failed MAIL FROM is put again when a retry is asked for: SES then looks for its MX
    // record afresh.
    let mail_from_failed = details.mail_from_status == Some(VerificationStatus::Failed);
    let mail_from = (want_mail_from != have_mail_from
        || (mail_from_failed && want_mail_from.is_some() && f.retry_requested()))
    .then_some(want_mail_from);
    let want_key = f.spec.dkim.as_ref().map(|d| d.key_length.as_str());
    // At most once a day: until then the change waits (and the status says until when).
    let key_length = match (want_key, details.next_key_length.as_deref()) {
        (Some(want), Some(have))
            if want != have && key_length_change_allowed_at(f.prior, f.now, w).is_none() =>
        {
            Some(want.to_string())
        }
        _ => None,
    };
    if mail_from.is_none() && key_length.is_none() {
        Step::Observe
    } else {
        Step::Configure {
            mail_from,
            key_length,
        }
    }
}

/// When to look at the identity again, given its SES status. Verified identities are not
/// polled one by one: the bulk listing ([`crate::controller::recheck`]) wakes the ones whose
/// status changed.
pub fn recheck_after(
    verification_status: VerificationStatus,
    pending_since: Option<Timestamp>,
    now: Timestamp,
    is_domain: bool,
    w: &Windows,
) -> Option<Duration> {
    match verification_status {
        VerificationStatus::Success => None,
        VerificationStatus::TemporaryFailure => Some(w.temporary_failure),
        VerificationStatus::Failed if is_domain => None,
        _ => {
            // Back off with the age of the attempt: a tenth of it, within bounds, and never
            // past the moment the window closes.
            let age = now
                .duration_since(pending_since.unwrap_or(now))
                .unsigned_abs();
            let mut wait = (age / 10).clamp(w.pending_min, w.pending_max);
            let window = if is_domain {
                w.domain_pending
            } else {
                w.email_link
            };
            if let Some(left) = window.checked_sub(age)
                && !left.is_zero()
            {
                wait = wait.min(left + Duration::from_secs(1));
            }
            Some(wait)
        }
    }
}
