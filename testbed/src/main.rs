//! `testbed` command line.
//!
//! `testbed up --dir DIR` starts every stand-in server side by side, writes `DIR/kubeconfig`
//! and `DIR/env` (sourceable `export` lines), prints one line `ready` once all of them serve, and runs until SIGTERM/SIGINT, then shuts
//! the servers down and exits 0. Each server is started by its own `start` function and only
//! hands back a handle, so adding another server is one block in [`up`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use testbed::kube::{KubeOptions, KubeServer};

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
    /// Bring everything up, apply examples/, run the real `email-operator run` against it.
    Demo(DemoArgs),
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
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for kubeconfig and env (default: a fresh directory under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// CustomResourceDefinitions to install.
    #[arg(long, default_value = "crds")]
    crds: PathBuf,
    /// Manifests to apply.
    #[arg(long, default_value = "examples")]
    examples: PathBuf,
    /// The operator binary (default: `email-operator` next to `testbed`, then on PATH).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// SES region the operator is given.
    #[arg(long, default_value = "us-east-1")]
    region: String,
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
        ..KubeOptions::default()
    })
    .await?;
    kube.write_kubeconfig(&args.dir.join("kubeconfig"))?;

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
