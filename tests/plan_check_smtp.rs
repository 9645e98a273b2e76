//! `plan --check-smtp`: the same connection test as the controller, with Secrets read from the
//! input manifests; the EmailSettings entry of the JSON carries the test's reason. Tests run
//! concurrently: two unreachable servers cost one timeout, not two.

mod support;

use serde_json::Value;
use std::process::Command;
use support::{PASSWORD, USER, smtp_server};

fn manifests(dir: &std::path::Path, name: &str, port: u16, password: &str) {
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: smtp-{name}, namespace: {name}}}
stringData: {{password: "{password}"}}
---
apiVersion: email.ops.dev/v1alpha1
kind: EmailSettings
metadata: {{name: notifications, namespace: {name}}}
spec:
  from: billing@yourcompany.com
  delivery: ExternalSmtp
  externalSmtp:
    host: 127.0.0.1
    port: {port}
    authentication: UsernamePassword
    username: {USER}
    passwordSecretRef: {{name: smtp-{name}, key: password}}
"#
    );
    std::fs::write(dir.join(format!("{name}.yaml")), yaml).expect("write");
}

fn plan(dir: &std::path::Path) -> (Option<i32>, Value, std::time::Duration) {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .args(["plan", "-o", "json", "--check-smtp", "--smtp-timeout", "2s"])
        // The test servers are on loopback, where tenants' tests may not go unless allowed.
        .args(["--egress-allow", "127.0.0.0/8"])
        .arg(dir)
        .output()
        .expect("plan");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, started.elapsed())
}

fn entry<'a>(report: &'a Value, ns: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["namespace"] == ns))
        .expect("entry")
}

#[test]
fn a_working_server_passes_and_a_wrong_password_is_bad_credentials() {
    let Some(server) = smtp_server("plain-auth", &[]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    manifests(dir.path(), "good", server.port, PASSWORD);
    manifests(dir.path(), "bad", server.port, "wrong-password");
    let (code, report, _) = plan(dir.path());
    assert_eq!(code, Some(1), "{report}");
    let good = entry(&report, "good");
    assert_eq!(good["accepted"], true, "{good}");
    assert!(
        good["notes"]
            .to_string()
            .contains("connection test passed (plain"),
        "{good}"
    );
    let bad = entry(&report, "bad");
    assert_eq!(bad["reason"], "BadCredentials", "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("Bad username / password")
    );
    assert!(
        !report.to_string().contains("wrong-password") && !report.to_string().contains(PASSWORD),
        "no secret in the output"
    );
}

#[test]
fn tests_run_concurrently_and_missing_secrets_are_named() {
    let Some(a) = smtp_server("never-greets", &[]) else {
        return;
    };
    let Some(b) = smtp_server("never-greets", &[]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    manifests(dir.path(), "one", a.port, "x");
    manifests(dir.path(), "two", b.port, "x");
    std::fs::write(
        dir.path().join("orphan.yaml"),
        "apiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {name: notifications, namespace: orphan}\nspec:\n  from: billing@yourcompany.com\n  delivery: ExternalSmtp\n  externalSmtp: {host: 127.0.0.1, port: 25, authentication: UsernamePassword, username: u@yourcompany.com, passwordSecretRef: {name: absent, key: password}}\n",
    )
    .expect("write");
    let (code, report, elapsed) = plan(dir.path());
    assert_eq!(code, Some(1));
    for ns in ["one", "two"] {
        assert_eq!(entry(&report, ns)["reason"], "ReadTimeout", "{report}");
    }
    assert_eq!(entry(&report, "orphan")["reason"], "SecretNotFound");
    // Each test is bounded by 8 s (--smtp-timeout for the connect, three times it for the
    // conversation, one deadline for both); sequential would be 16 s.
    assert!(elapsed < std::time::Duration::from_secs(12), "{elapsed:?}");
}

#[test]
fn advanced_smtp_is_tested_with_the_derived_ses_password() {
    const KEY_ID: &str = "AKIAPLANTESTKEY00001";
    const SECRET_KEY: &str = "plan/SesSecretAccessKey+abcdef0123456789";
    let password = email_operator::smtp::ses_password::smtp_password(SECRET_KEY, "us-east-1");
    let Some(ses) = smtp_server(
        "starttls-auth",
        &["--user", KEY_ID, "--password", &password],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Each namespace sends as its own domain (a domain no SenderPolicy names belongs to the
    // first namespace that claims it).
    let settings = |ns: &str, credentials: &str| {
        format!(
            "apiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {{name: notifications, namespace: {ns}}}\nspec:\n  from: billing@{ns}.yourcompany.com\n  delivery: AdvancedSmtp\n  advancedSmtp: {{region: us-east-1{credentials}}}\n"
        )
    };
    std::fs::write(
        dir.path().join("ses.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: ses-key, namespace: ses}}\nstringData: {{accessKeyId: {KEY_ID}, secretAccessKey: '{SECRET_KEY}'}}\n---\n{}---\n{}",
            settings("ses", ", smtpCredentialsSecretRef: {name: ses-key}"),
            settings("nokey", "")
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .args(["plan", "-o", "json", "--check-smtp", "--smtp-timeout", "5s"])
        .args(["--ses-smtp-endpoint", &format!("localhost:{}", ses.port)])
        .arg("--ses-smtp-ca-file")
        .arg(support::cert_dir().join("ca.pem"))
        .arg(dir.path())
        .output()
        .expect("plan");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let passed = entry(&report, "ses");
    assert_eq!(passed["accepted"], true, "{report}");
    assert!(
        passed["notes"]
            .to_string()
            .contains("connection test passed (starttls"),
        "{passed}"
    );
    let missing = entry(&report, "nokey");
    assert_eq!(
        missing["reason"], "SmtpCredentialsNotConfigured",
        "{missing}"
    );
    assert_eq!(out.status.code(), Some(1));
    let text = report.to_string();
    assert!(!text.contains(SECRET_KEY) && !text.contains(&password));
}
