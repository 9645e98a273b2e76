//! `testbed demo`, the README's first command, as a user runs it: the built `testbed` binary
//! with the operator built next to it. Over `examples/` it ends with every EmailSettings and
//! SenderIdentity Ready and exit 0; over a copy with one example broken (the external SMTP
//! server's password changed) it exits non-zero naming that object and why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The operator binary next to `testbed` (the same target directory).
fn operator() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_testbed")).with_file_name("email-operator");
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace` (or the tests with `cargo test --workspace`)",
        path.display()
    );
    path
}

/// Runs the demo over `examples` with a fresh directory; its output, and the directory.
fn demo(examples: &Path, timeout: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .current_dir(workspace())
        .args(["demo", "--timeout", timeout, "--dir"])
        .arg(dir.path())
        .arg("--examples")
        .arg(examples)
        .arg("--operator")
        .arg(operator())
        // A test run must not build anything: the operator is given.
        .env_remove("CARGO")
        .output()
        .expect("run testbed demo");
    (output, dir)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read examples") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

#[test]
fn the_demo_takes_every_example_to_ready_and_exits_0() {
    let (output, dir) = demo(&workspace().join("examples"), "120s");
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("All 8 example objects are Ready"),
        "5 EmailSettings and 3 SenderIdentities: {out}"
    );
    for object in [
        "EmailSettings billing/notifications",
        "EmailSettings internal-tools/notifications",
        "EmailSettings reports/notifications",
        "EmailSettings shop/notifications",
        "EmailSettings support/notifications",
        "SenderIdentity shop/yourcompany-com",
        "SenderIdentity shop/noreply-en",
        "SenderIdentity shop/alerts-yourcompany-net",
    ] {
        assert!(
            out.contains(&format!("{object} is Ready")),
            "{object}: {out}"
        );
    }
    // The live table has kubectl's columns; the summary counts SES calls and the records.
    assert!(
        out.contains("DELIVERY") && out.contains("CONNECTION") && out.contains("DKIM"),
        "{out}"
    );
    assert!(out.contains("SES calls: "), "{out}");
    assert!(out.contains("CreateEmailIdentity 3"), "{out}");
    // Every record the domain identity asked for was published, and its status says so (it
    // verified on them). The SPF advice of an email identity that an already verified domain
    // verifies at once may still say false: the operator looks again at its next check.
    let domain: Vec<&str> = out
        .lines()
        .map(str::trim_start)
        .filter(|l| ["CNAME ", "MX ", "TXT "].iter().any(|t| l.starts_with(t)))
        .filter(|l| l.contains("shop/yourcompany-com"))
        .collect();
    assert_eq!(
        domain.len(),
        6,
        "3 DKIM CNAMEs, SPF, MAIL FROM MX and TXT: {out}"
    );
    assert!(
        domain.iter().all(|l| l.ends_with("published: true")),
        "{out}"
    );
    assert!(
        out.contains("DNS records the statuses asked for, published by the demo (8;"),
        "{out}"
    );
    // The operator's log is in the demo directory, not in the output.
    assert!(
        !out.lines().any(|l| l.trim_start().starts_with('{')),
        "no JSON lines: {out}"
    );
    let log = std::fs::read_to_string(dir.path().join("operator.log")).expect("operator.log");
    assert!(log.contains("email-operator starting"), "{log}");
    assert!(
        log.contains("--connect-to smtp.yourcompany.com:587::"),
        "{log}"
    );
    // No secret reaches the output or the log.
    for secret in [
        "replace-with-the-real-password",
        "replace-with-the-client-secret",
    ] {
        assert!(!out.contains(secret) && !log.contains(secret), "{secret}");
    }
}

#[test]
fn a_wrong_password_fails_the_demo_naming_the_object_and_the_reason() {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(&workspace().join("examples"), copy.path());
    let file = copy.path().join("external-smtp.yaml");
    let manifest = std::fs::read_to_string(&file).expect("external-smtp.yaml");
    assert!(manifest.contains("password: replace-with-the-real-password"));
    std::fs::write(
        &file,
        manifest.replace(
            "password: replace-with-the-real-password",
            "password: a-password-the-server-does-not-know",
        ),
    )
    .expect("write");
    let started = std::time::Instant::now();
    let (output, _dir) = demo(copy.path(), "120s");
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("1 of 8 example objects are not Ready"),
        "everything else still gets Ready: {out}"
    );
    assert!(
        out.contains("EmailSettings billing/notifications: BadCredentials"),
        "names the object and the reason: {out}"
    );
    assert!(
        out.contains("Authentication failed"),
        "and the message: {out}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(100),
        "a Stalled object ends the wait before the time limit"
    );
    assert!(
        !out.contains("a-password-the-server-does-not-know"),
        "{out}"
    );
}
