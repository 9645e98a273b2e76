//! The `email-operator` command line.

use clap::{Parser, Subcommand};
use email_operator::plan;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "email-operator",
    version,
    about = "Declare in Kubernetes how applications send email"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against a cluster (in-cluster config, --kubeconfig or KUBECONFIG).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Reconcile manifests offline, for GitOps pipelines: schema, CEL rules, sender policy,
    /// the SES actions the operator would take and the DNS records already knowable.
    ///
    /// Exit status: 0 when every object would be accepted, 1 when any would be rejected or
    /// is invalid, 2 for usage errors or unreadable or malformed input.
    Plan {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: plan::Format,
        /// Also run the real SMTP connection test of every ExternalSmtp EmailSettings (Secrets
        /// are read from Secret manifests among the inputs); a failed test rejects the object
        /// with the test's reason.
        #[arg(long)]
        check_smtp: bool,
        /// Bound on each connection test's TCP connect (the whole conversation gets three times it).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        smtp_timeout: std::time::Duration,
        #[command(flatten)]
        ses_smtp: SesSmtpArgs,
        /// Manifest files or directories (searched recursively for *.yaml, *.yml, *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Derive the Amazon SES SMTP password for a region from an IAM secret access key read
    /// from standard input.
    SmtpPassword {
        /// The SES region the password is for, e.g. us-east-1.
        #[arg(long)]
        region: String,
    },
}

/// Flags of `email-operator run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Kubeconfig file (default: in-cluster configuration, then KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Names this cluster in the ownership tags on SES identities; give every cluster sharing
    /// an AWS account its own.
    #[arg(long, env = "EMAIL_OPERATOR_CLUSTER_ID", default_value = "default")]
    cluster_id: String,
    /// SES requests per second per account and region (client-side limit, adaptive on
    /// throttling). SES allows every action but sending 1 request a second per account and
    /// region, and does not raise it; raise this only for SES-compatible test servers.
    #[arg(long, default_value_t = 1.0)]
    ses_max_rps: f64,
    /// Reconciles each controller runs at once. More waiting work queues (each object once)
    /// instead of holding memory for thousands of reconciles waiting on SES and the API server.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// How often verified identities are re-checked (in bulk, one ListEmailIdentities page per
    /// 1,000 identities), e.g. 12h, 30m, 10s.
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    verified_recheck_interval: std::time::Duration,
    /// While identities are pending, their SES status is listed in bulk every
    /// --pending-recheck-min; each one's DNS records are re-checked with backoff between these
    /// bounds (the interval grows with the age of the attempt).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pending_recheck_min: std::time::Duration,
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pending_recheck_max: std::time::Duration,
    /// Where /metrics, /healthz and /readyz are served (127.0.0.1:0 picks a free port).
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Ask this DNS server (HOST:PORT) when checking published records, instead of the system resolvers.
    #[arg(long, env = "EMAIL_OPERATOR_DNS_SERVER")]
    dns_server: Option<std::net::SocketAddr>,
    /// The AWS account id of identity ARNs (default: from the role ARN, else STS GetCallerIdentity).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    aws_account_id: Option<String>,
    /// The Secret (NAMESPACE/NAME) holding the default relay for `delivery: Default`: keys
    /// host, port, tls (none|starttls|implicit), username, password, and optionally
    /// authentication (UsernamePassword|OAuth2|None), oauth2TokenUrl, oauth2ClientId,
    /// oauth2ClientSecret, oauth2Scopes, caBundle.
    #[arg(long, env = "EMAIL_OPERATOR_DEFAULT_RELAY_SECRET", value_parser = parse_namespaced)]
    default_relay_secret: Option<(String, String)>,
    /// Bound on each SMTP connection test's TCP connect (the whole conversation gets three
    /// times it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    smtp_timeout: std::time::Duration,
    #[command(flatten)]
    ses_smtp: SesSmtpArgs,
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
    lease_duration: std::time::Duration,
    /// The leader stops when it could not renew for this long (less than --lease-duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_renew_deadline: std::time::Duration,
    /// How often the Lease is renewed or tried.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    lease_retry_period: std::time::Duration,
    /// For benchmarks: poll every identity with GetEmailIdentity on this period, as
    /// per-resource-polling controllers do, instead of the bulk re-check (the comparison
    /// baseline of `testbed bench`). Not for production.
    #[arg(long, hide = true, value_parser = parse_duration)]
    baseline_poll_every: Option<std::time::Duration>,
    /// On SIGTERM, how long in-flight reconciles may take before the process exits anyway.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    shutdown_timeout: std::time::Duration,
}

impl RunArgs {
    fn lease_config(&self) -> Option<email_operator::controller::leader::LeaseConfig> {
        if !self.leader_election {
            return None;
        }
        let identity = self.leader_election_identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "email-operator".into());
            format!("{host}-{}", std::process::id())
        });
        let duration = self.lease_duration;
        Some(email_operator::controller::leader::LeaseConfig {
            namespace: self.leader_election_namespace.clone(),
            name: "email-operator".into(),
            identity,
            duration,
            renew_deadline: self.lease_renew_deadline.min(duration),
            retry_period: self.lease_retry_period.min(duration / 2),
        })
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

/// Where AdvancedSmtp connection tests go (`run` and `plan --check-smtp`).
#[derive(clap::Args)]
struct SesSmtpArgs {
    /// Test AdvancedSmtp against HOST:PORT instead of email-smtp.<region>.amazonaws.com:587
    /// (test beds, or an egress proxy).
    #[arg(long, value_parser = parse_host_port)]
    ses_smtp_endpoint: Option<(String, u16)>,
    /// PEM CA certificates to trust for --ses-smtp-endpoint.
    #[arg(long)]
    ses_smtp_ca_file: Option<PathBuf>,
}

impl SesSmtpArgs {
    fn endpoint(&self) -> Result<email_operator::smtp::target::SesEndpoint, String> {
        let ca_bundle_pem = match &self.ses_smtp_ca_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(email_operator::smtp::target::SesEndpoint {
            address: self.ses_smtp_endpoint.clone(),
            ca_bundle_pem,
        })
    }
}

/// `NAMESPACE/NAME`.
fn parse_namespaced(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

/// `HOST:PORT`.
fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    s.rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p > 0)
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))
}

/// `90s`, `15m`, `12h`, `1h30m`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let re =
        regex::Regex::new(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$").map_err(|e| e.to_string())?;
    let caps = re
        .captures(s)
        .filter(|_| !s.is_empty())
        .ok_or_else(|| format!("{s:?} is not a duration such as 12h, 30m or 10s"))?;
    let part = |i: usize, unit: u64| {
        caps.get(i)
            .map_or(0, |m| m.as_str().parse::<u64>().unwrap_or(0) * unit)
    };
    let secs = part(1, 3600) + part(2, 60) + part(3, 1);
    if secs == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

fn run(args: RunArgs) -> ExitCode {
    use email_operator::controller;
    if let Some(problem) = email_operator::ses::cluster_id_problem(&args.cluster_id) {
        eprintln!("error: --cluster-id: {problem}");
        return ExitCode::from(2);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,aws=warn,hyper=warn".into()),
        )
        .json()
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let config = match &args.kubeconfig {
            Some(path) => {
                let options = kube::config::KubeConfigOptions::default();
                match kube::config::Kubeconfig::read_from(path) {
                    Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &options)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            None => kube::Config::infer().await.map_err(|e| e.to_string()),
        };
        let client = match config.and_then(|c| kube::Client::try_from(c).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot reach Kubernetes: {e}");
                return ExitCode::FAILURE;
            }
        };
        let dns = match email_operator::dns::lookup::HickoryLookup::new(args.dns_server) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: cannot set up DNS lookups: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ses_endpoint = match args.ses_smtp.endpoint() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let config = controller::Config {
            cluster_id: args.cluster_id.clone(),
            ses_max_rps: args.ses_max_rps,
            concurrency: args.max_concurrent_reconciles,
            aws_account_id: args.aws_account_id.clone(),
            windows: controller::sender_identity::step::Windows {
                pending_min: args.pending_recheck_min,
                pending_max: args.pending_recheck_max.max(args.pending_recheck_min),
                mail_from_every: args.verified_recheck_interval,
                ..Default::default()
            },
            default_relay: args.default_relay_secret.clone(),
            ses_endpoint,
            smtp_timeouts: email_operator::smtp::Timeouts {
                connect: args.smtp_timeout,
                conversation: args.smtp_timeout * 3,
            },
            baseline_poll: args.baseline_poll_every,
        };
        let metrics = match tokio::net::TcpListener::bind(args.metrics_addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.metrics_addr);
                return ExitCode::FAILURE;
            }
        };
        let metrics_addr = metrics
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(
            cluster_id = config.cluster_id,
            ses_max_rps = config.ses_max_rps,
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
        let lease = args.lease_config();
        let mut elector = lease.map(|l| controller::leader::Elector::new(client.clone(), l));
        if let Some(elector) = &mut elector {
            let standby = |ok: bool| {
                email_operator::metrics::STANDBY.store(ok, std::sync::atomic::Ordering::Relaxed)
            };
            tokio::select! {
                () = elector.acquire(standby) => {}
                () = stopped(stop_rx.clone()) => {
                    tracing::info!("email-operator stopped while standing by");
                    return ExitCode::SUCCESS;
                }
            }
            standby(false);
        }
        email_operator::metrics::METRICS.leader.set(1);
        let clock = std::sync::Arc::new(email_operator::clock::SystemClock);
        let controllers = controller::run(
            client,
            config,
            dns,
            clock,
            args.verified_recheck_interval,
            stop_rx.clone(),
        );
        let drain_bound = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(args.shutdown_timeout).await;
        };
        let outcome = {
            let lost = async {
                match &mut elector {
                    Some(e) => e.hold().await.to_string(),
                    None => std::future::pending().await,
                }
            };
            // Losing the Lease drops the controllers at once: another replica now leads.
            tokio::select! {
                result = controllers => result,
                () = drain_bound => {
                    tracing::warn!(timeout_s = args.shutdown_timeout.as_secs(), "reconciles still running at the shutdown bound are abandoned");
                    Ok(())
                }
                lost = lost => Err(lost),
            }
        };
        email_operator::metrics::METRICS.leader.set(0);
        if let Err(e) = outcome {
            tracing::error!(error = %e, "stopping");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        if let Some(elector) = &mut elector
            && let Err(e) = elector.release().await
        {
            tracing::warn!(error = %e, "could not release the Lease; a standby takes over when it expires");
        }
        tracing::info!("email-operator stopped");
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(*args),
        Command::Crds { out_dir } => match write_crds(out_dir.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::SmtpPassword { region } => smtp_password(&region),
        Command::Plan {
            output,
            paths,
            check_smtp,
            smtp_timeout,
            ses_smtp,
        } => {
            let docs = match plan::load(&paths) {
                Ok(docs) => docs,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut report = plan::evaluate(&docs);
            if check_smtp {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let timeouts = email_operator::smtp::Timeouts {
                    connect: smtp_timeout,
                    conversation: smtp_timeout * 3,
                };
                let checked = ses_smtp.endpoint().and_then(|endpoint| {
                    tokio::runtime::Runtime::new()
                        .map_err(|e| format!("cannot start the runtime: {e}"))?
                        .block_on(plan::check_smtp::check(
                            &mut report,
                            &docs,
                            timeouts,
                            &endpoint,
                        ))
                });
                if let Err(e) = checked {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            print!("{}", plan::render(&report, output));
            if report.all_accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn smtp_password(region: &str) -> ExitCode {
    let region_ok =
        regex::Regex::new("^[a-z]{2}(-[a-z]+)+-[0-9]+$").is_ok_and(|re| re.is_match(region));
    if !region_ok {
        eprintln!("error: {region:?} is not an AWS region such as us-east-1");
        return ExitCode::from(2);
    }
    let mut key = String::new();
    if std::io::stdin().read_line(&mut key).is_err() || key.trim().is_empty() {
        eprintln!("error: expected the secret access key on standard input");
        return ExitCode::from(2);
    }
    println!(
        "{}",
        email_operator::smtp::ses_password::smtp_password(key.trim(), region)
    );
    ExitCode::SUCCESS
}

fn write_crds(out_dir: Option<&std::path::Path>) -> Result<(), String> {
    use email_operator::crd;
    let Some(dir) = out_dir else {
        let yaml = crd::crds_yaml().map_err(|e| format!("cannot render the CRDs: {e}"))?;
        print!("{yaml}");
        return Ok(());
    };
    for (file, definition) in crd::all() {
        let yaml = crd::crd_yaml(&definition).map_err(|e| format!("cannot render {file}: {e}"))?;
        let path = dir.join(file);
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
