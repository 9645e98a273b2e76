//! `testbed demo`: the whole system on one machine, until every example is Ready. Brings the
//! test bed up (Kubernetes API stand-in with the CRDs, SES, SES SMTP, DNS, control API), applies
//! `examples/` the way `kubectl apply --server-side` would, starts the mail servers and token
//! endpoint the examples name and hands out what a platform team would ([`world`]), then runs
//! the real `email-operator run` against it all, its log in `DIR/operator.log`.
//!
//! While the operator works, the demo plays the DNS administrator and the mailbox owners
//! ([`admin`]) and shows the EmailSettings and SenderIdentities as `kubectl get email -A` would
//! ([`table`]). It ends when every example EmailSettings and SenderIdentity is Ready — exit 0,
//! with a summary ([`summary`]) — or when the time is up, or when every object that is not
//! Ready is Stalled and nothing changed for [`SETTLED`] — exit non-zero, naming each stuck
//! object with its Ready condition's reason and message ([`progress`]). With `keep`, everything
//! keeps running afterwards until Ctrl-C.
//!
//! Started through `cargo run`, the demo first builds the operator binary next to itself
//! (`cargo build --workspace --bin email-operator`, the same profile), so the operator it runs
//! is never older than the sources ([`operator`]); the manifests are applied by [`apply`].

pub mod admin;
mod apply;
mod operator;
pub mod progress;
pub mod summary;
pub mod table;
pub mod world;

pub use apply::{apply_examples, apply_manifests, write_env};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use crate::control::{AwsPorts, AwsTestbed};
use crate::kube::{KubeOptions, KubeServer};
use apply::client;
use operator::{check_run_exists, find_operator, start_operator};
use progress::{Progress, Wanted, seconds};

/// Field manager used for the example manifests and what the demo hands out.
const FIELD_MANAGER: &str = "testbed-demo";
/// Stop waiting once every object that is not Ready has been Stalled this long, unchanged.
pub const SETTLED: Duration = Duration::from_secs(10);
/// How often the demo looks.
const TICK: Duration = Duration::from_millis(500);

/// What `testbed demo` needs to know.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where kubeconfig, env, the CA files and the operator's log are written.
    pub dir: PathBuf,
    /// CRD directory installed at start.
    pub crds: PathBuf,
    /// Manifests applied after start (searched recursively for *.yaml / *.yml).
    pub examples: PathBuf,
    /// The operator binary; `None` = built by cargo when run through `cargo run`, else next to
    /// this executable, then `email-operator` on PATH.
    pub operator: Option<PathBuf>,
    /// SES region given to the operator (`AWS_REGION`).
    pub region: String,
    /// How long every example may take to be Ready, from the operator's start.
    pub timeout: Duration,
    /// Keep everything running after the result, until Ctrl-C.
    pub keep: bool,
}

/// Runs the demo; `Err` carries the message to print before exiting non-zero.
pub async fn run(options: DemoOptions) -> Result<(), String> {
    let begun = Instant::now();
    let dir = &options.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    println!(
        "email-operator demo: the test bed, the examples' mail servers and the real operator, on this machine"
    );
    // Built first (through `cargo run`), so that the examples' ages count from the demo's start.
    let operator = find_operator(options.operator.as_deref()).await?;

    let kube = KubeServer::start(KubeOptions {
        crd_dirs: vec![options.crds.clone()],
        ..KubeOptions::default()
    })
    .await
    .map_err(|e| format!("Kubernetes API stand-in: {e}"))?;
    let kubeconfig = dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)
        .map_err(|e| format!("cannot write {}: {e}", kubeconfig.display()))?;
    let aws = AwsTestbed::start(AwsPorts::default())
        .await
        .map_err(|e| format!("SES/DNS/control stand-ins: {e}"))?;
    write_env(dir, &aws, &options.region, &kubeconfig)?;
    println!(
        "  test bed      Kubernetes {}, SES {}, DNS {}, control API {}",
        kube.url(),
        aws.ses.endpoint_url(),
        aws.dns.addr(),
        aws.control.url()
    );

    let applied = apply_manifests(&kube.url(), &options.examples).await?;
    println!(
        "  applied       {} objects from {}: {}",
        applied.len(),
        options.examples.display(),
        count_kinds(&applied)
    );
    let of_kind = |kind: &str| -> Vec<DynamicObject> {
        applied
            .iter()
            .filter(|o| o.types.as_ref().is_some_and(|t| t.kind == kind))
            .cloned()
            .collect()
    };
    let settings = of_kind("EmailSettings");
    let mut regions: Vec<String> = settings
        .iter()
        .filter_map(|es| {
            es.data
                .pointer("/spec/advancedSmtp/region")?
                .as_str()
                .map(str::to_string)
        })
        .chain([options.region.clone()])
        .collect();
    regions.sort();
    regions.dedup();

    let world = world::World::start(&aws, dir, &regions).await?;
    for (i, host) in world.hosts.iter().enumerate() {
        let label = if i == 0 { "mail servers" } else { "" };
        println!(
            "  {label:<12}  {}:{} → {} ({})",
            host.name, host.port, host.addr, host.what
        );
    }
    let client = client(&kube.url())?;
    for (i, line) in world
        .hand_out(&client, &aws, &settings)
        .await?
        .iter()
        .enumerate()
    {
        let label = if i == 0 { "handed out" } else { "" };
        println!("  {label:<12}  {line}");
    }

    check_run_exists(&operator).await?;
    let log = dir.join("operator.log");
    let mut child = start_operator(&operator, &kubeconfig, &aws, &options.region, &world, &log)?;
    let started = Instant::now();
    println!(
        "  operator      {} run (pid {}), its log in {}",
        operator.display(),
        child.id().unwrap_or_default(),
        log.display()
    );

    let wanted: Vec<Wanted> = ["EmailSettings", "SenderIdentity"]
        .iter()
        .flat_map(|kind| of_kind(kind))
        .map(|o| Wanted {
            kind: o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default(),
            namespace: o
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: o.metadata.name.clone().unwrap_or_default(),
        })
        .collect();
    println!(
        "waiting up to {} for {} EmailSettings and SenderIdentities to be Ready (Ctrl-C stops)\n",
        seconds(options.timeout),
        wanted.len()
    );
    let mut watch = Watch {
        client: client.clone(),
        admin: admin::Admin::new(aws.dns.zone().clone(), aws.ses.state()),
        progress: Progress::new(wanted, started),
        screen: table::Screen::new(started),
    };
    let outcome = watch.until_done(&mut child, options.timeout).await;
    watch.screen.release();
    println!();
    let result = match outcome {
        Ok(()) => {
            let identities = list(&client, "SenderIdentity").await.unwrap_or_default();
            // What each status says now of each record: (owner, type, name) → published.
            let mut flags = BTreeMap::new();
            for identity in &identities {
                let owner = format!(
                    "{}/{}",
                    identity.metadata.namespace.as_deref().unwrap_or_default(),
                    identity.metadata.name.as_deref().unwrap_or_default()
                );
                let records = identity.data.pointer("/status/dnsRecords");
                for r in records.and_then(Value::as_array).into_iter().flatten() {
                    let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
                    let published = r.get("published").and_then(Value::as_bool) == Some(true);
                    let key = (
                        owner.clone(),
                        field("type").to_string(),
                        field("name").to_string(),
                    );
                    flags.insert(key, published);
                }
            }
            print!(
                "{}",
                summary::render(&summary::Facts {
                    progress: &watch.progress,
                    ses_calls: aws.ses.state().calls.snapshot(),
                    records: &watch.admin.records,
                    published_flags: &flags,
                    clicked: &watch.admin.clicked,
                    logins: world.logins(),
                    dir,
                    total: begun.elapsed(),
                    keep: options.keep,
                })
            );
            Ok(())
        }
        Err(why) => {
            print!(
                "{}",
                progress::stuck_report(&watch.progress, started.elapsed())
            );
            println!("  ({why}; the operator's log: {})", log.display());
            Err(format!(
                "not every example is Ready ({} stuck)",
                watch.progress.stuck().len()
            ))
        }
    };
    if options.keep {
        keep_running(&mut watch, &mut child, dir).await;
    }
    let _ = child.kill().await;
    drop(world);
    kube.shutdown().await;
    result
}

/// The demo's view while the operator works.
struct Watch {
    client: ::kube::Client,
    admin: admin::Admin,
    progress: Progress,
    screen: table::Screen,
}

impl Watch {
    /// One look: publish what statuses ask for, click links, take in Ready conditions, show
    /// the table.
    async fn look(&mut self) -> Result<(), String> {
        let identities = list(&self.client, "SenderIdentity").await?;
        for line in self.admin.publish(&identities).await {
            self.screen.event(&line);
        }
        for line in self.admin.click_links(&identities) {
            self.screen.event(&line);
        }
        let settings = list(&self.client, "EmailSettings").await?;
        let mut ready = self.progress.update("EmailSettings", &settings);
        ready.extend(self.progress.update("SenderIdentity", &identities));
        for wanted in ready {
            self.screen.event(&format!("{wanted} is Ready"));
        }
        let (mut text, mut key) = (String::new(), String::new());
        for kind in &table::KINDS {
            let t = table::fetch(&self.client, kind).await?;
            text.push_str(&table::render(kind.title, &t));
            key.push_str(&table::render(kind.title, &table::without_age(&t)));
        }
        self.screen.tables(&text, &key);
        Ok(())
    }

    /// Until every wanted object is Ready (`Ok`), or why not.
    async fn until_done(
        &mut self,
        child: &mut tokio::process::Child,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            tokio::select! {
                status = child.wait() => {
                    return Err(match status {
                        Ok(status) => format!("email-operator run exited with {status}"),
                        Err(e) => format!("cannot wait for email-operator run: {e}"),
                    });
                }
                _ = tokio::signal::ctrl_c() => return Err("interrupted".into()),
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Err(error) = self.look().await {
                self.screen
                    .event(&format!("cannot read the objects: {error}"));
            }
            if self.progress.all_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the time limit of {} is up", seconds(timeout)));
            }
            if self.progress.settled(SETTLED) {
                return Err(format!(
                    "what is not Ready is Stalled (waits for a change) and nothing changed for {}",
                    seconds(SETTLED)
                ));
            }
        }
    }
}

/// `--keep`: tells how to look, and keeps publishing records and clicking links (for objects
/// the user applies too) until Ctrl-C or the operator's end.
async fn keep_running(watch: &mut Watch, child: &mut tokio::process::Child, dir: &Path) {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    println!(
        "\nEverything keeps running (--keep). In another shell:\n  export KUBECONFIG={}\n  kubectl get email -A\n  source {}   # SES, DNS and control API endpoints, for curl and the AWS CLI\nCtrl-C stops it all.",
        dir.join("kubeconfig").display(),
        dir.join("env").display()
    );
    loop {
        tokio::select! {
            _ = child.wait() => {
                println!("email-operator run has exited; stopping");
                return;
            }
            _ = tokio::signal::ctrl_c() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Ok(identities) = list(&watch.client, "SenderIdentity").await else {
            continue;
        };
        for line in watch.admin.publish(&identities).await {
            watch.screen.event(&line);
        }
        for line in watch.admin.click_links(&identities) {
            watch.screen.event(&line);
        }
    }
}

/// Every object of one of the operator's kinds, in all namespaces.
async fn list(client: &::kube::Client, kind: &str) -> Result<Vec<DynamicObject>, String> {
    let resource = match kind {
        "EmailSettings" => ApiResource::erase::<email_operator::crd::EmailSettings>(&()),
        _ => ApiResource::erase::<email_operator::crd::SenderIdentity>(&()),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    Ok(api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("{kind}: {e}"))?
        .items)
}

/// `6 Namespace, 5 EmailSettings, …`, most first.
fn count_kinds(objects: &[DynamicObject]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for o in objects {
        let kind = o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        *counts.entry(kind).or_default() += 1;
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
