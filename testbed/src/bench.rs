//! `testbed bench`: measures the real `email-operator run` on the test bed, the same way every
//! time. For N SenderIdentities spread over M EmailSettings it reports
//!
//! * apply → every identity showing what to publish (its three DKIM CNAMEs; for an email
//!   identity, the pending verification), p50/p99/total, with the SES limit set high and then
//!   at the default, next to the floor N / rate;
//! * DNS publication (DKIM CNAMEs, SPF; email confirmation) → every identity Ready;
//! * SES calls per identity by operation until all are Ready;
//! * steady-state SES calls per hour for N verified identities — the operator's bulk re-check
//!   and, in the same run, a baseline that reads every identity with GetEmailIdentity every
//!   10 minutes (the Crossplane providers' default poll); both run with shortened intervals and
//!   are scaled back to real time;
//! * the operator's peak RSS and CPU seconds, and Kubernetes API requests by verb.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use email_operator::crd::SenderIdentity;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::control::{AwsPorts, AwsTestbed};
use crate::kube::{KubeOptions, KubeServer};

/// The operator's real verified re-check interval, and the bench's shortened one.
const REAL_RECHECK: Duration = Duration::from_secs(12 * 3600);
const BENCH_RECHECK: Duration = Duration::from_secs(10);
/// The baseline's real poll period (Crossplane's default).
const REAL_BASELINE_POLL: Duration = Duration::from_secs(600);
/// Field manager of the bench's writes.
const FIELD_MANAGER: &str = "testbed-bench";

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub identities: usize,
    pub settings: usize,
    /// The SES limit of the fast pass (`--ses-max-rps`).
    pub fast_rps: f64,
    /// The operator's default SES limit (SES's real one, 1 a second), for the second pass.
    pub default_rps: f64,
    /// Skip the pass at the default limit (it takes at least N / rate seconds).
    pub skip_default_rate: bool,
    pub crds: PathBuf,
    pub operator: Option<PathBuf>,
    /// Bound on each wait.
    pub timeout: Duration,
}

/// Latencies of one pass from apply to records shown.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordsPass {
    pub ses_max_rps: f64,
    pub records_p50_ms: u64,
    pub records_p99_ms: u64,
    pub records_total_s: f64,
    /// N / rate: no client can be faster at this limit (at least one call per identity).
    pub floor_s: f64,
    /// SES calls (every operation, every answer) per identity until the last one showed its
    /// records.
    pub ses_calls_before_records: f64,
    /// The total time to records over the floor its calls allow at this limit
    /// (N × `sesCallsBeforeRecords` / rate): how close to the limit the operator runs.
    pub floor_ratio: f64,
    /// From apply to records of one SenderIdentity applied in a namespace of its own a few
    /// seconds into the burst (the passes at the default limit only).
    pub lone_identity_latency_ms: Option<u64>,
}

/// The bench's result (`--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub identities: usize,
    pub settings: usize,
    pub records_p50_ms: u64,
    pub records_p99_ms: u64,
    pub records_total_s: f64,
    pub passes: Vec<RecordsPass>,
    pub ready_total_s: f64,
    pub ses_calls_per_identity: f64,
    pub ses_calls_by_operation: BTreeMap<String, f64>,
    pub steady_state_calls_per_hour: f64,
    pub steady_state_calls_by_operation: BTreeMap<String, f64>,
    pub baseline_calls_per_hour: f64,
    pub baseline_ratio: f64,
    pub peak_rss_mib: f64,
    /// The operator's peak RSS up to the moment the last records showed (the apply burst),
    /// before DNS is published and everything turns Ready.
    pub peak_rss_at_records_mib: f64,
    pub cpu_seconds: f64,
    /// CPU seconds of the test bed itself (API server, SES and DNS stand-ins, this bench) over
    /// the same span: on a small machine the stand-ins compete with the operator for the CPU.
    pub testbed_cpu_seconds: f64,
    pub kube_requests_by_verb: BTreeMap<String, u64>,
    /// SenderIdentity and EmailSettings status writes, per identity (apply → all Ready).
    pub status_patches_per_identity: f64,
    /// Events created, per identity (apply → all Ready).
    pub events_per_identity: f64,
    /// The lone identity's latency in the pass at the default limit (see [`RecordsPass`]).
    pub lone_identity_latency_ms: Option<u64>,
    pub machine: String,
}

/// One SenderIdentity of the plan.
#[derive(Clone, Debug)]
pub struct Planned {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// The EmailSettings it refers to.
    pub settings: String,
}

impl Planned {
    /// The SenderIdentity manifest.
    pub fn manifest(&self) -> Value {
        json!({
            "apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"emailSettingsRef": {"name": self.settings}, "identity": self.identity}
        })
    }
}

/// Where the plan's objects go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One namespace per EmailSettings (`bench-<i>`, each EmailSettings `notifications`).
    NamespaceEach,
    /// Every EmailSettings (`notifications-<i>`) in the one namespace [`BURST_NAMESPACE`]: one
    /// team's burst.
    OneNamespace,
}

/// The namespace of [`Layout::OneNamespace`].
pub const BURST_NAMESPACE: &str = "bench-burst";

/// The objects: M namespaces with an AdvancedSmtp EmailSettings each; identity k belongs to
/// settings k mod M — the first of each is its domain, the next up to three email addresses
/// on a subdomain (the policy's 1 domain + 3 email identities per EmailSettings).
pub fn plan(n: usize, m: usize) -> (Vec<Value>, Vec<Planned>) {
    plan_in(n, m, Layout::NamespaceEach)
}

/// [`plan`], laid out as `layout` says.
pub fn plan_in(n: usize, m: usize, layout: Layout) -> (Vec<Value>, Vec<Planned>) {
    let place = |i: usize| match layout {
        Layout::NamespaceEach => (format!("bench-{i}"), "notifications".to_string()),
        Layout::OneNamespace => (BURST_NAMESPACE.to_string(), format!("notifications-{i}")),
    };
    let settings = (0..m)
        .map(|i| {
            let (namespace, name) = place(i);
            json!({
                "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"from": format!("noreply@t{i}.bench.example"), "delivery": "AdvancedSmtp",
                         "activeUsers": [format!("ops@t{i}.bench.example")],
                         "advancedSmtp": {"region": "us-east-1"}}
            })
        })
        .collect();
    let identities = (0..n)
        .map(|k| {
            let (i, slot) = (k % m, k / m);
            let identity = if slot == 0 {
                format!("t{i}.bench.example")
            } else {
                format!("s{slot}@mail.t{i}.bench.example")
            };
            let (namespace, settings) = place(i);
            let name = match layout {
                Layout::NamespaceEach => format!("id-{slot}"),
                Layout::OneNamespace => format!("id-{i}-{slot}"),
            };
            Planned {
                namespace,
                name,
                identity,
                settings,
            }
        })
        .collect();
    (settings, identities)
}

/// When each identity reached each stage, from a watch.
#[derive(Default)]
struct Progress {
    records: HashMap<(String, String), Instant>,
    ready: HashMap<(String, String), Instant>,
}

fn shows_records(si: &SenderIdentity) -> bool {
    let Some(st) = &si.status else { return false };
    if si.spec.identity.contains('@') {
        st.verification_status.is_some()
    } else {
        st.dns_records.iter().filter(|r| r.type_ == "CNAME").count() == 3
    }
}

fn is_ready(si: &SenderIdentity) -> bool {
    si.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// A running test bed with the operator.
struct Bed {
    dir: tempfile_dir::TempDir,
    /// Kept for its lifetime: dropping it stops the API server.
    _kube: KubeServer,
    aws: AwsTestbed,
    client: ::kube::Client,
    operator: Option<tokio::process::Child>,
    progress: Arc<Mutex<Progress>>,
    /// The SenderIdentity watch feeding `progress`; stopped with the bed.
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

mod tempfile_dir {
    //! A directory removed on drop (the bench has no tempfile dependency at run time).
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let dir = std::env::temp_dir().join(format!(
                "email-operator-bench-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir)?;
            Ok(Self(dir))
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Bed {
    /// A fresh bed whose SES stand-in allows `rps` requests a second per account and region,
    /// the same limit the operator is given: each pass measures the operator against the SES
    /// it is configured for.
    async fn up(options: &BenchOptions, rps: f64) -> Result<Bed, String> {
        let dir = tempfile_dir::TempDir::new().map_err(|e| e.to_string())?;
        let kube = KubeServer::start(KubeOptions {
            crd_dirs: vec![options.crds.clone()],
            audit_log: Some(dir.path().join("audit.log")),
            ..KubeOptions::default()
        })
        .await
        .map_err(|e| format!("Kubernetes API stand-in: {e}"))?;
        kube.write_kubeconfig(&dir.path().join("kubeconfig"))
            .map_err(|e| e.to_string())?;
        let limits = crate::ses::limits::LimitConfig {
            requests_per_second: Some(rps),
            ..Default::default()
        };
        let aws = AwsTestbed::start_with(AwsPorts::default(), limits)
            .await
            .map_err(|e| format!("SES/DNS stand-ins: {e}"))?;
        let kubeconfig = ::kube::config::Kubeconfig::read_from(dir.path().join("kubeconfig"))
            .map_err(|e| e.to_string())?;
        let mut config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| e.to_string())?;
        // Tells the bench's own requests apart from the operator's in the audit log.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(FIELD_MANAGER),
        ));
        let client = ::kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let progress = Arc::new(Mutex::new(Progress::default()));
        let watch_progress = progress.clone();
        let api: Api<SenderIdentity> = Api::all(client.clone());
        let watch = tokio::spawn(async move {
            use ::kube::runtime::{WatchStreamExt, watcher};
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(si) = event else { continue };
                let key = (
                    si.metadata.namespace.clone().unwrap_or_default(),
                    si.metadata.name.clone().unwrap_or_default(),
                );
                let now = Instant::now();
                let mut p = watch_progress.lock().unwrap_or_else(|e| e.into_inner());
                if shows_records(&si) {
                    p.records.entry(key.clone()).or_insert(now);
                }
                if is_ready(&si) {
                    p.ready.entry(key).or_insert(now);
                }
            }
        });
        Ok(Bed {
            dir,
            _kube: kube,
            aws,
            client,
            operator: None,
            progress,
            watch,
        })
    }

    /// Starts the operator with `extra` flags and waits until it is ready (caches synced);
    /// its log goes to DIR/operator.log.
    async fn start_operator(&mut self, binary: &Path, extra: &[String]) -> Result<u32, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("operator.log"))
            .map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("run")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--cluster-id", "bench"])
            .args(["--aws-account-id", "123456789012"])
            .args(["--dns-server", &self.aws.dns.addr().to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .kill_on_drop(true);
        for line in self.aws.env_lines("us-east-1") {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                command.env(k, v.trim_matches('\''));
            }
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().unwrap_or_default();
        self.operator = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if readyz(port).await {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err("the operator did not become ready within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop_operator(&mut self) {
        if let Some(mut child) = self.operator.take() {
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    async fn apply(&self, obj: &Value) -> Result<(), String> {
        let gvk = if obj["kind"] == "Namespace" {
            ::kube::api::GroupVersionKind::gvk("", "v1", "Namespace")
        } else {
            ::kube::api::GroupVersionKind::gvk(
                "email.ops.dev",
                "v1alpha1",
                obj["kind"].as_str().unwrap_or_default(),
            )
        };
        let plural = match obj["kind"].as_str() {
            Some("Namespace") => "namespaces",
            Some("EmailSettings") => "emailsettings",
            _ => "senderidentities",
        };
        let resource = ::kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("apply {name}: {e}"))
    }

    async fn apply_all(
        &self,
        objects: Vec<Value>,
    ) -> Result<HashMap<(String, String), Instant>, String> {
        let applied = Mutex::new(HashMap::new());
        let results: Vec<Result<(), String>> = futures::stream::iter(objects)
            .map(|obj| {
                let applied = &applied;
                async move {
                    self.apply(&obj).await?;
                    let key = (
                        obj["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        obj["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                    applied
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, Instant::now());
                    Ok(())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
        Ok(applied.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until `count` keys are in the progress map `pick` selects.
    async fn wait_for(
        &self,
        what: &str,
        count: usize,
        timeout: Duration,
        pick: impl Fn(&Progress) -> usize,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let have = pick(&self.progress.lock().unwrap_or_else(|e| e.into_inner()));
            if have >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for {what}: {have} of {count} after {}s (operator log: {})",
                    timeout.as_secs(),
                    self.dir.path().join("operator.log").display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Plays the DNS administrator and the email recipient: publishes every domain's DKIM
    /// CNAMEs and the SPF record each identity's status advises (one per domain, as a platform
    /// team publishing `status.dnsRecords` would), confirms every email identity, then asks
    /// SES to look again.
    async fn publish_all(&self) -> Result<(), String> {
        let ses = self.aws.ses.state();
        let mut spf_published = std::collections::BTreeSet::new();
        for (identity, _) in ses.identities() {
            let domain = identity
                .name
                .rsplit_once('@')
                .map_or(identity.name.as_str(), |(_, d)| d)
                .to_ascii_lowercase();
            if spf_published.insert(domain.clone()) {
                let spf = format!("v=spf1 {} ~all", email_operator::dns::SES_SPF_INCLUDE);
                self.aws
                    .dns
                    .zone()
                    .add(&domain, "TXT", &spf, None)
                    .await
                    .map_err(|e| format!("publish the SPF record of {domain}: {e}"))?;
            }
            match &identity.dkim {
                Some(dkim) if !identity.name.contains('@') => {
                    for token in &dkim.tokens {
                        let name = format!("{token}._domainkey.{}", identity.name);
                        let target = format!("{token}.{}", dkim.signing_hosted_zone);
                        self.aws
                            .dns
                            .zone()
                            .add(&name, "CNAME", &target, None)
                            .await
                            .map_err(|e| format!("publish {name}: {e}"))?;
                    }
                }
                _ => {
                    ses.confirm_email(&identity.name, Some(&identity.region))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        ses.recheck_now();
        Ok(())
    }

    fn ses_calls(&self) -> BTreeMap<String, u64> {
        self.aws
            .ses
            .state()
            .calls
            .snapshot()
            .into_iter()
            .map(|(op, outcomes)| (op, outcomes.values().sum()))
            .collect()
    }

    /// Kubernetes API requests by verb so far, from the stand-in's audit log, with the status
    /// writes and Event creations among them.
    fn kube_requests(&self) -> (BTreeMap<String, u64>, u64, u64) {
        let (mut status_patches, mut events) = (0, 0);
        let mut by_verb = BTreeMap::new();
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let agent = event["userAgent"].as_str().unwrap_or_default();
            if agent.contains(FIELD_MANAGER) {
                continue;
            }
            if let Some(verb) = event["verb"].as_str() {
                *by_verb.entry(verb.to_string()).or_insert(0) += 1;
                let r = &event["objectRef"];
                if verb == "patch" && r["subresource"] == "status" {
                    status_patches += 1;
                }
                if verb == "create" && r["resource"] == "events" {
                    events += 1;
                }
                if std::env::var_os("BENCH_REQUESTS_BY_RESOURCE").is_some() {
                    let what = format!(
                        "{verb} {}/{}",
                        r["resource"].as_str().unwrap_or_default(),
                        r["subresource"].as_str().unwrap_or_default()
                    );
                    *by_verb.entry(what).or_insert(0) += 1;
                }
            }
        }
        (by_verb, status_patches, events)
    }
}

/// Whether `GET /readyz` on the operator's metrics port answers 200.
async fn readyz(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.is_ok() && head.ends_with(b"200")
}

/// Peak RSS (MiB) and CPU seconds of a process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in USER_HZ, 100 on every mainstream architecture.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (hwm_kib / 1024.0, cpu)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn find_operator(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|me| Some(me.parent()?.join("email-operator")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("email-operator"))
}

/// How long into the burst the lone identity is applied, and where.
const LONE_DELAY: Duration = Duration::from_secs(5);
const LONE_NAMESPACE: &str = "bench-lone";

/// The lone identity's namespace, EmailSettings and SenderIdentity.
fn lone_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LONE_NAMESPACE}}),
        json!({
            "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
            "metadata": {"name": "notifications", "namespace": LONE_NAMESPACE},
            "spec": {"from": "noreply@lone.bench.example", "delivery": "AdvancedSmtp",
                     "activeUsers": ["ops@lone.bench.example"],
                     "advancedSmtp": {"region": "us-east-1"}}
        }),
        Planned {
            namespace: LONE_NAMESPACE.into(),
            name: "lone".into(),
            identity: "lone.bench.example".into(),
            settings: "notifications".into(),
        }
        .manifest(),
    ]
}

/// One pass: a fresh bed, apply everything, time the records. Returns the bed for more.
async fn records_pass(
    options: &BenchOptions,
    rps: f64,
    binary: &Path,
    extra: &[String],
) -> Result<(RecordsPass, Bed, u32, Instant), String> {
    // At the default limit one team's burst: every object in one namespace.
    let lone = rps < options.fast_rps;
    let layout = if lone {
        Layout::OneNamespace
    } else {
        Layout::NamespaceEach
    };
    let (settings, identities) = plan_in(options.identities, options.settings, layout);
    let mut bed = Bed::up(options, rps).await?;
    let mut flags = vec!["--ses-max-rps".to_string(), rps.to_string()];
    flags.extend_from_slice(extra);
    let pid = bed.start_operator(binary, &flags).await?;
    let namespaces: Vec<Value> = settings
        .iter()
        .filter_map(|s| s["metadata"]["namespace"].as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    bed.apply_all(namespaces).await?;
    bed.apply_all(settings).await?;
    let objects: Vec<Value> = identities.iter().map(Planned::manifest).collect();
    let started = Instant::now();
    // At the default limit, one more SenderIdentity in a namespace of its own, applied while
    // the burst is being created: how long another team waits for its records.
    let (applied, lone_applied) = tokio::join!(bed.apply_all(objects), async {
        if !lone {
            return Ok(None);
        }
        tokio::time::sleep(LONE_DELAY).await;
        bed.apply_all(lone_objects())
            .await
            .map(|_| Some(Instant::now()))
    });
    let (applied, lone_applied) = (applied?, lone_applied?);
    let expected = identities.len() + usize::from(lone);
    bed.wait_for("records", expected, options.timeout, |p| p.records.len())
        .await?;
    let calls_before_records = bed.ses_calls().values().sum::<u64>() as f64;
    let progress = bed.progress.lock().unwrap_or_else(|e| e.into_inner());
    let mut latencies: Vec<Duration> = applied
        .iter()
        .filter_map(|(k, at)| Some(progress.records.get(k)?.saturating_duration_since(*at)))
        .collect();
    let last = progress.records.values().max().copied().unwrap_or(started);
    let lone_identity_latency_ms = lone_applied.and_then(|at| {
        let shown = progress
            .records
            .get(&(LONE_NAMESPACE.to_string(), "lone".to_string()))?;
        Some(shown.saturating_duration_since(at).as_millis() as u64)
    });
    drop(progress);
    latencies.sort();
    let n = expected.max(1) as f64;
    let ses_calls_before_records = calls_before_records / n;
    let records_total_s = last.duration_since(started).as_secs_f64();
    let pass = RecordsPass {
        ses_max_rps: rps,
        records_p50_ms: percentile(&latencies, 0.5).as_millis() as u64,
        records_p99_ms: percentile(&latencies, 0.99).as_millis() as u64,
        records_total_s,
        floor_s: options.identities as f64 / rps,
        ses_calls_before_records,
        floor_ratio: records_total_s / (n * ses_calls_before_records / rps).max(f64::EPSILON),
        lone_identity_latency_ms,
    };
    Ok((pass, bed, pid, started))
}

/// SES calls per hour over `window`, scaled from the shortened `period` to `real`, in total
/// and by operation.
async fn calls_per_hour(
    bed: &Bed,
    window: Duration,
    period: Duration,
    real: Duration,
) -> (f64, BTreeMap<String, f64>) {
    bed.aws.ses.state().calls.reset();
    tokio::time::sleep(window).await;
    let scale = 3600.0 / window.as_secs_f64() * (period.as_secs_f64() / real.as_secs_f64());
    let by_op: BTreeMap<String, f64> = bed
        .ses_calls()
        .into_iter()
        .map(|(op, c)| (op, c as f64 * scale))
        .collect();
    (by_op.values().sum(), by_op)
}

/// Runs the whole bench.
pub async fn run(mut options: BenchOptions) -> Result<Report, String> {
    // At most 1 domain and 3 email identities per EmailSettings.
    options.settings = options.settings.max(options.identities.div_ceil(4)).max(1);
    let binary = find_operator(options.operator.as_deref());
    let recheck = format!("{}s", BENCH_RECHECK.as_secs());
    // The fast pass goes on to Ready and the steady state, on shortened cadences; the pass at
    // the default limit runs with the operator's own.
    let fast_flags: Vec<String> = [
        "--verified-recheck-interval",
        &recheck,
        "--pending-recheck-min",
        "2s",
        "--pending-recheck-max",
        "5s",
    ]
    .map(String::from)
    .to_vec();
    eprintln!(
        "bench: {} identities over {} EmailSettings, SES limit {}/s",
        options.identities, options.settings, options.fast_rps
    );
    let (fast, mut bed, pid, _) =
        records_pass(&options, options.fast_rps, &binary, &fast_flags).await?;
    let peak_rss_at_records_mib = usage(pid).0;

    // DNS published and emails confirmed → every identity Ready.
    bed.publish_all().await?;
    let published = Instant::now();
    bed.wait_for("Ready", options.identities, options.timeout, |p| {
        p.ready.len()
    })
    .await?;
    let last_ready = bed
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ready
        .values()
        .max()
        .copied()
        .unwrap_or(published);
    let ready_total_s = last_ready
        .saturating_duration_since(published)
        .as_secs_f64();
    let calls = bed.ses_calls();
    let n = options.identities.max(1) as f64;
    let ses_calls_by_operation: BTreeMap<String, f64> = calls
        .iter()
        .map(|(op, c)| (op.clone(), *c as f64 / n))
        .collect();
    let ses_calls_per_identity = calls.values().sum::<u64>() as f64 / n;
    let (peak_rss_mib, cpu_seconds) = usage(pid);
    let testbed_cpu_seconds = usage(std::process::id()).1;
    let (kube_requests_by_verb, status_patches, events) = bed.kube_requests();

    // Steady state: the operator's bulk re-check, then the per-identity polling baseline, on
    // the same verified identities.
    eprintln!("bench: all Ready; measuring steady state");
    let baseline_period = BENCH_RECHECK.max(Duration::from_secs((options.identities / 100) as u64));
    let window = (baseline_period * 3).max(Duration::from_secs(30));
    tokio::time::sleep(BENCH_RECHECK).await;
    let (steady, steady_by_op) = calls_per_hour(&bed, window, BENCH_RECHECK, REAL_RECHECK).await;
    bed.stop_operator().await;
    let identities: Vec<(String, String)> = bed
        .aws
        .ses
        .state()
        .identities()
        .into_iter()
        .map(|(i, _)| (i.region, i.name))
        .collect();
    let poller = tokio::spawn(crate::baseline::poll(
        bed.aws.ses.endpoint_url(),
        identities,
        baseline_period,
    ));
    tokio::time::sleep(baseline_period).await;
    let (baseline, _) = calls_per_hour(&bed, window, baseline_period, REAL_BASELINE_POLL).await;
    poller.abort();
    drop(bed);

    let mut passes = vec![fast.clone()];
    if !options.skip_default_rate {
        eprintln!(
            "bench: again at the default SES limit {}/s",
            options.default_rps
        );
        let (slow, mut bed, _, _) =
            records_pass(&options, options.default_rps, &binary, &[]).await?;
        bed.stop_operator().await;
        passes.push(slow);
    }
    let lone_identity_latency_ms = passes.iter().find_map(|p| p.lone_identity_latency_ms);
    Ok(Report {
        identities: options.identities,
        settings: options.settings,
        records_p50_ms: fast.records_p50_ms,
        records_p99_ms: fast.records_p99_ms,
        records_total_s: fast.records_total_s,
        passes,
        ready_total_s,
        ses_calls_per_identity,
        ses_calls_by_operation,
        steady_state_calls_per_hour: steady,
        steady_state_calls_by_operation: steady_by_op,
        baseline_calls_per_hour: baseline,
        baseline_ratio: if steady > 0.0 {
            baseline / steady
        } else {
            f64::INFINITY
        },
        peak_rss_mib,
        peak_rss_at_records_mib,
        cpu_seconds,
        testbed_cpu_seconds,
        kube_requests_by_verb,
        status_patches_per_identity: status_patches as f64 / n,
        events_per_identity: events as f64 / n,
        lone_identity_latency_ms,
        machine: machine(),
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    format!("{cpus} CPUs, {:.0} GiB", mem_kib / 1024.0 / 1024.0)
}

/// The human table.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "email-operator bench: {} SenderIdentities over {} EmailSettings ({})\n\n",
        r.identities, r.settings, r.machine
    );
    out.push_str(
        "apply → records shown      SES limit    p50        p99        total      floor N/rate  calls/id before  floor ratio  lone identity\n",
    );
    for p in &r.passes {
        let lone = p
            .lone_identity_latency_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"));
        out.push_str(&format!(
            "                           {:>7}/s  {:>7} ms  {:>7} ms  {:>7.1} s  {:>7.1} s     {:>6.2}           {:>6.2}       {lone}\n",
            p.ses_max_rps,
            p.records_p50_ms,
            p.records_p99_ms,
            p.records_total_s,
            p.floor_s,
            p.ses_calls_before_records,
            p.floor_ratio
        ));
    }
    out.push_str(&format!(
        "DNS published → all Ready  {:.1} s\n",
        r.ready_total_s
    ));
    out.push_str(&format!(
        "SES calls per identity     {:.2}  ({})\n",
        r.ses_calls_per_identity,
        r.ses_calls_by_operation
            .iter()
            .map(|(op, c)| format!("{op} {c:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "steady state SES calls/h   {:.2}   baseline (GetEmailIdentity every 10 min) {:.0}   → {:.0}× fewer\n",
        r.steady_state_calls_per_hour, r.baseline_calls_per_hour, r.baseline_ratio
    ));
    out.push_str(&format!(
        "operator                   peak RSS {:.1} MiB ({:.1} MiB when the records showed), CPU {:.1} s (apply → all Ready; the test bed used {:.1} s)\n",
        r.peak_rss_mib, r.peak_rss_at_records_mib, r.cpu_seconds, r.testbed_cpu_seconds
    ));
    out.push_str(&format!(
        "Kubernetes writes per id   status {:.2}, Events {:.2}\n",
        r.status_patches_per_identity, r.events_per_identity
    ));
    out.push_str(&format!(
        "Kubernetes API requests    {}\n",
        r.kube_requests_by_verb
            .iter()
            .map(|(v, c)| format!("{v} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_respects_the_identity_limits() {
        let (settings, identities) = plan(10, 3);
        assert_eq!(settings.len(), 3);
        assert_eq!(identities.len(), 10);
        for i in 0..3 {
            let ns = format!("bench-{i}");
            let mine: Vec<_> = identities.iter().filter(|p| p.namespace == ns).collect();
            assert_eq!(mine.iter().filter(|p| !p.identity.contains('@')).count(), 1);
            assert!(mine.iter().filter(|p| p.identity.contains('@')).count() <= 3);
        }
        let mut names: Vec<_> = identities.iter().map(|p| (&p.namespace, &p.name)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10, "unique names");
    }

    #[test]
    fn one_namespace_holds_every_object_under_unique_names() {
        let (settings, identities) = plan_in(10, 3, Layout::OneNamespace);
        assert!(
            settings
                .iter()
                .all(|s| s["metadata"]["namespace"] == BURST_NAMESPACE)
        );
        let mut names: Vec<_> = identities.iter().map(|p| &p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10, "unique names");
        for p in &identities {
            assert_eq!(p.namespace, BURST_NAMESPACE);
            let index = p.name.split('-').nth(1).expect("index");
            assert_eq!(p.settings, format!("notifications-{index}"));
        }
    }

    #[test]
    fn percentiles_pick_from_the_sorted_latencies() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
