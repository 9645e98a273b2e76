//! The `email-operator` command line.

mod cli;

use clap::{Parser, Subcommand};
use cli::args::{EgressArgs, SesSmtpArgs, SmtpTimeoutArgs};
use cli::run::RunArgs;
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
    /// Print the generated documentation pages — the API reference (from the CRDs) or
    /// troubleshooting by reason — or write them under --out-dir (the repository's `docs/`).
    Docs(cli::docs::DocsArgs),
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
        #[command(flatten)]
        timeout: SmtpTimeoutArgs,
        #[command(flatten)]
        ses_smtp: SesSmtpArgs,
        // Boxed: the egress flags (with --connect-to and the CA files) are most of the variant.
        #[command(flatten)]
        egress: Box<EgressArgs>,
        /// The namespace whose SenderPolicies the operator honours (its own).
        #[arg(long, default_value = "email-system")]
        policy_namespace: String,
        /// As the operator's --default-relay-namespaces.
        #[arg(long, value_delimiter = ',')]
        default_relay_namespaces: Vec<String>,
        /// Manifest files or directories (searched recursively for *.yaml, *.yml, *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Send one test message to --to, as the annotation email.ops.dev/send-test does: through
    /// a published Secret (--secret NAMESPACE/NAME through the kubeconfig, or --secret-file),
    /// or through what EmailSettings and Secret manifests would publish.
    ///
    /// Exit status: 0 when the server accepted the message, 1 when it refused it or could not
    /// be reached, 2 for usage errors or unreadable input.
    SendTest(Box<cli::send_test::SendTestArgs>),
    /// Print the DNS records SenderIdentities ask for (those still to publish, or --all) as a
    /// table, BIND zone-file lines, CSV or JSON; --check looks each up and exits 1 while any is
    /// missing. Installed as `kubectl-email` on PATH, this binary is the kubectl plugin
    /// `kubectl email records`.
    Records(Box<cli::records::RecordsArgs>),
    /// Derive the Amazon SES SMTP password for a region from an IAM secret access key read
    /// from standard input.
    SmtpPassword {
        /// The SES region the password is for, e.g. us-east-1.
        #[arg(long)]
        region: String,
    },
}

/// With the `heap-profile` feature every allocation goes through dhat (see Cargo.toml).
#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> ExitCode {
    // Written to dhat-heap.json in the working directory when main returns.
    #[cfg(feature = "heap-profile")]
    let _profiler = dhat::Profiler::new_heap();
    match Cli::parse().command {
        Command::Run(args) => cli::run::run(*args),
        Command::Crds { out_dir } => match write_crds(out_dir.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Docs(args) => cli::docs::run(args),
        Command::SmtpPassword { region } => smtp_password(&region),
        Command::SendTest(args) => cli::send_test::run(*args),
        Command::Records(args) => cli::records::run(*args),
        Command::Plan {
            output,
            paths,
            check_smtp,
            timeout,
            ses_smtp,
            egress,
            policy_namespace,
            default_relay_namespaces,
        } => {
            let docs = match plan::load(&paths) {
                Ok(docs) => docs,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let tenancy = email_operator::controller::config::Tenancy {
                policy_namespace,
                default_relay_namespaces,
            };
            let mut report = plan::evaluate(&docs, &tenancy);
            if check_smtp {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let timeouts = timeout.timeouts();
                let checked = ses_smtp
                    .endpoint()
                    .and_then(|endpoint| Ok((endpoint, egress.roots()?)))
                    .map_err(|(path, e)| format!("cannot read {path}: {e}"))
                    .and_then(|(endpoint, roots)| {
                        let tester =
                            email_operator::smtp::Tester::new(timeouts, egress.egress(), &roots)?;
                        tokio::runtime::Runtime::new()
                            .map_err(|e| format!("cannot start the runtime: {e}"))?
                            .block_on(plan::check_smtp::check(
                                &mut report,
                                &docs,
                                &tester,
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
