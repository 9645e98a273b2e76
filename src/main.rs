//! The `email-operator` command line.

use clap::{Parser, Subcommand};
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
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds => match email_operator::crd::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
