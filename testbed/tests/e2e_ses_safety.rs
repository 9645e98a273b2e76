//! End to end, the safety and frugality promises: identities that are not ours are never
//! touched (until adopted), faults on SES never cause duplicate or orphaned identities, and
//! verified identities cost one ListEmailIdentities page per re-check round, and one team's
//! burst does not hold up another team's identity.

mod e2e;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity};
use serde_json::json;
use std::time::Duration;
use testbed::bench::{BURST_NAMESPACE, Layout, plan_in};

#[tokio::test]
async fn an_identity_that_is_not_ours_is_never_modified_until_adopted() {
    let mut bed = Bed::up().await;
    let ses = ses_sdk(&bed);
    let tag = aws_sdk_sesv2::types::Tag::builder()
        .key("team")
        .value("marketing")
        .build()
        .expect("tag");
    ses.create_email_identity()
        .email_identity("yourcompany.com")
        .tags(tag)
        .send()
        .await
        .expect("create foreign identity");
    bed.start_operator(FAST);
    let ns = "foreign";
    tenant(&bed, ns, &["employee@yourcompany.com"]).await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "ours", "yourcompany.com"))
        .await;
    let si = wait_condition(
        &bed,
        ns,
        "ours",
        "Accepted",
        "False",
        Some("IdentityNotOwned"),
    )
    .await;
    let message = condition_message(&si, "Accepted");
    assert!(message.contains("email.ops.dev/adopt"), "{message}");
    // Deleting the SenderIdentity leaves the foreign identity alone too.
    bed.delete_object::<SenderIdentity>(ns, "ours").await;
    eventually("ours gone", WAIT, || sid(&bed, ns, "ours"), Option::is_none).await;
    let c = calls(&bed).await;
    for op in [
        "DeleteEmailIdentity",
        "TagResource",
        "UntagResource",
        "PutEmailIdentityMailFromAttributes",
        "PutEmailIdentityDkimSigningAttributes",
    ] {
        assert_eq!(
            count(&c, op, None),
            0,
            "{op} must not be called on a foreign identity: {c}"
        );
    }
    assert_eq!(
        count(&c, "CreateEmailIdentity", Some("Success")),
        1,
        "only the test's own create succeeds: {c}"
    );
    assert_eq!(
        count(&c, "CreateEmailIdentity", Some("AlreadyExistsException")),
        1,
        "the operator's create is refused, and it only reads: {c}"
    );

    // The annotation alone adopts nothing: the platform's policy must grant adoption.
    let mut adopt = identity(ns, "adopter", "yourcompany.com");
    adopt["metadata"]["annotations"] = json!({"email.ops.dev/adopt": "true"});
    bed.apply::<SenderIdentity>(ns, adopt).await;
    wait_condition(
        &bed,
        ns,
        "adopter",
        "Accepted",
        "False",
        Some("AdoptionNotGranted"),
    )
    .await;
    assert_eq!(count(&calls(&bed).await, "TagResource", None), 0);
    bed.apply::<email_operator::crd::SenderPolicy>(
        POLICY_NAMESPACE,
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
               "metadata": {"name": "adopt-yourcompany", "namespace": POLICY_NAMESPACE},
               "spec": {"namespaces": [ns], "domains": ["yourcompany.com"], "adoptExisting": true}}),
    )
    .await;
    wait_condition(&bed, ns, "adopter", "Accepted", "True", None).await;
    let got = ses
        .get_email_identity()
        .email_identity("yourcompany.com")
        .send()
        .await
        .expect("get");
    let keys: Vec<&str> = got.tags().iter().map(|t| t.key()).collect();
    assert!(
        keys.contains(&"email.ops.dev/managed-by") && keys.contains(&"team"),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("email.ops.dev/owner/")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn fifty_identities_converge_under_throttling_and_server_errors() {
    let mut bed = Bed::up().await;
    bed.put(
        "/ses/faults",
        json!({"throttleRate": 0.3, "errorRate": 0.1, "seed": 7}),
    )
    .await;
    // Pending identities are polled slowly here so the (throttled, so slowed) request budget
    // goes to creating identities.
    bed.start_operator(&[
        "--ses-max-rps",
        "100",
        "--pending-recheck-min",
        "60s",
        "--pending-recheck-max",
        "120s",
    ]);
    for i in 0..50 {
        let ns = format!("tenant-{i}");
        let domain = format!("d{i}.example.com");
        tenant(&bed, &ns, &[&format!("ops@{domain}")]).await;
        bed.apply::<SenderIdentity>(&ns, identity(&ns, "domain", &domain))
            .await;
    }
    for i in 0..50 {
        let ns = format!("tenant-{i}");
        wait_records(&bed, &ns, "domain", Duration::from_secs(120)).await;
    }
    let c = calls(&bed).await;
    assert!(
        count(&c, "CreateEmailIdentity", Some("TooManyRequestsException")) > 0,
        "faults were injected: {c}"
    );
    let created = count(&c, "CreateEmailIdentity", Some("Success"));
    assert_eq!(
        created, 50,
        "exactly one successful create per identity: {c}"
    );
    let mut names = ses_identities(&bed).await;
    names.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("d{i}.example.com")).collect();
    want.sort();
    assert_eq!(names, want, "every SES identity is accounted for");
}

/// Pending identities are not read one by one: their SES status comes from one listing per
/// round, and one the listing shows verified is Ready from it without a read. At SES's limit
/// of 1 call a second, per-identity polls of a thousand pending identities would starve the
/// creation of new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_identities_cost_one_listing_per_round_and_none_is_read_one_by_one() {
    const N: usize = 60;
    let mut bed = Bed::up().await;
    // Pending rounds every 1 s; DNS re-checks every 1–2 s; verified ones only every 10 min.
    bed.start_operator(&[
        "--pending-recheck-min",
        "1s",
        "--pending-recheck-max",
        "2s",
        "--verified-recheck-interval",
        "10m",
        "--ses-max-rps",
        "400",
    ]);
    for i in 0..N {
        let ns = format!("p{i}");
        let domain = format!("p{i}.example.com");
        tenant(&bed, &ns, &[&format!("ops@{domain}")]).await;
        bed.apply::<SenderIdentity>(&ns, identity(&ns, "domain", &domain))
            .await;
    }
    for i in 0..N {
        wait_records(&bed, &format!("p{i}"), "domain", Duration::from_secs(120)).await;
    }

    // All pending, nothing published: ten seconds of rounds read no identity.
    bed.delete("/ses/calls", json!({})).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let c = calls(&bed).await;
    let lists = count(&c, "ListEmailIdentities", None);
    assert!((7..=12).contains(&lists), "one page per 1 s round: {c}");
    assert_eq!(
        count(&c, "GetEmailIdentity", None),
        0,
        "{N} pending identities, none read one by one: {c}"
    );

    // One identity's records are published: its own DNS re-check notices (no SES call),
    // and the listing shows it verified, which is all its status needs: nothing is read.
    let si = sid(&bed, "p7", "domain").await.expect("p7");
    publish_dkim(&bed, &si).await;
    eventually(
        "p7 shows its records as published",
        Duration::from_secs(30),
        || sid(&bed, "p7", "domain"),
        |si| {
            si.as_ref()
                .and_then(|si| si.status.as_ref())
                .is_some_and(|s| {
                    s.dns_records
                        .iter()
                        .filter(|r| r.type_ == "CNAME")
                        .all(|r| r.published == Some(true))
                })
        },
    )
    .await;
    wait_condition_within(
        &bed,
        "p7",
        "domain",
        "Ready",
        "True",
        None,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = calls(&bed).await;
    assert_eq!(
        count(&c, "GetEmailIdentity", None),
        0,
        "Ready from the listing: {c}"
    );
}

/// At SES's real limit (1 call a second, the stand-in's too), one namespace's 40 new identities
/// take 40 s or more to create; an identity applied meanwhile in another namespace gets its
/// records within 5 s, because namespaces take turns instead of queueing first come, first
/// served behind the burst.
#[tokio::test]
async fn another_namespace_gets_its_records_within_seconds_during_a_burst() {
    const N: usize = 40;
    let mut bed = Bed::up_as_shipped(&[]).await;
    bed.start_operator(&["--ses-max-rps", "1"]);
    let (settings, planned) = plan_in(N, N / 4, Layout::OneNamespace);
    bed.namespace(BURST_NAMESPACE).await;
    for s in settings {
        bed.apply::<EmailSettings>(BURST_NAMESPACE, s).await;
    }
    for p in &planned {
        bed.apply::<SenderIdentity>(&p.namespace, p.manifest())
            .await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    tenant(&bed, "lone", &["ops@lone.example.com"]).await;
    let started = std::time::Instant::now();
    bed.apply::<SenderIdentity>("lone", identity("lone", "domain", "lone.example.com"))
        .await;
    wait_records(&bed, "lone", "domain", Duration::from_secs(120)).await;
    let waited = started.elapsed();
    let created = bed
        .ses_calls_answered("CreateEmailIdentity", "Success")
        .await;
    assert!(
        created < N as u64,
        "measured while the burst was being created: {created} of {N} created"
    );
    assert!(
        waited <= Duration::from_secs(5),
        "the lone identity waited {waited:?} for its records ({created} created meanwhile)"
    );
}
