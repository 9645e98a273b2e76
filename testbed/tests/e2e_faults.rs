//! Fault tolerance: the same convergence of N SenderIdentities (`E2E_FAULT_IDENTITIES`,
//! default 100) once on a healthy test bed and once with SES throttling 30 % and failing 10 %
//! of requests with 200 ms added latency while the Kubernetes stand-in drops every watch every
//! 3 s. Everything converges, the SES work done stays within 1.5× the healthy run, and no
//! object is written in a loop (bounded writes per object per minute, from the audit log).

mod e2e;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use kube::api::Api;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn size() -> usize {
    std::env::var("E2E_FAULT_IDENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Writes (patch/update/create) one object may take per minute before it counts as a loop.
const MAX_WRITES_PER_OBJECT_MINUTE: usize = 30;

/// SES calls of one operation.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    /// Answered `Success`.
    success: u64,
    /// Answered at all: the injected faults (throttling, 5xx) aside, an answer such as
    /// "not found" (the read before creating) is the work asked for.
    answered: u64,
    /// Every attempt.
    all: u64,
}

/// SES calls by operation.
type Calls = BTreeMap<String, Count>;

/// The outcomes the fault injection produces.
const INJECTED: [&str; 2] = ["TooManyRequestsException", "InternalFailure"];

async fn ses_calls(bed: &Bed) -> Calls {
    bed.get("/ses/calls").await["calls"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(op, outcomes)| {
            let mut count = Count::default();
            for (outcome, n) in outcomes.as_object().into_iter().flatten() {
                let n = n.as_u64().unwrap_or(0);
                count.all += n;
                if !INJECTED.contains(&outcome.as_str()) {
                    count.answered += n;
                }
                if outcome == "Success" {
                    count.success += n;
                }
            }
            (op, count)
        })
        .collect()
}

/// Applies the plan, plays the admin until all are Ready, and returns the SES calls.
async fn converge(bed: &mut Bed, n: usize) -> Calls {
    let (settings, planned) = testbed::bench::plan(n, n.div_ceil(4));
    for s in &settings {
        bed.namespace(s["metadata"]["namespace"].as_str().expect("ns"))
            .await;
        bed.apply::<EmailSettings>(s["metadata"]["namespace"].as_str().expect("ns"), s.clone())
            .await;
    }
    bed.start_operator(&[
        "--ses-max-rps",
        "50",
        "--pending-recheck-min",
        "3s",
        "--pending-recheck-max",
        "6s",
        "--verified-recheck-interval",
        "1h",
    ]);
    for p in &planned {
        bed.apply::<SenderIdentity>(&p.namespace, p.manifest())
            .await;
    }
    let api: Api<SenderIdentity> = Api::all(bed.client.clone());
    let mut published = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        play_the_admin(bed, &mut published).await;
        let ready = api
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .iter()
            .filter(|si| {
                si.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready == n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of {n} Ready after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ses_calls(bed).await
}

/// The most writes any one object took within one minute, and which.
fn busiest_object(audit: &[Value]) -> (usize, String) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in audit {
        let verb = e["verb"].as_str().unwrap_or_default();
        if !matches!(verb, "patch" | "update" | "create") {
            continue;
        }
        let r = &e["objectRef"];
        let Some(name) = r["name"].as_str() else {
            continue;
        };
        let object = format!(
            "{}/{}/{}/{}",
            r["resource"].as_str().unwrap_or_default(),
            r["subresource"].as_str().unwrap_or_default(),
            r["namespace"].as_str().unwrap_or_default(),
            name
        );
        // requestReceivedTimestamp: 2026-11-26T19:01:02.123456Z → minute bucket.
        let minute = e["requestReceivedTimestamp"]
            .as_str()
            .unwrap_or_default()
            .get(..16)
            .unwrap_or_default()
            .to_string();
        *counts.entry((object, minute)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|((o, m), c)| (c, format!("{o} at {m}")))
        .unwrap_or_default()
}

#[tokio::test]
async fn convergence_survives_ses_faults_and_dropped_watches_without_extra_work() {
    let n = size();
    // Both runs side by side (the compared quantities are counts, not times).
    let mut healthy = Bed::up_with(&["--audit-log", "audit.log"]).await;
    let mut faulty = Bed::up_with(&["--audit-log", "audit.log", "--drop-watches-every", "3"]).await;
    faulty
        .put(
            "/ses/faults",
            json!({"throttleRate": 0.3, "errorRate": 0.1, "latencyMs": 200, "seed": 7}),
        )
        .await;
    let (baseline, faults) = tokio::join!(converge(&mut healthy, n), converge(&mut faulty, n));
    let (busiest, which) = busiest_object(&healthy.audit());
    assert!(
        busiest <= MAX_WRITES_PER_OBJECT_MINUTE,
        "healthy run: {busiest} writes to {which}"
    );

    let answered = |c: &Calls| c.values().map(|c| c.answered).sum::<u64>();
    let all = |c: &Calls| c.values().map(|c| c.all).sum::<u64>();
    eprintln!(
        "healthy: {} SES calls answered ({} attempts); faults: {} answered ({} attempts)",
        answered(&baseline),
        all(&baseline),
        answered(&faults),
        all(&faults)
    );
    assert_eq!(
        all(&baseline),
        answered(&baseline),
        "no faults: {baseline:?}"
    );
    assert!(
        all(&faults) > answered(&faults),
        "faults were injected: {faults:?}"
    );
    // Every identity created exactly once either way.
    for calls in [&baseline, &faults] {
        assert_eq!(
            calls["CreateEmailIdentity"].success as usize, n,
            "{calls:?}"
        );
    }
    // The work done (calls answered) stays within 1.5x; attempts add the injected failures
    // (40 % of requests fail, so each piece of work takes 1/0.6 = 1.67 attempts on average).
    assert!(
        answered(&faults) as f64 <= 1.5 * answered(&baseline) as f64,
        "SES calls answered: {} with faults vs {} healthy",
        answered(&faults),
        answered(&baseline)
    );
    assert!(
        all(&faults) as f64 <= 1.5 / 0.6 * answered(&baseline) as f64,
        "SES attempts: {} with faults vs {} answered healthy",
        all(&faults),
        answered(&baseline)
    );
    let audit = faulty.audit();
    let watches = audit.iter().filter(|e| e["verb"] == "watch").count();
    assert!(
        watches > 10,
        "watches were dropped and re-opened: {watches}"
    );
    let (busiest, which) = busiest_object(&audit);
    assert!(
        busiest <= MAX_WRITES_PER_OBJECT_MINUTE,
        "no reconcile loop: {busiest} writes to {which} in one minute"
    );
}
