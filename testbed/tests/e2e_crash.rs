//! Crash safety: the real operator is killed with SIGKILL at random moments while hundreds of
//! SenderIdentities converge, and restarted each time. At the end every admitted
//! SenderIdentity has exactly one SES identity, every SES identity has an owner, no identity
//! was created twice, and all are Ready.
//!
//! Size: `E2E_CRASH_IDENTITIES` (default 500) over a quarter as many EmailSettings; 10 rounds.

mod e2e;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use kube::api::Api;
use rand::Rng;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const ROUNDS: usize = 10;

fn size() -> usize {
    std::env::var("E2E_CRASH_IDENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[tokio::test]
async fn sigkill_at_random_moments_never_orphans_or_duplicates_an_identity() {
    let n = size();
    let m = n.div_ceil(4);
    let (settings, planned) = testbed::bench::plan(n, m);
    let mut bed = Bed::up().await;
    let flags: Vec<&str> = FAST
        .iter()
        .copied()
        .chain(["--ses-max-rps", "1000", "--lease-duration", "2s"])
        .chain(["--lease-renew-deadline", "1s", "--lease-retry-period", "1s"])
        .collect();
    for s in &settings {
        bed.namespace(s["metadata"]["namespace"].as_str().expect("ns"))
            .await;
    }
    futures::future::join_all(settings.iter().map(|s| {
        bed.apply::<EmailSettings>(s["metadata"]["namespace"].as_str().unwrap(), s.clone())
    }))
    .await;
    let mut started = 0;
    bed.start_operator(&flags);
    let objects: Vec<Value> = planned.iter().map(|p| p.manifest()).collect();
    for chunk in objects.chunks(50) {
        futures::future::join_all(chunk.iter().map(|o| {
            bed.apply::<SenderIdentity>(o["metadata"]["namespace"].as_str().unwrap(), o.clone())
        }))
        .await;
    }

    // Ten crashes at random moments while they converge; the admin publishes whatever records
    // exist between crashes, so identities are at every stage when the next kill comes.
    let mut published = BTreeSet::new();
    for round in 0..ROUNDS {
        let pause = rand::rng().random_range(300..3000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        assert_eq!(bed.signal_operator(started, "KILL"), None, "round {round}");
        started += 1;
        play_the_admin(&bed, &mut published).await;
        bed.start_operator(&flags);
    }

    // Converge: every identity Ready.
    let api: Api<SenderIdentity> = Api::all(bed.client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        play_the_admin(&bed, &mut published).await;
        let items = api.list(&Default::default()).await.expect("list").items;
        let waiting: Vec<String> = items
            .iter()
            .filter(|si| {
                !si.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .map(|si| {
                let ready = si
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                format!(
                    "{}/{} ({}): {:?}",
                    si.metadata.namespace.as_deref().unwrap_or_default(),
                    si.metadata.name.as_deref().unwrap_or_default(),
                    si.spec.identity,
                    ready.map(|c| (&c.reason, &c.message))
                )
            })
            .collect();
        if waiting.is_empty() && items.len() == n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} not Ready after the crashes:\n{}",
            waiting.len(),
            waiting.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Exactly one SES identity per SenderIdentity, each tagged as ours with an owner.
    let ses = bed.get("/ses/identities").await["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for i in &ses {
        *by_name
            .entry(i["name"].as_str().unwrap_or_default().to_ascii_lowercase())
            .or_default() += 1;
        let tags = i["tags"].as_object().cloned().unwrap_or_default();
        assert_eq!(
            tags.get("email.ops.dev/managed-by").and_then(Value::as_str),
            Some("email-operator"),
            "{i}"
        );
        assert!(
            tags.keys().any(|k| k.starts_with("email.ops.dev/owner/")),
            "an SES identity without an owner: {i}"
        );
    }
    let wanted: BTreeSet<String> = planned.iter().map(|p| p.identity.clone()).collect();
    assert_eq!(
        by_name.keys().cloned().collect::<BTreeSet<_>>(),
        wanted,
        "SES holds exactly the admitted identities"
    );
    assert!(by_name.values().all(|c| *c == 1));
    // Never created twice (a crash between create and status write is picked up by tag).
    let creates = bed.get("/ses/calls").await["calls"]["CreateEmailIdentity"]["Success"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(creates as usize, n, "successful CreateEmailIdentity calls");
}
