//! SES lifecycle through the real aws-sdk-sesv2 client: DKIM verification driven by records
//! published via the control API and served by the test bed's DNS server, and the 72 h / 24 h
//! windows driven by the stand-in clock.

mod ses_support;

use aws_sdk_sesv2::types::{DkimStatus, IdentityType, MailFromDomainStatus, VerificationStatus};
use ses_support::{CONVERGE, Control, eventually, ses_client, start};

async fn status_of(client: &aws_sdk_sesv2::Client, identity: &str) -> VerificationStatus {
    client
        .get_email_identity()
        .email_identity(identity)
        .send()
        .await
        .expect("get identity")
        .verification_status()
        .cloned()
        .expect("verification status")
}

async fn wait_for(client: &aws_sdk_sesv2::Client, identity: &str, wanted: VerificationStatus) {
    eventually(
        &format!("{identity} to become {wanted:?}"),
        CONVERGE,
        || async { (status_of(client, identity).await == wanted).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn domain_goes_pending_success_temporary_failure_success_failed() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;

    let created = client
        .create_email_identity()
        .email_identity("yourcompany.com")
        .send()
        .await
        .expect("create");
    assert_eq!(created.identity_type(), Some(&IdentityType::Domain));
    assert!(!created.verified_for_sending_status());
    let dkim = created.dkim_attributes().expect("dkim attributes");
    assert_eq!(dkim.status(), Some(&DkimStatus::Pending));
    let tokens = dkim.tokens().to_vec();
    assert_eq!(tokens.len(), 3);
    assert_eq!(dkim.signing_hosted_zone(), Some("dkim.amazonses.com"));

    // Nothing published: stays Pending, with SES's error type.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let got = client
        .get_email_identity()
        .email_identity("yourcompany.com")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.verification_status(),
        Some(&VerificationStatus::Pending)
    );
    assert_eq!(
        got.verification_info()
            .and_then(|i| i.error_type())
            .map(|e| e.as_str()),
        Some("HOST_NOT_FOUND")
    );

    // Two of three records are not enough.
    for token in &tokens[..2] {
        control
            .add_record(
                &format!("{token}._domainkey.yourcompany.com"),
                "CNAME",
                &format!("{token}.dkim.amazonses.com"),
            )
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        status_of(&client, "yourcompany.com").await,
        VerificationStatus::Pending
    );

    control
        .publish_dkim("yourcompany.com", &tokens, "dkim.amazonses.com")
        .await;
    wait_for(&client, "yourcompany.com", VerificationStatus::Success).await;
    let got = client
        .get_email_identity()
        .email_identity("yourcompany.com")
        .send()
        .await
        .expect("get");
    assert!(got.verified_for_sending_status());
    assert_eq!(
        got.dkim_attributes().and_then(|d| d.status()),
        Some(&DkimStatus::Success)
    );
    assert!(
        got.verification_info()
            .and_then(|i| i.last_success_timestamp())
            .is_some()
    );

    // A record disappears: TemporaryFailure; restored: Success again.
    let first = format!("{}._domainkey.yourcompany.com", tokens[0]);
    control.remove_record(&first, "CNAME").await;
    wait_for(
        &client,
        "yourcompany.com",
        VerificationStatus::TemporaryFailure,
    )
    .await;
    control
        .add_record(
            &first,
            "CNAME",
            &format!("{}.dkim.amazonses.com", tokens[0]),
        )
        .await;
    wait_for(&client, "yourcompany.com", VerificationStatus::Success).await;

    // Gone again and not restored within 72 h: Failed.
    control.remove_record(&first, "CNAME").await;
    wait_for(
        &client,
        "yourcompany.com",
        VerificationStatus::TemporaryFailure,
    )
    .await;
    control.advance_hours(71).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        status_of(&client, "yourcompany.com").await,
        VerificationStatus::TemporaryFailure
    );
    control.advance_hours(1).await;
    wait_for(&client, "yourcompany.com", VerificationStatus::Failed).await;
    let got = client
        .get_email_identity()
        .email_identity("yourcompany.com")
        .send()
        .await
        .expect("get");
    assert!(!got.verified_for_sending_status());
}

#[tokio::test]
async fn domain_without_records_fails_after_72_hours() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    client
        .create_email_identity()
        .email_identity("late.example.com")
        .send()
        .await
        .expect("create");

    control.advance_hours(71).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        status_of(&client, "late.example.com").await,
        VerificationStatus::Pending
    );
    control.advance_hours(1).await;
    wait_for(&client, "late.example.com", VerificationStatus::Failed).await;
}

#[tokio::test]
async fn wrong_cname_target_is_invalid_value_and_regions_have_their_own_zone() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let frankfurt = ses_client(&bed.ses.endpoint_url(), "eu-central-1").await;
    let virginia = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;

    let created = frankfurt
        .create_email_identity()
        .email_identity("example.de")
        .send()
        .await
        .expect("create");
    let dkim = created.dkim_attributes().expect("dkim");
    assert_eq!(
        dkim.signing_hosted_zone(),
        Some("dkim.eu-central-1.amazonses.com")
    );
    let tokens = dkim.tokens().to_vec();

    // Records pointing at the us-east-1 zone (a hard-coded dkim.amazonses.com) do not verify.
    control
        .publish_dkim("example.de", &tokens, "dkim.amazonses.com")
        .await;
    eventually("INVALID_VALUE", CONVERGE, || async {
        let got = frankfurt
            .get_email_identity()
            .email_identity("example.de")
            .send()
            .await
            .ok()?;
        (got.verification_info()?.error_type()?.as_str() == "INVALID_VALUE").then_some(())
    })
    .await;
    assert_eq!(
        status_of(&frankfurt, "example.de").await,
        VerificationStatus::Pending
    );

    control
        .publish_dkim("example.de", &tokens, "dkim.eu-central-1.amazonses.com")
        .await;
    wait_for(&frankfurt, "example.de", VerificationStatus::Success).await;

    // Identities are regional.
    let err = virginia
        .get_email_identity()
        .email_identity("example.de")
        .send()
        .await
        .expect_err("not in us-east-1");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_not_found_exception())
    );
}

#[tokio::test]
async fn email_identity_confirm_expiry_and_domain_coverage() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;

    let created = client
        .create_email_identity()
        .email_identity("noreply@yourcompany.com")
        .send()
        .await
        .expect("create email");
    assert_eq!(created.identity_type(), Some(&IdentityType::EmailAddress));
    assert!(!created.verified_for_sending_status());

    // SES "sent" a verification message.
    let outbox = control.get("/ses/outbox").await;
    let messages = outbox["messages"].as_array().expect("messages");
    let verification = messages
        .iter()
        .find(|m| m["kind"] == "Verification" && m["identity"] == "noreply@yourcompany.com")
        .expect("verification message");
    assert_eq!(verification["to"][0], "noreply@yourcompany.com");
    assert!(
        verification["link"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://"))
    );

    // Clicking the link verifies it.
    let (status, body) = control
        .call(
            reqwest::Method::POST,
            "/ses/confirm-email",
            Some(serde_json::json!({"identity": "noreply@yourcompany.com"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        status_of(&client, "noreply@yourcompany.com").await,
        VerificationStatus::Success
    );
    let got = client
        .get_email_identity()
        .email_identity("noreply@yourcompany.com")
        .send()
        .await
        .expect("get");
    assert!(got.verified_for_sending_status());

    // An unconfirmed link expires after 24 h and can no longer be used.
    client
        .create_email_identity()
        .email_identity("late@yourcompany.com")
        .send()
        .await
        .expect("create");
    control.advance_hours(23).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        status_of(&client, "late@yourcompany.com").await,
        VerificationStatus::Pending
    );
    control.advance_hours(1).await;
    wait_for(&client, "late@yourcompany.com", VerificationStatus::Failed).await;
    let (status, _) = control
        .call(
            reqwest::Method::POST,
            "/ses/confirm-email",
            Some(serde_json::json!({"identity": "late@yourcompany.com"})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = control
        .call(
            reqwest::Method::POST,
            "/ses/confirm-email",
            Some(serde_json::json!({"identity": "nobody@yourcompany.com"})),
        )
        .await;
    assert_eq!(status, 404);

    // An email identity under a verified domain (or parent domain) is verified for sending,
    // even though its own verification is still pending.
    client
        .create_email_identity()
        .email_identity("billing@en.example.org")
        .send()
        .await
        .expect("create");
    let domain = client
        .create_email_identity()
        .email_identity("example.org")
        .send()
        .await
        .expect("create domain");
    let tokens = domain.dkim_attributes().expect("dkim").tokens().to_vec();
    control
        .publish_dkim("example.org", &tokens, "dkim.amazonses.com")
        .await;
    wait_for(&client, "example.org", VerificationStatus::Success).await;
    let got = client
        .get_email_identity()
        .email_identity("billing@en.example.org")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.verification_status(),
        Some(&VerificationStatus::Pending)
    );
    assert!(got.verified_for_sending_status());
}

#[tokio::test]
async fn custom_mail_from_is_verified_by_its_mx_record() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    client
        .create_email_identity()
        .email_identity("example.net")
        .send()
        .await
        .expect("create");

    let err = client
        .put_email_identity_mail_from_attributes()
        .email_identity("example.net")
        .mail_from_domain("bounce.example.com")
        .send()
        .await
        .expect_err("not a subdomain");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_bad_request_exception())
    );

    client
        .put_email_identity_mail_from_attributes()
        .email_identity("example.net")
        .mail_from_domain("bounce.example.net")
        .send()
        .await
        .expect("put mail from");
    let mail_from_status = || async {
        client
            .get_email_identity()
            .email_identity("example.net")
            .send()
            .await
            .ok()?
            .mail_from_attributes()
            .map(|m| m.mail_from_domain_status().clone())
    };
    assert_eq!(
        mail_from_status().await,
        Some(MailFromDomainStatus::Pending)
    );
    control
        .add_record(
            "bounce.example.net",
            "MX",
            "10 feedback-smtp.us-east-1.amazonses.com",
        )
        .await;
    eventually("MAIL FROM success", CONVERGE, || async {
        (mail_from_status().await == Some(MailFromDomainStatus::Success)).then_some(())
    })
    .await;
    // "FAILED – Amazon SES can't find the required MX record, or the record no longer
    // exists" (SES v2 API Reference, MailFromDomainStatus): a removed record fails at once.
    control.remove_record("bounce.example.net", "MX").await;
    eventually("MAIL FROM failed", CONVERGE, || async {
        (mail_from_status().await == Some(MailFromDomainStatus::Failed)).then_some(())
    })
    .await;
}
