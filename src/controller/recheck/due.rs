//! The bulk re-check's decisions (pure): which locations are due for a listing, and which
//! identities a listing says to read again.

use crate::controller::backends::SesKey;
use crate::controller::context::Stale;
use crate::crd::SenderIdentity;
use crate::ses::VerificationStatus;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often each location is listed.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub verified_every: Duration,
    pub pending_every: Duration,
}

/// What a SenderIdentity's status says about its place in SES: all the bulk re-check reads of
/// it, kept beside it in the cache ([`crate::controller::packed::Packable::Summary`]) so that a
/// round does not unpack ten thousand identities.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `spec.identity`.
    pub identity: Box<str>,
    key: Arc<SesKey>,
    status: VerificationStatus,
    /// Whether SES let it send, when last read.
    sending: Option<bool>,
    last_checked: Option<k8s_openapi::jiff::Timestamp>,
}

/// One shared copy of each location: thousands of identities share a handful. Locations are
/// few (regions, and a namespace's role), so the set is never pruned.
fn interned(key: SesKey) -> Arc<SesKey> {
    static KEYS: LazyLock<Mutex<HashSet<Arc<SesKey>>>> = LazyLock::new(Mutex::default);
    let mut keys = KEYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(k) = keys.get(&key) {
        return k.clone();
    }
    let k = Arc::new(key);
    keys.insert(k.clone());
    k
}

/// What the listing says of one identity: its verification status and whether it may send
/// (`SendingEnabled`, which turns false for an identity SES stops, whatever its status).
pub type Listed = HashMap<String, (VerificationStatus, bool)>;

pub fn recorded(si: &SenderIdentity) -> Option<Recorded> {
    let status = si.status.as_ref()?;
    let location = status.ses.as_ref()?;
    Some(Recorded {
        identity: si.spec.identity.as_str().into(),
        key: interned(SesKey::of(
            location,
            si.metadata.namespace.as_deref().unwrap_or_default(),
        )),
        status: VerificationStatus::from_shown(status.verification_status.as_deref()?)?,
        sending: status.verified_for_sending,
        last_checked: status.last_checked_time.as_ref().map(|t| t.0),
    })
}

/// Still on its way: SES may change its status without anything else happening.
fn in_flight(status: VerificationStatus) -> bool {
    !matches!(
        status,
        VerificationStatus::Success | VerificationStatus::Failed
    )
}

/// How often a location is listed now, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub every: Duration,
    /// An identity of it is in flight (`every` is the pending cadence).
    pub in_flight: bool,
}

/// How often each location in use is listed now: every `pending_every` while an identity of it
/// is in flight, every `verified_every` otherwise.
pub fn periods<'a>(
    identities: impl IntoIterator<Item = &'a Recorded>,
    cadence: Cadence,
) -> BTreeMap<SesKey, Period> {
    let mut in_flight_by_key: BTreeMap<&SesKey, bool> = BTreeMap::new();
    for r in identities {
        *in_flight_by_key.entry(&r.key).or_default() |= in_flight(r.status);
    }
    in_flight_by_key
        .into_iter()
        .map(|(key, in_flight)| {
            let every = if in_flight {
                cadence.pending_every
            } else {
                cadence.verified_every
            };
            (key.clone(), Period { every, in_flight })
        })
        .collect()
}

/// While other calls wait for a location's budget (a burst of creations at SES's 1 call a
/// second), a listing for identities in flight waits for them, up to this long since it was
/// last listed: at 1/s a listing page every 30 s would take a creation's place 40 times in the
/// 20 minutes a thousand creations take, and the records of new identities come before news of
/// pending ones (which SES cannot verify before their records are published anyway).
pub const BUSY_DEFERRAL: Duration = Duration::from_secs(600);

/// When each location was last listed, and so when it falls due again.
pub struct Schedule {
    started: Instant,
    /// The shortest period: the longest the loop sleeps, so a location whose period shortens
    /// (a new identity in flight) is listed at most this late.
    tick: Duration,
    listed_at: HashMap<SesKey, Instant>,
}

impl Schedule {
    pub fn new(started: Instant, cadence: Cadence) -> Self {
        Self {
            started,
            tick: cadence.pending_every.min(cadence.verified_every),
            listed_at: HashMap::new(),
        }
    }

    /// When the loop first looks.
    pub fn first_wake(&self) -> Instant {
        self.started + self.tick
    }

    /// When a location listed every `every` falls due: its last listing (or the start) plus
    /// `every`.
    fn due_at(&self, key: &SesKey, every: Duration) -> Instant {
        self.last(key) + every
    }

    /// When `key` was last listed (or the start).
    fn last(&self, key: &SesKey) -> Instant {
        self.listed_at.get(key).copied().unwrap_or(self.started)
    }

    /// The locations to list now.
    pub fn due(&self, periods: &BTreeMap<SesKey, Period>, now: Instant) -> Vec<(SesKey, Period)> {
        periods
            .iter()
            .filter(|&(key, p)| self.due_at(key, p.every) <= now)
            .map(|(key, &p)| (key.clone(), p))
            .collect()
    }

    /// Whether a due listing of `key` waits because other calls are waiting for its budget
    /// (`busy`): only one for identities in flight (the listing of a location whose identities
    /// are all settled comes twice a day and never waits), and for at most [`BUSY_DEFERRAL`]
    /// since it was last listed. A deferred location stays due: the next round looks again.
    pub fn deferred(&self, key: &SesKey, period: Period, busy: bool, now: Instant) -> bool {
        period.in_flight && busy && now.saturating_duration_since(self.last(key)) < BUSY_DEFERRAL
    }

    /// A listing of `key` began at `at`.
    pub fn listed(&mut self, key: &SesKey, at: Instant) {
        self.listed_at.insert(key.clone(), at);
    }

    /// When to look again after a round at `now`: when the next location falls due, so each
    /// is listed on its cadence however long the listings took, but no later than a tick from
    /// `now`, and a tick from `now` when one is overdue (its listing was deferred or failed to
    /// start: a tick, not a busy loop).
    pub fn next_wake(&self, periods: &BTreeMap<SesKey, Period>, now: Instant) -> Instant {
        let tick = now + self.tick;
        match periods
            .iter()
            .map(|(key, p)| self.due_at(key, p.every))
            .min()
        {
            Some(at) if at > now => at.min(tick),
            _ => tick,
        }
    }
}

/// The identities of `key` to look at again, and why: their listed status, or whether they
/// may send, differs from the recorded one, or they are missing from a listing that began
/// after they were last read (deleted behind our back). Each identity comes with `T` (what
/// wakes it), handed back with the verdict.
pub fn changed<'a, T>(
    identities: impl IntoIterator<Item = (T, &'a Recorded)>,
    key: &SesKey,
    listed: &'a Listed,
    listing_began: k8s_openapi::jiff::Timestamp,
) -> impl Iterator<Item = (T, &'a Recorded, Stale)> {
    identities
        .into_iter()
        .filter(move |(_, r)| *r.key == *key)
        .filter_map(move |(t, r)| {
            let stale = match listed.get(&crate::ses::identity_key(&r.identity)) {
                Some(&(status, sending)) => (status != r.status
                    || r.sending.is_some_and(|s| s != sending))
                .then_some(Stale::Listed {
                    began: listing_began,
                    status,
                    sending,
                }),
                None => r
                    .last_checked
                    .is_some_and(|t| t < listing_began)
                    .then_some(Stale::Unread),
            };
            Some((t, r, stale?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::sender_identity::{SenderIdentitySpec, SenderIdentityStatus, SesLocation};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn si(identity: &str, region: &str, status: &str, checked: i64) -> SenderIdentity {
        let spec: SenderIdentitySpec = serde_json::from_value(serde_json::json!({
            "identity": identity,
            "emailSettingsRef": {"name": "notifications"},
        }))
        .expect("spec");
        let mut si = SenderIdentity::new(identity, spec);
        si.status = Some(SenderIdentityStatus {
            verification_status: Some(status.into()),
            verified_for_sending: Some(status == "Success"),
            last_checked_time: Some(Time(Timestamp::from_second(checked).expect("time"))),
            ses: Some(SesLocation {
                region: region.into(),
                role_arn: None,
            }),
            ..Default::default()
        });
        si
    }

    fn key(region: &str) -> SesKey {
        SesKey {
            namespace: None,
            region: region.into(),
            role_arn: None,
        }
    }

    const CADENCE: Cadence = Cadence {
        verified_every: Duration::from_secs(12 * 3600),
        pending_every: Duration::from_secs(30),
    };

    #[test]
    fn locations_with_identities_in_flight_are_listed_often_the_others_rarely() {
        let all = [
            si("a.example.com", "eu-west-1", "Success", 0),
            si("b.example.com", "eu-west-1", "Pending", 0),
            si("c.example.com", "us-east-1", "Success", 0),
            si("d.example.com", "us-east-1", "Failed", 0),
            si("e.example.com", "ap-south-1", "TemporaryFailure", 0),
        ];
        let identities: Vec<_> = all.iter().filter_map(recorded).collect();
        let periods = periods(&identities, CADENCE);
        let started = Instant::now();
        let at = |secs| started + Duration::from_secs(secs);
        let mut schedule = Schedule::new(started, CADENCE);
        let keys = |due: Vec<(SesKey, Period)>| due.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert!(schedule.due(&periods, at(29)).is_empty());
        assert_eq!(
            keys(schedule.due(&periods, at(30))),
            [key("ap-south-1"), key("eu-west-1")]
        );
        schedule.listed(&key("eu-west-1"), at(30));
        schedule.listed(&key("ap-south-1"), at(30));
        assert!(schedule.due(&periods, at(59)).is_empty());
        assert_eq!(
            keys(schedule.due(&periods, at(12 * 3600))),
            [key("ap-south-1"), key("eu-west-1"), key("us-east-1")]
        );
    }

    #[test]
    fn a_busy_budget_defers_a_listing_for_identities_in_flight_at_most_ten_minutes() {
        let all = [
            si("a.example.com", "eu-west-1", "Pending", 0),
            si("b.example.com", "us-east-1", "Success", 0),
        ];
        let identities: Vec<_> = all.iter().filter_map(recorded).collect();
        let periods = periods(&identities, CADENCE);
        let (pending, settled) = (periods[&key("eu-west-1")], periods[&key("us-east-1")]);
        assert!(pending.in_flight && !settled.in_flight);
        let started = Instant::now();
        let at = |secs| started + Duration::from_secs(secs);
        let mut schedule = Schedule::new(started, CADENCE);
        schedule.listed(&key("eu-west-1"), at(0));
        let eu = key("eu-west-1");
        assert!(
            !schedule.deferred(&eu, pending, false, at(30)),
            "an idle budget lists on time"
        );
        assert!(schedule.deferred(&eu, pending, true, at(30)));
        assert!(schedule.deferred(&eu, pending, true, at(599)));
        assert!(
            !schedule.deferred(&eu, pending, true, at(600)),
            "then it takes its turn anyway"
        );
        assert!(
            !schedule.deferred(&key("us-east-1"), settled, true, at(12 * 3600)),
            "the twice-a-day listing of settled identities never waits"
        );
        // A deferred location stays due, and is looked at again a tick later.
        assert_eq!(schedule.due(&periods, at(30)).len(), 1);
        assert_eq!(schedule.next_wake(&periods, at(30)), at(60));
    }

    #[test]
    fn the_next_round_comes_when_a_location_falls_due_however_long_the_last_took() {
        let all = [
            si("a.example.com", "eu-west-1", "Success", 0),
            si("b.example.com", "us-east-1", "Success", 0),
        ];
        let identities: Vec<_> = all.iter().filter_map(recorded).collect();
        let cadence = Cadence {
            verified_every: Duration::from_secs(2),
            pending_every: Duration::from_secs(1),
        };
        let periods_now = periods(&identities, cadence);
        let started = Instant::now();
        let at = |ms| started + Duration::from_millis(ms);
        let mut schedule = Schedule::new(started, cadence);
        // Nothing listed yet: both are due 2 s after the start, one tick (1 s) caps the wait.
        assert_eq!(schedule.first_wake(), at(1000));
        assert_eq!(schedule.next_wake(&periods_now, at(0)), at(1000));
        assert_eq!(schedule.next_wake(&periods_now, at(1700)), at(2000));
        // Listed at 2.0 s and 2.6 s, the round ending at 3.1 s: the next is due at 4.0 s, not
        // a whole tick after the slow round (4.1 s), which would stretch every period.
        schedule.listed(&key("eu-west-1"), at(2000));
        schedule.listed(&key("us-east-1"), at(2600));
        assert_eq!(schedule.next_wake(&periods_now, at(3100)), at(4000));
        // An overdue location is looked at again a tick later.
        schedule.listed(&key("eu-west-1"), at(0));
        assert_eq!(schedule.next_wake(&periods_now, at(3100)), at(4100));
        // A new identity in flight: listed 1 s after its location's last listing.
        let all = [
            si("a.example.com", "eu-west-1", "Success", 0),
            si("c.example.com", "us-east-1", "Pending", 0),
        ];
        let identities: Vec<_> = all.iter().filter_map(recorded).collect();
        schedule.listed(&key("eu-west-1"), at(3000));
        assert_eq!(
            schedule.next_wake(&periods(&identities, cadence), at(3100)),
            at(3600)
        );
    }

    #[test]
    fn only_changed_or_vanished_identities_are_read_again() {
        let all = [
            si("same.example.com", "eu-west-1", "Pending", 100),
            si("verified.example.com", "eu-west-1", "Pending", 100),
            si("Mixed.Example.com", "eu-west-1", "Success", 100),
            si("gone.example.com", "eu-west-1", "Success", 100),
            si("just-read.example.com", "eu-west-1", "Pending", 200),
            si("elsewhere.example.com", "us-east-1", "Pending", 100),
            si("stopped.example.com", "eu-west-1", "Success", 100),
            si("Sender@example.com", "eu-west-1", "Success", 100),
            si("Other@example.com", "eu-west-1", "Success", 100),
        ];
        let identities: Vec<_> = all.iter().filter_map(recorded).collect();
        let listed: Listed = [
            ("same.example.com", "PENDING", false),
            ("verified.example.com", "SUCCESS", true),
            ("mixed.example.com", "SUCCESS", true),
            ("elsewhere.example.com", "SUCCESS", true),
            // Still verified, but SES no longer lets it send.
            ("stopped.example.com", "SUCCESS", false),
            ("Sender@example.com", "SUCCESS", true),
            // Another address: email identities are case-sensitive.
            ("other@example.com", "SUCCESS", true),
        ]
        .into_iter()
        .map(|(n, s, e)| {
            (
                crate::ses::identity_key(n),
                (VerificationStatus::from_ses(s), e),
            )
        })
        .collect();
        let began = Timestamp::from_second(150).expect("time");
        let names: Vec<&str> = changed(
            identities.iter().map(|r| ((), r)),
            &key("eu-west-1"),
            &listed,
            began,
        )
        .map(|(_, r, _)| &*r.identity)
        .collect();
        // just-read is missing too, but it was read after the listing began: not concluded.
        assert_eq!(
            names,
            [
                "verified.example.com",
                "gone.example.com",
                "stopped.example.com",
                "Other@example.com"
            ]
        );
    }
}
