//! A stand-in for the Amazon SES SMTP interface (`email-smtp.<region>.amazonaws.com`), over
//! real sockets and real TLS, sharing the SES stand-in's identities, account standing and
//! outbox.
//!
//! * One listener plays every region's port-587 endpoint: plaintext greeting, STARTTLS
//!   required before AUTH ([`session`]); an optional second listener plays port 465 (TLS
//!   from the first byte, "TLS Wrapper"). Both are described in SES Developer Guide,
//!   "Connecting to an Amazon SES SMTP endpoint".
//! * Logins are IAM access key ids with the region's derived SMTP password, checked against
//!   the keys registered with [`credentials::SmtpCredentials`] (`POST /ses/smtp-credentials`);
//!   the session's region is the one the password was derived for.
//! * After DATA, [`rules`] applies SES's sending rules in that region and appends accepted
//!   messages to the outbox (`content_type` `Smtp`, raw text in `raw`).
//! * Certificates come from a test CA made at start ([`tls`]); clients trust
//!   [`SesSmtp::ca_pem`] (written to `SesSmtpOptions::ca_file` when given).

pub mod credentials;
pub mod reply;
pub mod rules;
pub mod session;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use credentials::SmtpCredentials;

use super::SesState;

/// SES closes a connection idle for about 10 seconds ("Testing your connection to the Amazon
/// SES SMTP interface using the command line").
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start the SES SMTP stand-in.
#[derive(Clone, Debug)]
pub struct SesSmtpOptions {
    /// The STARTTLS listener (port 587's role); port 0 = ephemeral.
    pub addr: SocketAddr,
    /// The implicit-TLS listener (port 465's role), if wanted.
    pub implicit_tls_addr: Option<SocketAddr>,
    /// Where to write the test CA's PEM, if anywhere.
    pub ca_file: Option<PathBuf>,
    /// Idle time after which the server answers 451 and closes.
    pub idle_timeout: Duration,
    /// The largest message accepted (SES's: [`rules::MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
}

impl Default for SesSmtpOptions {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 0).into(),
            implicit_tls_addr: Some(([127, 0, 0, 1], 0).into()),
            ca_file: None,
            idle_timeout: IDLE_TIMEOUT,
            max_message_bytes: rules::MAX_MESSAGE_BYTES,
        }
    }
}

/// A running SES SMTP stand-in. Dropping it stops accepting connections.
pub struct SesSmtp {
    addr: SocketAddr,
    implicit_tls_addr: Option<SocketAddr>,
    ca_pem: String,
    _stop: oneshot::Sender<()>,
}

impl SesSmtp {
    /// Makes the certificates, binds and starts serving against `state`.
    pub async fn start(state: Arc<SesState>, options: SesSmtpOptions) -> io::Result<Self> {
        let certificates = tls::make().map_err(io::Error::other)?;
        if let Some(path) = &options.ca_file {
            std::fs::write(path, &certificates.ca_pem)?;
        }
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let implicit = match options.implicit_tls_addr {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let implicit_tls_addr = implicit.as_ref().map(|l| l.local_addr()).transpose()?;
        let shared = Arc::new(session::Shared {
            state,
            rate: rules::SendRate::default(),
            tls: tokio_rustls::TlsAcceptor::from(certificates.server),
            idle: options.idle_timeout,
            max_bytes: options.max_message_bytes,
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut stopped => break,
                    a = listener.accept() => a.map(|(tcp, _)| (tcp, false)),
                    a = accept_opt(implicit.as_ref()) => a.map(|(tcp, _)| (tcp, true)),
                };
                match accepted {
                    Ok((tcp, implicit_tls)) => {
                        tokio::spawn(session::serve(shared.clone(), tcp, implicit_tls));
                    }
                    Err(error) => tracing::warn!(%error, "ses smtp accept failed"),
                }
            }
        });
        tracing::info!(%addr, ?implicit_tls_addr, "ses smtp stand-in listening");
        Ok(Self {
            addr,
            implicit_tls_addr,
            ca_pem: certificates.ca_pem,
            _stop: stop,
        })
    }

    /// The STARTTLS listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The implicit-TLS listener's address, when started.
    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.implicit_tls_addr
    }

    /// The endpoint as the operator's `--ses-smtp-endpoint` takes it (`localhost:PORT`, a name
    /// the certificate carries).
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// The test CA that signs the server certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the test CA's PEM to `path`.
    pub fn write_ca(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.ca_pem)
    }
}

async fn accept_opt(
    listener: Option<&TcpListener>,
) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
