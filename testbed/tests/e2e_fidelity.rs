//! End to end against stand-ins as strict as the real services: `testbed up` as shipped (SES's
//! 1 request a second, its tag rules and quotas, the chart's minimum Kubernetes version with
//! its metadata rules and CEL environment), and the operator started with nothing but
//! `DIR/env` — then the SES rules the operator meets on the way: the identity quota, 50 tags,
//! MAIL FROM failing, the once-a-day DKIM key length, a cluster without the DNSEndpoint CRD.

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::*;
use email_operator::crd::{EmailSettings, SenderIdentity, SenderPolicy};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

/// Every tag of every SES identity, as the control API shows them.
async fn all_tags(bed: &Bed) -> Vec<(String, String, String)> {
    let identities = bed.get("/ses/identities").await["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    identities
        .iter()
        .flat_map(|i| {
            let name = i["name"].as_str().unwrap_or_default().to_string();
            i["tags"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |(k, v)| (name.clone(), k, v.as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// SES's tag rules (SES v2 API Reference, `Tag`), checked here independently of the stand-in.
fn tag_ok(key: &str, value: &str) -> bool {
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-".contains(c))
    };
    (1..=128).contains(&key.chars().count())
        && value.chars().count() <= 256
        && allowed(key)
        && allowed(value)
        && !key.to_ascii_lowercase().starts_with("aws:")
}

fn kube_url(bed: &Bed) -> String {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(bed.dir.path().join("kubeconfig")).expect("kubeconfig");
    kubeconfig.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server")
}

/// Publishes what the statuses ask for: DKIM CNAMEs and MAIL FROM MX records of every
/// SenderIdentity, and confirms every email identity in SES.
async fn publish_everything(bed: &Bed, confirmed: &mut BTreeSet<String>) {
    play_the_admin(bed, confirmed).await;
    let all = Api::<SenderIdentity>::all(bed.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list");
    for si in all {
        for r in si.status.iter().flat_map(|s| &s.dns_records) {
            if r.type_ == "MX" && r.published != Some(true) {
                let key = format!("{} MX", r.name);
                if confirmed.insert(key) {
                    bed.post(
                        "/dns/records",
                        json!({"name": r.name, "type": "MX", "value": r.value}),
                    )
                    .await;
                }
            }
        }
    }
}

fn ready(si: &SenderIdentity) -> bool {
    condition_of(Some(si), "Ready").is_some_and(|(s, _, _)| s == "True")
}

#[tokio::test]
async fn as_shipped_with_only_the_env_file_everything_becomes_ready() {
    let Some(smtp) = support::smtp_server("plain-auth", &[]) else {
        return;
    };
    let mut bed = Bed::up_as_shipped(&[]).await;
    // SES's real rate, and no flag but what `source DIR/env` gives.
    assert_eq!(
        bed.get("/ses/limits").await["requestsPerSecond"],
        json!(1.0)
    );
    // The examples' SenderPolicies are in email-system, where the chart installs the operator.
    let log = bed.start_operator_plain(&[
        "--policy-namespace",
        "email-system",
        "--egress-allow",
        "127.0.0.0/8",
    ]);

    let applied = testbed::demo::apply_examples(&kube_url(&bed), &workspace().join("examples"))
        .await
        .expect("examples apply");
    assert!(applied > 5, "{applied}");

    // Two namespaces share one domain identity; one of them names its SenderIdentity with all
    // 253 characters a name may have (its Events must still be valid objects).
    let long_identity = format!(
        "{}.{}.{}.{}",
        "s".repeat(63),
        "h".repeat(63),
        "a".repeat(63),
        "r".repeat(61)
    );
    assert_eq!(long_identity.len(), 253);
    // The platform team lets the two teams share it (and send as yourcompany.com).
    bed.apply::<SenderPolicy>(
        "email-system",
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
               "metadata": {"name": "teams", "namespace": "email-system"},
               "spec": {"namespaces": ["team-a", "team-b"], "domains": ["sharedcorp.com", "yourcompany.com"],
                        "shareIdentities": true}}),
    )
    .await;
    for (ns, name) in [("team-a", "shared"), ("team-b", long_identity.as_str())] {
        tenant(&bed, ns, &["employee@sharedcorp.com"]).await;
        bed.apply::<SenderIdentity>(ns, identity(ns, name, "sharedcorp.com"))
            .await;
    }

    // An EmailSettings whose name has 200 characters publishes its Secret.
    let long_settings = format!(
        "{}.{}.{}.{}",
        "n".repeat(50),
        "o".repeat(50),
        "t".repeat(50),
        "e".repeat(47)
    );
    assert_eq!(long_settings.len(), 200);
    bed.namespace("long").await;
    bed.apply::<Secret>(
        "long",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "smtp", "namespace": "long"},
               "stringData": {"password": support::PASSWORD}}),
    )
    .await;
    bed.apply::<EmailSettings>(
        "long",
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": long_settings, "namespace": "long"},
               "spec": {"from": "billing@yourcompany.com", "delivery": "ExternalSmtp",
                        "externalSmtp": {"host": "localhost", "port": smtp.port,
                                         "authentication": "UsernamePassword", "username": support::USER,
                                         "passwordSecretRef": {"name": "smtp", "key": "password"}}}}),
    )
    .await;

    // Play the DNS administrator and the mailbox owners until every SenderIdentity is Ready.
    let mut done = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let all = loop {
        publish_everything(&bed, &mut done).await;
        let items = Api::<SenderIdentity>::all(bed.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        if items.len() == 5 && items.iter().all(ready) {
            break items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every SenderIdentity Ready at SES's 1 request a second: {:#?}",
            items
                .iter()
                .map(|s| (s.name_any(), condition_of(Some(s), "Ready")))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let shared: Vec<_> = all
        .iter()
        .filter(|s| s.spec.identity == "sharedcorp.com")
        .collect();
    assert_eq!(shared.len(), 2);
    let in_ses = ses_identities(&bed).await;
    assert_eq!(
        in_ses.iter().filter(|n| *n == "sharedcorp.com").count(),
        1,
        "one SES identity for both namespaces: {in_ses:?}"
    );

    // Every tag SES holds obeys SES's rules; the shared identity has an owner tag per
    // namespace.
    let tags = all_tags(&bed).await;
    assert!(!tags.is_empty());
    for (identity, k, v) in &tags {
        assert!(tag_ok(k, v), "{identity}: {k}={v}");
    }
    let owners = tags
        .iter()
        .filter(|(i, k, _)| i == "sharedcorp.com" && k.starts_with("email.ops.dev/owner/"))
        .count();
    assert_eq!(owners, 2);

    // The 200-character EmailSettings published its Secret, labelled within a label's 63.
    let es = eventually(
        "the 200-character EmailSettings Ready",
        WAIT,
        || get_es(&bed, "long", &long_settings),
        |e| condition_of(e.as_ref(), "Ready").is_some_and(|(s, _, _)| s == "True"),
    )
    .await
    .expect("exists");
    let secret = Api::<Secret>::namespaced(bed.client.clone(), "long")
        .get(&es.output_secret_name())
        .await
        .expect("the published Secret");
    let label = &secret.labels()["email.ops.dev/email-settings"];
    assert!(label.len() <= 63, "{label}");
    assert_eq!(
        secret.annotations()["email.ops.dev/email-settings"],
        long_settings
    );

    // Events were recorded for the longest names too.
    let events = Api::<K8sEvent>::all(bed.client.clone())
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    for name in [long_identity.as_str(), long_settings.as_str()] {
        assert!(
            events
                .iter()
                .any(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)),
            "no Event about {name}"
        );
    }
    // SES was asked no faster than it allows: nothing was throttled for long, and nothing
    // failed for good.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("SesRequestRejected"), "{text}");
}

/// An SES v2 client of the bed's SES stand-in (the test acting outside the operator).
async fn ses(bed: &Bed) -> aws_sdk_sesv2::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(email_operator::ses::aws::https())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(bed.env["AWS_ENDPOINT_URL_SESV2"].clone())
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_sesv2::Client::new(&conf)
}

#[tokio::test]
async fn the_identity_quota_stalls_the_identity_without_retrying_or_slowing_down() {
    let mut bed = Bed::up().await;
    bed.put(
        "/ses/limits",
        json!({"requestsPerSecond": 1000.0, "maxIdentitiesPerRegion": 1}),
    )
    .await;
    bed.start_operator(FAST);
    tenant(&bed, "billing", &["employee@yourcompany.com"]).await;
    bed.apply::<SenderIdentity>(
        "billing",
        identity("billing", "first", "first@yourcompany.com"),
    )
    .await;
    wait_records_or_ready(&bed, "billing", "first").await;
    bed.apply::<SenderIdentity>(
        "billing",
        identity("billing", "second", "second@yourcompany.com"),
    )
    .await;
    let si = wait_condition(
        &bed,
        "billing",
        "second",
        "Ready",
        "False",
        Some("SesQuotaExceeded"),
    )
    .await;
    let message = condition_message(&si, "Ready");
    assert!(message.contains("10,000"), "{message}");
    assert_eq!(
        condition_of(Some(&si), "Stalled").map(|(s, _, _)| s),
        Some("True".into())
    );
    // Its location is recorded for cleanup, and it was tried once: a quota is no throttling.
    assert_eq!(
        si.status
            .as_ref()
            .and_then(|s| s.ses.as_ref())
            .map(|l| l.region.as_str()),
        Some("us-east-1")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = bed.get("/ses/calls").await;
    assert_eq!(
        calls["calls"]["CreateEmailIdentity"]["LimitExceededException"],
        json!(1),
        "{calls}"
    );
    // Freeing the quota and asking again (the retry annotation) creates it.
    bed.put(
        "/ses/limits",
        json!({"requestsPerSecond": 1000.0, "maxIdentitiesPerRegion": 10}),
    )
    .await;
    let mut retried = identity("billing", "second", "second@yourcompany.com");
    retried["metadata"]["annotations"] = json!({"email.ops.dev/retry": "1"});
    bed.apply::<SenderIdentity>("billing", retried).await;
    wait_condition(&bed, "billing", "second", "Accepted", "True", None).await;
}

/// Waits until the SenderIdentity has been read from SES (it shows a verification status).
async fn wait_records_or_ready(bed: &Bed, ns: &str, name: &str) -> SenderIdentity {
    eventually(
        &format!("{ns}/{name} read from SES"),
        WAIT,
        || sid(bed, ns, name),
        |si| {
            si.as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some_and(|s| s.verification_status.is_some())
        },
    )
    .await
    .expect("exists")
}

#[tokio::test]
async fn an_identity_with_fifty_tags_is_not_claimed_and_not_touched() {
    let mut bed = Bed::up().await;
    // An identity of ours that already carries 50 tags (ours, and 49 added by hand).
    let mut tags = vec![
        aws_sdk_sesv2::types::Tag::builder()
            .key("email.ops.dev/managed-by")
            .value("email-operator")
            .build()
            .expect("tag"),
    ];
    tags.extend((0..49).map(|i| {
        aws_sdk_sesv2::types::Tag::builder()
            .key(format!("team-{i}"))
            .value("mail")
            .build()
            .expect("tag")
    }));
    ses(&bed)
        .await
        .create_email_identity()
        .email_identity("yourcompany.com")
        .set_tags(Some(tags))
        .send()
        .await
        .expect("create by hand");
    let before = bed.get("/ses/identities").await;
    bed.start_operator(FAST);
    tenant(&bed, "billing", &["employee@yourcompany.com"]).await;
    bed.apply::<SenderIdentity>(
        "billing",
        identity("billing", "yourcompany-com", "yourcompany.com"),
    )
    .await;
    let si = wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "Accepted",
        "False",
        Some("SesTagLimitReached"),
    )
    .await;
    assert!(
        condition_message(&si, "Accepted").contains("50"),
        "{}",
        condition_message(&si, "Accepted")
    );
    assert_eq!(
        bed.ses_calls("TagResource").await,
        0,
        "refused before the call"
    );
    let mut after = bed.get("/ses/identities").await;
    let mut before = before;
    for v in [&mut before, &mut after] {
        for i in v["identities"].as_array_mut().into_iter().flatten() {
            // Only the stand-in's own bookkeeping of its DNS checks moves.
            for k in ["lastChecked", "errorType"] {
                i.as_object_mut().map(|o| o.remove(k));
            }
        }
    }
    assert_eq!(before, after, "the identity is byte-for-byte unchanged");
}

#[tokio::test]
async fn a_mail_from_record_removed_after_success_is_reported_with_a_warning() {
    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    tenant(&bed, "billing", &["employee@yourcompany.com"]).await;
    let mut domain = identity("billing", "yourcompany-com", "yourcompany.com");
    domain["spec"]["mailFromDomain"] = json!("bounce.yourcompany.com");
    bed.apply::<SenderIdentity>("billing", domain).await;
    let si = wait_records(&bed, "billing", "yourcompany-com", WAIT).await;
    publish_dkim(&bed, &si).await;
    let mx: Vec<Value> = si
        .status
        .as_ref()
        .expect("status")
        .dns_records
        .iter()
        .filter(|r| r.type_ == "MX")
        .map(|r| json!({"name": r.name, "type": "MX", "value": r.value}))
        .collect();
    assert_eq!(mx.len(), 1);
    bed.post("/dns/records", mx[0].clone()).await;
    wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "MailFromVerified",
        "True",
        Some("Success"),
    )
    .await;
    wait_condition(&bed, "billing", "yourcompany-com", "Ready", "True", None).await;

    bed.delete(
        "/dns/records",
        json!({"name": "bounce.yourcompany.com", "type": "MX"}),
    )
    .await;
    let si = wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "MailFromVerified",
        "False",
        Some("MailFromFailed"),
    )
    .await;
    assert!(condition_message(&si, "MailFromVerified").contains("SPF"));
    assert_eq!(
        si.status
            .as_ref()
            .and_then(|s| s.mail_from_status.as_deref()),
        Some("Failed")
    );
    let events = Api::<K8sEvent>::namespaced(bed.client.clone(), "billing")
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("MailFromFailed")
                && e.type_.as_deref() == Some("Warning")),
        "{events:#?}"
    );

    // Published again and retried: SES looks again and finds it.
    bed.post("/dns/records", mx[0].clone()).await;
    let mut retried = identity("billing", "yourcompany-com", "yourcompany.com");
    retried["spec"]["mailFromDomain"] = json!("bounce.yourcompany.com");
    retried["metadata"]["annotations"] = json!({"email.ops.dev/retry": "1"});
    bed.apply::<SenderIdentity>("billing", retried).await;
    wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "MailFromVerified",
        "True",
        Some("Success"),
    )
    .await;
}

#[tokio::test]
async fn a_second_key_length_change_within_a_day_waits_and_says_until_when() {
    let mut bed = Bed::up().await;
    bed.start_operator(FAST);
    tenant(&bed, "billing", &["employee@yourcompany.com"]).await;
    let with_length = |length: &str| {
        let mut d = identity("billing", "yourcompany-com", "yourcompany.com");
        d["spec"]["dkim"] = json!({"keyLength": length});
        d
    };
    bed.apply::<SenderIdentity>("billing", with_length("RSA_2048_BIT"))
        .await;
    wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "DkimKeyLengthApplied",
        "True",
        None,
    )
    .await;
    bed.apply::<SenderIdentity>("billing", with_length("RSA_1024_BIT"))
        .await;
    eventually(
        "RSA_1024_BIT applied",
        WAIT,
        || sid(&bed, "billing", "yourcompany-com"),
        |si| {
            condition_of(si.as_ref(), "DkimKeyLengthApplied")
                .is_some_and(|(s, _, m)| s == "True" && m.contains("RSA_1024_BIT"))
        },
    )
    .await;
    let puts = bed.ses_calls("PutEmailIdentityDkimSigningAttributes").await;
    assert_eq!(puts, 1);
    bed.apply::<SenderIdentity>("billing", with_length("RSA_2048_BIT"))
        .await;
    let si = wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "DkimKeyLengthApplied",
        "False",
        Some("KeyLengthChangeDeferred"),
    )
    .await;
    let message = condition_message(&si, "DkimKeyLengthApplied");
    assert!(message.contains("once a day"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        bed.ses_calls("PutEmailIdentityDkimSigningAttributes").await,
        puts,
        "not retried blindly"
    );
}

#[tokio::test]
async fn without_the_dns_endpoint_crd_the_identity_says_so_and_is_still_cleaned_up() {
    let mut bed = Bed::up_with(&["--without-dnsendpoint-crd"]).await;
    bed.start_operator(FAST);
    tenant(&bed, "billing", &["employee@yourcompany.com"]).await;
    let mut si = identity("billing", "yourcompany-com", "yourcompany.com");
    si["spec"]["dns"] = json!({"provider": "ExternalDNS"});
    bed.apply::<SenderIdentity>("billing", si).await;
    let si = wait_condition(
        &bed,
        "billing",
        "yourcompany-com",
        "DnsEndpointReady",
        "False",
        Some("DnsEndpointCrdNotInstalled"),
    )
    .await;
    let status = si.status.as_ref().expect("status");
    assert_eq!(
        status.ses.as_ref().map(|l| l.region.as_str()),
        Some("us-east-1"),
        "where the SES identity lives is in status"
    );
    assert_eq!(
        condition_of(Some(&si), "Ready").map(|(_, r, _)| r),
        Some("DnsEndpointCrdNotInstalled".into())
    );
    assert!(condition_message(&si, "Ready").contains("dnsendpoints.externaldns.k8s.io"));
    assert_eq!(ses_identities(&bed).await, ["yourcompany.com"]);

    delete_and_wait_until_ses_is_empty(&bed, "billing", "yourcompany-com").await;
}
