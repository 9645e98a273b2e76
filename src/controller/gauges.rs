//! The gauges computed from the caches at scrape time: SenderIdentities by SES status and how
//! long the oldest has been pending, EmailSettings by Ready status and reason and how long the
//! oldest connection test has been failing — what the chart's dashboard shows and its alerts
//! page on.

use crate::crd::conditions::types;
use crate::crd::{EmailSettings, SenderIdentity};
use crate::metrics::{METRICS, ReadyLabels, VerificationLabels};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// SenderIdentities by SES verification status, and the seconds the longest-pending one has
/// been pending (0 when none is).
pub fn identities<'a>(
    all: impl IntoIterator<Item = &'a SenderIdentity>,
    now: Timestamp,
) -> (BTreeMap<String, i64>, i64) {
    let mut counts = BTreeMap::new();
    let mut oldest = 0;
    for si in all {
        let st = si.status.as_ref();
        let status = st
            .and_then(|s| s.verification_status.clone())
            .unwrap_or_else(|| "Unknown".into());
        if status == "Pending"
            && let Some(since) = st.and_then(|s| s.pending_since.as_ref())
        {
            oldest = oldest.max(now.duration_since(since.0).as_secs());
        }
        *counts.entry(status).or_default() += 1;
    }
    (counts, oldest)
}

/// EmailSettings by (Ready status, reason), and the seconds the longest-failing connection test
/// has failed (since `ConnectionVerified` turned False; 0 when none fails).
pub fn settings<'a>(
    all: impl IntoIterator<Item = &'a EmailSettings>,
    now: Timestamp,
) -> (BTreeMap<(String, String), i64>, i64) {
    let mut counts = BTreeMap::new();
    let mut oldest = 0;
    for es in all {
        let conditions = es.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
        let key = find(types::READY).map_or(("Unknown".to_string(), String::new()), |c| {
            (c.status.clone(), c.reason.clone())
        });
        *counts.entry(key).or_default() += 1;
        if let Some(c) = find(types::CONNECTION_VERIFIED).filter(|c| c.status == "False") {
            oldest = oldest.max(now.duration_since(c.last_transition_time.0).as_secs());
        }
    }
    (counts, oldest)
}

/// Sets the gauges from the caches' contents.
pub fn refresh<'a>(
    identities_now: impl IntoIterator<Item = &'a SenderIdentity>,
    settings_now: impl IntoIterator<Item = &'a EmailSettings>,
    now: Timestamp,
) {
    let (by_status, pending) = identities(identities_now, now);
    METRICS.identities.clear();
    for (status, n) in by_status {
        METRICS
            .identities
            .get_or_create(&VerificationLabels { status })
            .set(n);
    }
    METRICS.oldest_pending.set(pending);
    let (by_ready, failing) = settings(settings_now, now);
    METRICS.email_settings.clear();
    for ((ready, reason), n) in by_ready {
        METRICS
            .email_settings
            .get_or_create(&ReadyLabels { ready, reason })
            .set(n);
    }
    METRICS.oldest_failing_test.set(failing);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::conditions::condition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    fn si(status: Option<&str>, pending_since: Option<i64>) -> SenderIdentity {
        let mut si = SenderIdentity::new(
            "x",
            serde_json::from_value(serde_json::json!({
                "emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com"
            }))
            .expect("spec"),
        );
        si.status = Some(crate::crd::sender_identity::SenderIdentityStatus {
            verification_status: status.map(str::to_string),
            pending_since: pending_since.map(|s| Time(at(s))),
            ..Default::default()
        });
        si
    }

    #[test]
    fn identities_are_counted_by_status_with_the_oldest_pending_age() {
        let all = [
            si(Some("Pending"), Some(0)),
            si(Some("Pending"), Some(3_600)),
            si(Some("Success"), None),
            si(None, None),
        ];
        let (counts, oldest) = identities(&all, at(7_200));
        assert_eq!(counts["Pending"], 2);
        assert_eq!(counts["Success"], 1);
        assert_eq!(counts["Unknown"], 1);
        assert_eq!(oldest, 7_200, "the one pending since 0");
        let (_, none) = identities(&all[2..], at(7_200));
        assert_eq!(none, 0);
    }

    #[test]
    fn settings_are_counted_by_ready_and_reason_with_the_oldest_failing_test() {
        let es = |ready: Option<(bool, &str)>, failing_since: Option<i64>| {
            let mut es: EmailSettings = serde_json::from_value(serde_json::json!({
                "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
                "metadata": {"name": "n", "namespace": "ns"},
                "spec": {"from": "a@yourcompany.com"}
            }))
            .expect("es");
            let mut status = crate::crd::EmailSettingsStatus::default();
            if let Some((ok, reason)) = ready {
                status.conditions.push(condition(
                    types::READY,
                    ok,
                    reason,
                    String::new(),
                    None,
                    Time(at(0)),
                ));
            }
            if let Some(s) = failing_since {
                status.conditions.push(condition(
                    types::CONNECTION_VERIFIED,
                    false,
                    "BadCredentials",
                    String::new(),
                    None,
                    Time(at(s)),
                ));
            }
            es.status = Some(status);
            es
        };
        let all = [
            es(Some((true, "Published")), None),
            es(Some((true, "Published")), None),
            es(Some((false, "BadCredentials")), Some(100)),
            es(Some((false, "BadCredentials")), Some(1_000)),
            es(None, None),
        ];
        let (counts, oldest) = settings(&all, at(1_900));
        assert_eq!(counts[&("True".into(), "Published".into())], 2);
        assert_eq!(counts[&("False".into(), "BadCredentials".into())], 2);
        assert_eq!(counts[&("Unknown".into(), String::new())], 1);
        assert_eq!(oldest, 1_800);
    }
}
