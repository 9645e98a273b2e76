//! The operator the demo runs: which binary (built by cargo when the demo runs through
//! `cargo run`), whether it has the controllers, and its start against the test bed and the
//! demo's servers, its output in `DIR/operator.log`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::world;
use crate::control::AwsTestbed;

/// Starts `operator run` against the test bed and the demo's servers, its output appended to
/// `log` after a first line with the command.
pub fn start_operator(
    operator: &Path,
    kubeconfig: &Path,
    aws: &AwsTestbed,
    region: &str,
    world: &world::World,
    log: &Path,
) -> Result<tokio::process::Child, String> {
    let mut args: Vec<String> = [
        "run",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "text",
        // Records are looked up, and the examples' hosts resolved, where the demo publishes.
        "--dns-server",
        &aws.dns.addr().to_string(),
        // The examples' SenderPolicies live where the Helm chart installs the operator.
        "--policy-namespace",
        world::PLATFORM_NAMESPACE,
        "--leader-election-namespace",
        world::PLATFORM_NAMESPACE,
        // SES verifies within seconds here, not minutes: look as often.
        "--pending-recheck-min",
        "2s",
        "--pending-recheck-max",
        "10s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(world.operator_args());
    let quoted: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
    let header = format!(
        "# started by testbed demo: {} {}\n",
        operator.display(),
        quoted.join(" ")
    );
    std::fs::write(log, header).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut command = tokio::process::Command::new(operator);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true);
    for (name, value) in [
        ("AWS_ENDPOINT_URL_SESV2", aws.ses.endpoint_url()),
        ("AWS_ENDPOINT_URL_STS", aws.sts.endpoint_url()),
        ("AWS_REGION", region.to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIDTESTBED".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testbed-secret".to_string()),
    ] {
        command.env(name, value);
    }
    command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", operator.display()))
}

/// `a` as one shell word.
fn shell_word(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The operator binary: the given path; else, when this runs through `cargo run`, the
/// `email-operator` next to it after `cargo build` has brought it up to date; else the one
/// next to this executable (both are built into the same target directory), else
/// `email-operator` on PATH.
pub async fn find_operator(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().ok();
    let sibling = me
        .as_ref()
        .and_then(|m| m.parent())
        .map(|d| d.join("email-operator"));
    if let (Some(cargo), Some(sibling)) = (std::env::var_os("CARGO"), &sibling)
        && std::env::var_os("CARGO_MANIFEST_DIR").is_some()
    {
        build_operator(&cargo, sibling).await?;
        return Ok(sibling.clone());
    }
    match sibling {
        Some(path) if path.is_file() => Ok(path),
        _ => Ok(PathBuf::from("email-operator")),
    }
}

/// `cargo build --workspace --bin email-operator` in the profile `sibling` belongs to: the
/// workspace's feature set is the one `cargo run -p testbed` built with, so only the
/// operator's own code is compiled, once.
async fn build_operator(cargo: &std::ffi::OsStr, sibling: &Path) -> Result<(), String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut command = tokio::process::Command::new(cargo);
    command
        .args([
            "build",
            "--workspace",
            "--bin",
            "email-operator",
            "--manifest-path",
        ])
        .arg(&manifest);
    // What `cargo run` set for this process is not the nested build's: ring's build script
    // watches CARGO_MANIFEST_DIR, and would rebuild it and everything above it, twice.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                ]
                .contains(&name))
        {
            command.env_remove(name);
        }
    }
    match sibling
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
    {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    println!("  building      email-operator (cargo build --workspace --bin email-operator)");
    let status = command
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building email-operator failed ({status})"))
    }
}

/// Fails unless `operator run --help` succeeds, i.e. the controllers exist.
pub async fn check_run_exists(operator: &Path) -> Result<(), String> {
    let output = tokio::process::Command::new(operator)
        .args(["run", "--help"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            format!(
                "cannot execute {}: {e} (build it with `cargo build --workspace`, or pass --operator)",
                operator.display()
            )
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "the test bed is up and the examples are applied, but the operator cannot run: \
         `{} run --help` exited with {} — build it with `cargo build --workspace`, or pass --operator",
        operator.display(),
        output.status
    ))
}
