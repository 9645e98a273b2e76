//! An SMTP submission server for the hosts a tenant names: a company's relay (Postfix) or
//! Microsoft 365 (`smtp.office365.com`), over real sockets and real TLS.
//!
//! What it enforces, and where it is written:
//! * Encryption before credentials (RFC 3207 §4, RFC 4954 §4, and Postfix's
//!   `smtpd_tls_auth_only`): with [`Security::StartTls`], AUTH is offered only after STARTTLS,
//!   and AUTH or MAIL before it is refused (`530 5.7.0 Must issue a STARTTLS command first`);
//!   with [`Security::Implicit`], TLS starts with the first byte (RFC 8314 §3.3, port 465).
//!   After STARTTLS the session starts over (RFC 3207 §4.2).
//! * Credentials (RFC 4954, RFC 4616 PLAIN, LOGIN): one account, compared exactly; a wrong
//!   one is `535 5.7.8 Error: authentication failed` (Postfix) or `535 5.7.3 Authentication
//!   unsuccessful` (Microsoft 365). XOAUTH2 (Microsoft Learn, "Authenticate an IMAP, POP or
//!   SMTP connection using OAuth": `base64("user=" + mailbox + "^Aauth=Bearer " + token +
//!   "^A^A")`): a token the [`super::oauth`] endpoint issued, unexpired, for the SMTP scope,
//!   to an application granted that mailbox. Microsoft 365 refuses PLAIN and LOGIN (`535
//!   5.7.139 Authentication unsuccessful, basic authentication is disabled`).
//! * MAIL FROM only after AUTH (`530 5.7.0 Authentication required`; Microsoft 365: `530
//!   5.7.57 Client not authenticated to send mail`), and only for a sender the account may use
//!   (Postfix `reject_sender_login_mismatch`: `553 5.7.1 … Sender address rejected: not owned
//!   by user …`; Microsoft 365 send-as: `550 5.7.60 SMTP; Client does not have permissions to
//!   send as this sender`).
//! * Commands out of order `503 5.5.1`, unknown `502 5.5.2` (RFC 5321 §4.2.4, §4.3.2); lines
//!   longer than [`MAX_COMMAND`] are refused; an idle client is dropped after
//!   [`SmtpServerOptions::idle`] (`421 4.4.2`).
//!
//! Accepted messages are kept (at most [`MAX_KEPT`]) for [`SmtpServer::messages`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::oauth::Tokens;

mod session;

/// The longest command line read (an XOAUTH2 initial response is longer than RFC 5321's 512).
pub const MAX_COMMAND: usize = 4096;
/// The largest message taken (`SIZE` in EHLO).
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// How many accepted messages are kept.
pub const MAX_KEPT: usize = 100;

/// Whose words the replies use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// A company's relay.
    Postfix,
    /// `smtp.office365.com`.
    Microsoft365,
}

/// When TLS starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain greeting; STARTTLS required before AUTH (submission, port 587).
    StartTls,
    /// TLS from the first byte (submissions, port 465).
    Implicit,
}

/// Who may log in.
#[derive(Clone)]
pub enum Login {
    /// AUTH PLAIN or LOGIN with this account.
    Password { username: String, password: String },
    /// AUTH XOAUTH2 with a token from `tokens` issued for `scope`; `grants` lists (application
    /// id, mailbox) pairs: which application may send as which mailbox.
    XOAuth2 {
        tokens: Arc<Tokens>,
        scope: String,
        grants: Vec<(String, String)>,
    },
}

/// How to start an [`SmtpServer`].
#[derive(Clone)]
pub struct SmtpServerOptions {
    /// Where to listen (port 0: ephemeral).
    pub addr: SocketAddr,
    /// The host name it greets with (and its certificate's name).
    pub name: String,
    /// Whose words the replies use.
    pub dialect: Dialect,
    /// When TLS starts.
    pub security: Security,
    /// The certificate it presents.
    pub tls: Arc<rustls::ServerConfig>,
    /// Who may log in.
    pub login: Login,
    /// Senders the logged-in account may use: whole addresses, or domains (any address in
    /// them).
    pub senders: Vec<String>,
    /// Idle time after which the client is dropped.
    pub idle: Duration,
}

/// A message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub recipients: Vec<String>,
    /// The message, dot-unstuffed, lines ending in CRLF.
    pub data: Vec<u8>,
}

/// What happened so far.
#[derive(Default)]
struct Counters {
    logins: AtomicU64,
    refused_logins: AtomicU64,
}

/// A running SMTP server. Dropping it stops accepting connections.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

struct Shared {
    options: SmtpServerOptions,
    tls: tokio_rustls::TlsAcceptor,
    counters: Counters,
    kept: Mutex<Vec<Accepted>>,
}

impl SmtpServer {
    /// Binds and serves until dropped.
    pub async fn start(options: SmtpServerOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            tls: tokio_rustls::TlsAcceptor::from(options.tls.clone()),
            options,
            counters: Counters::default(),
            kept: Mutex::new(vec![]),
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        let serving = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => {
                            tokio::spawn(session::serve(serving.clone(), tcp));
                        }
                        Err(error) => tracing::warn!(%error, "smtp accept failed"),
                    },
                }
            }
        });
        Ok(Self {
            addr,
            shared,
            _stop: stop,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host name it plays.
    pub fn name(&self) -> &str {
        &self.shared.options.name
    }

    /// Successful and refused logins so far.
    pub fn logins(&self) -> (u64, u64) {
        let c = &self.shared.counters;
        (
            c.logins.load(Ordering::Relaxed),
            c.refused_logins.load(Ordering::Relaxed),
        )
    }

    /// The messages it accepted, oldest first (at most [`MAX_KEPT`]).
    pub fn messages(&self) -> Vec<Accepted> {
        self.shared
            .kept
            .lock()
            .map(|k| k.clone())
            .unwrap_or_default()
    }
}
