//! `testbed` command line.
//!
//! `testbed up --dir DIR` starts every stand-in server side by side, writes `DIR/kubeconfig`
//! and `DIR/env` (sourceable `export` lines), prints one line `ready` once all of them serve, and runs until SIGTERM/SIGINT, then shuts
//! the servers down and exits 0. Each server is started by its own `start` function and only
//! hands back a handle, so adding another server is one block in [`up`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use testbed::kube::{AdmissionPlugin, DEFAULT_KUBE_VERSION, KubeOptions, KubeServer, KubeVersion};

#[derive(Parser)]
#[command(
    name = "testbed",
    about = "Stand-ins for the systems email-operator talks to"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stand-in servers, write DIR/kubeconfig, print `ready`, run until killed.
    Up(UpArgs),
    /// Bring everything up with the examples' mail servers, apply examples/, run the real
    /// `email-operator run` against it until every example is Ready (exit 0) or not in time
    /// (exit 1, naming what is stuck and why).
    Demo(DemoArgs),
    /// Measure the real operator on the test bed: latency to records and Ready, SES calls
    /// (against a per-identity polling baseline), memory, CPU and Kubernetes API requests.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// SenderIdentities to create.
    #[arg(long, default_value_t = 1000)]
    identities: usize,
    /// EmailSettings they are spread over (raised to identities/4: 1 domain + 3 emails each).
    #[arg(long, default_value_t = 250)]
    settings: usize,
    /// The SES limit of the fast pass.
    #[arg(long, default_value_t = 1000.0)]
    fast_rps: f64,
    /// The operator's default SES limit (SES's real one), for the second pass.
    #[arg(long, default_value_t = 1.0)]
    default_rps: f64,
    /// Skip the pass at the default SES limit (it takes at least identities / rate seconds).
    #[arg(long)]
    skip_default_rate: bool,
    /// CustomResourceDefinitions to install.
    #[arg(long, default_value = "crds")]
    crds: PathBuf,
    /// The operator binary (default: `email-operator` next to `testbed`, then on PATH).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Bound on each wait, in seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct UpArgs {
    /// Directory for generated files (kubeconfig, …); created if missing.
    #[arg(long)]
    dir: PathBuf,
    /// Port for the Kubernetes API stand-in (0 = ephemeral).
    #[arg(long, default_value_t = 0)]
    kube_port: u16,
    /// Directories whose `*.yaml` CustomResourceDefinitions are installed at start
    /// (default: `crds` when it exists in the current directory).
    #[arg(long = "crds")]
    crd_dirs: Vec<PathBuf>,
    /// AWS region written to DIR/env (`AWS_REGION`).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Mint a token for the ServiceAccount NAMESPACE/NAME (created if missing) and write
    /// DIR/kubeconfig-NAMESPACE-NAME for it; RBAC objects decide what it may do. Repeatable.
    #[arg(long = "service-account", value_name = "NAMESPACE/NAME", value_parser = parse_namespaced)]
    service_accounts: Vec<(String, String)>,
    /// Append the Kubernetes API audit log (JSON lines, audit.k8s.io/v1 Events) to this file;
    /// a relative path is taken relative to --dir.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Fault injection: end every watch after this many seconds (clients must re-watch).
    #[arg(long, value_name = "SECONDS")]
    drop_watches_every: Option<u64>,
    /// Fault injection: answer every LIST of RESOURCE (a plural, e.g. emailsettings) this many
    /// milliseconds late, so a client's cache of it fills late. Repeatable.
    #[arg(long = "slow-list", value_name = "RESOURCE=MILLISECONDS", value_parser = parse_slow_list)]
    slow_lists: Vec<(String, std::time::Duration)>,
    /// Admission plugins to turn on besides the defaults, comma-separated
    /// (OwnerReferencesPermissionEnforcement, on by default).
    #[arg(long, value_delimiter = ',')]
    enable_admission_plugins: Vec<AdmissionPlugin>,
    /// Default admission plugins to turn off, comma-separated (e.g.
    /// OwnerReferencesPermissionEnforcement, as kube-apiserver ships it).
    #[arg(long, value_delimiter = ',')]
    disable_admission_plugins: Vec<AdmissionPlugin>,
    /// The Kubernetes version to claim, 1.MINOR: `/version` reports it and CRD CEL rules may
    /// only call functions its API server accepts in new rules.
    #[arg(long, value_name = "1.MINOR", default_value_t = DEFAULT_KUBE_VERSION)]
    kube_version: KubeVersion,
    /// Do not serve external-dns' DNSEndpoint CRD (requests for dnsendpoints get 404, as in
    /// a cluster without external-dns).
    #[arg(long)]
    without_dnsendpoint_crd: bool,
}

/// The admission plugins on: the defaults, less `disable`, plus `enable`.
fn admission_plugins(
    enable: &[AdmissionPlugin],
    disable: &[AdmissionPlugin],
) -> Vec<AdmissionPlugin> {
    let mut plugins: Vec<AdmissionPlugin> = KubeOptions::default()
        .admission_plugins
        .into_iter()
        .filter(|p| !disable.contains(p))
        .collect();
    for p in enable {
        if !plugins.contains(p) {
            plugins.push(*p);
        }
    }
    plugins
}

fn parse_slow_list(s: &str) -> Result<(String, std::time::Duration), String> {
    let (resource, ms) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not RESOURCE=MILLISECONDS"))?;
    let ms: u64 = ms
        .parse()
        .map_err(|_| format!("{ms:?} is not a number of milliseconds"))?;
    if resource.is_empty() {
        return Err(format!("{s:?} names no resource"));
    }
    Ok((resource.to_string(), std::time::Duration::from_millis(ms)))
}

fn parse_namespaced(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for kubeconfig, env, the CA files and the operator's log (default: a fresh
    /// directory under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// CustomResourceDefinitions to install.
    #[arg(long, default_value = "crds")]
    crds: PathBuf,
    /// Manifests to apply.
    #[arg(long, default_value = "examples")]
    examples: PathBuf,
    /// The operator binary (default: through `cargo run`, `email-operator` built next to
    /// `testbed`; otherwise the one next to `testbed`, then on PATH).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// SES region the operator is given.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// How long every example EmailSettings and SenderIdentity may take to be Ready, from the
    /// operator's start: seconds, or a number with s or m (90s, 3m).
    #[arg(long, default_value = "180s", value_parser = parse_seconds)]
    timeout: std::time::Duration,
    /// After the result, keep everything running (and print how to point kubectl at it) until
    /// Ctrl-C.
    #[arg(long)]
    keep: bool,
}

/// `90`, `90s` or `3m`.
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (s.strip_suffix('s').unwrap_or(s), 1),
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| std::time::Duration::from_secs(n * unit))
        .ok_or_else(|| format!("{s:?} is not a duration such as 180s or 3m"))
}

fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("testbed: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Demo(args) => demo(args).await,
            Command::Bench(args) => bench(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let report = testbed::bench::run(testbed::bench::BenchOptions {
        identities: args.identities,
        settings: args.settings,
        fast_rps: args.fast_rps,
        default_rps: args.default_rps,
        skip_default_rate: args.skip_default_rate,
        crds: args.crds,
        operator: args.operator,
        timeout: std::time::Duration::from_secs(args.timeout_secs),
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", testbed::bench::table(&report));
    }
    Ok(())
}

async fn up(args: UpArgs) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.dir)?;
    let mut crd_dirs = args.crd_dirs;
    if crd_dirs.is_empty() && std::path::Path::new("crds").is_dir() {
        crd_dirs.push(PathBuf::from("crds"));
    }

    // Kubernetes API server stand-in.
    let kube = KubeServer::start(KubeOptions {
        addr: ([127, 0, 0, 1], args.kube_port).into(),
        crd_dirs,
        admission_plugins: admission_plugins(
            &args.enable_admission_plugins,
            &args.disable_admission_plugins,
        ),
        kube_version: args.kube_version,
        dns_endpoint_crd: !args.without_dnsendpoint_crd,
        audit_log: args.audit_log.map(|p| args.dir.join(p)),
        watch_drop_every: args.drop_watches_every.map(std::time::Duration::from_secs),
        slow_lists: args.slow_lists,
        ..KubeOptions::default()
    })
    .await?;
    kube.write_kubeconfig(&args.dir.join("kubeconfig"))?;
    for (namespace, name) in &args.service_accounts {
        let kubeconfig = kube
            .service_account_kubeconfig(namespace, name)
            .map_err(|e| format!("ServiceAccount {namespace}/{name}: {}", e.message))?;
        std::fs::write(
            args.dir.join(format!("kubeconfig-{namespace}-{name}")),
            kubeconfig,
        )?;
    }

    // SES and DNS stand-ins and the control API, sharing one zone and one clock; DIR/env
    // exports their endpoints (and KUBECONFIG) for a shell or the operator.
    let aws = testbed::control::AwsTestbed::start(testbed::control::AwsPorts::default()).await?;
    testbed::demo::write_env(&args.dir, &aws, &args.region, &args.dir.join("kubeconfig"))?;

    println!("ready");
    wait_for_shutdown_signal().await?;
    kube.shutdown().await;
    Ok(())
}

async fn demo(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("testbed-demo-{}", std::process::id()))
    });
    let options = testbed::demo::DemoOptions {
        dir,
        crds: args.crds,
        examples: args.examples,
        operator: args.operator,
        region: args.region,
        timeout: args.timeout,
        keep: args.keep,
    };
    Ok(testbed::demo::run(options).await?)
}

async fn wait_for_shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
