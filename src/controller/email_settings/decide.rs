//! Step 2 of an EmailSettings' reconcile (pure): when to run the connection test — once per
//! change of the inputs, again after `revalidateEvery`, and after a failure with backoff, never
//! on every watch event — what to publish, and when to come back.

use super::dereference::Read;
use super::publish::{self, Published};
use super::status::Test;
use crate::crd::EmailSettings;
use crate::smtp::{Failure, Outcome};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// The default of `revalidateEvery`.
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(24 * 3600);

/// How soon an EmailSettings whose namespace has its connection tests' share running looks
/// again.
pub const FAIR_SHARE_RETRY: Duration = Duration::from_secs(2);

/// How soon a failed reconcile (an API call that failed) is tried again.
pub const BACKOFF: Duration = Duration::from_secs(15);

/// How soon an EmailSettings whose output Secret appeared under it (by someone else, the watch
/// lagging) looks again, if that Secret's own watch event has not brought it back first.
pub const SECRET_APPEARED_RECHECK: Duration = Duration::from_secs(1);

/// The last test this process ran for an EmailSettings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    /// The fingerprint of the inputs tested.
    pub fingerprint: String,
    pub at: Timestamp,
    /// How long the test took.
    pub duration: Duration,
    pub result: Result<Outcome, Failure>,
    /// Consecutive failures with these inputs.
    pub failures: u32,
}

impl Memo {
    /// Records a test, counting consecutive failures of the same inputs.
    pub fn record(
        prior: Option<&Memo>,
        fingerprint: &str,
        at: Timestamp,
        duration: Duration,
        result: Result<Outcome, Failure>,
    ) -> Memo {
        let failures = match (&result, prior) {
            (Ok(_), _) => 0,
            (Err(_), Some(p)) if p.fingerprint == fingerprint => p.failures + 1,
            (Err(_), _) => 1,
        };
        Memo {
            fingerprint: fingerprint.to_string(),
            at,
            duration,
            result,
            failures,
        }
    }
}

/// What to do about the connection test now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Test now.
    Test,
    /// These inputs passed at `at` and need no test before `due`. `outcome` is None when the
    /// pass is known only from the published Secret (e.g. after a restart).
    Passed {
        at: Timestamp,
        outcome: Option<Outcome>,
        due: Timestamp,
    },
    /// These inputs failed at `at` (`failures` times in a row); test again at `due`.
    Failed {
        at: Timestamp,
        duration: Duration,
        failure: Failure,
        failures: u32,
        due: Timestamp,
    },
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// How long to wait before testing failed inputs again: sooner for failures that may pass on
/// their own (timeouts, refused connections), doubling with each consecutive failure, never
/// longer than the revalidation interval.
pub fn retry_after(failure: &Failure, failures: u32, revalidate: Duration) -> Duration {
    let (base, cap) = if failure.is_transient() {
        (Duration::from_secs(15), Duration::from_secs(300))
    } else {
        (Duration::from_secs(60), Duration::from_secs(1800))
    };
    let exp = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << exp).min(cap).min(revalidate)
}

/// Decides whether to test inputs with `fingerprint` now.
pub fn next(
    now: Timestamp,
    fingerprint: &str,
    memo: Option<&Memo>,
    published: Option<&Published>,
    revalidate: Duration,
) -> Next {
    if let Some(m) = memo.filter(|m| m.fingerprint == fingerprint) {
        match &m.result {
            Ok(outcome) => {
                let due = plus(m.at, revalidate);
                if now < due {
                    return Next::Passed {
                        at: m.at,
                        outcome: Some(outcome.clone()),
                        due,
                    };
                }
            }
            Err(failure) => {
                let due = plus(m.at, retry_after(failure, m.failures, revalidate));
                if now < due {
                    return Next::Failed {
                        at: m.at,
                        duration: m.duration,
                        failure: failure.clone(),
                        failures: m.failures,
                        due,
                    };
                }
            }
        }
        return Next::Test;
    }
    if let Some(p) = published
        && p.inputs_hash.as_deref() == Some(fingerprint)
        && let Some(at) = p.validated_at
    {
        let due = plus(at, revalidate);
        if now < due {
            return Next::Passed {
                at,
                outcome: None,
                due,
            };
        }
    }
    Next::Test
}

/// `revalidateEvery` as a duration (`24h`, `90m`, `1h30m`); the default when unset or
/// unreadable (admission rejects unreadable values).
pub fn revalidate_every(spec: Option<&str>) -> Duration {
    let Some(s) = spec else {
        return DEFAULT_REVALIDATE;
    };
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' => {
                let Ok(n) = digits.parse::<u64>() else {
                    return DEFAULT_REVALIDATE;
                };
                digits.clear();
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = total.saturating_add(n.saturating_mul(unit));
            }
            _ => return DEFAULT_REVALIDATE,
        }
    }
    if !digits.is_empty() || total < 60 {
        return DEFAULT_REVALIDATE;
    }
    Duration::from_secs(total)
}

/// The connection test step, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStep {
    /// Nothing to run: the test cannot run, or the outcome for the current inputs is known.
    Known(Test),
    /// Test the current inputs (whose fingerprint this is) now.
    Run {
        fingerprint: String,
        revalidate: Duration,
    },
}

/// Whether the connection test is due now, from what was read.
pub fn test_step(es: &EmailSettings, read: &Read, now: Timestamp) -> TestStep {
    let s = match &read.subject {
        Err(problem) => return TestStep::Known(Test::Unavailable(problem.clone())),
        Ok(s) => s,
    };
    let fingerprint = publish::fingerprint(&s.prepared, &s.extra);
    let revalidate = revalidate_every(es.spec.revalidate_every.as_deref());
    // After a restart this process remembers no test: a failure of these same inputs is found
    // in the status, so its backoff goes on instead of testing at once.
    let from_status = read
        .memo
        .is_none()
        .then(|| memo_from_status(es, &fingerprint, &s.inputs))
        .flatten();
    match next(
        now,
        &fingerprint,
        read.memo.as_ref().or(from_status.as_ref()),
        read.published.as_ref(),
        revalidate,
    ) {
        Next::Test => TestStep::Run {
            fingerprint,
            revalidate,
        },
        known => TestStep::Known(Test::Known(known)),
    }
}

/// The failed test the status records, when it was of these inputs (`inputs`): as this
/// process would have remembered it.
pub fn memo_from_status(es: &EmailSettings, fingerprint: &str, inputs: &str) -> Option<Memo> {
    let last = es.status.as_ref()?.last_connection_test.as_ref()?;
    if last.inputs.as_deref() != Some(inputs) {
        return None;
    }
    let failure = Failure::from_reason(&last.reason, last.detail.clone().unwrap_or_default())?;
    Some(Memo {
        fingerprint: fingerprint.to_string(),
        at: last.time.0,
        duration: Duration::from_millis(u64::try_from(last.duration_ms).unwrap_or(0)),
        result: Err(failure),
        failures: last.failures.unwrap_or(1).max(1),
    })
}

/// What to do with the output Secret, from what was read and where the test stands.
pub fn publication_of(es: &EmailSettings, read: &Read, test: &Test) -> Publication {
    let Ok(s) = &read.subject else {
        return Publication::Nothing;
    };
    let fingerprint = publish::fingerprint(&s.prepared, &s.extra);
    let passed = match test {
        Test::Known(Next::Passed { at, outcome, .. }) => Some((
            *at,
            outcome
                .as_ref()
                .map(|o| publish::data(&s.prepared, o, &s.extra)),
        )),
        _ => None,
    };
    let sender_covered = read
        .senders
        .as_ref()
        .is_none_or(|s| s.sender_verified.is_some());
    publication(
        passed,
        read.publish_problem.is_none(),
        sender_covered,
        read.published.as_ref(),
        es.metadata.generation.unwrap_or_default(),
        &fingerprint,
    )
}

/// What to do with the output Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// Nothing may be published: no passed test of the current inputs, a Secret not ours, or an
    /// AdvancedSmtp sender not covered yet.
    Nothing,
    /// The Secret already holds exactly this.
    Current,
    /// Write this data (validated at `at`, from inputs with this fingerprint).
    Write {
        data: BTreeMap<String, String>,
        at: Timestamp,
        fingerprint: String,
    },
}

/// Whether and what to publish: only a configuration whose test passed for the current inputs,
/// to a Secret this EmailSettings may write, with (AdvancedSmtp) a verified sender.
pub fn publication(
    passed: Option<(Timestamp, Option<BTreeMap<String, String>>)>,
    may_write: bool,
    sender_covered: bool,
    published: Option<&Published>,
    generation: i64,
    fingerprint: &str,
) -> Publication {
    let Some((at, fresh)) = passed.filter(|_| may_write && sender_covered) else {
        return Publication::Nothing;
    };
    // A pass known only from the published Secret (after a restart) republishes its data.
    let Some(data) = fresh.or_else(|| published.map(|p| p.data.clone())) else {
        return Publication::Nothing;
    };
    let current = published.is_some_and(|p| {
        p.data == data
            && p.generation == Some(generation)
            && p.inputs_hash.as_deref() == Some(fingerprint)
            && p.validated_at == Some(at)
    });
    if current {
        Publication::Current
    } else {
        Publication::Write {
            data,
            at,
            fingerprint: fingerprint.to_string(),
        }
    }
}

/// When to come back: when the pass expires or the failure's backoff runs out (Secret and
/// SenderIdentity changes arrive as watch events), at least a second from now.
pub fn come_back(next: Option<&Next>, now: Timestamp) -> Duration {
    let due = match next {
        Some(Next::Passed { due, .. } | Next::Failed { due, .. }) => {
            Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
        }
        _ => Duration::from_secs(300),
    };
    due.max(Duration::from_secs(1))
}
