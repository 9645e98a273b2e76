//! The SES lifecycle, driven by DNS and the stand-in clock.
//!
//! A background task re-checks identities on a short real-time tick, like SES polling DNS:
//! * Domain (Easy DKIM): `PENDING` until all three `<token>._domainkey.<domain>` CNAMEs resolve
//!   to `<token>.<SigningHostedZone>`, then `SUCCESS`; still unresolved 72 h (stand-in clock)
//!   after creation → `FAILED`. Records gone after success → `TEMPORARY_FAILURE`, back to
//!   `SUCCESS` when restored, `FAILED` if not restored within 72 h.
//! * Custom MAIL FROM, on the `MX <domain> → feedback-smtp.<region>…` record: `PENDING` until
//!   found, then `SUCCESS`; a record removed after success (or never found in 72 h) →
//!   `FAILED`, final until the MAIL FROM domain is put again; DNS not answering →
//!   `TEMPORARY_FAILURE`.
//! * Email address: `PENDING` until the verification link is confirmed (control API);
//!   unconfirmed 24 h after creation → `FAILED`.
//!
//! DNS answers that could not be obtained (timeouts) change nothing: SES does not fail an
//! identity because its own resolver hiccuped. Identities that stay unchanged are re-checked
//! with a backoff (up to [`MAX_BACKOFF`]); clock advances and zone edits reset it.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use hickory_proto::rr::RecordType;
use hickory_resolver::TokioResolver;
use tokio::sync::oneshot;

use super::SesState;
use super::faults::lock;
use super::model::{Identity, IdentityType, MailFrom, Status};
use super::regions::mail_from_mx;
use crate::dns::resolve::{Lookup, lookup};

/// How long SES keeps looking for DKIM / MAIL FROM records before giving up.
pub fn dns_window() -> TimeDelta {
    TimeDelta::hours(72)
}

/// How long an email verification link stays valid.
pub fn email_link_window() -> TimeDelta {
    TimeDelta::hours(24)
}

/// Longest real-time wait between DNS checks of an identity whose state does not change.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// DNS lookups in flight at once.
const CONCURRENT_LOOKUPS: usize = 16;

/// Result of checking one identity's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Every record is published with the expected value.
    Verified,
    /// A record is missing or wrong; the SES `ErrorType` that describes it.
    NotVerified(&'static str),
    /// DNS could not be asked; nothing can be concluded.
    Unavailable,
}

/// Applies a DKIM check to a domain identity. Returns whether its status changed.
pub fn apply_dkim(identity: &mut Identity, check: &Check, now: DateTime<Utc>) -> bool {
    let before = identity.status;
    identity.last_checked = Some(now);
    match check {
        Check::Unavailable => {
            identity.error_type = Some("DNS_SERVER_ERROR".into());
            return false;
        }
        Check::Verified => {
            identity.error_type = None;
            identity.last_success = Some(now);
            if let Some(dkim) = identity.dkim.as_mut()
                && dkim.current_key_length != dkim.next_key_length
            {
                // A requested key length takes effect with the next successful check.
                dkim.current_key_length = dkim.next_key_length.clone();
                dkim.last_key_generation = now;
            }
        }
        Check::NotVerified(error_type) => identity.error_type = Some((*error_type).into()),
    }
    let created = identity.created;
    advance(
        &mut identity.status,
        &mut identity.status_since,
        *check == Check::Verified,
        created,
        now,
    );
    identity.status != before
}

/// Applies a MAIL FROM check. Returns whether its status changed.
///
/// `MailFromDomainStatus` (SES v2 API Reference): SUCCESS once the MX record is found; FAILED
/// when SES "can't find the required MX record, or the record no longer exists" — so a removed
/// record fails at once, unlike DKIM's TEMPORARY_FAILURE — and a record never found within the
/// 72 h SES keeps looking; TEMPORARY_FAILURE when "a temporary issue occurred, which prevented
/// Amazon SES from determining the status" (here: DNS did not answer). FAILED is final until
/// the MAIL FROM domain is put again.
pub fn apply_mail_from(mail_from: &mut MailFrom, check: &Check, now: DateTime<Utc>) -> bool {
    let next = match (mail_from.status, check) {
        (Status::Failed, _) => Status::Failed,
        (_, Check::Verified) => Status::Success,
        (Status::Pending, Check::Unavailable) | (Status::Success, Check::Unavailable) => {
            Status::TemporaryFailure
        }
        (status, Check::Unavailable) => status,
        (Status::Pending, Check::NotVerified(_)) if now - mail_from.status_since < dns_window() => {
            Status::Pending
        }
        (_, Check::NotVerified(_)) => Status::Failed,
    };
    let changed = next != mail_from.status;
    if changed {
        mail_from.status = next;
        mail_from.status_since = now;
    }
    changed
}

/// Fails an email identity whose verification link expired. Returns whether it changed.
pub fn expire_email(identity: &mut Identity, now: DateTime<Utc>) -> bool {
    if identity.identity_type == IdentityType::EmailAddress
        && identity.status == Status::Pending
        && now - identity.created >= email_link_window()
    {
        identity.status = Status::Failed;
        identity.status_since = now;
        identity.error_type = Some("HOST_NOT_FOUND".into());
        return true;
    }
    false
}

/// Moves `status` one step of the DNS-driven state machine shared by DKIM and MAIL FROM, and
/// `status_since` with it when it changes. Returns whether it changed.
fn advance(
    status: &mut Status,
    status_since: &mut DateTime<Utc>,
    verified: bool,
    pending_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let next = next_status(*status, verified, pending_since, *status_since, now);
    let changed = next != *status;
    if changed {
        *status = next;
        *status_since = now;
    }
    changed
}

/// The DNS-driven state machine shared by DKIM and MAIL FROM.
fn next_status(
    status: Status,
    verified: bool,
    pending_since: DateTime<Utc>,
    status_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Status {
    match (status, verified) {
        (Status::Pending | Status::TemporaryFailure, true) => Status::Success,
        (Status::Pending, false) if now - pending_since >= dns_window() => Status::Failed,
        (Status::Success, false) => Status::TemporaryFailure,
        (Status::TemporaryFailure, false) if now - status_since >= dns_window() => Status::Failed,
        (status, _) => status,
    }
}

/// What to look up for one identity.
#[derive(Clone, Debug)]
enum Job {
    /// `(name, expected CNAME target)` for each DKIM token.
    Dkim(Vec<(String, String)>),
    /// The MAIL FROM domain and the MX host it must point at.
    MailFrom { domain: String, mx: String },
}

#[derive(Clone, Debug)]
struct Target {
    region: String,
    name: String,
    id: u64,
    job: Job,
}

/// Runs the lifecycle until `stop` fires (or its sender is dropped).
pub async fn run(
    state: std::sync::Arc<SesState>,
    resolver: TokioResolver,
    tick: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        check_once(&state, &resolver).await;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(tick) => {}
            _ = state.clock.advanced() => lock(&state.store).reset_backoff(),
            // Woken by a create or a control-API edit; `SesState::recheck_now` resets the
            // backoff itself when everything must be looked at again.
            _ = state.recheck.notified() => {}
        }
    }
}

/// One pass: expire email identities, look up due DNS records, apply the results.
pub async fn check_once(state: &SesState, resolver: &TokioResolver) {
    let targets = {
        let mut store = lock(&state.store);
        let now = state.clock.now();
        let real_now = Instant::now();
        let mut targets = Vec::new();
        for identity in store.all_mut() {
            expire_email(identity, now);
            if identity.next_check.is_some_and(|at| at > real_now) {
                continue;
            }
            targets.extend(targets_of(identity));
        }
        targets
    };
    if targets.is_empty() {
        return;
    }
    let results: Vec<(Target, Check)> = futures::stream::iter(targets)
        .map(|target| async move {
            let check = run_job(resolver, &target.job).await;
            (target, check)
        })
        .buffer_unordered(CONCURRENT_LOOKUPS)
        .collect()
        .await;

    let mut store = lock(&state.store);
    let now = state.clock.now();
    let real_now = Instant::now();
    for (target, check) in results {
        let Ok(identity) = store.get_mut(&target.region, &target.name) else {
            continue; // deleted meanwhile
        };
        if identity.id != target.id {
            continue; // deleted and re-created meanwhile: fresh tokens, fresh checks
        }
        let changed = match &target.job {
            Job::Dkim(_) => apply_dkim(identity, &check, now),
            Job::MailFrom { .. } => identity
                .mail_from
                .as_mut()
                .is_some_and(|mail_from| apply_mail_from(mail_from, &check, now)),
        };
        if changed {
            identity.idle_checks = 0;
            identity.next_check = None;
        } else {
            identity.idle_checks = identity.idle_checks.saturating_add(1);
            let backoff = Duration::from_millis(100)
                .saturating_mul(2u32.saturating_pow(identity.idle_checks.min(8)))
                .min(MAX_BACKOFF);
            identity.next_check = Some(real_now + backoff);
        }
    }
}

fn checking(status: Status) -> bool {
    matches!(
        status,
        Status::Pending | Status::Success | Status::TemporaryFailure
    )
}

fn targets_of(identity: &Identity) -> Vec<Target> {
    let mut targets = Vec::new();
    let target = |job| Target {
        region: identity.region.clone(),
        name: identity.name.clone(),
        id: identity.id,
        job,
    };
    if let Some(dkim) = &identity.dkim
        && checking(identity.status)
    {
        let records = dkim
            .tokens
            .iter()
            .map(|token| {
                (
                    format!("{token}._domainkey.{}", identity.name.to_ascii_lowercase()),
                    format!("{token}.{}", dkim.signing_hosted_zone),
                )
            })
            .collect();
        targets.push(target(Job::Dkim(records)));
    }
    if let Some(mail_from) = &identity.mail_from
        && checking(mail_from.status)
    {
        targets.push(target(Job::MailFrom {
            domain: mail_from.domain.clone(),
            mx: mail_from_mx(&identity.region),
        }));
    }
    targets
}

async fn run_job(resolver: &TokioResolver, job: &Job) -> Check {
    match job {
        Job::Dkim(records) => {
            for (name, expected) in records {
                match lookup(resolver, name, RecordType::CNAME).await {
                    Lookup::Found(values) if values.iter().any(|v| v == expected) => {}
                    Lookup::Found(_) => return Check::NotVerified("INVALID_VALUE"),
                    Lookup::Missing => return Check::NotVerified("HOST_NOT_FOUND"),
                    Lookup::Unavailable(_) => return Check::Unavailable,
                }
            }
            Check::Verified
        }
        Job::MailFrom { domain, mx } => match lookup(resolver, domain, RecordType::MX).await {
            Lookup::Found(values) => {
                let points_at_ses = values
                    .iter()
                    .any(|v| v.split_whitespace().nth(1) == Some(mx.as_str()));
                if points_at_ses {
                    Check::Verified
                } else {
                    Check::NotVerified("INVALID_VALUE")
                }
            }
            Lookup::Missing => Check::NotVerified("HOST_NOT_FOUND"),
            Lookup::Unavailable(_) => Check::Unavailable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ses::model::{CreateRequest, Store};

    fn domain(store: &mut Store, now: DateTime<Utc>) -> Identity {
        let request = CreateRequest {
            name: "example.com".into(),
            ..CreateRequest::default()
        };
        store
            .create(
                "us-east-1",
                request,
                "dkim.amazonses.com".into(),
                now,
                10_000,
            )
            .cloned()
            .expect("create")
    }

    #[test]
    fn pending_fails_after_72_hours_without_records() {
        let t0 = Utc::now();
        let mut identity = domain(&mut Store::default(), t0);
        let missing = Check::NotVerified("HOST_NOT_FOUND");
        assert!(!apply_dkim(
            &mut identity,
            &missing,
            t0 + TimeDelta::hours(71)
        ));
        assert_eq!(identity.status, Status::Pending);
        assert!(apply_dkim(
            &mut identity,
            &missing,
            t0 + TimeDelta::hours(72)
        ));
        assert_eq!(identity.status, Status::Failed);
        // Failed is final: publishing records later does not revive it.
        assert!(!apply_dkim(
            &mut identity,
            &Check::Verified,
            t0 + TimeDelta::hours(73)
        ));
        assert_eq!(identity.status, Status::Failed);
    }

    #[test]
    fn success_degrades_to_temporary_failure_then_fails_or_recovers() {
        let t0 = Utc::now();
        let mut identity = domain(&mut Store::default(), t0);
        let missing = Check::NotVerified("HOST_NOT_FOUND");
        assert!(apply_dkim(&mut identity, &Check::Verified, t0));
        assert_eq!(identity.status, Status::Success);
        // A DNS outage on our side changes nothing.
        assert!(!apply_dkim(&mut identity, &Check::Unavailable, t0));
        assert_eq!(identity.status, Status::Success);
        let t1 = t0 + TimeDelta::hours(100);
        assert!(apply_dkim(&mut identity, &missing, t1));
        assert_eq!(identity.status, Status::TemporaryFailure);
        assert!(apply_dkim(
            &mut identity,
            &Check::Verified,
            t1 + TimeDelta::hours(1)
        ));
        assert_eq!(identity.status, Status::Success);
        let t2 = t1 + TimeDelta::hours(2);
        assert!(apply_dkim(&mut identity, &missing, t2));
        assert!(!apply_dkim(
            &mut identity,
            &missing,
            t2 + TimeDelta::hours(71)
        ));
        assert!(apply_dkim(
            &mut identity,
            &missing,
            t2 + TimeDelta::hours(72)
        ));
        assert_eq!(identity.status, Status::Failed);
    }

    #[test]
    fn a_mail_from_record_removed_after_success_fails_at_once() {
        let t0 = Utc::now();
        let mut mf = MailFrom {
            domain: "bounce.example.com".into(),
            behavior_on_mx_failure: "USE_DEFAULT_VALUE".into(),
            status: Status::Pending,
            status_since: t0,
        };
        let missing = Check::NotVerified("HOST_NOT_FOUND");
        assert!(!apply_mail_from(
            &mut mf,
            &missing,
            t0 + TimeDelta::hours(71)
        ));
        assert!(apply_mail_from(
            &mut mf,
            &Check::Verified,
            t0 + TimeDelta::hours(71)
        ));
        assert_eq!(mf.status, Status::Success);
        assert!(apply_mail_from(
            &mut mf,
            &Check::Unavailable,
            t0 + TimeDelta::hours(72)
        ));
        assert_eq!(mf.status, Status::TemporaryFailure);
        assert!(apply_mail_from(
            &mut mf,
            &Check::Verified,
            t0 + TimeDelta::hours(73)
        ));
        assert!(apply_mail_from(
            &mut mf,
            &missing,
            t0 + TimeDelta::hours(74)
        ));
        assert_eq!(mf.status, Status::Failed);
        // Final: the record coming back does not revive it.
        assert!(!apply_mail_from(
            &mut mf,
            &Check::Verified,
            t0 + TimeDelta::hours(75)
        ));
        // Never found within 72 h: FAILED too.
        let mut late = MailFrom {
            status: Status::Pending,
            status_since: t0,
            ..mf.clone()
        };
        assert!(apply_mail_from(
            &mut late,
            &missing,
            t0 + TimeDelta::hours(72)
        ));
        assert_eq!(late.status, Status::Failed);
    }

    #[test]
    fn email_link_expires_after_24_hours() {
        let t0 = Utc::now();
        let mut store = Store::default();
        let request = CreateRequest {
            name: "a@example.com".into(),
            ..CreateRequest::default()
        };
        let mut identity = store
            .create(
                "us-east-1",
                request,
                "dkim.amazonses.com".into(),
                t0,
                10_000,
            )
            .cloned()
            .expect("create");
        assert!(!expire_email(&mut identity, t0 + TimeDelta::hours(23)));
        assert!(expire_email(&mut identity, t0 + TimeDelta::hours(24)));
        assert_eq!(identity.status, Status::Failed);
    }
}
