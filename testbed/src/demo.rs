//! `testbed demo`: the whole system on one machine. Brings the test bed up (Kubernetes API
//! stand-in with the CRDs, SES, DNS, control API), applies `examples/` the way
//! `kubectl apply --server-side` would, then runs the real `email-operator run` against it.
//!
//! While the operator runs, the demo plays the DNS administrator: whenever SES hands out DKIM
//! tokens for a domain identity, it publishes the three CNAMEs through the test bed's zone, and
//! it prints every SES identity status change, so the lifecycle can be watched end to end.
//!
//! If the operator binary cannot run (its `run --help` fails: a wrong `--operator` path, or a
//! binary not built), the demo says so after everything else is up and exits non-zero.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use ::kube::discovery::{Discovery, Scope};
use serde_json::Value;

use crate::control::{AwsPorts, AwsTestbed, export_line};
use crate::kube::{KubeOptions, KubeServer};

/// Field manager used for the example manifests.
const FIELD_MANAGER: &str = "testbed-demo";

/// What `testbed demo` needs to know.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where kubeconfig and env are written.
    pub dir: PathBuf,
    /// CRD directory installed at start.
    pub crds: PathBuf,
    /// Manifests applied after start (searched recursively for *.yaml / *.yml).
    pub examples: PathBuf,
    /// The operator binary; `None` = next to this executable, then `email-operator` on PATH.
    pub operator: Option<PathBuf>,
    /// SES region given to the operator (`AWS_REGION`).
    pub region: String,
}

/// Runs the demo; `Err` carries the message to print before exiting non-zero.
pub async fn run(options: DemoOptions) -> Result<(), String> {
    std::fs::create_dir_all(&options.dir)
        .map_err(|e| format!("cannot create {}: {e}", options.dir.display()))?;

    let kube = KubeServer::start(KubeOptions {
        crd_dirs: vec![options.crds.clone()],
        ..KubeOptions::default()
    })
    .await
    .map_err(|e| format!("Kubernetes API stand-in: {e}"))?;
    let kubeconfig = options.dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)
        .map_err(|e| format!("cannot write {}: {e}", kubeconfig.display()))?;
    let aws = AwsTestbed::start(AwsPorts::default())
        .await
        .map_err(|e| format!("SES/DNS/control stand-ins: {e}"))?;
    let env_file = write_env(&options.dir, &aws, &options.region, &kubeconfig)?;
    println!(
        "test bed up: Kubernetes {}  SES {}  DNS {}  control {}",
        kube.url(),
        aws.ses.endpoint_url(),
        aws.dns.addr(),
        aws.control.url()
    );
    println!("environment: source {}", env_file.display());

    let applied = apply_examples(&kube.url(), &options.examples).await?;
    println!(
        "applied {applied} objects from {}",
        options.examples.display()
    );

    let operator = find_operator(options.operator.as_deref())?;
    check_run_exists(&operator).await?;
    run_operator(&operator, &kubeconfig, &aws, &options.region).await
}

/// Writes `DIR/env` (the SES/DNS/control lines plus `KUBECONFIG`) and returns its path.
pub fn write_env(
    dir: &Path,
    aws: &AwsTestbed,
    region: &str,
    kubeconfig: &Path,
) -> Result<PathBuf, String> {
    let kubeconfig = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.to_path_buf());
    let mut lines = aws.env_lines(region);
    lines.push(export_line("KUBECONFIG", &kubeconfig.display().to_string()));
    // The SES SMTP stand-in's CA, for the operator's `--ses-smtp-ca-file`.
    let ca = dir.join("ses-smtp-ca.pem");
    aws.ses_smtp
        .write_ca(&ca)
        .map_err(|e| format!("cannot write {}: {e}", ca.display()))?;
    let ca = std::path::absolute(&ca).unwrap_or(ca);
    lines.push(export_line(
        "TESTBED_SES_SMTP_CA",
        &ca.display().to_string(),
    ));
    let path = dir.join("env");
    std::fs::write(&path, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Server-side applies every document under `dir` (Namespaces first), like
/// `kubectl apply --server-side -R -f dir`. Returns how many objects were applied.
pub async fn apply_examples(kube_url: &str, dir: &Path) -> Result<usize, String> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    files.sort();
    let mut documents: Vec<(PathBuf, DynamicObject)> = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let values: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        for value in values.into_iter().filter(|v| !v.is_null()) {
            let object: DynamicObject = serde_json::from_value(value)
                .map_err(|e| format!("{}: not a Kubernetes object: {e}", file.display()))?;
            documents.push((file.clone(), object));
        }
    }
    // Namespaces before what lives in them.
    documents.sort_by_key(|(_, o)| o.types.as_ref().is_none_or(|t| t.kind != "Namespace"));

    let config = ::kube::Config::new(
        kube_url
            .parse()
            .map_err(|e| format!("bad URL {kube_url}: {e}"))?,
    );
    let client = ::kube::Client::try_from(config).map_err(|e| format!("kube client: {e}"))?;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut failures = Vec::new();
    let mut applied = 0;
    for (file, object) in documents {
        let Some(types) = object.types.clone() else {
            failures.push(format!(
                "{}: object without apiVersion/kind",
                file.display()
            ));
            continue;
        };
        let name = object.metadata.name.clone().unwrap_or_default();
        let what = format!(
            "{} {}/{name}",
            types.kind,
            object.metadata.namespace.as_deref().unwrap_or("-")
        );
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| format!("{what}: {e}"))?;
        let Some((resource, capabilities)) = discovery.resolve_gvk(&gvk) else {
            failures.push(format!(
                "{what}: the API server does not serve {}/{}",
                types.api_version, types.kind
            ));
            continue;
        };
        let api: Api<DynamicObject> = if capabilities.scope == Scope::Namespaced {
            let namespace = object
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            Api::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        match api.patch(&name, &params, &Patch::Apply(&object)).await {
            Ok(_) => {
                println!("  applied {what}");
                applied += 1;
            }
            Err(error) => failures.push(format!("{what} ({}): {error}", file.display())),
        }
    }
    if failures.is_empty() {
        Ok(applied)
    } else {
        Err(format!(
            "applying {} failed:\n  {}",
            dir.display(),
            failures.join("\n  ")
        ))
    }
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    Ok(())
}

/// The operator binary: the given path, else `email-operator` next to this executable (both
/// are built into the same cargo target directory), else `email-operator` on PATH.
fn find_operator(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Ok(me) = std::env::current_exe()
        && let Some(sibling) = me.parent().map(|d| d.join("email-operator"))
        && sibling.is_file()
    {
        return Ok(sibling);
    }
    Ok(PathBuf::from("email-operator"))
}

/// Fails unless `operator run --help` succeeds, i.e. the controllers exist.
async fn check_run_exists(operator: &Path) -> Result<(), String> {
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

/// Runs `operator run` against the test bed until it exits or Ctrl-C, publishing DKIM records
/// for every domain identity SES creates and reporting identity status changes.
async fn run_operator(
    operator: &Path,
    kubeconfig: &Path,
    aws: &AwsTestbed,
    region: &str,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new(operator);
    command
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--metrics-addr", "127.0.0.1:0"])
        // Records are looked up where the demo publishes them (statuses' `published`).
        .arg("--dns-server")
        .arg(aws.dns.addr().to_string())
        // The examples' SenderPolicies live where the Helm chart installs the operator.
        .args(["--policy-namespace", "email-system"])
        .env("KUBECONFIG", kubeconfig);
    for (name, value) in [
        ("AWS_ENDPOINT_URL_SESV2", aws.ses.endpoint_url()),
        ("AWS_REGION", region.to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIDTESTBED".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testbed-secret".to_string()),
        ("TESTBED_DNS", aws.dns.addr().to_string()),
        ("TESTBED_CONTROL", aws.control.url()),
    ] {
        command.env(name, value);
    }
    let mut child = command
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", operator.display()))?;
    println!(
        "email-operator run started (pid {}); Ctrl-C stops the demo",
        child.id().unwrap_or_default()
    );

    let mut watcher = Watcher::new(aws);
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| format!("waiting for the operator: {e}"))?;
                watcher.report(false).await;
                return if status.success() { Ok(()) } else { Err(format!("email-operator run exited with {status}")) };
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = child.kill().await;
                watcher.report(false).await;
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => watcher.report(true).await,
        }
    }
}

/// Reports SES identity status changes and plays the DNS administrator for the demo.
struct Watcher {
    state: std::sync::Arc<crate::ses::SesState>,
    zone: crate::dns::Zone,
    seen: BTreeMap<(String, String), String>,
    published: BTreeSet<((String, String), Vec<String>)>,
}

impl Watcher {
    fn new(aws: &AwsTestbed) -> Self {
        Self {
            state: aws.ses.state(),
            zone: aws.dns.zone().clone(),
            seen: BTreeMap::new(),
            published: BTreeSet::new(),
        }
    }

    /// Prints identities whose status changed; with `publish`, publishes the DKIM CNAMEs of
    /// domain identities (once per set of tokens) and asks SES to re-check at once.
    async fn report(&mut self, publish: bool) {
        for (identity, verified) in self.state.identities() {
            let key = (identity.region.clone(), identity.name.clone());
            let status = format!(
                "{} (verified for sending: {verified})",
                identity.status.as_str()
            );
            if self.seen.get(&key) != Some(&status) {
                println!("  SES {} {}: {status}", identity.region, identity.name);
                self.seen.insert(key.clone(), status);
            }
            let Some(dkim) = identity.dkim.as_ref().filter(|_| publish) else {
                continue;
            };
            if !self.published.insert((key, dkim.tokens.clone())) {
                continue;
            }
            for token in &dkim.tokens {
                let name = format!("{token}._domainkey.{}", identity.name);
                let target = format!("{token}.{}", dkim.signing_hosted_zone);
                if let Err(error) = self.zone.add(&name, "CNAME", &target, None).await {
                    eprintln!("  cannot publish {name}: {error}");
                }
            }
            println!("  DNS: published the DKIM CNAMEs of {}", identity.name);
            self.state.recheck_now();
        }
    }
}
