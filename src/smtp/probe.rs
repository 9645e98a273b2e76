//! The real connection test over sockets, with the operator's own SMTP client
//! ([`super::session`]): resolve the host (or where `--connect-to` routes it), check where it
//! may go ([`Egress`], for a host the tenant wrote), connect to a checked address, implicit TLS
//! or STARTTLS (the certificate verified against the host, with the web PKI and the platform's
//! `--smtp-ca-file` roots unless the target brings its own), AUTH, MAIL FROM.
//! The whole test runs under one deadline — every address, the fallback and every reply — so a
//! server that stalls costs a bounded time; at most [`super::egress::MAX_ADDRESSES`] addresses
//! are tried.
//!
//! What the tenant reads is what it needs to fix its settings: it does not tell a refused port
//! from a filtered one, nor show the resolved address or a non-SMTP banner (the operator's log
//! keeps those details).

use super::egress::Egress;
use super::session::{self, Conn, Extensions, Reply, Session};
use super::{
    Auth, ConnectionPath, Failure, Letter, Outcome, Prober, Sent, Target, Timeouts,
    describe_tls_error,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::time::{Instant as Deadline, timeout, timeout_at};

/// The connection test over real sockets.
#[derive(Debug, Clone, Default)]
pub struct SmtpProber {
    pub timeouts: Timeouts,
    /// Where a host the tenant wrote may go.
    pub egress: Egress,
    /// The platform's CA roots (`--smtp-ca-file`), trusted besides the web PKI for servers
    /// without a CA bundle of their own.
    pub platform_roots: Vec<CertificateDer<'static>>,
}

impl SmtpProber {
    pub fn new(timeouts: Timeouts, egress: Egress) -> Self {
        Self {
            timeouts,
            egress,
            platform_roots: vec![],
        }
    }

    /// Also trusts the PEM certificates in `pem` (a company's private CA) for servers whose
    /// target has no CA bundle of its own; a target's bundle still replaces every other root.
    pub fn with_platform_roots(mut self, pem: &[u8]) -> Result<Self, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the SMTP servers' CA file: {e}"))?;
        if certs.is_empty() {
            return Err("the SMTP servers' CA file holds no PEM certificates".into());
        }
        let mut check = rustls::RootCertStore::empty();
        for cert in &certs {
            check
                .add(cert.clone())
                .map_err(|e| format!("the SMTP servers' CA file: {e}"))?;
        }
        self.platform_roots = certs;
        Ok(self)
    }

    /// The whole test's time: the connect bound and the conversation's.
    fn budget(&self) -> std::time::Duration {
        self.timeouts.connect + self.timeouts.conversation
    }
}

impl Prober for SmtpProber {
    async fn probe(&self, target: &Target) -> Result<Outcome, Failure> {
        let started = Instant::now();
        self.bounded(target, None)
            .await
            .map(|(done, port)| Outcome {
                path: done.path,
                port,
                duration: started.elapsed(),
            })
    }
}

/// How an attempt ended: the path that worked and, with a letter, the server's answer to it.
struct Done {
    path: ConnectionPath,
    answer: Option<(&'static str, Reply)>,
}

impl SmtpProber {
    /// Sends `letter` through `target`: the connection test's conversation, then `RCPT TO`
    /// and `DATA`, all within the test's time.
    pub async fn send(&self, target: &Target, letter: &Letter) -> Result<Sent, Failure> {
        let (done, port) = self.bounded(target, Some(letter)).await?;
        let (stage, reply) = done.answer.ok_or_else(|| {
            Failure::ConnectFailed(format!("{}:{port} ended before the message", target.host))
        })?;
        let summary = reply.summary();
        let text = summary
            .split_once(' ')
            .map_or(String::new(), |(_, t)| t.to_string());
        Ok(Sent {
            path: done.path,
            port,
            stage,
            code: reply.code,
            text,
        })
    }

    /// The whole conversation under one deadline.
    async fn bounded(
        &self,
        target: &Target,
        letter: Option<&Letter>,
    ) -> Result<(Done, u16), Failure> {
        let deadline = Deadline::now() + self.budget();
        let result = timeout_at(deadline, self.run(target, letter, deadline)).await;
        result.unwrap_or_else(|_| {
            Err(Failure::ReadTimeout(format!(
                "{}:{} did not complete the test within {}s",
                target.host,
                target.port,
                self.budget().as_secs()
            )))
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
        Failure::ConnectFailed(_) | Failure::TlsUpgradeFailed(_) | Failure::ReadTimeout(_)
    )
}

fn with_detail(f: Failure, extra: &str) -> Failure {
    match f {
        Failure::ConnectFailed(d) => Failure::ConnectFailed(d + extra),
        Failure::TlsUpgradeFailed(d) => Failure::TlsUpgradeFailed(d + extra),
        Failure::ReadTimeout(d) => Failure::ReadTimeout(d + extra),
        other => other,
    }
}

impl SmtpProber {
    async fn run(
        &self,
        target: &Target,
        letter: Option<&Letter>,
        deadline: Deadline,
    ) -> Result<(Done, u16), Failure> {
        // Each port is routed (`--connect-to`), resolved and checked on its own: a route may
        // send the implicit-TLS port and the plain one to different places.
        let attempt = |port: u16, mode: Mode| async move {
            let addrs = self
                .egress
                .connect_addresses(&target.host, port, target.restricted, self.timeouts.connect)
                .await?;
            self.attempt(target, &addrs, port, mode, letter, deadline)
                .await
        };
        let Some(tls) = target.implicit_tls else {
            return attempt(target.port, plain_mode(target))
                .await
                .map(|p| (p, target.port));
        };
        match attempt(tls.port, Mode::Implicit).await {
            Err(first) if tls.fallback && is_socket_level(&first) => {
                match attempt(target.port, plain_mode(target)).await {
                    Ok(Done {
                        path: ConnectionPath::Plain,
                        answer,
                    }) => Ok((
                        Done {
                            path: ConnectionPath::FallbackPlain,
                            answer,
                        },
                        target.port,
                    )),
                    Ok(done) => Ok((done, target.port)),
                    Err(second) if is_socket_level(&second) => Err(with_detail(
                        first,
                        &format!(
                            "; the plain fallback on port {} failed too: {second}",
                            target.port
                        ),
                    )),
                    Err(second) => Err(second),
                }
            }
            other => other.map(|p| (p, tls.port)),
        }
    }

    async fn attempt(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
        port: u16,
        mode: Mode,
        letter: Option<&Letter>,
        deadline: Deadline,
    ) -> Result<Done, Failure> {
        let host = &target.host;
        let tcp = connect(host, addrs, port, self.timeouts).await?;
        let read_timeout =
            |what: &str| Failure::ReadTimeout(format!("{host}:{port} did not {what} in time"));
        let conn = if mode == Mode::Implicit {
            match timeout_at(deadline, tls_connect(target, &self.platform_roots, tcp)).await {
                Err(_) => return Err(read_timeout("complete the TLS handshake")),
                Ok(Err(e)) => return Err(tls_failure(host, port, e)),
                Ok(Ok(tls)) => Conn::Tls(Box::new(tls)),
            }
        } else {
            Conn::Plain(tcp)
        };
        let mut s = Session::new(conn);
        let not_smtp =
            || Failure::ConnectFailed(format!("{host}:{port} did not answer as an SMTP server"));
        let io = |e: session::Error, what: &str| match e {
            session::Error::NotSmtp => not_smtp(),
            session::Error::Io(e) => {
                tracing::info!(host, port, error = %e, "connection test: the connection failed");
                Failure::ConnectFailed(format!("{host}:{port} closed the connection {what}"))
            }
        };
        let step = |r: Result<Result<Reply, session::Error>, tokio::time::error::Elapsed>,
                    what: &str|
         -> Result<Reply, Failure> {
            match r {
                Err(_) => Err(read_timeout(what)),
                Ok(Err(e)) => Err(io(e, &format!("instead of answering {what}"))),
                Ok(Ok(reply)) => Ok(reply),
            }
        };

        let greeting = step(timeout_at(deadline, s.reply()).await, "greet")?;
        if greeting.code != 220 {
            return Err(Failure::ConnectFailed(format!(
                "{host}:{port} refused the session ({})",
                greeting.summary()
            )));
        }
        let mut ext = ehlo(&mut s, deadline, host, port).await?;
        let mut path = if mode == Mode::Implicit {
            ConnectionPath::Implicit
        } else {
            ConnectionPath::Plain
        };
        if mode == Mode::StartTls {
            if !ext.starttls {
                return Err(Failure::TlsUpgradeFailed(format!(
                    "{host}:{port} does not offer STARTTLS, and startTls requires it"
                )));
            }
            let tcp = match timeout_at(deadline, s.starttls()).await {
                Err(_) => return Err(read_timeout("answer STARTTLS")),
                // Bytes after its 220 instead of a TLS handshake (or an injection attempt).
                Ok(Err(session::Error::NotSmtp)) => {
                    return Err(Failure::TlsUpgradeFailed(format!(
                        "{host}:{port} sent data instead of starting TLS"
                    )));
                }
                Ok(Err(e)) => return Err(io(e, "during STARTTLS")),
                Ok(Ok(Err(reply))) => {
                    return Err(Failure::TlsUpgradeFailed(format!(
                        "{host}:{port} answered STARTTLS with {}",
                        reply.summary()
                    )));
                }
                Ok(Ok(Ok(tcp))) => tcp,
            };
            s = match timeout_at(deadline, tls_connect(target, &self.platform_roots, tcp)).await {
                Err(_) => return Err(read_timeout("complete STARTTLS")),
                Ok(Err(e)) => return Err(tls_failure(host, port, e)),
                Ok(Ok(tls)) => Session::new(Conn::Tls(Box::new(tls))),
            };
            path = ConnectionPath::StartTls;
            ext = ehlo(&mut s, deadline, host, port).await?;
        }

        if let Some(auth) = &target.auth {
            authenticate(&mut s, auth, &ext, path, deadline, host, port).await?;
        }

        let reply = step(
            timeout_at(deadline, s.command(&format!("MAIL FROM:<{}>", target.from))).await,
            "MAIL FROM",
        )?;
        if !reply.is_positive() {
            let detail = format!("MAIL FROM:<{}> answered {}", target.from, reply.summary());
            return Err(match reply.code {
                530 => Failure::AuthenticationRequired(detail),
                _ => Failure::SenderRejected(detail),
            });
        }
        let answer = match letter {
            None => None,
            Some(letter) => {
                let rcpt = step(
                    timeout_at(deadline, s.command(&format!("RCPT TO:<{}>", letter.to))).await,
                    "RCPT TO",
                )?;
                if rcpt.is_positive() {
                    let data = timeout_at(deadline, s.data(&letter.message)).await;
                    Some(("DATA", step(data, "DATA")?))
                } else {
                    Some(("RCPT TO", rcpt))
                }
            }
        };
        // RSET and QUIT are courtesy: the test has passed once MAIL FROM is accepted (and a
        // letter once DATA is answered).
        let _ = timeout_at(deadline, s.quit()).await;
        Ok(Done { path, answer })
    }
}

async fn ehlo(
    s: &mut Session,
    deadline: Deadline,
    host: &str,
    port: u16,
) -> Result<Extensions, Failure> {
    match timeout_at(deadline, s.ehlo()).await {
        Err(_) => Err(Failure::ReadTimeout(format!(
            "{host}:{port} did not answer EHLO in time"
        ))),
        Ok(Err(session::Error::NotSmtp)) => Err(Failure::ConnectFailed(format!(
            "{host}:{port} did not answer as an SMTP server"
        ))),
        Ok(Err(session::Error::Io(_))) => Err(Failure::ConnectFailed(format!(
            "{host}:{port} closed the connection instead of answering EHLO"
        ))),
        Ok(Ok((reply, _))) if !reply.is_positive() => Err(Failure::ConnectFailed(format!(
            "{host}:{port} refused EHLO ({})",
            reply.summary()
        ))),
        Ok(Ok((_, ext))) => Ok(ext),
    }
}

/// AUTH with the first mechanism both sides know: PLAIN, else LOGIN, for a password; XOAUTH2
/// for a token.
async fn authenticate(
    s: &mut Session,
    auth: &Auth,
    ext: &Extensions,
    path: ConnectionPath,
    deadline: Deadline,
    host: &str,
    port: u16,
) -> Result<(), Failure> {
    let (mechanism, oauth) = match auth {
        Auth::Password { .. } if ext.offers("PLAIN") => ("PLAIN", false),
        Auth::Password { .. } if ext.offers("LOGIN") => ("LOGIN", false),
        Auth::XOAuth2 { .. } if ext.offers("XOAUTH2") => ("XOAUTH2", true),
        _ => {
            // Offering STARTTLS and no mechanism before it means AUTH comes only after the
            // upgrade: say that, rather than blame the credentials.
            if path == ConnectionPath::Plain && ext.starttls {
                return Err(Failure::StartTlsRequired(format!(
                    "{host}:{port} offers STARTTLS and no authentication before it"
                )));
            }
            let wanted = match auth {
                Auth::Password { .. } => "PLAIN or LOGIN",
                Auth::XOAuth2 { .. } => "XOAUTH2",
            };
            return Err(Failure::AuthenticationFailed(format!(
                "{host}:{port} offers no authentication mechanism the operator can use ({wanted})"
            )));
        }
    };
    let exchange = async {
        match (auth, mechanism) {
            (Auth::Password { username, password }, "PLAIN") => {
                s.auth_plain(username, password).await
            }
            (Auth::Password { username, password }, _) => s.auth_login(username, password).await,
            (Auth::XOAuth2 { username, token }, _) => s.auth_xoauth2(username, token).await,
        }
    };
    let reply = match timeout_at(deadline, exchange).await {
        Err(_) => {
            return Err(Failure::ReadTimeout(format!(
                "{host}:{port} did not answer AUTH in time"
            )));
        }
        Ok(Err(session::Error::NotSmtp)) => {
            return Err(Failure::ConnectFailed(format!(
                "{host}:{port} did not answer as an SMTP server"
            )));
        }
        Ok(Err(session::Error::Io(_))) => {
            return Err(Failure::AuthenticationFailed(format!(
                "{host}:{port} closed the connection during AUTH {mechanism}"
            )));
        }
        Ok(Ok(reply)) => reply,
    };
    if reply.code == 235 {
        return Ok(());
    }
    let detail = format!("{host}:{port} answered {}", reply.summary());
    Err(match reply.code {
        535 if !oauth => Failure::BadCredentials(detail),
        530 => Failure::AuthenticationRequired(detail),
        _ => Failure::AuthenticationFailed(detail),
    })
}

/// Connects to the first of `addrs` that accepts, each within the connect bound. A tenant
/// learns only that it could not connect; the log has the address and why.
async fn connect(
    host: &str,
    addrs: &[SocketAddr],
    port: u16,
    t: Timeouts,
) -> Result<TcpStream, Failure> {
    for addr in addrs {
        match timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => {
                tracing::info!(host, port, %addr, error = %e, "connection test: connect failed")
            }
            Err(_) => {
                tracing::info!(host, port, %addr, "connection test: connect timed out")
            }
        }
    }
    Err(Failure::ConnectFailed(format!("{host}:{port}")))
}

async fn tls_connect(
    target: &Target,
    platform_roots: &[CertificateDer<'static>],
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let config = client_config(target, platform_roots).map_err(TlsError::Config)?;
    let name = match target.host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(target.host.clone()).map_err(|_| {
            TlsError::Config(Failure::UnknownHost(format!(
                "{} is not a valid TLS server name",
                target.host
            )))
        })?,
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(TlsError::Handshake)
}

/// Why TLS could not start.
enum TlsError {
    Config(Failure),
    Handshake(std::io::Error),
}

fn tls_failure(host: &str, port: u16, e: TlsError) -> Failure {
    match e {
        TlsError::Config(f) => f,
        TlsError::Handshake(e) => {
            Failure::TlsUpgradeFailed(format!("{host}:{port}: {}", describe_tls_error(&e)))
        }
    }
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

/// rustls configuration: the target's CA bundle when given, else the web PKI roots and the
/// platform's.
fn client_config(
    target: &Target,
    platform_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, Failure> {
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
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // Checked when they were read (`with_platform_roots`).
            roots.add_parsable_certificates(platform_roots.iter().cloned());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::TlsUpgradeFailed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
