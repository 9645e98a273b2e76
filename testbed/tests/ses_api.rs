//! SES API behaviour through the real aws-sdk-sesv2 client: typed errors, pagination, tags,
//! DKIM signing attributes, account, sending, and the call counters.

mod ses_support;

use std::collections::HashSet;

use futures::StreamExt;

use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, DkimSigningAttributes, DkimSigningKeyLength, EmailContent, Message,
    RawMessage, Tag, VerificationStatus,
};
use ses_support::{CONVERGE, Control, eventually, ses_client, start};

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

#[tokio::test]
async fn typed_errors_for_duplicates_unknowns_and_bad_input() {
    let bed = start().await;
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    client
        .create_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect("create");

    let err = client
        .create_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect_err("dup");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_already_exists_exception()),
        "{err:?}"
    );

    let err = client
        .delete_email_identity()
        .email_identity("unknown.com")
        .send()
        .await
        .expect_err("nf");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_not_found_exception()),
        "{err:?}"
    );

    let err = client
        .get_email_identity()
        .email_identity("unknown.com")
        .send()
        .await
        .expect_err("nf");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_not_found_exception()),
        "{err:?}"
    );

    let err = client
        .create_email_identity()
        .email_identity("not a domain")
        .send()
        .await
        .expect_err("bad");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_bad_request_exception()),
        "{err:?}"
    );

    client
        .delete_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect("delete");
    let err = client
        .get_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect_err("gone");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_not_found_exception())
    );
    // Re-creating gives fresh tokens.
    client
        .create_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect("re-create");
}

#[tokio::test]
async fn lists_2500_identities_in_pages() {
    let bed = start().await;
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    // Domains and email addresses, created a few at a time.
    futures::stream::iter(0..2_500)
        .map(|i| {
            let client = client.clone();
            async move {
                let name = if i % 5 == 0 {
                    format!("user{i:04}@example.com")
                } else {
                    format!("d{i:04}.example.com")
                };
                client
                    .create_email_identity()
                    .email_identity(name)
                    .send()
                    .await
                    .expect("create");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    // Another region's identities never show up.
    let other = ses_client(&bed.ses.endpoint_url(), "eu-west-1").await;
    other
        .create_email_identity()
        .email_identity("eu.example.com")
        .send()
        .await
        .expect("create");

    let mut names = HashSet::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_email_identities()
            .page_size(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("list");
        pages += 1;
        assert!(page.email_identities().len() <= 1000);
        for info in page.email_identities() {
            assert!(
                names.insert(info.identity_name().expect("name").to_string()),
                "duplicate"
            );
            assert_eq!(
                info.verification_status(),
                Some(&VerificationStatus::Pending)
            );
        }
        match page.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 2_500);
    assert!(!names.contains("eu.example.com"));

    // The SDK paginator with the default page size sees the same set.
    let mut pager = client
        .list_email_identities()
        .into_paginator()
        .page_size(300)
        .send();
    let mut count = 0;
    while let Some(page) = pager.next().await {
        count += page.expect("page").email_identities().len();
    }
    assert_eq!(count, 2_500);

    let err = client
        .list_email_identities()
        .page_size(1001)
        .send()
        .await
        .expect_err("too big");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_bad_request_exception())
    );
    let err = client
        .list_email_identities()
        .next_token("not-a-token")
        .send()
        .await
        .expect_err("bad token");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_bad_request_exception())
    );
}

#[tokio::test]
async fn tags_on_create_and_through_tag_resource() {
    let bed = start().await;
    let client = ses_client(&bed.ses.endpoint_url(), "eu-west-1").await;
    client
        .create_email_identity()
        .email_identity("example.com")
        .tags(tag("email.ops.dev/owner", "billing/yourcompany-com"))
        .send()
        .await
        .expect("create");
    let arn = "arn:aws:ses:eu-west-1:123456789012:identity/example.com";

    client
        .tag_resource()
        .resource_arn(arn)
        .tags(tag("team", "billing"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("tag");
    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("env")
        .send()
        .await
        .expect("untag");
    let listed = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("list tags");
    let mut tags: Vec<(String, String)> = listed
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            (
                "email.ops.dev/owner".to_string(),
                "billing/yourcompany-com".to_string()
            ),
            ("team".to_string(), "billing".to_string()),
        ]
    );
    let got = client
        .get_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect("get");
    assert_eq!(got.tags().len(), 2);

    let missing = "arn:aws:ses:eu-west-1:123456789012:identity/missing.com";
    let err = client
        .list_tags_for_resource()
        .resource_arn(missing)
        .send()
        .await
        .expect_err("nf");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_not_found_exception())
    );
    let err = client
        .tag_resource()
        .resource_arn("arn:aws:s3:::bucket")
        .tags(tag("a", "b"))
        .send()
        .await
        .expect_err("bad");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_bad_request_exception())
    );
}

#[tokio::test]
async fn dkim_key_length_and_account() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    let created = client
        .create_email_identity()
        .email_identity("example.com")
        .dkim_signing_attributes(
            DkimSigningAttributes::builder()
                .next_signing_key_length(DkimSigningKeyLength::Rsa1024Bit)
                .build(),
        )
        .send()
        .await
        .expect("create");
    let dkim = created.dkim_attributes().expect("dkim");
    assert_eq!(
        dkim.current_signing_key_length(),
        Some(&DkimSigningKeyLength::Rsa1024Bit)
    );

    let put = client
        .put_email_identity_dkim_signing_attributes()
        .email_identity("example.com")
        .signing_attributes_origin(aws_sdk_sesv2::types::DkimSigningAttributesOrigin::AwsSes)
        .signing_attributes(
            DkimSigningAttributes::builder()
                .next_signing_key_length(DkimSigningKeyLength::Rsa2048Bit)
                .build(),
        )
        .send()
        .await
        .expect("put dkim signing");
    assert_eq!(put.dkim_tokens().len(), 3);
    assert_eq!(put.signing_hosted_zone(), Some("dkim.amazonses.com"));
    let got = client
        .get_email_identity()
        .email_identity("example.com")
        .send()
        .await
        .expect("get");
    let dkim = got.dkim_attributes().expect("dkim");
    assert_eq!(
        dkim.next_signing_key_length(),
        Some(&DkimSigningKeyLength::Rsa2048Bit)
    );
    // The new length takes effect once SES sees the records.
    control
        .publish_dkim("example.com", dkim.tokens(), "dkim.amazonses.com")
        .await;
    eventually("key rotation", CONVERGE, || async {
        let got = client
            .get_email_identity()
            .email_identity("example.com")
            .send()
            .await
            .ok()?;
        (got.dkim_attributes()?.current_signing_key_length()? == &DkimSigningKeyLength::Rsa2048Bit)
            .then_some(())
    })
    .await;

    let account = client.get_account().send().await.expect("account");
    assert!(account.sending_enabled());
    assert!(account.production_access_enabled());
    let quota = account.send_quota().expect("quota");
    assert!(quota.max_send_rate() > 0.0);
    assert_eq!(quota.sent_last24_hours(), 0.0);
}

#[tokio::test]
async fn send_email_requires_a_verified_sender_and_calls_are_counted() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    let simple = hello();
    let to = Destination::builder()
        .to_addresses("someone@example.org")
        .build();

    let err = client
        .send_email()
        .from_email_address("billing@yourcompany.com")
        .destination(to.clone())
        .content(simple.clone())
        .send()
        .await
        .expect_err("unverified sender");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_message_rejected()),
        "{err:?}"
    );

    verify_domain(&client, &control, "yourcompany.com").await;

    let sent = client
        .send_email()
        .from_email_address("Billing <billing@yourcompany.com>")
        .destination(to)
        .content(simple)
        .send()
        .await
        .expect("simple send");
    assert!(sent.message_id().is_some_and(|id| !id.is_empty()));

    let raw = "From: Billing <billing@yourcompany.com>\r\nTo: a@example.org\r\nSubject: Raw hello\r\n\r\nbody\r\n";
    client
        .send_email()
        .content(
            EmailContent::builder()
                .raw(
                    RawMessage::builder()
                        .data(Blob::new(raw))
                        .build()
                        .expect("raw"),
                )
                .build(),
        )
        .send()
        .await
        .expect("raw send");
    let raw_other = "From: x@other.example\r\nTo: a@example.org\r\nSubject: nope\r\n\r\nbody\r\n";
    let err = client
        .send_email()
        .content(
            EmailContent::builder()
                .raw(
                    RawMessage::builder()
                        .data(Blob::new(raw_other))
                        .build()
                        .expect("raw"),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("raw from unverified domain");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_message_rejected())
    );

    let outbox = control.get("/ses/outbox").await;
    let sent: Vec<_> = outbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kind"] == "Sent")
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["subject"], "Raw hello");
    assert_eq!(sent[1]["to"][0], "a@example.org");
    let account = client.get_account().send().await.expect("account");
    assert_eq!(
        account.send_quota().expect("quota").sent_last24_hours(),
        2.0
    );

    let calls = control.get("/ses/calls").await;
    assert_eq!(calls["calls"]["SendEmail"]["Success"], 2);
    assert_eq!(calls["calls"]["SendEmail"]["MessageRejected"], 2);
    assert_eq!(calls["calls"]["CreateEmailIdentity"]["Success"], 1);
    assert!(
        calls["calls"]["GetEmailIdentity"]["Success"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
    let total: u64 = calls["calls"]
        .as_object()
        .expect("calls")
        .values()
        .flat_map(|o| o.as_object().expect("outcomes").values())
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(calls["total"].as_u64(), Some(total));
    let (status, _) = control
        .call(reqwest::Method::DELETE, "/ses/calls", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(control.get("/ses/calls").await["total"], 0);
}

/// Creates the domain identity `domain`, publishes its DKIM records and waits until SES lets it
/// send.
async fn verify_domain(client: &aws_sdk_sesv2::Client, control: &Control, domain: &str) {
    let created = client
        .create_email_identity()
        .email_identity(domain)
        .send()
        .await
        .expect("create");
    control
        .publish_dkim(
            domain,
            created.dkim_attributes().expect("dkim").tokens(),
            "dkim.amazonses.com",
        )
        .await;
    eventually("domain verified", CONVERGE, || async {
        let got = client
            .get_email_identity()
            .email_identity(domain)
            .send()
            .await
            .ok()?;
        got.verified_for_sending_status().then_some(())
    })
    .await;
}

/// A simple message for SendEmail.
fn hello() -> EmailContent {
    EmailContent::builder()
        .simple(
            Message::builder()
                .subject(Content::builder().data("Hello").build().expect("subject"))
                .body(
                    Body::builder()
                        .text(Content::builder().data("Hi").build().expect("text"))
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn the_sandbox_and_the_account_standing_rule_sending() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    verify_domain(&client, &control, "yourcompany.com").await;
    let send = |to: &'static [&'static str]| {
        let mut destination = Destination::builder();
        for t in to {
            destination = destination.to_addresses(*t);
        }
        client
            .send_email()
            .from_email_address("billing@yourcompany.com")
            .destination(destination.build())
            .content(hello())
            .send()
    };
    // Production access (the stand-in's default): any recipient.
    send(&["someone@example.org"]).await.expect("production");

    let (status, standing) = control
        .call(
            reqwest::Method::PUT,
            "/ses/account",
            Some(serde_json::json!({"region": "us-east-1", "productionAccessEnabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{standing}");
    let account = client.get_account().send().await.expect("account");
    assert!(!account.production_access_enabled());
    let quota = account.send_quota().expect("quota");
    assert_eq!(
        (quota.max24_hour_send(), quota.max_send_rate()),
        (200.0, 1.0)
    );
    assert_eq!(
        control.get("/ses/account?region=eu-west-1").await["productionAccessEnabled"],
        true,
        "another region keeps its own standing"
    );

    // The sandbox: an unverified recipient is refused, named; verified ones and the simulator
    // are accepted, and the simulator's outcome is recorded, not counted.
    let err = send(&["someone@example.org", "ops@yourcompany.com"])
        .await
        .expect_err("unverified recipient in the sandbox");
    let service = err.as_service_error().expect("service error");
    assert!(service.is_message_rejected(), "{err:?}");
    let text = aws_sdk_sesv2::error::ProvideErrorMetadata::message(service).unwrap_or_default();
    assert!(
        text.contains("failed the check in region US-EAST-1: someone@example.org")
            && !text.contains("ops@yourcompany.com"),
        "{text}"
    );
    send(&["ops@yourcompany.com", "bounce+run1@simulator.amazonses.com"])
        .await
        .expect("verified domain and the simulator");
    send(&["complaint@simulator.amazonses.com"])
        .await
        .expect("simulator only");
    let outbox = control.get("/ses/outbox").await;
    let sent: Vec<&serde_json::Value> = outbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kind"] == "Sent")
        .collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[1]["simulated"],
        serde_json::json!([{"recipient": "bounce+run1@simulator.amazonses.com", "outcome": "Bounce"}])
    );
    assert_eq!(sent[2]["simulated"][0]["outcome"], "Complaint");
    let account = client.get_account().send().await.expect("account");
    assert_eq!(
        account.send_quota().expect("quota").sent_last24_hours(),
        2.0,
        "the simulator-only message does not count"
    );

    // Paused, then shut down: SES's own error codes.
    for (change, check) in [
        (
            serde_json::json!({"region": "us-east-1", "sendingEnabled": false}),
            "SendingPausedException",
        ),
        (
            serde_json::json!({"region": "us-east-1", "sendingEnabled": true, "enforcementStatus": "SHUTDOWN"}),
            "AccountSuspendedException",
        ),
    ] {
        let (status, _) = control
            .call(reqwest::Method::PUT, "/ses/account", Some(change))
            .await;
        assert_eq!(status, 200);
        let err = send(&["success@simulator.amazonses.com"])
            .await
            .expect_err("not sending");
        assert_eq!(
            aws_sdk_sesv2::error::ProvideErrorMetadata::code(&err),
            Some(check),
            "{err:?}"
        );
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    }
    let account = client.get_account().send().await.expect("account");
    assert_eq!(
        account.enforcement_status(),
        Some("SHUTDOWN"),
        "GetAccount reports it"
    );
    let (status, body) = control
        .call(
            reqwest::Method::PUT,
            "/ses/account",
            Some(serde_json::json!({"region": "us-east-1", "enforcementStatus": "GONE"})),
        )
        .await;
    assert_eq!(status, 422, "an unknown status is refused: {body}");
}
