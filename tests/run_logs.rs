//! `email-operator run`'s logs: JSON when standard output is not a terminal (a log collector),
//! text with `--log-format text`, and the level from `--log-level` before `RUST_LOG`. Driven by
//! a start that fails at once (an unreadable kubeconfig), which logs one ERROR line.

use std::process::Command;

fn run(args: &[&str], rust_log: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_email-operator"));
    cmd.args(["run", "--kubeconfig", "/nonexistent/kubeconfig"])
        .args(args)
        .env_remove("RUST_LOG");
    if let Some(level) = rust_log {
        cmd.env("RUST_LOG", level);
    }
    let out = cmd.output().expect("email-operator runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn logs_are_json_for_collectors_and_text_for_people() {
    // Piped (not a terminal): JSON, one object a line.
    let (code, out) = run(&[], None);
    assert_ne!(code, Some(0));
    let line = out
        .lines()
        .find(|l| l.contains("stopping"))
        .expect("logged");
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(json["level"], "ERROR", "{line}");
    assert_eq!(json["fields"]["message"], "stopping");

    // Asked for text: a line for people, no JSON, no colour codes when piped.
    let (_, out) = run(&["--log-format", "text"], None);
    let line = out
        .lines()
        .find(|l| l.contains("stopping"))
        .expect("logged");
    assert!(!line.starts_with('{') && line.contains("ERROR"), "{line}");
    assert!(!line.contains('\u{1b}'), "{line:?}");

    // The level: --log-level before RUST_LOG.
    let (_, out) = run(&[], Some("off"));
    assert!(out.is_empty(), "RUST_LOG=off: {out}");
    let (_, out) = run(&["--log-level", "error"], Some("off"));
    assert!(out.contains("stopping"), "--log-level wins: {out}");
    let (code, _) = run(&["--log-level", "info,=bad=level"], None);
    assert_eq!(code, Some(2), "a malformed level is a usage error");
}
