//! End to end, the frugality promise at steady state: verified identities cost one
//! ListEmailIdentities page per re-check round, and only an identity whose status changed is
//! read again. Alone in its test binary (cargo runs test binaries one after another): the
//! rounds are counted in real time, which other tests' operators and test beds sharing the
//! machine's cores would stretch.

mod e2e;

use e2e::*;
use email_operator::crd::SenderIdentity;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn verified_identities_cost_one_listing_per_round_and_only_a_changed_one_is_read() {
    const N: usize = 200;
    let started = std::time::Instant::now();
    let mut bed = Bed::up_with(&["--audit-log", "audit.log"]).await;
    bed.start_operator(&[FAST, &["--ses-max-rps", "400"]].concat());
    for i in 0..N {
        let ns = format!("t{i}");
        let domain = format!("v{i}.example.com");
        tenant(&bed, &ns, &[&format!("ops@{domain}")]).await;
        bed.apply::<SenderIdentity>(&ns, identity(&ns, "domain", &domain))
            .await;
    }
    eprintln!("{:?}: applied", started.elapsed());
    for i in 0..N {
        let ns = format!("t{i}");
        let si = wait_records(&bed, &ns, "domain", Duration::from_secs(120)).await;
        publish_dkim(&bed, &si).await;
    }
    eprintln!("{:?}: records published", started.elapsed());
    for i in 0..N {
        wait_condition_within(
            &bed,
            &format!("t{i}"),
            "domain",
            "Ready",
            "True",
            None,
            Duration::from_secs(120),
        )
        .await;
    }

    eprintln!("{:?}: all Ready", started.elapsed());
    // The roll-out's tail (EmailSettings following their identities) done: nothing written to
    // the API server for 3 s. The steady state is measured from there.
    settled(&bed, Duration::from_secs(3), Duration::from_secs(120)).await;
    eprintln!("{:?}: no more writes", started.elapsed());
    // Steady state: ten rounds of the 2 s re-check.
    bed.delete("/ses/calls", json!({})).await;
    tokio::time::sleep(Duration::from_secs(21)).await;
    let c = calls(&bed).await;
    let lists = count(&c, "ListEmailIdentities", None);
    assert!(
        (9..=12).contains(&lists),
        "one page per round, about 10 rounds: {c}"
    );
    assert_eq!(
        count(&c, "GetEmailIdentity", None),
        0,
        "nothing changed, nothing read: {c}"
    );

    // Remove one identity's records: exactly that identity is read again and shows it.
    let victim = sid(&bed, "t17", "domain").await.expect("t17");
    for r in victim
        .status
        .as_ref()
        .expect("st")
        .dns_records
        .iter()
        .filter(|r| r.type_ == "CNAME")
    {
        bed.delete("/dns/records", json!({"name": r.name, "type": "CNAME"}))
            .await;
    }
    bed.delete("/ses/calls", json!({})).await;
    wait_condition(
        &bed,
        "t17",
        "domain",
        "Verified",
        "False",
        Some("TemporaryFailure"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = calls(&bed).await;
    assert_eq!(
        count(&c, "GetEmailIdentity", None),
        1,
        "only the changed identity is read: {c}"
    );
}

/// Waits until the audit log shows no write for `quiet`.
async fn settled(bed: &Bed, quiet: Duration, timeout: Duration) {
    let writes = || {
        bed.audit()
            .iter()
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
                // The leader's Lease is renewed every few seconds, idle or not.
                && e["objectRef"]["resource"] != "leases"
            })
            .map(|e| {
                let r = &e["objectRef"];
                format!("{} {}/{}", e["verb"], r["resource"], r["subresource"])
            })
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = writes();
    loop {
        tokio::time::sleep(quiet).await;
        let now = writes();
        if now.len() == last.len() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still writing after {timeout:?}: {:?}",
            &now[last.len()..]
        );
        last = now;
    }
}
