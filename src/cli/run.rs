//! `email-operator run`: its flags in groups (as `--help` shows them), converted once into the
//! typed [`Config`], and the process around the controllers — logging, metrics, leader
//! election, signals.

use super::args::{EgressArgs, SesSmtpArgs, SmtpTimeoutArgs, parse_duration, parse_namespaced};
use email_operator::controller::{self, Config, config, leader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `email-operator run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Kubeconfig file (default: in-cluster configuration, then KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Names this cluster in the ownership tags on SES identities; give every cluster sharing
    /// an AWS account its own (1 to 63 letters, digits and _ . : = + -).
    #[arg(long, env = "EMAIL_OPERATOR_CLUSTER_ID", default_value = "default")]
    cluster_id: String,
    /// Reconciles each controller runs at once. More waiting work queues (each object once)
    /// instead of holding memory for thousands of reconciles waiting on SES and the API server.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    #[command(flatten, next_help_heading = "Tenancy")]
    tenancy: TenancyArgs,
    #[command(flatten, next_help_heading = "SES")]
    ses: SesArgs,
    #[command(flatten, next_help_heading = "Re-checks")]
    recheck: RecheckArgs,
    #[command(flatten, next_help_heading = "Connection tests")]
    smtp: SmtpArgs,
    #[command(flatten, next_help_heading = "Leader election")]
    leader: LeaderArgs,
    #[command(flatten, next_help_heading = "Metrics and health")]
    metrics: MetricsArgs,
    #[command(flatten, next_help_heading = "Logs")]
    logs: LogArgs,
}

#[derive(clap::Args)]
struct LogArgs {
    /// `text` for people, `json` (one object a line) for log collectors; `auto`: text when
    /// standard output is a terminal, JSON otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    log_format: LogFormat,
    /// What to log: a level (`info`, `debug`…) or directives such as
    /// `info,email_operator=debug`. Default: RUST_LOG, else info (kube, aws and hyper at warn).
    #[arg(long)]
    log_level: Option<String>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

impl LogFormat {
    /// JSON or not, given whether standard output is a terminal.
    pub fn json(self, terminal: bool) -> bool {
        match self {
            Self::Json => true,
            Self::Text => false,
            Self::Auto => !terminal,
        }
    }
}

/// The log filter: `--log-level`, else `RUST_LOG`, else the default.
fn log_filter(level: Option<&str>) -> Result<tracing_subscriber::EnvFilter, String> {
    use tracing_subscriber::EnvFilter;
    match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l:?}: {e}")),
        None => Ok(EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,kube=warn,aws=warn,hyper=warn".into())),
    }
}

#[derive(clap::Args)]
struct TenancyArgs {
    /// Watch only these namespaces (repeat the flag, or separate with commas): every watch
    /// and read is namespaced, and nothing is listed or watched at the cluster scope. Default:
    /// the whole cluster.
    #[arg(
        long = "watch-namespace",
        value_delimiter = ',',
        env = "EMAIL_OPERATOR_WATCH_NAMESPACES"
    )]
    watch_namespaces: Vec<String>,
    /// The namespace whose SenderPolicies are honoured (default: the operator's own,
    /// --leader-election-namespace). Tenants must not be able to write there.
    #[arg(long)]
    policy_namespace: Option<String>,
    /// Namespaces that may use the default relay (`delivery: Default`) with any from domain
    /// they may claim (repeat, or separate with commas; `*`: every namespace). Others need a
    /// SenderPolicy with defaultRelay for their from domain.
    #[arg(
        long,
        value_delimiter = ',',
        env = "EMAIL_OPERATOR_DEFAULT_RELAY_NAMESPACES"
    )]
    default_relay_namespaces: Vec<String>,
}

#[derive(clap::Args)]
struct SesArgs {
    /// SES requests per second per account and region (client-side limit, adaptive on
    /// throttling). SES allows every action but sending 1 request a second per account and
    /// region, and does not raise it; raise this only for SES-compatible test servers.
    #[arg(long, default_value_t = 1.0)]
    ses_max_rps: f64,
    /// The AWS account id of identity ARNs (default: from the role ARN, else STS GetCallerIdentity).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    aws_account_id: Option<String>,
    /// How often the SES account's standing (sandbox, enforcement, sending quota) is read with
    /// GetAccount at each account and region AdvancedSmtp EmailSettings use: one call per
    /// location each time, however many EmailSettings share it.
    #[arg(long, value_parser = parse_duration, default_value = "12h")]
    ses_account_interval: Duration,
}

#[derive(clap::Args)]
struct RecheckArgs {
    /// How often verified identities are re-checked (in bulk, one ListEmailIdentities page per
    /// 1,000 identities), e.g. 12h, 30m, 10s; identities with a custom MAIL FROM domain are
    /// also read this often.
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    verified_recheck_interval: Duration,
    /// While identities are pending, their SES status is listed in bulk every
    /// --pending-recheck-min; each one's DNS records are re-checked with backoff between these
    /// bounds (the interval grows with the age of the attempt).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pending_recheck_min: Duration,
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pending_recheck_max: Duration,
    /// Ask this DNS server (HOST:PORT) when checking published records, instead of the system
    /// resolvers; connection tests resolve SMTP hosts and token endpoints there first too (a
    /// name it does not answer is asked of the system resolvers).
    #[arg(long, env = "EMAIL_OPERATOR_DNS_SERVER")]
    dns_server: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
struct SmtpArgs {
    /// The Secret (NAMESPACE/NAME) holding the default relay for `delivery: Default`: keys
    /// host, port, tls (none|starttls|implicit), username, password, and optionally
    /// authentication (UsernamePassword|OAuth2|None), oauth2TokenUrl, oauth2ClientId,
    /// oauth2ClientSecret, oauth2Scopes, caBundle.
    #[arg(long, env = "EMAIL_OPERATOR_DEFAULT_RELAY_SECRET", value_parser = parse_namespaced)]
    default_relay_secret: Option<(String, String)>,
    #[command(flatten)]
    timeout: SmtpTimeoutArgs,
    #[command(flatten)]
    ses_smtp: SesSmtpArgs,
    #[command(flatten)]
    egress: EgressArgs,
}

#[derive(clap::Args)]
struct LeaderArgs {
    /// Elect a leader on a Lease so only one replica reconciles (turn off only for a single
    /// replica without access to Leases).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease `email-operator` (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// This replica's holder identity (default: POD_NAME, else host name and process id).
    #[arg(long, env = "POD_NAME")]
    leader_election_identity: Option<String>,
    /// A standby takes over when the leader has not renewed for this long.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// The leader stops when it could not renew for this long (less than --lease-duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_renew_deadline: Duration,
    /// How often the Lease is renewed or tried.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    lease_retry_period: Duration,
    /// On SIGTERM, how long in-flight reconciles may take before the process exits anyway.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
}

#[derive(clap::Args)]
struct MetricsArgs {
    /// Where /metrics, /healthz and /readyz are served (127.0.0.1:0 picks a free port).
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
}

/// Why `run` could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--cluster-id: {0}")]
    ClusterId(String),
    #[error("cannot read {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot reach Kubernetes: {0}")]
    Kubeconfig(String),
    #[error("cannot set up DNS lookups: {0}")]
    Dns(String),
    #[error("cannot set up connection tests: {0}")]
    Tester(String),
    #[error("cannot listen on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    LeaseLost(String),
}

impl RunError {
    /// 2 for a flag that cannot work, 1 for everything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::ClusterId(_) | Self::CaFile { .. } => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

impl RunArgs {
    /// The typed configuration of the controllers.
    fn config(&self) -> Result<Config, RunError> {
        if let Some(problem) = email_operator::ses::cluster_id_problem(&self.cluster_id) {
            return Err(RunError::ClusterId(problem));
        }
        let ses_endpoint = self
            .smtp
            .ses_smtp
            .endpoint()
            .map_err(|(path, source)| RunError::CaFile { path, source })?;
        let roots = self
            .smtp
            .egress
            .roots()
            .map_err(|(path, source)| RunError::CaFile { path, source })?;
        let r = &self.recheck;
        Ok(Config {
            cluster_id: self.cluster_id.clone(),
            concurrency: self.max_concurrent_reconciles,
            ses: config::Ses {
                max_rps: self.ses.ses_max_rps,
                aws_account_id: self.ses.aws_account_id.clone(),
                account_every: self.ses.ses_account_interval,
            },
            recheck: config::Recheck {
                verified_every: r.verified_recheck_interval,
                windows: config::Windows {
                    pending_min: r.pending_recheck_min,
                    pending_max: r.pending_recheck_max.max(r.pending_recheck_min),
                    mail_from_every: r.verified_recheck_interval,
                    ..Default::default()
                },
            },
            smtp: config::Smtp {
                egress: self
                    .smtp
                    .egress
                    .egress()
                    .with_dns_server(self.recheck.dns_server),
                roots,
                default_relay: self.smtp.default_relay_secret.clone(),
                ses_endpoint,
                timeouts: self.smtp.timeout.timeouts(),
            },
            tenancy: config::Tenancy {
                policy_namespace: self
                    .tenancy
                    .policy_namespace
                    .clone()
                    .unwrap_or_else(|| self.leader.leader_election_namespace.clone()),
                default_relay_namespaces: self.tenancy.default_relay_namespaces.clone(),
            },
            watch_namespaces: self.tenancy.watch_namespaces.clone(),
        })
    }

    fn lease_config(&self) -> Option<leader::LeaseConfig> {
        let l = &self.leader;
        if !l.leader_election {
            return None;
        }
        let identity = l.leader_election_identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "email-operator".into());
            format!("{host}-{}", std::process::id())
        });
        Some(leader::LeaseConfig {
            namespace: l.leader_election_namespace.clone(),
            name: "email-operator".into(),
            identity,
            duration: l.lease_duration,
            renew_deadline: l.lease_renew_deadline.min(l.lease_duration),
            retry_period: l.lease_retry_period.min(l.lease_duration / 2),
        })
    }
}

/// `email-operator run`.
pub fn run(args: RunArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = match log_filter(args.logs.log_level.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if args.logs.log_format.json(terminal) {
        logs.json().init();
    } else {
        logs.with_ansi(terminal).init();
    }
    let result = args.config().and_then(|config| {
        tokio::runtime::Runtime::new()
            .map_err(RunError::Runtime)?
            .block_on(serve(&args, config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopping");
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, RunError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::Kubeconfig(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::Kubeconfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::Kubeconfig(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| RunError::Kubeconfig(e.to_string()))
}

/// Serves metrics, waits for the Lease, runs the controllers until a signal (or the Lease is
/// lost), then releases the Lease.
async fn serve(args: &RunArgs, config: Config) -> Result<(), RunError> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let dns = email_operator::dns::lookup::HickoryLookup::new(args.recheck.dns_server)
        .map_err(RunError::Dns)?;
    let tester = email_operator::smtp::Tester::new(
        config.smtp.timeouts,
        config.smtp.egress.clone(),
        &config.smtp.roots,
    )
    .map_err(RunError::Tester)?;
    let backends = controller::Live::new(config.ses.clone(), &config.cluster_id, dns, tester);
    let addr = args.metrics.metrics_addr;
    let metrics = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Metrics { addr, source })?;
    let metrics_addr = metrics
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        cluster_id = config.cluster_id,
        ses_max_rps = config.ses.max_rps,
        metrics_addr,
        "email-operator starting"
    );
    tokio::spawn(email_operator::metrics::serve(metrics));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("shutting down: no new work, finishing what runs");
        let _ = stop_tx.send(true);
    });
    let mut elector = args
        .lease_config()
        .map(|l| leader::Elector::new(client.clone(), l));
    if let Some(elector) = &mut elector {
        let standby = |ok: bool| {
            email_operator::metrics::STANDBY.store(ok, std::sync::atomic::Ordering::Relaxed)
        };
        tokio::select! {
            () = elector.acquire(standby) => {}
            () = stopped(stop_rx.clone()) => {
                tracing::info!("email-operator stopped while standing by");
                return Ok(());
            }
        }
        standby(false);
    }
    email_operator::metrics::METRICS.leader.set(1);
    let clock = Arc::new(email_operator::clock::SystemClock);
    let controllers = controller::run(client, config, backends, clock, stop_rx.clone());
    let outcome = lead(
        controllers,
        &mut elector,
        stop_rx,
        args.leader.shutdown_timeout,
    )
    .await;
    email_operator::metrics::METRICS.leader.set(0);
    outcome?;
    if let Some(elector) = &mut elector
        && let Err(e) = elector.release().await
    {
        tracing::warn!(error = %e, "could not release the Lease; a standby takes over when it expires");
    }
    tracing::info!("email-operator stopped");
    Ok(())
}

/// Runs the controllers while this replica leads: losing the Lease drops them at once
/// (another replica now leads); after a stop, in-flight reconciles get `shutdown_timeout`.
async fn lead(
    controllers: impl std::future::Future<Output = ()>,
    elector: &mut Option<leader::Elector>,
    stop: tokio::sync::watch::Receiver<bool>,
    shutdown_timeout: Duration,
) -> Result<(), RunError> {
    let drain_bound = async {
        stopped(stop).await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    let lost = async {
        match elector {
            Some(e) => e.hold().await.to_string(),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = controllers => Ok(()),
        () = drain_bound => {
            tracing::warn!(timeout_s = shutdown_timeout.as_secs(), "reconciles still running at the shutdown bound are abandoned");
            Ok(())
        }
        lost = lost => Err(RunError::LeaseLost(lost)),
    }
}

/// SIGTERM or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
