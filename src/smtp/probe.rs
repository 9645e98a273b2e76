//! The real connection test on lettre's SMTP client. lettre's own timeout covers only the TCP
//! connect, so the TCP connect and the implicit-TLS handshake are done here and every later
//! step runs under a deadline; name resolution comes first so an unknown host is told apart
//! from a refused or unreachable one.

use super::{Auth, ConnectionPath, Failure, Outcome, Prober, Target, Timeouts, describe_tls_error};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::commands::{Mail, Rset};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant as Deadline, timeout, timeout_at};

/// The connection test over real sockets.
#[derive(Debug, Clone, Default)]
pub struct LettreProber {
    pub timeouts: Timeouts,
}

impl LettreProber {
    pub fn new(timeouts: Timeouts) -> Self {
        Self { timeouts }
    }
}

impl Prober for LettreProber {
    async fn probe(&self, target: &Target) -> Result<Outcome, Failure> {
        let started = Instant::now();
        let addrs = resolve(&target.host, target.port, self.timeouts).await?;
        let result = match target.implicit_tls {
            Some(tls) => match self.attempt(target, &addrs, tls.port, Mode::Implicit).await {
                Err(first) if tls.fallback && is_socket_level(&first) => self
                    .attempt(target, &addrs, target.port, plain_mode(target))
                    .await
                    .map(|p| {
                        if p == ConnectionPath::Plain {
                            ConnectionPath::FallbackPlain
                        } else {
                            p
                        }
                    })
                    .map(|p| (p, target.port))
                    .map_err(|second| {
                        if is_socket_level(&second) {
                            with_detail(
                                first,
                                &format!(
                                    "; the plain fallback on port {} failed too: {second}",
                                    target.port
                                ),
                            )
                        } else {
                            second
                        }
                    }),
                other => other.map(|p| (p, tls.port)),
            },
            None => self
                .attempt(target, &addrs, target.port, plain_mode(target))
                .await
                .map(|p| (p, target.port)),
        };
        result.map(|(path, port)| Outcome {
            path,
            port,
            duration: started.elapsed(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Implicit,
    StartTls,
    Plain,
}

fn plain_mode(target: &Target) -> Mode {
    if target.start_tls {
        Mode::StartTls
    } else {
        Mode::Plain
    }
}

/// Failures of the socket itself, which the plain fallback may get around.
fn is_socket_level(f: &Failure) -> bool {
    matches!(
        f,
        Failure::ConnectFailed(_)
            | Failure::ConnectTimeout(_)
            | Failure::TlsUpgradeFailed(_)
            | Failure::ReadTimeout(_)
    )
}

fn with_detail(f: Failure, extra: &str) -> Failure {
    match f {
        Failure::ConnectFailed(d) => Failure::ConnectFailed(d + extra),
        Failure::ConnectTimeout(d) => Failure::ConnectTimeout(d + extra),
        Failure::TlsUpgradeFailed(d) => Failure::TlsUpgradeFailed(d + extra),
        Failure::ReadTimeout(d) => Failure::ReadTimeout(d + extra),
        other => other,
    }
}

async fn resolve(host: &str, port: u16, t: Timeouts) -> Result<Vec<SocketAddr>, Failure> {
    let unknown = || Failure::UnknownHost(format!("{host} cannot be resolved"));
    match timeout(t.connect, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(unknown())
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(_)) | Err(_) => Err(unknown()),
    }
}

impl LettreProber {
    async fn attempt(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
        port: u16,
        mode: Mode,
    ) -> Result<ConnectionPath, Failure> {
        let host = &target.host;
        let tcp = connect(host, addrs, port, self.timeouts).await?;
        let deadline = Deadline::now() + self.timeouts.conversation;
        let read_timeout = |what: &str| {
            Failure::ReadTimeout(format!(
                "{host}:{port} did not {what} within {}s",
                self.timeouts.conversation.as_secs()
            ))
        };
        let stream: Box<dyn AsyncTokioStream> = if mode == Mode::Implicit {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(target)?));
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                Failure::UnknownHost(format!("{host} is not a valid TLS server name"))
            })?;
            match timeout_at(deadline, connector.connect(name, tcp.inner)).await {
                Err(_) => return Err(read_timeout("complete the TLS handshake")),
                Ok(Err(e)) => {
                    return Err(Failure::TlsUpgradeFailed(format!(
                        "{host}:{port}: {}",
                        describe_tls_error(&e)
                    )));
                }
                Ok(Ok(tls)) => Box::new(Stream {
                    inner: tls,
                    peer: tcp.peer,
                }),
            }
        } else {
            Box::new(tcp)
        };

        let client_id = ClientId::Domain("email-operator.local".into());
        let mut conn = match timeout_at(
            deadline,
            AsyncSmtpConnection::connect_with_transport(stream, &client_id),
        )
        .await
        {
            Err(_) => return Err(read_timeout("greet")),
            Ok(Err(e)) => {
                return Err(Failure::ConnectFailed(format!(
                    "{host}:{port} closed the connection before greeting: {e}"
                )));
            }
            Ok(Ok(c)) => c,
        };

        let mut path = if mode == Mode::Implicit {
            ConnectionPath::Implicit
        } else {
            ConnectionPath::Plain
        };
        if mode == Mode::StartTls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(Failure::TlsUpgradeFailed(format!(
                    "{host}:{port} does not offer STARTTLS, and startTls requires it"
                )));
            }
            let params = tls_parameters(target)?;
            match timeout_at(deadline, conn.starttls(params, &client_id)).await {
                Err(_) => return Err(read_timeout("complete STARTTLS")),
                Ok(Err(e)) => {
                    return Err(Failure::TlsUpgradeFailed(format!(
                        "{host}:{port}: {}",
                        describe_tls_error(&e)
                    )));
                }
                Ok(Ok(())) => path = ConnectionPath::StartTls,
            }
        }

        if let Some(auth) = &target.auth {
            let (mechanisms, credentials, oauth): (&[Mechanism], Credentials, bool) = match auth {
                Auth::Password { username, password } => (
                    &[Mechanism::Plain, Mechanism::Login],
                    Credentials::new(username.clone(), password.expose().to_string()),
                    false,
                ),
                Auth::XOAuth2 { username, token } => (
                    &[Mechanism::Xoauth2],
                    Credentials::new(username.clone(), token.expose().to_string()),
                    true,
                ),
            };
            // Offering STARTTLS and no mechanism before it means AUTH comes only after the
            // upgrade: say that, rather than blame the credentials.
            let offered = mechanisms
                .iter()
                .any(|m| conn.server_info().supports_auth_mechanism(*m));
            if !offered && path == ConnectionPath::Plain && conn.can_starttls() {
                conn.abort().await;
                return Err(Failure::StartTlsRequired(format!(
                    "{host}:{port} offers STARTTLS and no authentication before it"
                )));
            }
            match timeout_at(deadline, conn.auth(mechanisms, &credentials)).await {
                Err(_) => return Err(read_timeout("answer AUTH")),
                Ok(Err(e)) => return Err(classify_auth(&e, oauth, host, port)),
                Ok(Ok(_)) => {}
            }
        }

        let from: lettre::Address = target.from.parse().map_err(|_| {
            Failure::SenderRejected(format!("{:?} is not a valid sender address", target.from))
        })?;
        match timeout_at(deadline, conn.command(Mail::new(Some(from), vec![]))).await {
            Err(_) => return Err(read_timeout("answer MAIL FROM")),
            Ok(Err(e)) => return Err(classify_mail_from(&e, &target.from)),
            Ok(Ok(_)) => {}
        }
        // RSET and QUIT are courtesy: the test has passed once MAIL FROM is accepted.
        let _ = timeout_at(deadline, conn.command(Rset)).await;
        let _ = timeout_at(deadline, conn.quit()).await;
        Ok(path)
    }
}

/// A TCP connection with its peer address (lettre wants one).
#[derive(Debug)]
struct Stream<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Sync + Unpin + std::fmt::Debug> AsyncTokioStream
    for Stream<S>
{
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

async fn connect(
    host: &str,
    addrs: &[SocketAddr],
    port: u16,
    t: Timeouts,
) -> Result<Stream<TcpStream>, Failure> {
    let mut last = Failure::ConnectFailed(format!("{host}:{port}: no address"));
    for addr in addrs {
        let addr = SocketAddr::new(addr.ip(), port);
        match timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                return Ok(Stream {
                    inner: tcp,
                    peer: addr,
                });
            }
            Ok(Err(e)) => {
                let why = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                    _ => e.to_string(),
                };
                last = Failure::ConnectFailed(format!("{host}:{port} ({addr}): {why}"));
            }
            Err(_) => {
                last = Failure::ConnectTimeout(format!(
                    "{host}:{port} ({addr}) did not accept the connection within {}s",
                    t.connect.as_secs()
                ));
            }
        }
    }
    Err(last)
}

fn pem_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Failure::TlsUpgradeFailed(format!(
                "caBundleSecretRef holds no valid PEM certificates: {e}"
            ))
        })?;
    if certs.is_empty() {
        return Err(Failure::TlsUpgradeFailed(
            "caBundleSecretRef holds no PEM certificates".into(),
        ));
    }
    Ok(certs)
}

/// rustls configuration for implicit TLS: the CA bundle when given, else the web PKI roots.
fn client_config(target: &Target) -> Result<rustls::ClientConfig, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    match &target.ca_bundle_pem {
        Some(pem) => {
            for cert in pem_roots(pem)? {
                roots.add(cert).map_err(|e| {
                    Failure::TlsUpgradeFailed(format!(
                        "caBundleSecretRef certificate rejected: {e}"
                    ))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::TlsUpgradeFailed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// lettre's TLS parameters for STARTTLS, with the same roots as [`client_config`].
fn tls_parameters(target: &Target) -> Result<TlsParameters, Failure> {
    let mut builder = TlsParameters::builder(target.host.clone());
    match &target.ca_bundle_pem {
        Some(pem) => {
            builder = builder.certificate_store(CertificateStore::None);
            for cert in pem_roots(pem)? {
                let cert = Certificate::from_der(cert.to_vec()).map_err(|e| {
                    Failure::TlsUpgradeFailed(format!(
                        "caBundleSecretRef certificate rejected: {e}"
                    ))
                })?;
                builder = builder.add_root_certificate(cert);
            }
        }
        None => builder = builder.certificate_store(CertificateStore::WebpkiRoots),
    }
    builder
        .build_rustls()
        .map_err(|e| Failure::TlsUpgradeFailed(describe_tls_error(&e)))
}

fn code(e: &lettre::transport::smtp::Error) -> Option<u16> {
    e.status().map(u16::from)
}

fn classify_auth(
    e: &lettre::transport::smtp::Error,
    oauth: bool,
    host: &str,
    port: u16,
) -> Failure {
    let detail = format!("{host}:{port} answered {}", short(e));
    match code(e) {
        Some(535) if !oauth => Failure::BadCredentials(detail),
        Some(530) => Failure::AuthenticationRequired(detail),
        _ if e.is_timeout() => Failure::ReadTimeout(detail),
        _ if e.is_client() => Failure::AuthenticationFailed(format!(
            "{host}:{port} offers no authentication mechanism the operator can use ({})",
            if oauth { "XOAUTH2" } else { "PLAIN or LOGIN" }
        )),
        _ => Failure::AuthenticationFailed(detail),
    }
}

fn classify_mail_from(e: &lettre::transport::smtp::Error, from: &str) -> Failure {
    let detail = format!("MAIL FROM:<{from}> answered {}", short(e));
    match code(e) {
        Some(530) => Failure::AuthenticationRequired(detail),
        _ if e.is_timeout() => Failure::ReadTimeout(detail),
        _ => Failure::SenderRejected(detail),
    }
}

/// A lettre error in one line (server replies are a code and text; no credentials are in them).
fn short(e: &lettre::transport::smtp::Error) -> String {
    e.to_string().replace(['\r', '\n'], " ")
}
