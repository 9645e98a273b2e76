//! `email-operator send-test`: one test message through a published Secret file, or through
//! what EmailSettings and Secret manifests would publish, to a real aiosmtpd server that keeps
//! what it accepts. Exit 0 only when the server accepted the message; a refused recipient is
//! reported with the server's code. (`--secret` through a kubeconfig is tested end to end in
//! the test bed's `e2e_test_messages`.)

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::{PASSWORD, USER, cert_dir, smtp_server};

fn send_test(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .arg("send-test")
        .args(["--smtp-timeout", "5s"])
        .args(args)
        .output()
        .expect("send-test runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A published Secret's manifest, as the operator writes it for an ExternalSmtp server on
/// `port`.
fn published_secret(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("published.yaml");
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: notifications-smtp
  namespace: shop
  annotations: {{email.ops.dev/email-settings: notifications, email.ops.dev/validated-generation: "3"}}
stringData:
  host: localhost
  port: "{port}"
  tls: starttls
  authentication: password
  username: {USER}
  password: {PASSWORD}
  from: shop@yourcompany.com
"#
    );
    std::fs::write(&path, yaml).expect("write");
    path
}

/// An aiosmtpd server (STARTTLS, AUTH) that keeps what it accepts in a mailbox directory.
fn mailbox_server() -> Option<(tempfile::TempDir, support::Server)> {
    let mailbox = tempfile::tempdir().expect("mailbox");
    let server = smtp_server(
        "starttls-auth",
        &["--mailbox", mailbox.path().to_str().expect("path")],
    )?;
    Some((mailbox, server))
}

fn arrived(mailbox: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(mailbox)
        .expect("mailbox")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f).expect("read")).expect("json"))
        .collect()
}

#[test]
fn through_a_published_secret_file_the_message_arrives_and_a_refusal_exits_one() {
    let Some((mailbox, server)) = mailbox_server() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = published_secret(dir.path(), server.port);
    let ca = cert_dir().join("ca.pem");
    let common = [
        "--secret-file",
        secret.to_str().expect("path"),
        "--ca-file",
        ca.to_str().expect("path"),
    ];

    let (code, out, err) = send_test(&[&common[..], &["--to", "ops@yourcompany.com"]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("test message to ops@yourcompany.com: accepted"),
        "{out}"
    );
    assert!(out.contains("reply:      250"), "{out}");
    assert!(out.contains("message id: 1"), "{out}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    let messages = arrived(mailbox.path());
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["mail_from"], "shop@yourcompany.com");
    assert_eq!(
        messages[0]["rcpt_tos"],
        serde_json::json!(["ops@yourcompany.com"])
    );
    let data = messages[0]["data"].as_str().expect("data");
    assert!(data.contains("Subject: Test message from EmailSettings shop/notifications\r\n"));
    assert!(
        data.contains("asked for by email-operator send-test"),
        "{data}"
    );
    assert!(data.contains("validated for generation 3"), "{data}");
    assert!(!data.contains(PASSWORD));

    let (code, out, _) = send_test(&[&common[..], &["--to", "nobody@yourcompany.com"]].concat());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(": refused"), "{out}");
    assert!(out.contains("reply:      550"), "{out}");
    assert!(out.contains("User unknown"), "{out}");
    assert_eq!(arrived(mailbox.path()).len(), 1, "nothing more arrived");

    // Without the CA the server's certificate is not trusted: not sent, exit 1.
    let (code, out, _) = send_test(&[
        "--secret-file",
        secret.to_str().expect("path"),
        "--to",
        "ops@yourcompany.com",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not sent") && out.contains("TlsUpgradeFailed"),
        "{out}"
    );
}

#[test]
fn through_manifests_it_sends_what_would_be_published() {
    let Some((mailbox, server)) = mailbox_server() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = std::fs::read_to_string(cert_dir().join("ca.pem")).expect("ca");
    let indented: String = ca.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: smtp, namespace: shop}}
stringData: {{password: "{PASSWORD}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: relay-ca, namespace: shop}}
stringData:
  ca.pem: |
{indented}---
apiVersion: email.ops.dev/v1alpha1
kind: EmailSettings
metadata: {{name: notifications, namespace: shop}}
spec:
  from: shop@yourcompany.com
  delivery: ExternalSmtp
  externalSmtp:
    host: localhost
    port: {port}
    startTls: true
    authentication: UsernamePassword
    username: {USER}
    passwordSecretRef: {{name: smtp, key: password}}
    caBundleSecretRef: {{name: relay-ca, key: ca.pem}}
"#,
        port = server.port
    );
    std::fs::write(dir.path().join("shop.yaml"), yaml).expect("write");
    let (code, out, err) = send_test(&[
        "--to",
        "ops@yourcompany.com",
        dir.path().to_str().expect("path"),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let messages = arrived(mailbox.path());
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["mail_from"], "shop@yourcompany.com");

    // Nothing to send through: a usage error.
    let (code, _, err) = send_test(&["--to", "ops@yourcompany.com"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--secret NAMESPACE/NAME"), "{err}");
}
