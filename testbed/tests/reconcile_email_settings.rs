//! The EmailSettings controller's reconcile, called directly against the Kubernetes stand-in
//! with a scripted connection test and a recording SES (see `reconcile_support`): each test
//! drives one path and asserts the tests run, the Secret published and the status written.

mod reconcile_support;

use email_operator::crd::conditions::{reasons, types};
use email_operator::smtp::Failure;
use reconcile_support::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const HOURS: u64 = 3600;

/// The default relay Secret the platform team created.
async fn relay(h: &Harness) {
    h.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": RELAY.1, "namespace": RELAY.0},
        "stringData": {"host": "relay.internal.yourcompany.com", "port": "587", "username": "relay", "password": "relay-password"}
    }))
    .await;
}

/// A `delivery: Default` EmailSettings `notifications` in shop.
async fn tools(h: &Harness) {
    h.apply(json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": "shop"},
        "spec": {"from": "tools@yourcompany.com"}
    }))
    .await;
}

/// An ExternalSmtp EmailSettings `notifications` in billing, on `port`, and its password.
async fn billing(h: &Harness, port: u16) {
    h.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "smtp", "namespace": "billing"},
        "stringData": {"password": "s3cret-password"}
    }))
    .await;
    h.apply(json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": "billing"},
        "spec": {
            "from": "billing@yourcompany.com",
            "delivery": "ExternalSmtp",
            "externalSmtp": {
                "host": "smtp.yourcompany.com", "port": port, "startTls": true,
                "authentication": "UsernamePassword", "username": "notifications@yourcompany.com",
                "passwordSecretRef": {"name": "smtp", "key": "password"}
            }
        }
    }))
    .await;
}

/// The published Secret's data, as text.
async fn published(h: &Harness, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let secret = h.secret(ns, name).await?;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    )
}

#[tokio::test]
async fn the_default_relay_is_tested_then_published() {
    let h = Harness::start().await;
    relay(&h).await;
    tools(&h).await;
    h.reconcile_es("shop", "notifications").await.expect("ok");

    assert_eq!(
        h.fakes.tester.tested(),
        [("relay.internal.yourcompany.com".into(), 587, "relay".into())]
    );
    let data = published(&h, "shop", "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(data["host"], "relay.internal.yourcompany.com");
    assert_eq!(data["port"], "587");
    assert_eq!(data["from"], "tools@yourcompany.com");
    assert_eq!(data["tls"], "starttls");
    let st = h.es_status("shop", "notifications").await;
    assert_eq!(
        condition(&st.conditions, types::READY).map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(
        st.output_secret.map(|o| (o.name, o.validated_generation)),
        Some(("notifications-smtp".into(), 1))
    );
    assert!(h.said("shop", reasons::PUBLISHED).await);
}

#[tokio::test]
async fn without_the_relay_secret_nothing_is_tested_or_published() {
    let h = Harness::start().await;
    tools(&h).await;
    h.reconcile_es("shop", "notifications").await.expect("ok");

    assert!(h.fakes.tester.tested().is_empty());
    assert!(h.secret("shop", "notifications-smtp").await.is_none());
    let st = h.es_status("shop", "notifications").await;
    assert_eq!(
        condition(&st.conditions, types::READY),
        Some(("False".into(), reasons::DEFAULT_RELAY_INVALID.into()))
    );

    // The platform team creates it: the next reconcile (its watch wakes every Default) publishes.
    relay(&h).await;
    h.reconcile_es("shop", "notifications").await.expect("ok");
    assert!(published(&h, "shop", "notifications-smtp").await.is_some());
}

#[tokio::test]
async fn a_failing_edit_keeps_the_last_good_secret() {
    let h = Harness::start().await;
    billing(&h, 587).await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    let good = published(&h, "billing", "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(good["port"], "587");
    assert_eq!(good["password"], "s3cret-password");

    // The edit points at a port where authentication fails.
    h.fakes.tester.answer(Err(Failure::BadCredentials(
        "535 5.7.8 authentication failed".into(),
    )));
    billing(&h, 2525).await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");

    assert_eq!(
        published(&h, "billing", "notifications-smtp").await,
        Some(good),
        "the Secret still holds the configuration that passed"
    );
    let es = h.es("billing", "notifications").await;
    let st = es.status.expect("status");
    assert_eq!(
        condition(&st.conditions, types::CONNECTION_VERIFIED),
        Some(("False".into(), reasons::BAD_CREDENTIALS.into()))
    );
    assert_eq!(
        st.output_secret.map(|o| o.validated_generation),
        Some(1),
        "still generation 1's configuration"
    );
    assert_eq!(es.metadata.generation, Some(2));
    let status_text = format!("{:?}", st.conditions);
    assert!(
        !status_text.contains("s3cret-password"),
        "no secret in status: {status_text}"
    );
}

#[tokio::test]
async fn an_unchanged_configuration_is_not_tested_again_until_revalidation() {
    let h = Harness::start().await;
    billing(&h, 587).await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert_eq!(h.fakes.tester.tested().len(), 1);

    // Woken by its own status write, by a sibling, by the Secret watch: nothing changed.
    for _ in 0..3 {
        h.reconcile_es("billing", "notifications")
            .await
            .expect("ok");
    }
    assert_eq!(h.fakes.tester.tested().len(), 1, "tested once per change");

    // revalidateEvery (24 h by default) has passed.
    h.clock.advance(Duration::from_secs(24 * HOURS + 60));
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert_eq!(h.fakes.tester.tested().len(), 2);
}

#[tokio::test]
async fn a_changed_password_is_tested_and_published() {
    let h = Harness::start().await;
    billing(&h, 587).await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");

    h.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "smtp", "namespace": "billing"},
        "stringData": {"password": "rotated-password"}
    }))
    .await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert_eq!(
        h.fakes.tester.tested().len(),
        2,
        "the new password is tested"
    );
    assert_eq!(
        published(&h, "billing", "notifications-smtp")
            .await
            .unwrap()["password"],
        "rotated-password"
    );
}

#[tokio::test]
async fn a_failed_test_is_retried_with_backoff() {
    let h = Harness::start().await;
    h.fakes.tester.answer(Err(Failure::ConnectFailed(
        "smtp.yourcompany.com:587".into(),
    )));
    billing(&h, 587).await;
    let first = h
        .reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    let wait = requeue_after(&first).expect("comes back by itself");
    assert!(
        wait < Duration::from_secs(24 * HOURS),
        "a failure is retried sooner than revalidation: {wait:?}"
    );
    assert!(h.secret("billing", "notifications-smtp").await.is_none());

    // Woken before the backoff ends: not tested again.
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert_eq!(h.fakes.tester.tested().len(), 1);

    // The server is back when the backoff ends: tested and published.
    h.fakes.tester.answer(Ok(email_operator::smtp::Outcome {
        path: email_operator::smtp::ConnectionPath::StartTls,
        port: 587,
        duration: Duration::from_millis(25),
    }));
    h.clock.advance(wait);
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert_eq!(h.fakes.tester.tested().len(), 2);
    assert!(
        published(&h, "billing", "notifications-smtp")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_secret_it_did_not_publish_is_left_alone() {
    let h = Harness::start().await;
    h.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "notifications-smtp", "namespace": "billing"},
        "stringData": {"host": "hand-made.example"}
    }))
    .await;
    billing(&h, 587).await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");

    assert_eq!(
        published(&h, "billing", "notifications-smtp").await,
        Some(BTreeMap::from([(
            "host".to_string(),
            "hand-made.example".to_string()
        )]))
    );
    let st = h.es_status("billing", "notifications").await;
    assert_eq!(
        condition(&st.conditions, types::READY),
        Some(("False".into(), reasons::OUTPUT_SECRET_NOT_OWNED.into()))
    );
}

#[tokio::test]
async fn ses_settings_wait_for_a_verified_sender_then_publish_reading_only_the_account_from_ses() {
    let h = Harness::start().await;
    ses_settings(&h, "shop", "eu-west-1").await;
    h.apply(sender("shop", "yourcompany-com", "yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    h.ses().clear_calls();

    h.reconcile_es("shop", "notifications").await.expect("ok");
    let st = h.es_status("shop", "notifications").await;
    assert_eq!(
        condition(&st.conditions, types::SENDER_VERIFIED),
        Some(("False".into(), reasons::SENDER_NOT_VERIFIED.into()))
    );
    assert!(
        h.secret("shop", "notifications-smtp").await.is_none(),
        "not published while no verified identity covers from"
    );
    assert_eq!(
        h.fakes.tester.tested(),
        [(
            "email-smtp.eu-west-1.amazonaws.com".into(),
            587,
            "AKIAIOSFODNN7EXAMPLE".into()
        )],
        "the region's SES SMTP endpoint is tested with the SMTP user"
    );

    h.verified_by_listing("eu-west-1", "yourcompany.com");
    h.reconcile_si("shop", "yourcompany-com").await.expect("ok");
    h.reconcile_es("shop", "notifications").await.expect("ok");
    let st = h.es_status("shop", "notifications").await;
    assert_eq!(
        condition(&st.conditions, types::SENDER_VERIFIED).map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(
        condition(&st.conditions, types::READY).map(|c| c.0),
        Some("True".into())
    );
    let data = published(&h, "shop", "notifications-smtp")
        .await
        .expect("published");
    assert_eq!(data["host"], "email-smtp.eu-west-1.amazonaws.com");
    assert_eq!(
        h.ses().ops(),
        ["GetAccount"],
        "the identity is verified from the listing; the EmailSettings controller calls SES only for the account's standing, once for its location and interval (two reconciles)"
    );
}

#[tokio::test]
async fn a_from_domain_another_namespace_holds_is_refused_and_nothing_is_tested() {
    let h = Harness::start().await;
    // The shop verifies yourcompany.com first.
    ses_settings(&h, "shop", "eu-west-1").await;
    h.apply(sender("shop", "yourcompany-com", "yourcompany.com"))
        .await;
    h.reconcile_new_si("shop", "yourcompany-com").await;
    // Another namespace sends as yourcompany.com through the same SES account.
    ses_settings(&h, "tenant-b", "eu-west-1").await;
    h.reconcile_es("tenant-b", "notifications")
        .await
        .expect("ok");

    assert!(
        h.fakes.tester.tested().is_empty(),
        "refused before any test"
    );
    assert!(h.secret("tenant-b", "notifications-smtp").await.is_none());
    let st = h.es_status("tenant-b", "notifications").await;
    assert_eq!(
        condition(&st.conditions, types::READY),
        Some((
            "False".into(),
            reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE.into()
        ))
    );
}

#[tokio::test]
async fn the_default_relay_is_refused_outside_the_relay_rule_and_granted_by_a_policy() {
    let h = Harness::start().await;
    relay(&h).await;
    h.apply(json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": "billing"},
        "spec": {"from": "billing@billing.example"}
    }))
    .await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert!(h.fakes.tester.tested().is_empty());
    let st = h.es_status("billing", "notifications").await;
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .expect("Ready");
    assert_eq!(ready.reason, reasons::DEFAULT_RELAY_NOT_ALLOWED);
    assert!(
        ready.message.contains("--default-relay-namespaces"),
        "{}",
        ready.message
    );

    let mut grant = policy("billing", &["billing"], &["billing.example"], false);
    grant["spec"]["defaultRelay"] = json!(true);
    h.apply(grant).await;
    h.reconcile_es("billing", "notifications")
        .await
        .expect("ok");
    assert_eq!(h.fakes.tester.tested().len(), 1);
    assert!(
        published(&h, "billing", "notifications-smtp")
            .await
            .is_some()
    );
}
