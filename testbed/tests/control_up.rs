//! The `testbed` binary: `testbed up` writes a sourceable DIR/env whose endpoints serve, and
//! `testbed demo` brings everything up, applies the examples and runs (or reports the absence
//! of) the operator's controllers with the flags that reach the demo's servers (the whole
//! demo with the real operator is `tests/demo.rs`).

mod ses_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use ses_support::{Control, install_crypto, ses_client};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn testbed_bin() -> &'static str {
    env!("CARGO_BIN_EXE_testbed")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Sources `env` in bash and prints the named variables, one per line.
fn source_env(env: &Path, names: &[&str]) -> Vec<String> {
    let script = format!(
        "set -eu; . '{}'; {}",
        env.display(),
        names
            .iter()
            .map(|n| format!("printf '%s\\n' \"${n}\""))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash");
    assert!(
        output.status.success(),
        "sourcing env failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf8")
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn up_writes_a_sourceable_env_whose_endpoints_serve() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(testbed_bin())
        .args(["up", "--dir"])
        .arg(dir.path())
        .args(["--region", "eu-west-1"])
        .current_dir(dir.path()) // no crds/ here: only the servers are under test
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn testbed up");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            if line == "ready" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "testbed up never printed ready");

    let env_file = dir.path().join("env");
    let text = std::fs::read_to_string(&env_file).expect("DIR/env");
    for line in text.lines() {
        assert!(
            line.starts_with("export ") && line.contains("='"),
            "not an export line: {line}"
        );
    }
    let names = [
        "AWS_ENDPOINT_URL_SESV2",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "TESTBED_DNS",
        "TESTBED_CONTROL",
        "KUBECONFIG",
    ];
    let values = source_env(&env_file, &names);
    assert_eq!(values.len(), names.len());
    let [endpoint, region, key, secret, dns, control_url, kubeconfig] =
        <[String; 7]>::try_from(values).expect("seven values");
    assert_eq!(region, "eu-west-1");
    assert!(!key.is_empty() && !secret.is_empty());
    assert!(Path::new(&kubeconfig).is_absolute() && Path::new(&kubeconfig).is_file());
    let kubeconfig_text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(kubeconfig_text.contains("http://127.0.0.1:"));

    // SES answers the SDK at the exported endpoint, in the exported region.
    let client = ses_client(&endpoint, &region).await;
    let created = client
        .create_email_identity()
        .email_identity("up.example.com")
        .send()
        .await
        .expect("create");
    let tokens = created.dkim_attributes().expect("dkim").tokens().to_vec();
    assert_eq!(tokens.len(), 3);

    // The control API edits the zone that the exported DNS server serves, and SES sees it.
    let control = Control::new(control_url);
    assert_eq!(control.get("/healthz").await["status"], "ok");
    control
        .publish_dkim("up.example.com", &tokens, "dkim.amazonses.com")
        .await;
    let resolver = testbed::dns::resolve::resolver(dns.parse().expect("TESTBED_DNS is ip:port"))
        .expect("resolver");
    let found = testbed::dns::resolve::lookup(
        &resolver,
        &format!("{}._domainkey.up.example.com", tokens[0]),
        RecordType::CNAME,
    )
    .await;
    assert_eq!(
        found,
        testbed::dns::resolve::Lookup::Found(vec![format!("{}.dkim.amazonses.com", tokens[0])])
    );
    ses_support::eventually("identity verified", ses_support::CONVERGE, || async {
        let identities = control.get("/ses/identities").await;
        (identities["identities"][0]["status"] == "SUCCESS").then_some(())
    })
    .await;

    // SIGTERM stops everything cleanly.
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "testbed up exited with {status}");
}

/// A stand-in operator binary: `run --help` exits with `help_status`; `run` writes the
/// environment and the arguments it was given to `DIR/seen-env` and `DIR/seen-args`, says
/// something (for the log) and exits 0 at once, as an operator that stops on its own would.
fn fake_operator(dir: &Path, help_status: i32) -> PathBuf {
    let path = dir.join("fake-operator");
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = run ] && [ "$2" = --help ]; then exit {help_status}; fi
[ "$1" = run ] || exit 2
env > '{dir}/seen-env'
printf '%s\n' "$@" > '{dir}/seen-args'
echo "fake operator: nothing to do"
exit 0
"#,
        dir = dir.display()
    );
    std::fs::write(&path, script).expect("write fake operator");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    path
}

async fn run_demo(dir: &Path, operator: &Path) -> std::process::Output {
    let root = workspace_root();
    let output = Command::new(testbed_bin())
        .arg("demo")
        .arg("--dir")
        .arg(dir.join("bed"))
        .arg("--crds")
        .arg(root.join("crds"))
        .arg("--examples")
        .arg(root.join("examples"))
        .arg("--operator")
        .arg(operator)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("demo finishes")
        .expect("demo runs")
}

#[tokio::test]
async fn demo_reports_an_operator_that_cannot_run_after_bringing_everything_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let operator = fake_operator(dir.path(), 2);
    let output = run_demo(dir.path(), &operator).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "demo must fail without a working operator\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("the operator cannot run"), "{stderr}");
    assert!(stderr.contains("run --help"), "{stderr}");
    assert!(stdout.contains("test bed "), "{stdout}");
    assert!(stdout.contains("applied "), "{stdout}");
    assert!(dir.path().join("bed/env").is_file());
    assert!(
        !dir.path().join("seen-env").exists(),
        "run must not be started"
    );
}

#[tokio::test]
async fn demo_runs_the_operator_against_the_test_bed_and_fails_when_it_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let operator = fake_operator(dir.path(), 0);
    let output = run_demo(dir.path(), &operator).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    // Nothing became Ready: each example is named, and so is why the wait ended.
    assert!(
        stdout.contains("8 of 8 example objects are not Ready"),
        "{stdout}"
    );
    assert!(
        stdout.contains("EmailSettings billing/notifications: no Ready condition yet"),
        "{stdout}"
    );
    assert!(
        stdout.contains("email-operator run exited with"),
        "{stdout}"
    );
    // Its output went to the log, not to the terminal.
    let log = std::fs::read_to_string(dir.path().join("bed/operator.log")).expect("log");
    assert!(log.contains("fake operator: nothing to do"), "{log}");
    assert!(!stdout.contains("fake operator: nothing to do"), "{stdout}");
    let seen = std::fs::read_to_string(dir.path().join("seen-env")).expect("operator ran");
    for name in [
        "AWS_ENDPOINT_URL_SESV2=http://127.0.0.1:",
        "AWS_ENDPOINT_URL_STS=http://127.0.0.1:",
        "AWS_REGION=us-east-1",
    ] {
        assert!(
            seen.lines().any(|l| l.starts_with(name)),
            "operator env lacks {name}"
        );
    }
    let args = std::fs::read_to_string(dir.path().join("seen-args")).expect("args");
    let args: Vec<&str> = args.lines().collect();
    for flag in [
        "--kubeconfig",
        "--dns-server",
        "--smtp-ca-file",
        "--oauth2-ca-file",
        "--egress-allow",
    ] {
        assert!(args.contains(&flag), "{flag}: {args:?}");
    }
    let after = |flag: &str| -> Vec<&str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1])
            .collect()
    };
    assert_eq!(
        after("--default-relay-secret"),
        ["email-system/default-relay"]
    );
    let routes = after("--connect-to");
    for host in [
        "smtp.yourcompany.com:587::",
        "relay.internal.yourcompany.com:465::",
        "smtp.office365.com:587::",
        "login.microsoftonline.com:443::",
        "email-smtp.eu-west-1.amazonaws.com:587::",
    ] {
        assert!(
            routes.iter().any(|r| r.starts_with(host)),
            "{host}: {routes:?}"
        );
    }
}
