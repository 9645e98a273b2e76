//! Step 2 of a SenderIdentity's reconcile (pure): from what was read, the status and the time,
//! what to do now — and, after acting, when to look again and whether the status must be
//! written. Every timing decision of the controller is here; the SES state machine (which SES
//! action, if any) is in [`super::step`].

use super::dereference::{Admission, Read, Target};
use crate::controller::STATUS_HEARTBEAT;
use crate::controller::config::Windows;
use crate::crd::conditions::{reasons, types};
use crate::crd::sender_identity::SenderIdentityStatus;
use crate::ses::{IdentityDetails, VerificationStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// What to do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The policy rejects it: say so (nothing reaches SES).
    Reject {
        reason: &'static str,
        message: String,
    },
    /// Nothing to do now; come back after this long (`None`: when something changes).
    Wait(Option<Duration>),
    /// Quiet, but its DNSEndpoint could not be written last time: try that alone again.
    RetryDnsEndpoint,
    /// A pending identity between bulk listings: look its records up in DNS, no SES call.
    RefreshDns(Target),
    /// Read SES and take the next step ([`super::step`]).
    Converge(Target),
}

/// Decides what to do now. SES is read only when something could have changed — the spec,
/// the retry annotation, the location, the bulk listing (`dirty`), a window or a timer —
/// which keeps steady state frugal.
pub fn plan(read: &Read, now: Timestamp, w: &Windows) -> Plan {
    let target = match &read.admission {
        Admission::Rejected { reason, message } => {
            return Plan::Reject {
                reason,
                message: message.clone(),
            };
        }
        Admission::Undecided => return Plan::Wait(None),
        Admission::Admitted(t) => t,
    };
    let prior = &read.prior;
    if stalled_on_quota(read, target) {
        return Plan::Wait(None);
    }
    let quiet = quiet(read, target);
    if quiet && dns_endpoint_failing(prior) {
        return Plan::RetryDnsEndpoint;
    }
    let last_status = prior
        .verification_status
        .as_deref()
        .and_then(VerificationStatus::from_shown);
    let is_domain = target.id.is_domain();
    // What is due in how long: a look at SES (or at DNS for a pending identity, below), and a
    // look at DNS alone for a verified identity's unpublished records.
    let (ses_due, dns_due) = match (read.checked_at, last_status) {
        (Some(checked), Some(st)) if quiet => {
            let since = now.duration_since(checked).unsigned_abs();
            let left = |d: Option<Duration>| d.map(|n| n.saturating_sub(since));
            let reads = left(next_read(st, prior, now, is_domain, w));
            let ses = [reads, key_length_due(prior, now, w)]
                .into_iter()
                .flatten()
                .min();
            (ses, left(unpublished_due(prior, now, w)))
        }
        _ => (Some(Duration::ZERO), None),
    };
    match [ses_due, dns_due].into_iter().flatten().min() {
        None => return Plan::Wait(None),
        Some(d) if !d.is_zero() => return Plan::Wait(Some(d)),
        _ => {}
    }
    // A pending identity's SES status comes from the bulk listing (one call per 1,000
    // identities), so its own timer looks only at DNS — unless its window has closed and SES
    // must be asked whether to re-create or re-send. A verified one whose SES timers are not
    // due looks only at its unpublished records.
    let ses_now = ses_due.is_some_and(|d| d.is_zero());
    if quiet
        && last_status.is_some()
        && !prior.dns_records.is_empty()
        && (!ses_now || !window_closed(prior, now, is_domain, w))
    {
        return Plan::RefreshDns(target.clone());
    }
    Plan::Converge(target.clone())
}

/// Refused for the account's quota: nothing is tried again until someone acts (a spec or
/// retry-annotation change), or every such identity would spend SES's 1 call a second.
fn stalled_on_quota(read: &Read, target: &Target) -> bool {
    let prior = &read.prior;
    let on_quota = prior
        .conditions
        .iter()
        .any(|c| c.type_ == types::READY && c.reason == reasons::SES_QUOTA_EXCEEDED);
    on_quota
        && read.generation == prior.observed_generation
        && read.retry == prior.observed_retry
        && prior.ses.as_ref() == Some(&target.location)
}

/// Nothing changed since SES was last read: only time (or the bulk listing, which marks the
/// identity dirty) brings it back. A status that still says "rejected" is not quiet: it must be
/// rewritten now that the policy admits it.
fn quiet(read: &Read, target: &Target) -> bool {
    settled(read, target) && !read.dirty && !release_due(&read.prior, target.settings_published)
}

/// The status speaks for the object as it is now: accepted, its spec and retry annotation
/// observed, in the place its EmailSettings says.
fn settled(read: &Read, target: &Target) -> bool {
    let prior = &read.prior;
    let was_accepted = prior
        .conditions
        .iter()
        .any(|c| c.type_ == types::ACCEPTED && c.status == "True");
    read.generation == prior.observed_generation
        && was_accepted
        && read.retry == prior.observed_retry
        && prior.ses.as_ref() == Some(&target.location)
}

/// Never created by this SenderIdentity, as far as its status knows: it is created without
/// reading SES first (SES's answer carries its tokens; an identity already there is refused
/// with AlreadyExists, and only then read, so ownership is decided as before).
pub fn never_created(read: &Read) -> bool {
    read.prior.ses.is_none() && read.prior.verification_status.is_none() && !read.dirty
}

/// What SES would answer when the bulk listing says an identity is verified and that is all
/// its status needs: its spec observed, in the same place, accepted, no custom MAIL FROM (its
/// status is not listed), no key length change awaited, and — for a domain — the DKIM tokens
/// and signing zone known from the records already shown. A domain verified by Easy DKIM is
/// verified because its DKIM is. `None`: read it.
pub fn listed_details(
    read: &Read,
    target: &Target,
    mail_from: bool,
    key_length: Option<&str>,
) -> Option<IdentityDetails> {
    let (status, sending) = read.listed?;
    let prior = &read.prior;
    if status != VerificationStatus::Success || mail_from || !settled(read, target) {
        return None;
    }
    let next_key_length = match key_length {
        None => None,
        Some(want) => {
            let applied = prior
                .conditions
                .iter()
                .any(|c| c.type_ == types::DKIM_KEY_LENGTH_APPLIED && c.status == "True");
            if !applied {
                return None;
            }
            Some(want.to_string())
        }
    };
    let (dkim_tokens, signing_hosted_zone, dkim_status) = if target.id.is_domain() {
        let (tokens, zone) = dkim_from_records(prior)?;
        (tokens, Some(zone), Some(VerificationStatus::Success))
    } else {
        let dkim = prior
            .dkim_status
            .as_deref()
            .and_then(VerificationStatus::from_shown);
        (vec![], None, dkim)
    };
    Some(IdentityDetails {
        verification_status: status,
        dkim_status,
        dkim_tokens,
        signing_hosted_zone,
        verified_for_sending: sending,
        next_key_length,
        ..IdentityDetails::default()
    })
}

/// The DKIM tokens and signing zone behind the CNAMEs a status shows
/// (`<token>._domainkey.<domain>` → `<token>.<zone>`); `None` unless there are three.
fn dkim_from_records(prior: &SenderIdentityStatus) -> Option<(Vec<String>, String)> {
    let mut tokens = vec![];
    let mut zone = None;
    for r in prior
        .dns_records
        .iter()
        .filter(|r| r.purpose == crate::dns::purpose::DKIM)
    {
        let (token, _) = r.name.split_once("._domainkey.")?;
        let z = r.value.strip_prefix(token)?.strip_prefix('.')?;
        if zone.get_or_insert(z) != &z {
            return None;
        }
        tokens.push(token.to_string());
    }
    let zone = zone?.to_string();
    (tokens.len() == 3).then_some((tokens, zone))
}

/// Whether the last attempt to write the DNSEndpoint failed (it is tried again).
pub fn dns_endpoint_failing(s: &SenderIdentityStatus) -> bool {
    s.conditions
        .iter()
        .any(|c| c.type_ == types::DNS_ENDPOINT_READY && c.status != "True")
}

/// Whether identities held before a move are to be released now: the one where the
/// EmailSettings points is verified for sending, and the EmailSettings has published the
/// configuration of its current spec (until then applications still send from the old one).
pub fn release_due(status: &SenderIdentityStatus, settings_published: bool) -> bool {
    !status.former_locations.is_empty()
        && status.verified_for_sending == Some(true)
        && settings_published
}

/// Whether the pending identity's window (72 h for a domain's DKIM, 24 h for an email's link)
/// has closed, so that SES must be read to decide on re-creating or re-sending.
fn window_closed(
    prior: &SenderIdentityStatus,
    now: Timestamp,
    is_domain: bool,
    w: &Windows,
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

/// When the identity is next looked at by itself: a pending one has its records re-checked in
/// DNS (its SES status comes from the bulk listing), a verified one never (only through the
/// bulk listing). An identity with a custom MAIL FROM domain is also read by itself (the
/// listing does not carry its MAIL FROM status): every `mail_from_every` once that is
/// verified, every `pending_max` while it is on its way, not at all once it failed (that waits
/// for a retry).
pub fn next_read(
    verification: VerificationStatus,
    status: &SenderIdentityStatus,
    now: Timestamp,
    is_domain: bool,
    w: &Windows,
) -> Option<Duration> {
    let pending_since = status.pending_since.as_ref().map(|t| t.0);
    let own = super::step::recheck_after(verification, pending_since, now, is_domain, w);
    let mail_from = match status
        .mail_from_status
        .as_deref()
        .and_then(VerificationStatus::from_shown)
    {
        Some(VerificationStatus::Success) => Some(w.mail_from_every),
        Some(VerificationStatus::Pending | VerificationStatus::TemporaryFailure) => {
            Some(w.pending_max)
        }
        _ => None,
    };
    [own, mail_from].into_iter().flatten().min()
}

/// How long until a DKIM key length change that waits for SES's once-a-day allowance may be
/// made, when one waits.
pub fn key_length_due(
    status: &SenderIdentityStatus,
    now: Timestamp,
    w: &Windows,
) -> Option<Duration> {
    let deferred = status.conditions.iter().any(|c| {
        c.type_ == types::DKIM_KEY_LENGTH_APPLIED && c.reason == reasons::KEY_LENGTH_CHANGE_DEFERRED
    });
    let at = super::step::key_length_change_allowed_at(status, now, w).filter(|_| deferred)?;
    Some(at.duration_since(now).unsigned_abs() + Duration::from_secs(1))
}

/// How long until a verified identity's records that DNS did not show when last looked up
/// are looked up again (DNS only, no SES call): a tenth of the time since it became Ready,
/// from `pending_max` up to [`UNPUBLISHED_MAX`] — gentler than a pending identity's timer, as
/// the identity sends already and thousands may turn Ready together. An address of a verified
/// domain is verified the moment it is created, before anyone could publish its records;
/// without this, `published: false` would stand until SES is next read. Pending identities
/// look at DNS on their own timer.
pub fn unpublished_due(
    status: &SenderIdentityStatus,
    now: Timestamp,
    w: &Windows,
) -> Option<Duration> {
    let verified =
        status.verification_status.as_deref() == Some(VerificationStatus::Success.shown());
    if !verified
        || !status
            .dns_records
            .iter()
            .any(|r| r.published == Some(false))
    {
        return None;
    }
    let ready_since = status
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY && c.status == "True")
        .map_or(now, |c| c.last_transition_time.0);
    let age = now.duration_since(ready_since).unsigned_abs();
    Some((age / 10).clamp(w.pending_max, UNPUBLISHED_MAX.max(w.pending_max)))
}

/// The longest a verified identity's unpublished records go without a look in DNS: a record
/// some teams never publish (the apex SPF advice, with a custom MAIL FROM domain) costs one
/// lookup every 3 h per identity, and a record published late shows within a tenth of the
/// identity's age.
pub const UNPUBLISHED_MAX: Duration = Duration::from_secs(3 * 3600);

/// How soon a DNSEndpoint that could not be written (CRD missing, not permitted) is tried again.
pub const DNS_ENDPOINT_RETRY: Duration = Duration::from_secs(300);

/// Again at once: what changed is read in the next reconcile.
pub const AT_ONCE: Duration = Duration::ZERO;

/// How soon an identity that could not claim an SES identity for its 50 tags looks again: a
/// sharer elsewhere may let go of it, and nothing here would say so.
pub const TAG_LIMIT_RECHECK: Duration = Duration::from_secs(600);

/// How soon an identity gone between our write and our read is read again (rather than acting
/// on a guess).
pub const VANISHED_RECHECK: Duration = Duration::from_secs(5);

/// How soon a failed reconcile is tried again: SES refusing for good (a bad request, denied
/// access) waits longer than a failure that passes by itself.
pub fn backoff(transient: bool) -> Duration {
    if transient {
        Duration::from_secs(15)
    } else {
        Duration::from_secs(300)
    }
}

/// When to look again after a read of SES: the identity's own timers, a deferred key length
/// change, unpublished records of a verified identity, a DNSEndpoint to try again.
pub fn after(
    verification: VerificationStatus,
    status: &SenderIdentityStatus,
    now: Timestamp,
    is_domain: bool,
    endpoint_failing: bool,
    w: &Windows,
) -> Option<Duration> {
    [
        next_read(verification, status, now, is_domain, w),
        key_length_due(status, now, w),
        unpublished_due(status, now, w),
        endpoint_failing.then_some(DNS_ENDPOINT_RETRY),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Whether the new status says more than a fresher `lastCheckedTime` that is not due yet: a
/// poll that changes nothing else costs no status write (and no watch event for every
/// watcher), except once every [`STATUS_HEARTBEAT`].
pub fn needs_write(
    prior: &SenderIdentityStatus,
    new: &SenderIdentityStatus,
    now: Timestamp,
) -> bool {
    let mut same = new.clone();
    same.last_checked_time = prior.last_checked_time.clone();
    let heartbeat_due = prior
        .last_checked_time
        .as_ref()
        .is_none_or(|t| now.duration_since(t.0).unsigned_abs() >= STATUS_HEARTBEAT);
    same != *prior || heartbeat_due
}

/// `now` plus `d`, saturating.
pub fn plus(now: Timestamp, d: Duration) -> Timestamp {
    now.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::backends::SesKey;
    use crate::crd::conditions::{condition, set_condition};
    use crate::crd::sender_identity::{DnsRecord, SesLocation};
    use crate::names::IdentityName;
    use crate::ses::Owner;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t0() -> Timestamp {
        Timestamp::new(1_700_000_000, 0).expect("time")
    }

    fn minutes(m: i64) -> Timestamp {
        t0() + SignedDuration::from_mins(m)
    }

    fn location() -> SesLocation {
        SesLocation {
            region: "eu-west-1".into(),
            role_arn: None,
        }
    }

    fn spf(published: bool) -> DnsRecord {
        DnsRecord {
            name: "yourcompany.com".into(),
            type_: "TXT".into(),
            value: "\"v=spf1 include:amazonses.com ~all\"".into(),
            purpose: crate::dns::purpose::SPF.into(),
            published: Some(published),
        }
    }

    /// An address verified (through its verified domain) at `t0`, its SPF record shown as
    /// `published`, last read at `t0`.
    fn verified_address(published: bool) -> Read {
        let id = IdentityName::parse("noreply@yourcompany.com").expect("address");
        let mut status = SenderIdentityStatus {
            observed_generation: Some(1),
            verification_status: Some("Success".into()),
            verified_for_sending: Some(true),
            dns_records: vec![spf(published)],
            last_checked_time: Some(Time(t0())),
            ses: Some(location()),
            ..Default::default()
        };
        for t in [types::ACCEPTED, types::READY] {
            let c = condition(t, true, reasons::READY, "m", Some(1), Time(t0()));
            set_condition(&mut status.conditions, c);
        }
        Read {
            uid: "u".into(),
            generation: Some(1),
            admission: Admission::Admitted(Target {
                name: id.to_string(),
                id,
                location: location(),
                key: SesKey::of(&location(), "billing"),
                settings_published: true,
                rights: Default::default(),
            }),
            prior: status,
            retry: None,
            adopt: false,
            dirty: false,
            listed: None,
            checked_at: Some(t0()),
            owner: Owner {
                cluster: "c".into(),
                namespace: "billing".into(),
                name: "noreply".into(),
                deletion_policy: Default::default(),
            },
        }
    }

    #[test]
    fn a_verified_identity_with_every_record_published_waits_for_a_change() {
        let w = Windows::default();
        let read = verified_address(true);
        assert_eq!(plan(&read, minutes(60 * 24), &w), Plan::Wait(None));
        assert_eq!(unpublished_due(&read.prior, minutes(1), &w), None);
    }

    #[test]
    fn a_verified_identity_looks_its_unpublished_records_up_in_dns_backing_off() {
        // Verified before its records could be published (an address of a verified domain):
        // without a look at DNS, `published: false` would stand until the next SES read.
        let w = Windows::default();
        let read = verified_address(false);
        assert_eq!(
            plan(&read, minutes(0), &w),
            Plan::Wait(Some(w.pending_max)),
            "not at once: it was just looked up"
        );
        assert_eq!(
            plan(&read, minutes(5), &w),
            Plan::Wait(Some(w.pending_max - Duration::from_secs(300)))
        );
        let Plan::RefreshDns(_) = plan(&read, minutes(15), &w) else {
            panic!("DNS only, no SES read: {:?}", plan(&read, minutes(15), &w));
        };
        // A tenth of the time since it became Ready, from pending_max to UNPUBLISHED_MAX.
        assert_eq!(
            unpublished_due(&read.prior, minutes(1), &w),
            Some(w.pending_max)
        );
        assert_eq!(
            unpublished_due(&read.prior, minutes(200), &w),
            Some(Duration::from_secs(1200))
        );
        assert_eq!(
            unpublished_due(&read.prior, minutes(60 * 24), &w),
            Some(Duration::from_secs(144 * 60))
        );
        assert_eq!(
            unpublished_due(&read.prior, minutes(60 * 72), &w),
            Some(UNPUBLISHED_MAX)
        );
        assert_eq!(
            after(
                VerificationStatus::Success,
                &read.prior,
                minutes(1),
                false,
                false,
                &w
            ),
            Some(w.pending_max),
            "after a read too"
        );
    }

    #[test]
    fn a_pending_identity_keeps_its_own_timer() {
        let w = Windows::default();
        let mut read = verified_address(false);
        read.prior.verification_status = Some("Pending".into());
        read.prior.pending_since = Some(Time(t0()));
        assert_eq!(unpublished_due(&read.prior, minutes(1), &w), None);
        let Plan::RefreshDns(_) = plan(&read, minutes(1), &w) else {
            panic!("its pending timer looks at DNS");
        };
    }
}
