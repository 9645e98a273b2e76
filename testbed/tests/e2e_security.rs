//! No tenant reaches past its namespace, end to end: the real `email-operator run` under the
//! chart's RBAC, at `RUST_LOG=debug` for every target, and each tenant a ServiceAccount bound
//! only to `edit` in its namespace.
//!
//! * adopting an SES identity made outside the operator is refused without a policy grant, the
//!   identity, its tags and attributes unchanged;
//! * a `roleArn` no policy grants is refused before any AssumeRole call; a granted one is
//!   assumed with the namespace's external id and session tags;
//! * an ExternalSmtp host on loopback, the metadata address or a cluster service address is
//!   refused without a connection attempt, while an internal relay the platform allows works;
//! * a token endpoint streaming without end and an SMTP server that never ends a line leave the
//!   operator's memory bounded (measured) and another tenant's EmailSettings tested on time;
//! * nothing secret — passwords, client secrets, SMTP credentials plain or in base64 — is in
//!   the operator's log.

mod e2e;
#[path = "../../tests/support/mod.rs"]
mod support;

use base64::Engine;
use e2e::chart::NAMESPACE as NS;
use e2e::tenants::{platform, tenant_apply, tenant_client};
use e2e::*;
use email_operator::crd::{EmailSettings, SenderPolicy};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SES_ACCESS_KEY_ID: &str = "AKIAE2ESECURITY00001";
const SES_SECRET_KEY: &str = "e2e/SecuritySecretAccessKey+0123456789abcd";
const CLIENT_SECRET: &str = "e2e-client-s3cret-never-logged";

/// The operator's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn wait_ready(
    bed: &Bed,
    ns: &str,
    status: &str,
    reason: &str,
    within: Duration,
) -> EmailSettings {
    eventually(
        &format!("{ns}/notifications Ready={status} {reason}"),
        within,
        || get_es(bed, ns, "notifications"),
        |es| condition_of(es.as_ref(), "Ready").is_some_and(|(s, r, _)| s == status && r == reason),
    )
    .await
    .expect("exists")
}

/// A tenant's password Secret and an EmailSettings that logs in to the relay with it.
async fn relay_user(client: &kube::Client, ns: &str, port: u16) {
    tenant_apply(
        client,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "smtp", "namespace": ns},
                "stringData": {"password": support::PASSWORD}}),
    )
    .await
    .expect("applies");
    let auth = json!({"authentication": "UsernamePassword", "username": support::USER,
                      "passwordSecretRef": {"name": "smtp", "key": "password"}});
    tenant_apply(client, &external(ns, "127.0.0.1", port, auth))
        .await
        .expect("applies");
}

fn external(ns: &str, host: &str, port: u16, auth: Value) -> Value {
    let mut smtp = json!({"host": host, "port": port, "startTls": false});
    for (k, v) in auth.as_object().expect("auth").iter() {
        smtp[k] = v.clone();
    }
    json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
           "metadata": {"name": "notifications", "namespace": ns},
           "spec": {"from": format!("app@{ns}.example"), "delivery": "ExternalSmtp", "externalSmtp": smtp}})
}

#[tokio::test]
async fn no_tenant_reaches_past_its_namespace() {
    let Some((mut bed, _, kubeconfig)) = platform(&[], &[]).await else {
        return;
    };
    // Real servers: an internal relay the platform allows, and two hostile ones.
    let Some(relay) = support::smtp_server("plain-auth", &[]) else {
        return;
    };
    let Some(no_newline) = support::smtp_server("no-newline", &[]) else {
        return;
    };
    let Some(endless) = support::smtp_server("endless-https", &[]) else {
        return;
    };
    // A listener on loopback that counts connection attempts (none may come).
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.set_nonblocking(true).expect("nonblocking");
    let probe_port = probe.local_addr().expect("addr").port();

    // An identity made by hand in SES, before the operator.
    let ses_sdk = ses_sdk(&bed);
    ses_sdk
        .create_email_identity()
        .email_identity("corp.example")
        .tags(
            aws_sdk_sesv2::types::Tag::builder()
                .key("owner")
                .value("it-department")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("the hand-made identity");
    let before = ses_state(&bed).await;

    // Tenants' domains are theirs by policy (no adoption, no roles granted).
    bed.apply::<SenderPolicy>(
        NS,
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
               "metadata": {"name": "teams", "namespace": NS},
               "spec": {"namespaces": ["mallory", "billing", "relay-users"],
                        "domains": ["corp.example", "mallory.example", "billing.example", "relay-users.example"]}}),
    )
    .await;

    let ca = support::cert_dir().join("ca.pem");
    let allow_relay = format!("127.0.0.1:{}", relay.port);
    let allow_no_newline = format!("127.0.0.1:{}", no_newline.port);
    let allow_endless = format!("127.0.0.1:{}", endless.port);
    let log = bed.start_operator_as_with(
        &kubeconfig,
        NS,
        &[
            "--egress-allow",
            &allow_relay,
            "--egress-allow",
            &allow_no_newline,
            "--egress-allow",
            &allow_endless,
            "--oauth2-ca-file",
            ca.to_str().expect("path"),
        ],
        &[("RUST_LOG", "debug")],
    );
    let pid = bed.operator_pid(0);

    // 1. Adoption without a grant.
    let mallory = tenant_client(&bed, "mallory").await;
    for doc in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ses-smtp-user", "namespace": "mallory"},
               "stringData": {"accessKeyId": SES_ACCESS_KEY_ID, "secretAccessKey": SES_SECRET_KEY}}),
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": "notifications", "namespace": "mallory"},
               "spec": {"from": "x@mallory.example", "delivery": "AdvancedSmtp",
                        "activeUsers": ["it@corp.example"],
                        "advancedSmtp": {"region": "us-east-1", "smtpCredentialsSecretRef": {"name": "ses-smtp-user"}}}}),
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
               "metadata": {"name": "corp", "namespace": "mallory",
                            "annotations": {"email.ops.dev/adopt": "true"}},
               "spec": {"emailSettingsRef": {"name": "notifications"}, "identity": "corp.example"}}),
    ] {
        tenant_apply(&mallory, &doc).await.expect("mallory applies");
    }
    wait_condition(
        &bed,
        "mallory",
        "corp",
        "Accepted",
        "False",
        Some("AdoptionNotGranted"),
    )
    .await;
    assert_eq!(
        ses_state(&bed).await,
        before,
        "the hand-made identity byte for byte"
    );

    // 2. A role no policy grants: refused before any AssumeRole.
    let mut with_role = json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
               "metadata": {"name": "notifications", "namespace": "mallory"},
               "spec": {"from": "x@mallory.example", "delivery": "AdvancedSmtp",
                        "activeUsers": ["it@mallory.example"],
                        "advancedSmtp": {"region": "us-east-1", "roleArn": format!("arn:aws:iam::{}:role/platform-admin", testbed::ses::ACCOUNT_ID),
                                         "smtpCredentialsSecretRef": {"name": "ses-smtp-user"}}}});
    tenant_apply(&mallory, &with_role)
        .await
        .expect("mallory applies");
    tenant_apply(
        &mallory,
        &json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
                "metadata": {"name": "own", "namespace": "mallory"},
                "spec": {"emailSettingsRef": {"name": "notifications"}, "identity": "mallory.example"}}),
    )
    .await
    .expect("mallory applies");
    wait_condition(
        &bed,
        "mallory",
        "own",
        "Accepted",
        "False",
        Some("RoleNotGranted"),
    )
    .await;
    wait_ready(&bed, "mallory", "False", "RoleNotGranted", WAIT).await;
    assert_eq!(
        bed.get("/sts/assumed").await["requests"],
        0,
        "no AssumeRole at all"
    );

    // 3. Hosts the operator may not reach: refused without a connection attempt.
    tenant_apply(
        &mallory,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "smtp", "namespace": "mallory"},
                "stringData": {"password": "mallory-password"}}),
    )
    .await
    .expect("applies");
    let password_auth = json!({"authentication": "UsernamePassword", "username": "app@mallory.example",
                               "passwordSecretRef": {"name": "smtp", "key": "password"}});
    for host in ["127.0.0.1", "169.254.169.254", "10.96.0.1"] {
        let es = external("mallory", host, probe_port, password_auth.clone());
        tenant_apply(&mallory, &es).await.expect("mallory applies");
        let wanted = format!("{host}:{probe_port} is not a host");
        eventually(
            &format!("{host} refused"),
            WAIT,
            || get_es(&bed, "mallory", "notifications"),
            |es| {
                condition_of(es.as_ref(), "ConnectionVerified").is_some_and(|(s, r, m)| {
                    s == "False" && r == "HostNotAllowed" && m.contains(&wanted)
                })
            },
        )
        .await;
    }
    assert!(
        probe.accept().is_err(),
        "no connection reached the loopback listener"
    );
    // … while the internal relay the platform allows works.
    let relay_users = tenant_client(&bed, "relay-users").await;
    relay_user(&relay_users, "relay-users", relay.port).await;
    wait_ready(&bed, "relay-users", "True", "Published", WAIT).await;

    // 4. Hostile servers: a token endpoint that never stops, SMTP lines that never end.
    let rss_before = peak_rss_kib(pid);
    let evil = tenant_client(&bed, "mallory").await;
    tenant_apply(
        &evil,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oauth", "namespace": "mallory"},
                "stringData": {"clientSecret": CLIENT_SECRET}}),
    )
    .await
    .expect("applies");
    let hostile = [
        external(
            "mallory",
            "127.0.0.1",
            relay.port,
            json!({"startTls": false, "authentication": "OAuth2", "username": support::USER,
                   "oauth2": {"tokenUrl": format!("https://localhost:{}/token", endless.port),
                              "clientId": "mallory", "clientSecretRef": {"name": "oauth", "key": "clientSecret"}}}),
        ),
        external(
            "mallory",
            "127.0.0.1",
            no_newline.port,
            password_auth.clone(),
        ),
    ];
    for (i, mut es) in hostile.into_iter().enumerate() {
        es["metadata"]["name"] = json!(format!("hostile-{i}"));
        es["spec"]["outputSecretName"] = json!(format!("hostile-{i}-smtp"));
        tenant_apply(&evil, &es).await.expect("applies");
    }
    // Another tenant's EmailSettings, created meanwhile, is tested on time.
    let billing = tenant_client(&bed, "billing").await;
    let started = Instant::now();
    relay_user(&billing, "billing", relay.port).await;
    wait_ready(
        &bed,
        "billing",
        "True",
        "Published",
        Duration::from_secs(20),
    )
    .await;
    let on_time = started.elapsed();
    for i in 0..2 {
        let name = format!("hostile-{i}");
        eventually(
            &format!("{name} refused"),
            Duration::from_secs(60),
            || get_es(&bed, "mallory", &name),
            |es| {
                condition_of(es.as_ref(), "ConnectionVerified")
                    .is_some_and(|(s, _, _)| s == "False")
            },
        )
        .await;
    }
    // Let the hostile servers be tried again (the backoff allows it within a minute).
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rss_after = peak_rss_kib(pid);
    eprintln!(
        "operator peak RSS {} KiB before the hostile servers, {} KiB after; billing tested in {:?}",
        rss_before, rss_after, on_time
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "peak RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let token = get_es(&bed, "mallory", "hostile-0").await.expect("exists");
    let (_, reason, message) = condition_of(Some(&token), "ConnectionVerified").expect("condition");
    assert_eq!(reason, "AuthenticationFailed", "{message}");
    assert!(message.contains("64 KiB"), "{message}");
    let smtp = get_es(&bed, "mallory", "hostile-1").await.expect("exists");
    let (_, reason, message) = condition_of(Some(&smtp), "ConnectionVerified").expect("condition");
    assert_eq!(reason, "ConnectFailed", "{message}");
    assert!(
        !message.contains("2222"),
        "nothing the server sent is repeated: {message}"
    );

    // 5. The role, granted: assumed with the namespace's external id and session tags.
    bed.apply::<SenderPolicy>(
        NS,
        json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
               "metadata": {"name": "mallory-role", "namespace": NS},
               "spec": {"namespaces": ["mallory"], "domains": ["mallory.example"],
                        "roleArns": [format!("arn:aws:iam::{}:role/*", testbed::ses::ACCOUNT_ID)]}}),
    )
    .await;
    with_role["spec"]["activeUsers"] = json!(["it@mallory.example"]);
    tenant_apply(&mallory, &with_role)
        .await
        .expect("mallory applies");
    let assumed = eventually(
        "an AssumeRole",
        WAIT,
        || async { bed.get("/sts/assumed").await },
        |v| v["assumed"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let call = &assumed["assumed"][0];
    assert_eq!(call["externalId"], "email-operator:e2e:mallory", "{call}");
    assert!(
        call["tags"]
            .to_string()
            .contains("\"email-operator/namespace\",\"mallory\""),
        "{call}"
    );

    // 6. Nothing secret in the log, at debug.
    let text = std::fs::read_to_string(&log).expect("log");
    let b64 = base64::engine::general_purpose::STANDARD;
    let smtp_password =
        email_operator::smtp::ses_password::smtp_password(SES_SECRET_KEY, "us-east-1");
    for secret in [
        support::PASSWORD.to_string(),
        b64.encode(support::PASSWORD),
        b64.encode(format!("\0{}\0{}", support::USER, support::PASSWORD)),
        CLIENT_SECRET.to_string(),
        SES_SECRET_KEY.to_string(),
        smtp_password.clone(),
        b64.encode(format!("\0{SES_ACCESS_KEY_ID}\0{smtp_password}")),
    ] {
        assert!(
            !text.contains(&secret),
            "the log holds a secret ({} chars)",
            secret.len()
        );
    }
    assert!(text.lines().count() > 100, "the log is at debug");
    bed.signal_operator(0, "TERM");
}
