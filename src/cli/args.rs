//! Flag types and parsers shared by the subcommands.

use std::path::PathBuf;

/// How long one SMTP conversation may take (`run`, `plan --check-smtp`, `send-test`).
#[derive(clap::Args)]
pub struct SmtpTimeoutArgs {
    /// Bound on each SMTP connection's TCP connect (the whole conversation gets three times
    /// it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    smtp_timeout: std::time::Duration,
}

impl SmtpTimeoutArgs {
    pub fn timeouts(&self) -> email_operator::smtp::Timeouts {
        email_operator::smtp::Timeouts {
            connect: self.smtp_timeout,
            conversation: self.smtp_timeout * 3,
        }
    }
}

/// Where AdvancedSmtp connection tests go (`run` and `plan --check-smtp`).
#[derive(clap::Args)]
pub struct SesSmtpArgs {
    /// Test AdvancedSmtp against HOST:PORT instead of email-smtp.<region>.amazonaws.com:587
    /// (test beds, or an egress proxy).
    #[arg(long, value_parser = parse_host_port)]
    ses_smtp_endpoint: Option<(String, u16)>,
    /// PEM CA certificates to trust for --ses-smtp-endpoint.
    #[arg(long)]
    ses_smtp_ca_file: Option<PathBuf>,
}

impl SesSmtpArgs {
    /// The endpoint, with the CA file read; `Err((path, error))` when it cannot be.
    pub fn endpoint(
        &self,
    ) -> Result<email_operator::smtp::target::SesEndpoint, (String, std::io::Error)> {
        let ca_bundle_pem = match &self.ses_smtp_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| (path.display().to_string(), e))?),
            None => None,
        };
        Ok(email_operator::smtp::target::SesEndpoint {
            address: self.ses_smtp_endpoint.clone(),
            ca_bundle_pem,
        })
    }
}

/// Where tenants' connection tests may go (`run` and `plan --check-smtp`).
#[derive(clap::Args)]
pub struct EgressArgs {
    /// Allow tenants' connection tests (and token requests) to this network despite the deny
    /// list, e.g. an internal relay: CIDR or CIDR:PORT ([IPv6-CIDR]:PORT). Repeat, or separate
    /// with commas.
    #[arg(long, value_delimiter = ',', value_parser = email_operator::smtp::egress::Allowed::parse)]
    egress_allow: Vec<email_operator::smtp::egress::Allowed>,
    /// Deny tenants' connection tests this network too, e.g. the cluster's pod and service
    /// ranges when they are not private addresses (loopback, link-local, private and reserved
    /// ranges are always denied). Repeat, or separate with commas.
    #[arg(long, value_delimiter = ',', value_parser = email_operator::smtp::egress::Cidr::parse)]
    egress_deny: Vec<email_operator::smtp::egress::Cidr>,
    /// PEM CA certificates trusted for OAuth 2.0 token endpoints besides the web PKI (a
    /// platform's internal identity provider).
    #[arg(long)]
    oauth2_ca_file: Option<PathBuf>,
    /// PEM CA certificates trusted for SMTP servers besides the web PKI (a company's private
    /// PKI); a server with its own caBundleSecretRef (or a default relay with caBundle) trusts
    /// only that bundle.
    #[arg(long)]
    smtp_ca_file: Option<PathBuf>,
    /// Connect to ADDR:PORT whenever a connection test (or an OAuth 2.0 token request) is meant
    /// for HOST:PORT, as curl's option of the same name: for an egress proxy or port-forward in
    /// front of a relay. TLS still verifies the certificate against HOST, and status and the
    /// published Secret still say HOST:PORT. Empty HOST or first PORT: any; empty ADDR: HOST,
    /// resolved as usual; empty second PORT: the same. IPv6 in brackets. The egress rules
    /// apply to the address connected to. Repeat the flag; the first matching rule applies.
    #[arg(long, value_name = "HOST:PORT:ADDR:PORT", value_parser = email_operator::smtp::connect_to::ConnectTo::parse)]
    connect_to: Vec<email_operator::smtp::connect_to::ConnectTo>,
}

impl EgressArgs {
    /// The egress rules and the `--connect-to` routes.
    pub fn egress(&self) -> email_operator::smtp::Egress {
        email_operator::smtp::Egress::new(self.egress_deny.clone(), self.egress_allow.clone())
            .with_connect_to(self.connect_to.clone())
    }

    /// The extra roots of `--oauth2-ca-file` and `--smtp-ca-file`; `Err((path, error))` when
    /// a file cannot be read.
    pub fn roots(&self) -> Result<email_operator::smtp::Roots, (String, std::io::Error)> {
        let read = |file: &Option<PathBuf>| match file {
            Some(path) => std::fs::read(path)
                .map(Some)
                .map_err(|e| (path.display().to_string(), e)),
            None => Ok(None),
        };
        Ok(email_operator::smtp::Roots {
            token: read(&self.oauth2_ca_file)?,
            smtp: read(&self.smtp_ca_file)?,
        })
    }
}

/// `NAMESPACE/NAME`.
pub fn parse_namespaced(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

/// `HOST:PORT`.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    s.rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p > 0)
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))
}

/// `90s`, `15m`, `12h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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

/// For the one-shot commands: the TLS provider installed and a runtime, or the error printed
/// and exit status 2.
pub fn runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        std::process::ExitCode::from(2)
    })
}

/// A Kubernetes client from `kubeconfig` (else the usual inference), and its default namespace.
pub async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<(kube::Client, String), String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    Ok((client, namespace))
}
