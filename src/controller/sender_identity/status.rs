//! Building a SenderIdentity's status (pure) from what SES reported and the records the
//! operator checked: the verification fields, the records to publish, and the four conditions.

use super::step::Windows;
use crate::crd::conditions::{Progress, condition, reasons, set_condition, set_progress, types};
use crate::crd::sender_identity::{DnsRecord, IdentityType, SenderIdentityStatus, SesLocation};
use crate::names::IdentityName;
use crate::ses::{IdentityDetails, VerificationStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Follows its EmailSettings to `location`: where the identity was until now joins the former
/// locations (released once it is verified here, see `formerLocations`), a location moved back
/// to is no longer one, and the verification lifecycle (pending since, attempts) starts afresh.
pub fn track_move(status: &mut SenderIdentityStatus, location: &SesLocation) {
    if let Some(old) = status.ses.clone().filter(|old| old != location) {
        if !status.former_locations.contains(&old) {
            status.former_locations.push(old);
        }
        status.pending_since = None;
        status.verification_attempts = None;
    }
    status.former_locations.retain(|l| l != location);
}

/// What the reconcile learned this time.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub identity: &'a IdentityName,
    pub details: &'a IdentityDetails,
    pub records: Vec<DnsRecord>,
    pub location: SesLocation,
    pub pending_since: Option<Timestamp>,
    pub attempts: i32,
    pub observed_retry: Option<String>,
    pub generation: Option<i64>,
    pub now: Timestamp,
    /// The custom MAIL FROM domain the spec asks for (domain identities).
    pub mail_from: Option<&'a str>,
    /// The DKIM key length the spec asks for (domain identities with `dkim`).
    pub key_length: Option<&'a str>,
    /// When the operator last changed the key length in SES.
    pub key_length_changed: Option<Timestamp>,
    pub windows: &'a Windows,
}

/// The status after a successful look at SES.
pub fn observed(prior: &SenderIdentityStatus, o: Observation) -> SenderIdentityStatus {
    let mut s = prior.clone();
    let now = Time(o.now);
    record_fields(&mut s, &o);
    set_condition(
        &mut s.conditions,
        condition(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            format!("{} may be verified in SES", o.identity),
            o.generation,
            now.clone(),
        ),
    );
    let verified = o.details.verification_status == VerificationStatus::Success;
    set_condition(
        &mut s.conditions,
        condition(
            types::VERIFIED,
            verified,
            o.details.verification_status.shown(),
            verified_message(&o),
            o.generation,
            now.clone(),
        ),
    );
    let dkim_ok = o.details.dkim_status == Some(VerificationStatus::Success);
    set_condition(&mut s.conditions, dkim_condition(&o, dkim_ok, &now));
    mail_from_condition(&mut s, &o, &now);
    key_length_condition(&mut s, &o, &now);
    set_ready(&mut s, &o, verified, dkim_ok, &now);
    s
}

/// The fields that restate what SES reported.
fn record_fields(s: &mut SenderIdentityStatus, o: &Observation) {
    s.observed_generation = o.generation;
    s.identity_type = Some(if o.identity.is_domain() {
        IdentityType::Domain
    } else {
        IdentityType::Email
    });
    s.verification_status = Some(o.details.verification_status.shown().to_string());
    s.dkim_status = o.details.dkim_status.map(|d| d.shown().to_string());
    s.verified_for_sending = Some(o.details.verified_for_sending);
    s.dns_records = o.records.clone();
    s.pending_since = if o.details.verification_status == VerificationStatus::Success {
        None
    } else {
        o.pending_since.map(Time)
    };
    s.last_checked_time = Some(Time(o.now));
    s.mail_from_status = o.details.mail_from_status.map(|m| m.shown().to_string());
    s.dkim_key_length_changed_time = o.key_length_changed.map(Time);
    s.verification_attempts = Some(o.attempts);
    s.observed_retry = o.observed_retry.clone();
    s.ses = Some(o.location.clone());
}

fn verified_message(o: &Observation) -> String {
    use VerificationStatus as V;
    match o.details.verification_status {
        V::Success => "SES verified the identity".to_string(),
        V::Pending | V::NotStarted if o.identity.is_domain() => {
            "waiting for SES to see the DKIM CNAME records listed in status.dnsRecords".to_string()
        }
        V::Pending | V::NotStarted => format!(
            "waiting for the link SES emailed to {} to be clicked (valid 24 h)",
            o.identity
        ),
        V::Failed => "verification failed: publish the records (or click the link) and set a new value on the annotation email.ops.dev/retry".to_string(),
        V::TemporaryFailure => "SES can no longer see the DKIM records: check that they are still published".to_string(),
    }
}

fn dkim_condition(o: &Observation, dkim_ok: bool, now: &Time) -> Condition {
    let (reason, message) = if o.identity.is_domain() {
        let reason = o
            .details
            .dkim_status
            .map_or(reasons::NOT_STARTED, VerificationStatus::shown);
        let message = if dkim_ok {
            "Easy DKIM is verified"
        } else {
            "SES has not verified the DKIM CNAME records yet"
        };
        (reason, message)
    } else {
        (
            if dkim_ok {
                reasons::SUCCESS
            } else {
                reasons::NOT_APPLICABLE
            },
            "an email identity is DKIM-signed with its domain's keys only when that domain is verified too",
        )
    };
    condition(
        types::DKIM_VERIFIED,
        dkim_ok,
        reason,
        message,
        o.generation,
        now.clone(),
    )
}

/// `Ready` (and kstatus' `Reconciling` / `Stalled`): verified, allowed to send, and for a domain
/// DKIM-verified.
fn set_ready(
    s: &mut SenderIdentityStatus,
    o: &Observation,
    verified: bool,
    dkim_ok: bool,
    now: &Time,
) {
    let ready = verified && o.details.verified_for_sending && (dkim_ok || !o.identity.is_domain());
    let (reason, msg) = if ready {
        (
            reasons::READY,
            format!("mail may be sent from {}", o.identity),
        )
    } else if !verified {
        (
            o.details.verification_status.shown(),
            "the identity is not verified yet".to_string(),
        )
    } else if o.identity.is_domain() && !dkim_ok {
        (
            o.details
                .dkim_status
                .map_or(reasons::NOT_STARTED, VerificationStatus::shown),
            "Easy DKIM is not verified yet".to_string(),
        )
    } else {
        (
            reasons::NOT_VERIFIED_FOR_SENDING,
            "SES does not allow sending from this identity".to_string(),
        )
    };
    let ready_condition = condition(types::READY, ready, reason, msg, o.generation, now.clone());
    let progress = if ready {
        Progress::Done
    } else if o.details.verification_status == VerificationStatus::Failed {
        Progress::Stalled
    } else {
        Progress::Reconciling
    };
    set_progress(&mut s.conditions, progress, &ready_condition);
    set_condition(&mut s.conditions, ready_condition);
}

/// `MailFromVerified`, present while the spec asks for a custom MAIL FROM domain. A failed
/// one does not take Ready: mail still leaves, from amazonses.com.
fn mail_from_condition(s: &mut SenderIdentityStatus, o: &Observation, now: &Time) {
    let Some(domain) = o.mail_from else {
        s.conditions
            .retain(|c| c.type_ != types::MAIL_FROM_VERIFIED);
        return;
    };
    let (ok, reason, message) = match o.details.mail_from_status {
        Some(VerificationStatus::Success) => (
            true,
            reasons::SUCCESS,
            format!(
                "SES found the MX record of {domain}: mail leaves with MAIL FROM {domain}, aligned for SPF"
            ),
        ),
        Some(VerificationStatus::Failed) => (
            false,
            reasons::MAIL_FROM_FAILED,
            format!(
                "SES cannot find the MX record of {domain}, or it was removed: mail leaves with amazonses.com as MAIL FROM and SPF no longer aligns with {}. Publish the MX record listed in status.dnsRecords, then set a new value on the annotation email.ops.dev/retry for SES to look again",
                o.identity
            ),
        ),
        Some(VerificationStatus::TemporaryFailure) => (
            false,
            reasons::TEMPORARY_FAILURE,
            format!("SES could not determine the state of {domain} for now and tries again"),
        ),
        _ => (
            false,
            reasons::PENDING,
            format!(
                "waiting for SES to find the MX record of {domain} listed in status.dnsRecords"
            ),
        ),
    };
    set_condition(
        &mut s.conditions,
        condition(
            types::MAIL_FROM_VERIFIED,
            ok,
            reason,
            message,
            o.generation,
            now.clone(),
        ),
    );
}

/// `DkimKeyLengthApplied`, present while the spec asks for a key length: whether SES
/// generates keys of that length, or when it may be changed (once a day).
fn key_length_condition(s: &mut SenderIdentityStatus, o: &Observation, now: &Time) {
    let Some(want) = o.key_length else {
        s.conditions
            .retain(|c| c.type_ != types::DKIM_KEY_LENGTH_APPLIED);
        return;
    };
    let have = o.details.next_key_length.as_deref().unwrap_or("unknown");
    let (ok, reason, message) = if have == want {
        (
            true,
            reasons::APPLIED,
            format!("SES generates {want} keys for this identity"),
        )
    } else if let Some(at) = super::step::key_length_change_allowed_at(s, o.now, o.windows) {
        (
            false,
            reasons::KEY_LENGTH_CHANGE_DEFERRED,
            format!(
                "SES allows the DKIM key length to change once a day: {want} (SES now has {have}) is applied after {at}"
            ),
        )
    } else {
        (
            false,
            reasons::PENDING,
            format!("changing the DKIM key length from {have} to {want}"),
        )
    };
    set_condition(
        &mut s.conditions,
        condition(
            types::DKIM_KEY_LENGTH_APPLIED,
            ok,
            reason,
            message,
            o.generation,
            now.clone(),
        ),
    );
}

/// The status of an identity the policy (or ownership) rejects: Accepted and Ready False;
/// what SES last reported stays as it was.
pub fn rejected(
    prior: &SenderIdentityStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> SenderIdentityStatus {
    let mut s = stalled(prior, reason, message, generation, now);
    set_condition(
        &mut s.conditions,
        condition(
            types::ACCEPTED,
            false,
            reason,
            message,
            generation,
            Time(now),
        ),
    );
    s
}

/// The status of an accepted identity that cannot go further until someone acts (an SES quota
/// reached): Ready False and Stalled; what SES last reported stays as it was.
pub fn stalled(
    prior: &SenderIdentityStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> SenderIdentityStatus {
    let mut s = prior.clone();
    s.observed_generation = generation;
    let ready = condition(types::READY, false, reason, message, generation, Time(now));
    set_progress(&mut s.conditions, Progress::Stalled, &ready);
    set_condition(&mut s.conditions, ready);
    s
}

/// The status written before the identity is created in `location`, so that wherever the
/// reconcile fails next, a deletion knows where to clean up: on its way (`Accepted` follows
/// with what SES answers).
pub fn creating(
    prior: &SenderIdentityStatus,
    identity: &IdentityName,
    location: &SesLocation,
    generation: Option<i64>,
    now: Timestamp,
) -> SenderIdentityStatus {
    let mut s = prior.clone();
    if s.ses.as_ref() != Some(location) {
        // What SES said elsewhere (before a move) says nothing of the identity here.
        s.dns_records.clear();
        s.verification_status = None;
        s.dkim_status = None;
        s.verified_for_sending = None;
        s.mail_from_status = None;
    }
    s.ses = Some(location.clone());
    let now = Time(now);
    let ready = condition(
        types::READY,
        false,
        reasons::CREATING,
        format!("creating {identity} in SES {}", location.region),
        generation,
        now,
    );
    set_progress(&mut s.conditions, Progress::Reconciling, &ready);
    set_condition(&mut s.conditions, ready);
    s
}

/// An Event a status change is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Reasons of conditions that are simply on their way.
const ROUTINE: [&str; 3] = [
    reasons::PENDING,
    reasons::NOT_STARTED,
    reasons::NOT_APPLICABLE,
];

/// The Events for a status change a user acts on or waits for: a condition that now reports a
/// problem, or that became True (or True for another reason). A routine step on the way
/// (creating, pending: its condition False for a [`ROUTINE`] reason) is in the status only;
/// the creation has its own Event, which says what verifies the identity. One Event for
/// `Ready` when it is among them, whose note also names the others; otherwise one per
/// condition. Reconciling and Stalled mirror Ready and are left out. One Event per change
/// keeps `kubectl describe` readable at any number of identities.
pub fn transitions(prior: &SenderIdentityStatus, new: &SenderIdentityStatus) -> Vec<Transition> {
    let problem = |c: &Condition| c.status != "True" && !ROUTINE.contains(&c.reason.as_str());
    let telling = |c: &Condition| c.status == "True" || problem(c);
    let changed: Vec<&Condition> = new
        .conditions
        .iter()
        .filter(|c| {
            [
                types::ACCEPTED,
                types::VERIFIED,
                types::DKIM_VERIFIED,
                types::DNS_ENDPOINT_READY,
                types::MAIL_FROM_VERIFIED,
                types::DKIM_KEY_LENGTH_APPLIED,
                types::READY,
            ]
            .contains(&c.type_.as_str())
        })
        .filter(
            |c| match prior.conditions.iter().find(|p| p.type_ == c.type_) {
                // A condition seen for the first time True is no news (Accepted, say), except
                // Ready: an identity found verified is ready at once.
                None => problem(c) || (c.type_ == types::READY && c.status == "True"),
                Some(p) => (p.status != c.status || p.reason != c.reason) && telling(c),
            },
        )
        .collect();
    let event = |c: &Condition, also: String| Transition {
        warning: problem(c),
        reason: c.reason.clone(),
        note: format!("{} is {}: {}{also}", c.type_, c.status, c.message),
    };
    match changed.iter().find(|c| c.type_ == types::READY) {
        Some(ready) => {
            let also: String = changed
                .iter()
                .filter(|c| c.type_ != types::READY)
                .map(|c| format!("; {} is {} ({})", c.type_, c.status, c.reason))
                .collect();
            vec![event(ready, also)]
        }
        None => changed.iter().map(|c| event(c, String::new())).collect(),
    }
}

/// Records how writing the DNSEndpoint went (`problem`: its reason and message) in the
/// `DnsEndpointReady` condition, present only while ExternalDNS is asked for. While the
/// identity is not verified, a DNSEndpoint that cannot be written is what holds it up, so Ready
/// says so and the object is Stalled until someone acts.
pub fn dns_endpoint(
    s: &mut SenderIdentityStatus,
    wanted: bool,
    problem: Option<&(&'static str, String)>,
    generation: Option<i64>,
    now: Timestamp,
) {
    if !wanted {
        s.conditions
            .retain(|c| c.type_ != types::DNS_ENDPOINT_READY);
        return;
    }
    let now = Time(now);
    let (ok, reason, message) = match problem {
        None => (
            true,
            reasons::APPLIED,
            "the DNSEndpoint holds the records for external-dns to publish".to_string(),
        ),
        Some((reason, message)) => (false, *reason, message.clone()),
    };
    set_condition(
        &mut s.conditions,
        condition(
            types::DNS_ENDPOINT_READY,
            ok,
            reason,
            message.clone(),
            generation,
            now.clone(),
        ),
    );
    let ready = s
        .conditions
        .iter()
        .any(|c| c.type_ == types::READY && c.status == "True");
    if !ok && !ready {
        let ready = condition(types::READY, false, reason, message, generation, now);
        set_progress(&mut s.conditions, Progress::Stalled, &ready);
        set_condition(&mut s.conditions, ready);
    }
}
