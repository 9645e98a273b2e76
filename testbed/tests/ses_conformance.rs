//! The SES and STS stand-ins refuse what the real services refuse, through the real AWS SDKs:
//! each documented constraint accepted at its limit and refused past it with SES's error code,
//! HTTP status and message. The conformance table (docs/testing/conformance.md) names these tests.

mod ses_support;

use std::time::{Duration, Instant};

use aws_sdk_sesv2::types::{DkimSigningAttributes, DkimSigningKeyLength, Tag};
use serde_json::json;
use ses_support::{Control, ses_client, start, start_as_shipped};

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

/// The error code and HTTP status of a failed SDK call.
fn code_and_status<E>(
    err: &aws_sdk_sesv2::error::SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>,
) -> (String, u16)
where
    E: aws_sdk_sesv2::error::ProvideErrorMetadata,
{
    let code = aws_sdk_sesv2::error::ProvideErrorMetadata::code(err)
        .unwrap_or_default()
        .to_string();
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    (code, status)
}

fn message<E: aws_sdk_sesv2::error::ProvideErrorMetadata>(err: &E) -> String {
    err.message().unwrap_or_default().to_string()
}

#[tokio::test]
async fn tags_at_their_limits_are_accepted_and_past_them_refused() {
    let bed = start().await;
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    let create = |name: &str, tags: Vec<Tag>| {
        client
            .create_email_identity()
            .email_identity(name)
            .set_tags(Some(tags))
            .send()
    };
    // At the limits: 50 tags, a 128-character key, a 256-character value, every allowed symbol.
    let mut fifty: Vec<Tag> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
    fifty.push(tag(&"k".repeat(128), &"v:/=+-_. é".repeat(25)[..256]));
    create("at-limits.example.com", fifty.clone())
        .await
        .expect("50 tags at their length limits");

    // Past them, each refused with BadRequestException and SES's message.
    let mut fifty_one = fifty.clone();
    fifty_one.push(tag("one-too-many", "v"));
    let cases: Vec<(Vec<Tag>, &str)> = vec![
        (
            fifty_one,
            "Maximum of 50 user tags are allowed per resource",
        ),
        (vec![tag(&"k".repeat(129), "v")], "'tags.1.member.key'"),
        (vec![tag("k", &"v".repeat(257))], "'tags.1.member.value'"),
        (
            vec![tag("email.ops.dev/owner", "Delete;cluster/ns/name")],
            "Tags can only contain letters, numbers, spaces",
        ),
        (
            vec![tag("aws:cloudformation:stack-name", "s")],
            "system tags",
        ),
        (vec![tag("k", "a"), tag("k", "b")], "same key"),
    ];
    for (i, (tags, expected)) in cases.into_iter().enumerate() {
        let err = create(&format!("past-{i}.example.com"), tags)
            .await
            .expect_err("refused");
        let service = err.as_service_error().expect("a service error");
        assert!(service.is_bad_request_exception(), "{err:?}");
        assert!(message(service).contains(expected), "{}", message(service));
    }
    let control = Control::new(bed.control.url());
    let names: Vec<String> = control.get("/ses/identities").await["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        ["at-limits.example.com"],
        "a refused create creates nothing"
    );

    // TagResource counts what the identity already has: the 51st key is refused, a new value
    // for an existing key is not.
    let arn = "arn:aws:ses:us-east-1:123456789012:identity/at-limits.example.com";
    client
        .tag_resource()
        .resource_arn(arn)
        .tags(tag("k0", "new value"))
        .send()
        .await
        .expect("replacing a value");
    let err = client
        .tag_resource()
        .resource_arn(arn)
        .tags(tag("k-51", "v"))
        .send()
        .await
        .expect_err("51st");
    let service = err.as_service_error().expect("a service error");
    assert!(
        message(service).contains("or delete existing tags and retry"),
        "{}",
        message(service)
    );
}

#[tokio::test]
async fn one_management_request_a_second_per_account_and_region() {
    let bed = start_as_shipped().await;
    let us = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    let eu = ses_client(&bed.ses.endpoint_url(), "eu-west-1").await;
    us.list_email_identities().send().await.expect("first");
    let err = us
        .list_email_identities()
        .send()
        .await
        .expect_err("a second request within the second");
    let service = err.as_service_error().expect("service error");
    assert!(service.is_too_many_requests_exception(), "{err:?}");
    assert_eq!(
        code_and_status(&err),
        ("TooManyRequestsException".into(), 429)
    );
    // Another region has its own allowance; sending is not limited by it.
    eu.list_email_identities().send().await.expect("eu-west-1");
    // A second after the first (the refused one took no token), it is served again.
    let started = Instant::now();
    loop {
        match us.get_account().send().await {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("still throttled after 2 s: {e:?}"),
        }
    }
    let calls = Control::new(bed.control.url()).get("/ses/calls").await;
    assert!(
        calls["calls"]["ListEmailIdentities"]["TooManyRequestsException"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{calls}"
    );
}

#[tokio::test]
async fn the_identity_quota_is_a_limit_not_throttling() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let (status, _) = control
        .call(
            reqwest::Method::PUT,
            "/ses/limits",
            Some(json!({"requestsPerSecond": null, "maxIdentitiesPerRegion": 2})),
        )
        .await;
    assert_eq!(status, 200);
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    for name in ["a.example.com", "b.example.com"] {
        client
            .create_email_identity()
            .email_identity(name)
            .send()
            .await
            .expect("within the quota");
    }
    let err = client
        .create_email_identity()
        .email_identity("c.example.com")
        .send()
        .await
        .expect_err("past the quota");
    let service = err.as_service_error().expect("service error");
    assert!(service.is_limit_exceeded_exception(), "{err:?}");
    assert!(!service.is_too_many_requests_exception());
    // Per region: another region still has room.
    ses_client(&bed.ses.endpoint_url(), "eu-west-1")
        .await
        .create_email_identity()
        .email_identity("c.example.com")
        .send()
        .await
        .expect("another region");
}

#[tokio::test]
async fn email_identities_are_case_sensitive_and_domains_are_not() {
    let bed = start().await;
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    for name in ["Sender@example.com", "sender@example.com", "Example.org"] {
        client
            .create_email_identity()
            .email_identity(name)
            .send()
            .await
            .expect(name);
    }
    let err = client
        .create_email_identity()
        .email_identity("example.ORG")
        .send()
        .await
        .expect_err("the same domain");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_already_exists_exception())
    );
    let got = client
        .get_email_identity()
        .email_identity("sender@EXAMPLE.com")
        .send()
        .await;
    assert!(
        got.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_not_found_exception()),
        "an address differing in case is another identity: {got:?}"
    );
}

#[tokio::test]
async fn the_listing_says_whether_an_identity_may_send() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    let created = client
        .create_email_identity()
        .email_identity("listed.example.com")
        .send()
        .await
        .expect("create");
    let sending = || async {
        client
            .list_email_identities()
            .send()
            .await
            .expect("list")
            .email_identities()
            .iter()
            .find(|i| i.identity_name() == Some("listed.example.com"))
            .map(|i| i.sending_enabled())
    };
    // SendingEnabled (SES v2 API Reference, IdentityInfo): not while it is pending.
    assert_eq!(sending().await, Some(false));
    let tokens = created
        .dkim_attributes()
        .map(|d| d.tokens().to_vec())
        .unwrap_or_default();
    control
        .publish_dkim("listed.example.com", &tokens, "dkim.amazonses.com")
        .await;
    ses_support::eventually("listed as able to send", ses_support::CONVERGE, || async {
        (sending().await == Some(true)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_dkim_key_length_changes_at_most_once_a_day() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;
    client
        .create_email_identity()
        .email_identity("keys.example.com")
        .send()
        .await
        .expect("create");
    let put = |length: DkimSigningKeyLength| {
        client
            .put_email_identity_dkim_signing_attributes()
            .email_identity("keys.example.com")
            .signing_attributes_origin(aws_sdk_sesv2::types::DkimSigningAttributesOrigin::AwsSes)
            .signing_attributes(
                DkimSigningAttributes::builder()
                    .next_signing_key_length(length)
                    .build(),
            )
            .send()
    };
    put(DkimSigningKeyLength::Rsa1024Bit)
        .await
        .expect("the first change");
    // Asking again for what is already next is no change.
    put(DkimSigningKeyLength::Rsa1024Bit)
        .await
        .expect("the same length again");
    control.advance_hours(23).await;
    let err = put(DkimSigningKeyLength::Rsa2048Bit)
        .await
        .expect_err("a second change within 24 h");
    let service = err.as_service_error().expect("service error");
    assert!(service.is_bad_request_exception(), "{err:?}");
    assert!(message(service).contains("once"), "{}", message(service));
    control.advance_hours(1).await;
    put(DkimSigningKeyLength::Rsa2048Bit)
        .await
        .expect("24 h after the last change");
}

#[tokio::test]
async fn sts_names_the_account_and_hands_out_roles_of_it() {
    let bed = start().await;
    ses_support::install_crypto();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(email_operator::ses::aws::https())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(bed.sts.endpoint_url())
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .load()
        .await;
    let sts = aws_sdk_sts::Client::new(&conf);
    let me = sts.get_caller_identity().send().await.expect("caller");
    assert_eq!(me.account(), Some("123456789012"));
    let role = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/ses-identities")
        .role_session_name("email-operator")
        .external_id("billing")
        .send()
        .await
        .expect("a role of the account");
    assert!(role.credentials().is_some());
    let err = sts
        .assume_role()
        .role_arn("arn:aws:iam::210987654321:role/elsewhere")
        .role_session_name("email-operator")
        .send()
        .await
        .expect_err("a role of another account");
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("AccessDenied")
    );
    let err = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/ses-identities")
        .role_session_name("a")
        .send()
        .await
        .expect_err("a one-character session name");
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("ValidationError")
    );
    let calls = bed.sts.state().assumed.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].external_id.as_deref(), Some("billing"));
}
