//! End to end: test messages on request (the annotation `email.ops.dev/send-test`), with the
//! real `email-operator run` against `testbed up`. Through SES (the test bed's SES SMTP
//! interface stand-in, its account in the sandbox): an unverified recipient is refused with
//! advice naming the sandbox, the mailbox simulator's bounce address is accepted and the
//! outbox shows the bounce. Through an external server (a real aiosmtpd): the message arrives
//! with the expected envelope and headers, and a refused recipient is reported with the
//! server's code. One message per annotation value; no secret in status or Events.
//! `email-operator send-test --secret` does the same through the published Secret.

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use e2e::*;
use email_operator::controller::SEND_TEST_ANNOTATION;
use email_operator::crd::email_settings::TestMessage;
use email_operator::crd::{EmailSettings, SenderIdentity};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::{PASSWORD, USER, cert_dir, smtp_server};

const SES_ACCESS_KEY_ID: &str = "AKIAE2ETESTKEY000003";
const SES_SECRET_KEY: &str = "e2e/SesTestMessageKey+0123456789abcdefXYZ";

async fn put_secret(bed: &Bed, ns: &str, name: &str, data: Value) {
    bed.apply::<Secret>(
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data}),
    )
    .await;
}

async fn ask(bed: &Bed, ns: &str, recipient: &str) {
    Api::<EmailSettings>::namespaced(bed.client.clone(), ns)
        .patch(
            "notifications",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {SEND_TEST_ANNOTATION: recipient}}})),
        )
        .await
        .expect("annotate");
}

/// The EmailSettings' last test message once it answers `recipient`.
async fn answered(bed: &Bed, ns: &str, recipient: &str) -> TestMessage {
    let es = eventually(
        &format!("a test message to {recipient}"),
        WAIT,
        || get_es(bed, ns, "notifications"),
        |e| {
            e.as_ref()
                .and_then(|e| e.status.as_ref())
                .and_then(|s| s.last_test_message.as_ref())
                .is_some_and(|t| t.recipient == recipient)
        },
    )
    .await
    .expect("exists");
    es.status
        .and_then(|s| s.last_test_message)
        .expect("lastTestMessage")
}

async fn wait_ready(bed: &Bed, ns: &str) {
    eventually(
        &format!("EmailSettings {ns}/notifications Ready"),
        WAIT,
        || get_es(bed, ns, "notifications"),
        |e| condition_of(e.as_ref(), "Ready").is_some_and(|(s, ..)| s == "True"),
    )
    .await;
}

/// Messages in the SES stand-in's outbox that were sent (not verification messages).
async fn sent(bed: &Bed) -> Vec<Value> {
    let outbox = bed.get("/ses/outbox").await;
    outbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kind"] == "Sent")
        .cloned()
        .collect()
}

/// The namespace's Events (events.k8s.io/v1) as JSON text.
async fn events_text(bed: &Bed, ns: &str) -> String {
    let events: kube::core::ObjectList<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(bed.client.clone(), ns)
            .list(&Default::default())
            .await
            .expect("events");
    serde_json::to_string(&events.items).expect("json")
}

#[tokio::test]
async fn through_ses_the_sandbox_refuses_and_the_simulator_bounces() {
    let mut bed = Bed::up().await;
    bed.register_ses_smtp_key(SES_ACCESS_KEY_ID, SES_SECRET_KEY)
        .await;
    bed.sandbox("us-east-1").await;
    let args = fast_with_bed_ses_smtp(&bed);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bed.start_operator(&args);
    let ns = "billing";
    bed.namespace(ns).await;
    put_secret(
        &bed,
        ns,
        "ses-key",
        json!({"accessKeyId": SES_ACCESS_KEY_ID, "secretAccessKey": SES_SECRET_KEY}),
    )
    .await;
    let mut es = settings(ns, &["employee@yourcompany.com"]);
    es["spec"]["advancedSmtp"]["smtpCredentialsSecretRef"] = json!({"name": "ses-key"});
    es["spec"]["advancedSmtp"]["configurationSetName"] = json!("notifications");
    bed.apply::<EmailSettings>(ns, es).await;
    bed.apply::<SenderIdentity>(ns, identity(ns, "yourcompany-com", "yourcompany.com"))
        .await;
    let si = wait_records(&bed, ns, "yourcompany-com", WAIT).await;
    publish_dkim(&bed, &si).await;
    wait_ready(&bed, ns).await;
    assert!(sent(&bed).await.is_empty(), "nothing is sent unasked");

    // The sandbox refuses an unverified recipient, and the outcome says so and what to do.
    ask(&bed, ns, "someone@example.org").await;
    let refused = answered(&bed, ns, "someone@example.org").await;
    assert!(!refused.accepted);
    assert_eq!(
        (refused.reason.as_str(), refused.code),
        ("TestMessageRefused", Some(554))
    );
    assert!(
        refused
            .reply
            .contains("failed the check in region US-EAST-1: someone@example.org"),
        "{}",
        refused.reply
    );
    for says in ["sandbox in us-east-1", "simulator", "production access"] {
        assert!(
            refused.message.contains(says),
            "{says}: {}",
            refused.message
        );
    }
    assert!(sent(&bed).await.is_empty());

    // The simulator's bounce address is accepted even in the sandbox; SES would bounce it.
    ask(&bed, ns, "bounce@simulator.amazonses.com").await;
    let accepted = answered(&bed, ns, "bounce@simulator.amazonses.com").await;
    assert!(accepted.accepted, "{accepted:?}");
    assert_eq!(accepted.secret, "notifications-smtp");
    let messages = sent(&bed).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(accepted.message_id.as_deref(), m["messageId"].as_str());
    assert_eq!(m["from"], "billing@yourcompany.com");
    assert_eq!(m["to"], json!(["bounce@simulator.amazonses.com"]));
    assert_eq!(
        m["simulated"],
        json!([{"recipient": "bounce@simulator.amazonses.com", "outcome": "Bounce"}])
    );
    let raw = m["raw"].as_str().expect("raw message");
    for says in [
        "X-Email-Operator-Test: billing/notifications",
        "X-SES-CONFIGURATION-SET: notifications",
        "This is a test message sent by email-operator",
        "email.ops.dev/send-test",
    ] {
        assert!(raw.contains(says), "{says}: {raw}");
    }

    // The same value again (any other edit) sends nothing more.
    Api::<EmailSettings>::namespaced(bed.client.clone(), ns)
        .patch(
            "notifications",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("label");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(sent(&bed).await.len(), 1, "never sent twice");

    // The command line does the same through the published Secret, read with the kubeconfig.
    let cli = |to: &str| {
        let out = std::process::Command::new(binary("email-operator"))
            .args([
                "send-test",
                "--secret",
                "billing/notifications-smtp",
                "--to",
                to,
            ])
            .arg("--kubeconfig")
            .arg(bed.dir.path().join("kubeconfig"))
            .arg("--ca-file")
            .arg(bed.ses_smtp_ca())
            .output()
            .expect("send-test runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = cli("success+cli@simulator.amazonses.com");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("accepted") && out.contains("a delivery"),
        "{out}"
    );
    let messages = sent(&bed).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["simulated"][0]["outcome"], "Delivery");
    assert!(
        messages[1]["raw"]
            .as_str()
            .is_some_and(|r| r.contains("asked for by email-operator send-test for EmailSettings notifications in namespace billing")),
        "{}",
        messages[1]["raw"]
    );
    let (code, out) = cli("someone@example.org");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("refused") && out.contains("sandbox in us-east-1"),
        "{out}"
    );

    let events = events_text(&bed, ns).await;
    assert!(events.contains("TestMessageAccepted") && events.contains("TestMessageRefused"));
    let password = email_operator::smtp::ses_password::smtp_password(SES_SECRET_KEY, "us-east-1");
    let status = serde_json::to_string(&get_es(&bed, ns, "notifications").await).expect("json");
    for secret in [SES_SECRET_KEY, password.as_str()] {
        assert!(!status.contains(secret) && !events.contains(secret) && !raw.contains(secret));
    }
}

#[tokio::test]
async fn through_an_external_server_the_message_arrives_and_a_refusal_is_reported() {
    let mailbox = tempfile::tempdir().expect("mailbox");
    let dir = mailbox.path().to_str().expect("path").to_string();
    let Some(server) = smtp_server("starttls-auth", &["--mailbox", &dir]) else {
        return;
    };
    let mut bed = Bed::up().await;
    bed.start_operator(&[]);
    let ns = "shop";
    bed.namespace(ns).await;
    put_secret(&bed, ns, "smtp", json!({"password": PASSWORD})).await;
    let ca = std::fs::read_to_string(cert_dir().join("ca.pem")).expect("ca.pem");
    put_secret(&bed, ns, "relay-ca", json!({"ca.pem": ca})).await;
    bed.apply::<EmailSettings>(
        ns,
        json!({
            "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
            "metadata": {"name": "notifications", "namespace": ns},
            "spec": {"from": "shop@yourcompany.com", "delivery": "ExternalSmtp",
                     "externalSmtp": {"host": "localhost", "port": server.port, "startTls": true,
                                      "authentication": "UsernamePassword", "username": USER,
                                      "passwordSecretRef": {"name": "smtp", "key": "password"},
                                      "caBundleSecretRef": {"name": "relay-ca", "key": "ca.pem"}}}
        }),
    )
    .await;
    wait_ready(&bed, ns).await;

    ask(&bed, ns, "ops@yourcompany.com").await;
    let accepted = answered(&bed, ns, "ops@yourcompany.com").await;
    assert!(accepted.accepted, "{accepted:?}");
    assert_eq!(accepted.code, Some(250));
    assert_eq!(accepted.message_id.as_deref(), Some("1"), "queued as 1");
    let delivered: Value = serde_json::from_str(
        &std::fs::read_to_string(mailbox.path().join("1.json")).expect("the message arrived"),
    )
    .expect("json");
    assert_eq!(delivered["mail_from"], "shop@yourcompany.com");
    assert_eq!(delivered["rcpt_tos"], json!(["ops@yourcompany.com"]));
    let data = delivered["data"].as_str().expect("data");
    for header in [
        "From: shop@yourcompany.com\r\n",
        "To: ops@yourcompany.com\r\n",
        "Subject: Test message from EmailSettings shop/notifications\r\n",
        "Auto-Submitted: auto-generated\r\n",
    ] {
        assert!(data.contains(header), "{header}: {data}");
    }
    assert!(data.contains("through Secret notifications-smtp"), "{data}");
    assert!(!data.contains(PASSWORD));

    // A recipient the server does not know: refused at RCPT TO, with its code.
    ask(&bed, ns, "nobody@yourcompany.com").await;
    let refused = answered(&bed, ns, "nobody@yourcompany.com").await;
    assert!(!refused.accepted);
    assert_eq!(
        (refused.reason.as_str(), refused.code),
        ("TestMessageRefused", Some(550))
    );
    assert!(refused.reply.contains("User unknown"), "{}", refused.reply);
    assert!(
        refused.message.contains("refused the recipient with 550"),
        "{}",
        refused.message
    );
    assert_eq!(std::fs::read_dir(mailbox.path()).expect("dir").count(), 1);

    // Not an address: nothing is sent.
    ask(&bed, ns, "not-an-address").await;
    let invalid = answered(&bed, ns, "not-an-address").await;
    assert_eq!(invalid.reason, "InvalidRecipient");
    assert_eq!(std::fs::read_dir(mailbox.path()).expect("dir").count(), 1);
    let status = serde_json::to_string(&get_es(&bed, ns, "notifications").await).expect("json");
    assert!(!status.contains(PASSWORD) && !events_text(&bed, ns).await.contains(PASSWORD));
}
