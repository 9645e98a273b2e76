//! The SenderIdentity controller's reconcile, called directly against the Kubernetes stand-in
//! and a recording in-memory SES (see `reconcile_support`): each test drives one path and
//! asserts the SES calls made and the status written.

mod reconcile_support;

use email_operator::controller::{FINALIZER, RETRY_ANNOTATION, sender_identity};
use email_operator::crd::conditions::{reasons, types};
use email_operator::crd::sender_identity::SenderIdentityStatus;
use email_operator::ses::{
    IdentityDetails, MANAGED_BY_KEY, MANAGED_BY_VALUE, OWNER_KEY_PREFIX, SesError,
    VerificationStatus,
};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use reconcile_support::*;
use serde_json::json;
use std::time::Duration;

const REGION: &str = "eu-west-1";
const HOURS: u64 = 3600;

/// A domain's re-creation: read, deleted, created.
const RECREATED: [&str; 3] = [
    "GetEmailIdentity",
    "DeleteEmailIdentity",
    "CreateEmailIdentity",
];

/// The Harness with the shop's SES EmailSettings and the SenderIdentity `yourcompany-com`.
async fn shop_with_domain() -> Harness {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    h.apply(sender("shop", "yourcompany-com", "yourcompany.com"))
        .await;
    h
}

/// The (name, value) of the status's DNS records of `type_`.
fn records<'a>(st: &'a SenderIdentityStatus, type_: &str) -> Vec<(&'a str, &'a str)> {
    st.dns_records
        .iter()
        .filter(|r| r.type_ == type_)
        .map(|r| (r.name.as_str(), r.value.as_str()))
        .collect()
}

/// The owner tags SES holds for `name`.
/// The SenderIdentity's `Accepted` condition: its status and reason.
async fn accepted(h: &Harness, ns: &str, name: &str) -> Option<(String, String)> {
    condition(&h.si_status(ns, name).await.conditions, types::ACCEPTED)
}

/// Deletes shop's SenderIdentity and lets its finalizer run, with SES's call log cleared.
async fn delete_shop_identity(h: &Harness) {
    h.ses().clear_calls();
    h.delete_si("shop", "yourcompany-com").await;
    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("cleaned up");
}

/// Deletes shop's SenderIdentity and checks its SES identity stays, without our claim.
async fn deleted_and_kept_unclaimed(h: &Harness) {
    delete_shop_identity(h).await;
    assert!(
        !h.ses().ops().contains(&"DeleteEmailIdentity"),
        "{:?}",
        h.ses().ops()
    );
    assert_eq!(h.ses().count(REGION), 1, "kept");
    assert!(
        owner_tags(h, REGION, "yourcompany.com").is_empty(),
        "our claim is removed from what is kept"
    );
}

fn owner_tags(h: &Harness, region: &str, name: &str) -> Vec<String> {
    h.ses()
        .get(region, name)
        .map(|d| d.tags)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with(OWNER_KEY_PREFIX))
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn a_new_domain_is_created_tagged_as_ours_and_its_records_are_reported() {
    let h = shop_with_domain().await;
    let action = h.reconcile_new_si("shop", "yourcompany-com").await;

    assert_eq!(
        h.ses().ops(),
        ["CreateEmailIdentity"],
        "created without a read first — its answer carries the DKIM tokens: one call before the records show"
    );
    let created = h.ses().get(REGION, "yourcompany.com").expect("created");
    assert!(
        created
            .tags
            .contains(&(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into())),
        "{:?}",
        created.tags
    );
    assert_eq!(
        owner_tags(&h, REGION, "yourcompany.com"),
        [format!("Delete {CLUSTER}/shop/yourcompany-com")]
    );

    let si = h.si("shop", "yourcompany-com").await.expect("exists");
    assert!(si.finalizers().contains(&FINALIZER.to_string()));
    let st = si.status.expect("status written");
    assert_eq!(st.verification_status.as_deref(), Some("Pending"));
    assert_eq!(st.verification_attempts, Some(1));
    assert!(st.pending_since.is_some());
    assert_eq!(st.ses.as_ref().map(|l| l.region.as_str()), Some(REGION));
    let dkim = records(&st, "CNAME");
    assert_eq!(
        dkim,
        [
            (
                "token1x0._domainkey.yourcompany.com",
                "token1x0.dkim.amazonses.com"
            ),
            (
                "token1x1._domainkey.yourcompany.com",
                "token1x1.dkim.amazonses.com"
            ),
            (
                "token1x2._domainkey.yourcompany.com",
                "token1x2.dkim.amazonses.com"
            ),
        ]
    );
    assert_eq!(
        condition(&st.conditions, types::ACCEPTED),
        Some(("True".into(), reasons::ACCEPTED.into()))
    );
    assert_eq!(
        condition(&st.conditions, types::READY).map(|c| c.0),
        Some("False".into())
    );
    assert!(
        requeue_after(&action).is_some_and(|d| d <= Duration::from_secs(15 * 60)),
        "a pending identity comes back within pending_max: {action:?}"
    );
    assert!(h.said("shop", reasons::IDENTITY_CREATED).await);
}

#[tokio::test]
async fn a_roll_out_publishes_two_events_created_with_what_to_do_and_ready() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.verified_by_listing(REGION, "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    let events = h.events_about("shop", "yourcompany-com").await;
    let reasons: Vec<&str> = events.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [reasons::IDENTITY_CREATED, reasons::READY],
        "the routine steps between (creating, pending) are in the status, not in Events"
    );
    assert!(
        events[0].1.contains("3 CNAME records"),
        "the creation says what verifies it: {}",
        events[0].1
    );
}

#[tokio::test]
async fn a_pending_identity_with_nothing_new_makes_no_ses_call() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().clear_calls();

    // Woken again at once (its own status write): nothing has changed.
    let action = h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), Vec::<&str>::new(), "{action:?}");
    assert!(requeue_after(&action).is_some());

    // Its timer: only DNS is looked at, and what DNS now shows is written.
    h.clock.advance(Duration::from_secs(16 * 60));
    for i in 0..3 {
        h.fakes.dns.set(
            &format!("token1x{i}._domainkey.yourcompany.com"),
            "CNAME",
            &[&format!("token1x{i}.dkim.amazonses.com")],
        );
    }
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(
        h.ses().ops(),
        Vec::<&str>::new(),
        "a pending identity's timer reads DNS, not SES"
    );
    let st = h.si_status("shop", "yourcompany-com").await;
    let published: Vec<_> = st
        .dns_records
        .iter()
        .filter(|r| r.type_ == "CNAME")
        .map(|r| r.published)
        .collect();
    assert_eq!(published, [Some(true); 3]);
}

#[tokio::test]
async fn verified_in_ses_is_ready_from_the_listing_without_a_read() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().verify(REGION, "yourcompany.com");
    h.ses().clear_calls();

    // The bulk listing saw the change and marked it.
    h.listing_changed(REGION, "yourcompany.com");
    let action = h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(
        h.ses().ops(),
        Vec::<&str>::new(),
        "the listing says all the status needs"
    );
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_status.as_deref(), Some("Success"));
    assert_eq!(st.verified_for_sending, Some(true));
    assert_eq!(
        condition(&st.conditions, types::READY),
        Some(("True".into(), reasons::READY.into()))
    );
    assert!(st.pending_since.is_none(), "no longer pending");

    let dkim = records(&st, "CNAME");
    assert_eq!(dkim.len(), 3, "the records shown are kept: {dkim:?}");
    assert_eq!(st.dkim_status.as_deref(), Some("Success"));

    // Verified identities are left to the bulk listing: no timer of their own.
    h.ses().clear_calls();
    h.clock.advance(Duration::from_secs(6 * HOURS));
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), Vec::<&str>::new(), "{action:?}");
}

#[tokio::test]
async fn a_domain_pending_past_72_hours_is_recreated_with_fresh_tokens() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().clear_calls();

    h.clock.advance(Duration::from_secs(72 * HOURS + 60));
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), RECREATED);
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_attempts, Some(2));
    assert!(
        st.dns_records
            .iter()
            .any(|r| r.name == "token2x0._domainkey.yourcompany.com"),
        "the new DKIM tokens are reported: {:?}",
        st.dns_records
    );
    assert_eq!(
        owner_tags(&h, REGION, "yourcompany.com"),
        [format!("Delete {CLUSTER}/shop/yourcompany-com")],
        "the re-created identity keeps its owner"
    );
    assert!(h.said("shop", reasons::VERIFICATION_EXPIRED).await);
}

#[tokio::test]
async fn a_failed_identity_waits_for_the_retry_annotation_then_starts_over() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().update(REGION, "yourcompany.com", |d| {
        d.verification_status = VerificationStatus::Failed;
        d.dkim_status = Some(VerificationStatus::Failed);
    });
    h.listing_changed(REGION, "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_status.as_deref(), Some("Failed"));

    // Failed is final: time alone does nothing.
    h.ses().clear_calls();
    h.clock.advance(Duration::from_secs(80 * HOURS));
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), Vec::<&str>::new());

    // The retry annotation re-creates it, counting attempts from 1 again.
    let mut si = sender("shop", "yourcompany-com", "yourcompany.com");
    si["metadata"]["annotations"] = json!({ RETRY_ANNOTATION: "1" });
    h.apply(si).await;
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), RECREATED);
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_status.as_deref(), Some("Pending"));
    assert_eq!(st.verification_attempts, Some(1));
    assert_eq!(st.observed_retry.as_deref(), Some("1"));
    assert!(h.said("shop", reasons::RETRY_REQUESTED).await);
}

#[tokio::test]
async fn a_second_namespace_shares_the_identity_and_only_the_last_owner_deletes_it() {
    let h = shop_with_domain().await;
    h.apply(policy(
        "shop-and-other",
        &["shop", "other"],
        &["yourcompany.com"],
        true,
    ))
    .await;
    ses_settings(&h, "other", REGION).await;
    h.apply(sender("other", "yourcompany-com", "yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().clear_calls();

    h.reconcile_new_si("other", "yourcompany-com").await;
    assert_eq!(
        h.ses().ops(),
        ["CreateEmailIdentity", "GetEmailIdentity", "TagResource"],
        "SES refuses the create (AlreadyExists); the identity is read and claimed"
    );
    let mut owners = owner_tags(&h, REGION, "yourcompany.com");
    owners.sort();
    assert_eq!(
        owners,
        [
            format!("Delete {CLUSTER}/other/yourcompany-com"),
            format!("Delete {CLUSTER}/shop/yourcompany-com"),
        ]
    );
    assert!(h.said("other", reasons::IDENTITY_SHARED).await);

    // The first owner goes: its claim is removed, the identity stays for the other.
    delete_shop_identity(&h).await;
    assert!(
        h.si("shop", "yourcompany-com").await.is_none(),
        "finalizer removed"
    );
    assert!(
        h.ses().ops().contains(&"UntagResource"),
        "{:?}",
        h.ses().ops()
    );
    assert!(!h.ses().ops().contains(&"DeleteEmailIdentity"));
    assert_eq!(
        owner_tags(&h, REGION, "yourcompany.com"),
        [format!("Delete {CLUSTER}/other/yourcompany-com")]
    );

    // The last owner goes: the identity is deleted.
    h.ses().clear_calls();
    h.delete_si("other", "yourcompany-com").await;
    h.reconcile_si("other", "yourcompany-com")
        .await
        .expect("cleaned up");
    assert!(h.ses().ops().contains(&"DeleteEmailIdentity"));
    assert_eq!(h.ses().count(REGION), 0);
    assert!(h.said("other", reasons::IDENTITY_DELETED).await);
}

#[tokio::test]
async fn retain_keeps_the_identity_when_its_last_owner_goes() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    let mut si = sender("shop", "yourcompany-com", "yourcompany.com");
    si["spec"]["deletionPolicy"] = json!("Retain");
    h.apply(si).await;
    h.reconcile_new_si("shop", "yourcompany-com").await;

    deleted_and_kept_unclaimed(&h).await;
}

#[tokio::test]
async fn an_identity_not_tagged_as_ours_is_never_modified_nor_deleted() {
    let h = shop_with_domain().await;
    let theirs = IdentityDetails {
        verification_status: VerificationStatus::Success,
        verified_for_sending: true,
        tags: vec![("team".into(), "marketing".into())],
        ..Default::default()
    };
    h.ses().insert(REGION, "yourcompany.com", theirs.clone());

    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("finalizer added");
    let before = h.si("shop", "yourcompany-com").await.expect("exists");
    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("reconciled");
    assert_eq!(
        h.ses().ops(),
        ["CreateEmailIdentity", "GetEmailIdentity"],
        "a create SES refuses (AlreadyExists), then a read: nothing modified"
    );
    assert_eq!(
        accepted(&h, "shop", "yourcompany-com").await,
        Some(("False".into(), reasons::IDENTITY_NOT_OWNED.into()))
    );

    // Reconciled again from a copy taken before that status was written (the watch caught up
    // in between): the status in the cache says SES has it, so it is read, not created again.
    h.ses().clear_calls();
    h.reconcile_si_snapshot(before)
        .await
        .expect("reconciled again");
    assert_eq!(
        h.ses().ops(),
        ["GetEmailIdentity"],
        "an identity known to be someone else's is read, not created again"
    );

    h.ses().clear_calls();
    h.delete_si("shop", "yourcompany-com").await;
    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("cleaned up");
    assert!(h.si("shop", "yourcompany-com").await.is_none());
    let ops = h.ses().ops();
    assert!(
        ops.iter().all(|op| *op == "GetEmailIdentity"),
        "nothing but reads: {ops:?}"
    );
    assert_eq!(h.ses().get(REGION, "yourcompany.com"), Some(theirs));
}

/// An identity someone made by hand, in SES before the operator.
fn hand_made() -> IdentityDetails {
    IdentityDetails {
        verification_status: VerificationStatus::Success,
        verified_for_sending: true,
        tags: vec![("team".into(), "marketing".into())],
        ..Default::default()
    }
}

#[tokio::test]
async fn the_adopt_annotation_is_refused_without_a_policy_grant() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    h.ses().insert(REGION, "yourcompany.com", hand_made());
    let mut si = sender("shop", "yourcompany-com", "yourcompany.com");
    si["metadata"]["annotations"] = json!({ "email.ops.dev/adopt": "true" });
    h.apply(si).await;
    h.reconcile_new_si("shop", "yourcompany-com").await;

    assert_eq!(
        h.ses().ops(),
        ["CreateEmailIdentity", "GetEmailIdentity"],
        "a create SES refuses (AlreadyExists), then a read: nothing modified"
    );
    assert_eq!(h.ses().get(REGION, "yourcompany.com"), Some(hand_made()));
    assert_eq!(
        accepted(&h, "shop", "yourcompany-com").await,
        Some(("False".into(), reasons::ADOPTION_NOT_GRANTED.into()))
    );
}

#[tokio::test]
async fn a_granted_adoption_claims_the_identity_and_never_deletes_it() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    let mut grant = policy("shop", &["shop"], &["yourcompany.com"], false);
    grant["spec"]["adoptExisting"] = json!(true);
    h.apply(grant).await;
    h.ses().insert(REGION, "yourcompany.com", hand_made());
    let mut si = sender("shop", "yourcompany-com", "yourcompany.com");
    si["metadata"]["annotations"] = json!({ "email.ops.dev/adopt": "true" });
    h.apply(si).await;
    h.reconcile_new_si("shop", "yourcompany-com").await;

    assert!(
        h.ses().ops().contains(&"TagResource"),
        "{:?}",
        h.ses().ops()
    );
    let tags = h.ses().get(REGION, "yourcompany.com").unwrap().tags;
    assert!(tags.contains(&(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into())));
    assert!(tags.contains(&("email.ops.dev/adopted".into(), "true".into())));
    assert_eq!(owner_tags(&h, REGION, "yourcompany.com").len(), 1);
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_status.as_deref(), Some("Success"));
    assert!(h.said("shop", reasons::IDENTITY_ADOPTED).await);

    // Deleted with deletionPolicy Delete (the default): the adopted identity stays, only our
    // claim goes.
    deleted_and_kept_unclaimed(&h).await;
}

#[tokio::test]
async fn a_role_no_policy_grants_is_refused_before_any_ses_call() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    let mut es = h.es("shop", "notifications").await;
    let mut spec = serde_json::to_value(&es.spec).expect("spec");
    spec["advancedSmtp"]["roleArn"] = json!("arn:aws:iam::111122223333:role/platform-admin");
    h.apply(json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": "shop"}, "spec": spec
    }))
    .await;
    es = h.es("shop", "notifications").await;
    assert!(es.spec.advanced_smtp.unwrap().role_arn.is_some());
    h.apply(sender("shop", "yourcompany-com", "yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    assert_eq!(
        h.ses().ops(),
        Vec::<&str>::new(),
        "no SES client for that role is used"
    );
    assert_eq!(
        accepted(&h, "shop", "yourcompany-com").await,
        Some(("False".into(), reasons::ROLE_NOT_GRANTED.into()))
    );

    // Granted: the identity is created through that role, for this namespace.
    let mut grant = policy("shop", &["shop"], &["yourcompany.com"], false);
    grant["spec"]["roleArns"] = json!(["arn:aws:iam::111122223333:role/*"]);
    h.apply(grant).await;
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert!(h.ses().ops().contains(&"CreateEmailIdentity"));
}

#[tokio::test]
async fn a_region_move_creates_it_there_and_lets_the_old_one_go_once_verified() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.verified_by_listing(REGION, "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");

    // The EmailSettings moves to us-east-1.
    ses_settings(&h, "shop", "us-east-1").await;
    h.ses().clear_calls();
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    let calls = h.ses().calls();
    assert!(
        calls
            .iter()
            .any(|c| c.op == "CreateEmailIdentity" && c.region == "us-east-1"),
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|c| c.region == "us-east-1"),
        "the old location is not touched before the new one is verified: {calls:?}"
    );
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(
        st.ses.as_ref().map(|l| l.region.as_str()),
        Some("us-east-1")
    );
    assert_eq!(
        st.former_locations
            .iter()
            .map(|l| l.region.as_str())
            .collect::<Vec<_>>(),
        [REGION]
    );
    assert_eq!(h.ses().count(REGION), 1, "still held in the old region");

    // Verified in the new region (the listing says so) ...
    h.verified_by_listing("us-east-1", "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(
        h.ses().count(REGION),
        1,
        "kept until the EmailSettings publishes the new region"
    );
    // ... which wakes the EmailSettings: it tests and publishes the new region's endpoint ...
    h.reconcile_es("shop", "notifications")
        .await
        .expect("published");
    assert!(h.es("shop", "notifications").await.publishes_current_spec());
    // ... which wakes the identity: the old region's identity goes.
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().count(REGION), 0, "released: {:?}", h.ses().calls());
    assert_eq!(h.ses().count("us-east-1"), 1);
    let st = h.si_status("shop", "yourcompany-com").await;
    assert!(st.former_locations.is_empty());
}

#[tokio::test]
async fn the_identity_quota_stalls_it_without_retrying() {
    let h = shop_with_domain().await;
    h.ses().fail_next(
        "CreateEmailIdentity",
        SesError::QuotaExceeded("Maximum number of identities reached".into()),
    );
    let action = h.reconcile_new_si("shop", "yourcompany-com").await;
    assert_eq!(action, Action::await_change());
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(
        condition(&st.conditions, types::STALLED),
        Some(("True".into(), reasons::SES_QUOTA_EXCEEDED.into()))
    );
    assert_eq!(
        st.ses.as_ref().map(|l| l.region.as_str()),
        Some(REGION),
        "where it would live is recorded before the create"
    );

    h.ses().clear_calls();
    h.clock.advance(Duration::from_secs(HOURS));
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(
        h.ses().ops(),
        Vec::<&str>::new(),
        "stalled: no call until someone acts"
    );
}

#[tokio::test]
async fn an_identity_the_policy_rejects_never_reaches_ses() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    h.apply(sender("shop", "elsewhere", "elsewhere.example"))
        .await;
    h.apply(sender("other", "orphan", "yourcompany.com")).await;

    h.reconcile_new_si("shop", "elsewhere").await;
    h.reconcile_new_si("other", "orphan").await;
    assert_eq!(h.ses().ops(), Vec::<&str>::new());
    assert_eq!(
        accepted(&h, "shop", "elsewhere").await,
        Some(("False".into(), reasons::NOT_AN_ACTIVE_USER_DOMAIN.into()))
    );
    assert_eq!(
        accepted(&h, "other", "orphan").await,
        Some(("False".into(), reasons::EMAIL_SETTINGS_NOT_FOUND.into()))
    );
}

#[tokio::test]
async fn a_throttled_read_fails_the_reconcile_and_keeps_the_status() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    let before = h.si("shop", "yourcompany-com").await.unwrap().status;

    h.ses().fail_next(
        "GetEmailIdentity",
        SesError::Throttled("Rate exceeded".into()),
    );
    h.listing_changed(REGION, "yourcompany.com");
    let err = h
        .reconcile_si("shop", "yourcompany-com")
        .await
        .expect_err("throttled");
    assert!(
        matches!(err, sender_identity::Error::Ses(SesError::Throttled(_))),
        "{err:?}"
    );
    assert_eq!(err.reason(), reasons::SES_THROTTLED);
    assert_eq!(
        h.si("shop", "yourcompany-com").await.unwrap().status,
        before
    );
}

#[tokio::test]
async fn an_identity_deleted_in_ses_behind_our_back_is_created_again() {
    let h = shop_with_domain().await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.verified_by_listing(REGION, "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");

    // Someone deletes it in the console; the listing no longer shows it.
    h.ses().remove(REGION, "yourcompany.com");
    h.ses().clear_calls();
    h.listing_changed(REGION, "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), ["GetEmailIdentity", "CreateEmailIdentity"]);
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_status.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn a_deletion_reconciled_from_a_copy_older_than_the_creation_still_deletes_it() {
    let h = shop_with_domain().await;
    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("finalizer added");
    let mut before = h.si("shop", "yourcompany-com").await.expect("exists");
    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("created");
    assert_eq!(h.ses().count(REGION), 1);

    // The finalizer runs on a copy taken before the status recorded the creation (the watch
    // caught up in between): the identity it created is still found, and deleted.
    h.ses().clear_calls();
    h.delete_si("shop", "yourcompany-com").await;
    before.metadata.deletion_timestamp = h
        .si("shop", "yourcompany-com")
        .await
        .and_then(|si| si.metadata.deletion_timestamp);
    h.reconcile_si_snapshot(before).await.expect("cleaned up");
    assert!(h.si("shop", "yourcompany-com").await.is_none());
    assert_eq!(h.ses().ops(), ["GetEmailIdentity", "DeleteEmailIdentity"]);
    assert_eq!(h.ses().count(REGION), 0, "nothing left behind in SES");
}

#[tokio::test]
async fn a_mail_from_domain_is_set_at_creation_and_its_records_reported() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    let mut si = sender("shop", "yourcompany-com", "yourcompany.com");
    si["spec"]["mailFromDomain"] = json!("bounce.yourcompany.com");
    h.apply(si).await;
    h.reconcile_new_si("shop", "yourcompany-com").await;

    assert_eq!(
        h.ses().ops(),
        ["CreateEmailIdentity", "PutEmailIdentityMailFromAttributes"]
    );
    assert_eq!(
        h.ses()
            .get(REGION, "yourcompany.com")
            .and_then(|d| d.mail_from_domain),
        Some("bounce.yourcompany.com".into())
    );
    let st = h.si_status("shop", "yourcompany-com").await;
    let mx = records(&st, "MX");
    assert_eq!(
        mx,
        [(
            "bounce.yourcompany.com",
            "10 feedback-smtp.eu-west-1.amazonses.com"
        )]
    );

    // Verified: the listing does not carry the MAIL FROM status, so this one is read.
    h.ses().clear_calls();
    h.verified_by_listing(REGION, "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), ["GetEmailIdentity"]);
    let st = h.si_status("shop", "yourcompany-com").await;
    assert_eq!(st.verification_status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn an_email_identity_is_created_with_one_call() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", REGION).await;
    h.apply(sender("shop", "employee", "employee@yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "employee").await;
    assert_eq!(
        h.ses().ops(),
        ["CreateEmailIdentity"],
        "the create's answer is all a new address's status shows"
    );
    let st = h.si_status("shop", "employee").await;
    assert_eq!(st.verification_status.as_deref(), Some("Pending"));
    assert!(
        st.dns_records.iter().all(|r| r.type_ != "CNAME"),
        "no DKIM records for an address"
    );
}

#[tokio::test]
async fn a_domain_held_by_another_namespace_is_refused_before_ses_and_promoted_when_freed() {
    let h = shop_with_domain().await;
    ses_settings(&h, "tenant-b", REGION).await;
    h.apply(sender("tenant-b", "yourcompany-com", "yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    let held = h
        .ses()
        .get(REGION, "yourcompany.com")
        .expect("created for shop");
    h.ses().clear_calls();

    h.reconcile_new_si("tenant-b", "yourcompany-com").await;
    assert_eq!(h.ses().ops(), Vec::<&str>::new(), "refused before SES");
    assert_eq!(
        h.ses().get(REGION, "yourcompany.com"),
        Some(held),
        "shop's identity and tags unchanged"
    );
    let st = h.si_status("tenant-b", "yourcompany-com").await;
    let (status, reason) = condition(&st.conditions, types::ACCEPTED).expect("Accepted");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE)
    );
    let message = &st
        .conditions
        .iter()
        .find(|c| c.type_ == types::ACCEPTED)
        .unwrap()
        .message;
    assert!(message.contains("held by namespace shop"), "{message}");
    assert!(
        message.contains(&format!("SenderPolicy in namespace {POLICIES}")),
        "{message}"
    );

    // The holder's claims go (its identity, and its EmailSettings sending as the domain):
    // the other namespace's claim is admitted and creates the identity anew (it went with its
    // last owner).
    h.delete_si("shop", "yourcompany-com").await;
    h.reconcile_si("shop", "yourcompany-com")
        .await
        .expect("cleaned up");
    h.delete_es("shop", "notifications").await;
    h.ses().clear_calls();
    h.reconcile_si("tenant-b", "yourcompany-com")
        .await
        .expect("ok");
    assert_eq!(h.ses().ops(), ["CreateEmailIdentity"]);
    let st = h.si_status("tenant-b", "yourcompany-com").await;
    assert_eq!(
        condition(&st.conditions, types::ACCEPTED).map(|c| c.0),
        Some("True".into())
    );
}

#[tokio::test]
async fn a_governed_domain_is_refused_to_a_namespace_the_policy_does_not_grant() {
    let h = shop_with_domain().await;
    h.apply(policy("billing", &["billing"], &["yourcompany.com"], false))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    assert_eq!(h.ses().ops(), Vec::<&str>::new());
    assert_eq!(
        accepted(&h, "shop", "yourcompany-com").await,
        Some(("False".into(), reasons::DOMAIN_NOT_GRANTED.into()))
    );

    // Granted: admitted at the next reconcile (a policy change wakes everyone).
    h.apply(policy(
        "billing",
        &["billing", "shop"],
        &["yourcompany.com"],
        false,
    ))
    .await;
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    assert_eq!(h.ses().ops(), ["CreateEmailIdentity"]);
}

#[tokio::test]
async fn granted_namespaces_share_an_identity_only_with_share_identities() {
    let h = shop_with_domain().await;
    h.apply(policy(
        "both",
        &["shop", "tenant-b"],
        &["yourcompany.com"],
        false,
    ))
    .await;
    ses_settings(&h, "tenant-b", REGION).await;
    h.apply(sender("tenant-b", "yourcompany-com", "yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().clear_calls();
    h.reconcile_new_si("tenant-b", "yourcompany-com").await;
    assert_eq!(h.ses().ops(), Vec::<&str>::new(), "not shared");
    assert_eq!(
        accepted(&h, "tenant-b", "yourcompany-com").await,
        Some(("False".into(), reasons::IDENTITY_SHARING_NOT_ALLOWED.into()))
    );
    assert_eq!(owner_tags(&h, REGION, "yourcompany.com").len(), 1);
}
