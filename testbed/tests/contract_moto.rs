//! Contract test: the same aws-sdk-sesv2 calls against moto (a third-party SES v2 server) and
//! against the stand-in must produce the same observations, and for the shapes the operator
//! reads, every field moto returns must exist in the stand-in's answer with the same JSON type.
//! This keeps the stand-in from drifting from the real wire format unnoticed.
//!
//! moto is started here on an ephemeral port unless `MOTO_ENDPOINT` points at a running one:
//! `MOTO_SERVER` (a command), else the venv `.ci/setup-moto.sh` creates (`MOTO_VENV`, default
//! `~/.cache/email-operator/moto-venv`), else `moto_server` / `python3 -m moto.server` on PATH.
//! It needs moto >= 5.2.5 with botocore >= 1.44 (the SDK's `POST /v2/email/list-identities`). Set `TESTBED_SKIP_MOTO=1` to skip where it cannot be
//! installed.
//!
//! Known moto gaps, deliberately not compared: moto verifies identities at once and returns no
//! DKIM tokens, accepts duplicate creates, answers 200 to deleting an unknown identity, leaves
//! creation-time tags out of ListTagsForResource, and has no MAIL FROM / DKIM-attribute puts,
//! GetAccount send quota or faults.

mod ses_support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, Tag};
use serde_json::{Value, json};
use ses_support::{Control, ses_client, start};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A moto server for the duration of the test (killed on drop).
struct Moto {
    endpoint: String,
    _child: Option<Child>,
}

async fn start_moto() -> Option<Moto> {
    if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
        return Some(Moto {
            endpoint,
            _child: None,
        });
    }
    if std::env::var("TESTBED_SKIP_MOTO").is_ok_and(|v| v == "1") {
        eprintln!("TESTBED_SKIP_MOTO=1: skipping the moto contract test");
        return None;
    }
    let candidates: Vec<Vec<String>> = match std::env::var("MOTO_SERVER") {
        Ok(command) => vec![command.split_whitespace().map(String::from).collect()],
        Err(_) => {
            // Where .ci/setup-moto.sh installs it, then whatever is on PATH.
            let venv = std::env::var("MOTO_VENV").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/email-operator/moto-venv",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            vec![
                vec![format!("{venv}/bin/moto_server")],
                vec!["moto_server".into()],
                vec!["python3".into(), "-m".into(), "moto.server".into()],
            ]
        }
    };
    for command in candidates {
        let Some((program, args)) = command.split_first() else {
            continue;
        };
        let spawned = Command::new(program)
            .args(args)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let Ok(mut child) = spawned else { continue };
        // Werkzeug announces "Running on http://127.0.0.1:PORT" on stderr (or stdout).
        let stderr = child.stderr.take().expect("stderr piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            Box::new(stderr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(stdout),
        ] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = rx.recv().await {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let url: String = line[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    return Some(url.trim_end_matches('/').to_string());
                }
            }
            None
        })
        .await;
        if let Ok(Some(endpoint)) = found {
            // Keep draining output so moto never blocks on a full pipe.
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            return Some(Moto {
                endpoint,
                _child: Some(child),
            });
        }
    }
    panic!("moto is not installed: run .ci/setup-moto.sh (or set TESTBED_SKIP_MOTO=1 to skip)");
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

fn sorted_tags(tags: &[Tag]) -> Vec<(String, String)> {
    let mut out: Vec<_> = tags
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    out.sort();
    out
}

fn without_create_tags(tags: Vec<(String, String)>) -> Vec<(String, String)> {
    tags.into_iter()
        .filter(|(key, _)| key != "email.ops.dev/owner")
        .collect()
}

/// What one run of the scenario observed (everything both servers should agree on).
#[derive(Debug, PartialEq)]
struct Observed {
    created_domain_type: Option<String>,
    created_email_type: Option<String>,
    created_has_dkim_attributes: bool,
    got_domain_type: Option<String>,
    got_domain_has_status: bool,
    got_domain_tags: Vec<(String, String)>,
    listed: BTreeSet<(String, String)>,
    tags_after_tag: Vec<(String, String)>,
    tags_after_untag: Vec<(String, String)>,
    unknown_is_not_found: bool,
    deleted_is_not_found: bool,
    sent_message_id: bool,
}

async fn scenario<F, Fut>(client: &aws_sdk_sesv2::Client, verify_email: F) -> Observed
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let domain = "contract.example.com";
    let email = "sender@contract-mail.example.com";
    let created = client
        .create_email_identity()
        .email_identity(domain)
        .tags(tag("email.ops.dev/owner", "billing/contract"))
        .send()
        .await
        .expect("create domain");
    let created_email = client
        .create_email_identity()
        .email_identity(email)
        .send()
        .await
        .expect("create email");
    verify_email(email.to_string()).await;

    let got = client
        .get_email_identity()
        .email_identity(domain)
        .send()
        .await
        .expect("get");
    let mut listed = BTreeSet::new();
    let mut pager = client
        .list_email_identities()
        .into_paginator()
        .page_size(100)
        .send();
    while let Some(page) = pager.next().await {
        for info in page.expect("list page").email_identities() {
            listed.insert((
                info.identity_name().unwrap_or_default().to_string(),
                info.identity_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
            ));
        }
    }

    let arn = format!("arn:aws:ses:us-east-1:123456789012:identity/{domain}");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("team", "billing"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .expect("tag");
    let after_tag = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags");
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("env")
        .send()
        .await
        .expect("untag");
    let after_untag = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags");

    let unknown = client
        .get_email_identity()
        .email_identity("unknown.example.com")
        .send()
        .await;
    let sent = client
        .send_email()
        .from_email_address(email)
        .destination(
            Destination::builder()
                .to_addresses("someone@example.org")
                .build(),
        )
        .content(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(
                            Content::builder()
                                .data("contract")
                                .build()
                                .expect("subject"),
                        )
                        .body(
                            Body::builder()
                                .text(Content::builder().data("hello").build().expect("text"))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("send from a verified address");

    client
        .delete_email_identity()
        .email_identity(email)
        .send()
        .await
        .expect("delete");
    let deleted = client
        .get_email_identity()
        .email_identity(email)
        .send()
        .await;

    Observed {
        created_domain_type: created.identity_type().map(|t| t.as_str().to_string()),
        created_email_type: created_email
            .identity_type()
            .map(|t| t.as_str().to_string()),
        created_has_dkim_attributes: created.dkim_attributes().is_some(),
        got_domain_type: got.identity_type().map(|t| t.as_str().to_string()),
        got_domain_has_status: got.verification_status().is_some(),
        got_domain_tags: sorted_tags(got.tags()),
        listed,
        // moto's ListTagsForResource omits tags given at creation (SES includes them; the
        // stand-in does, see ses_api.rs): compare the TagResource-managed keys only.
        tags_after_tag: without_create_tags(sorted_tags(after_tag.tags())),
        tags_after_untag: without_create_tags(sorted_tags(after_untag.tags())),
        unknown_is_not_found: unknown.err().is_some_and(|e| {
            e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception())
        }),
        deleted_is_not_found: deleted.err().is_some_and(|e| {
            e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception())
        }),
        sent_message_id: sent.message_id().is_some_and(|id| !id.is_empty()),
    }
}

/// Raw JSON of a call, signed-looking enough for both servers (neither checks signatures).
async fn raw(endpoint: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new()
        .request(method, format!("{endpoint}{path}"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261126/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0",
        );
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("raw request");
    let text = response.text().await.expect("raw body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every non-null field of `reference` (moto) must exist in `ours` with the same JSON type.
fn shape_covers(reference: &Value, ours: &Value, path: &str, problems: &mut Vec<String>) {
    match (reference, ours) {
        (Value::Object(reference), Value::Object(ours)) => {
            for (key, value) in reference {
                if value.is_null() {
                    continue;
                }
                match ours.get(key) {
                    None => problems.push(format!("{path}.{key}: missing (moto: {value})")),
                    Some(mine) => shape_covers(value, mine, &format!("{path}.{key}"), problems),
                }
            }
        }
        (Value::Array(reference), Value::Array(ours)) => {
            if let (Some(first), Some(mine)) = (reference.first(), ours.first()) {
                shape_covers(first, mine, &format!("{path}[0]"), problems);
            }
        }
        (reference, ours) if json_type(reference) != json_type(ours) => problems.push(format!(
            "{path}: moto has {} ({reference}), stand-in has {} ({ours})",
            json_type(reference),
            json_type(ours)
        )),
        _ => {}
    }
}

#[tokio::test]
async fn stand_in_and_moto_agree_on_what_the_operator_reads() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let bed = start().await;
    let control = Control::new(bed.control.url());

    let moto_client = ses_client(&moto.endpoint, "us-east-1").await;
    let ours_client = ses_client(&bed.ses.endpoint_url(), "us-east-1").await;

    // moto verifies at once; on the stand-in a person clicks the link.
    let from_moto = scenario(&moto_client, |_| async {}).await;
    let from_ours = scenario(&ours_client, |email| {
        let control = &control;
        async move {
            let (status, body) = control
                .call(
                    reqwest::Method::POST,
                    "/ses/confirm-email",
                    Some(json!({ "identity": email })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    })
    .await;
    assert_eq!(from_ours, from_moto);
    assert!(
        from_ours.unknown_is_not_found
            && from_ours.deleted_is_not_found
            && from_ours.sent_message_id
    );
    assert_eq!(from_ours.created_domain_type.as_deref(), Some("DOMAIN"));

    // Field-level shape check on the responses the operator reads.
    let calls: [(reqwest::Method, &str, Option<Value>); 3] = [
        (
            reqwest::Method::GET,
            "/v2/email/identities/contract.example.com",
            None,
        ),
        (
            reqwest::Method::POST,
            "/v2/email/list-identities",
            Some(json!({ "PageSize": 100 })),
        ),
        (
            reqwest::Method::GET,
            "/v2/email/tags?ResourceArn=arn%3Aaws%3Ases%3Aus-east-1%3A123456789012%3Aidentity%2Fcontract.example.com",
            None,
        ),
    ];
    let mut problems = Vec::new();
    for (method, path, body) in calls {
        let reference = raw(&moto.endpoint, method.clone(), path, body.clone()).await;
        let ours = raw(&bed.ses.endpoint_url(), method, path, body).await;
        shape_covers(&reference, &ours, path, &mut problems);
    }
    // And a fresh create through raw JSON: a domain identity's create response.
    let create = json!({ "EmailIdentity": "shape.example.com" });
    let reference = raw(
        &moto.endpoint,
        reqwest::Method::POST,
        "/v2/email/identities",
        Some(create.clone()),
    )
    .await;
    let ours = raw(
        &bed.ses.endpoint_url(),
        reqwest::Method::POST,
        "/v2/email/identities",
        Some(create),
    )
    .await;
    shape_covers(&reference, &ours, "CreateEmailIdentity", &mut problems);
    assert!(
        problems.is_empty(),
        "stand-in drifted from moto's wire shapes:\n{}",
        problems.join("\n")
    );
}
