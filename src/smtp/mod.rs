//! The SMTP connection test ("test connection and save"): connect (or open an implicit-TLS
//! socket, with plain fallback), EHLO, STARTTLS when required, AUTH, `MAIL FROM:<from>`, RSET,
//! QUIT. Nothing is ever sent. Failures are classified into the source's table ([`Failure`]).
//!
//! [`Prober`] is the seam the controller and `plan --check-smtp` use; [`SmtpProber`] is the
//! real implementation (the operator's own bounded SMTP client, [`session`]), tested against
//! real servers. Where a tenant's test may connect is [`egress`]'s business, and where a
//! connection to a host actually goes (the platform's `--connect-to`) is [`connect_to`]'s.

pub mod connect_to;
pub mod egress;
mod failure;
mod hints;
pub mod oauth2;
mod probe;
pub mod ses_password;
pub mod session;
pub mod target;

pub use egress::Egress;
pub use failure::{Failure, describe_tls_error};
pub use hints::provider_hints;
pub use probe::SmtpProber;

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// A secret string: printed as `***` by `Debug` so it cannot reach logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// AUTH PLAIN or LOGIN.
    Password { username: String, password: Secret },
    /// AUTH XOAUTH2 with an access token.
    XOAuth2 { username: String, token: Secret },
}

/// Implicit TLS ("SSL socket factory") settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImplicitTls {
    /// The TLS port, used instead of the plain port.
    pub port: u16,
    /// On failure of the TLS socket, retry plain on the plain port.
    pub fallback: bool,
}

/// What to test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub implicit_tls: Option<ImplicitTls>,
    /// STARTTLS is required (never silently plain text).
    pub start_tls: bool,
    /// None: the relay accepts mail without authentication.
    pub auth: Option<Auth>,
    /// The envelope sender tried with `MAIL FROM`.
    pub from: String,
    /// PEM roots that replace the web PKI roots and the platform's `--smtp-ca-file` (a private
    /// relay's CA).
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// The host (and token URL) come from the tenant: connections go only where
    /// [`Egress`] lets them. False for what the platform configured (the default relay, the
    /// SES SMTP endpoint).
    pub restricted: bool,
}

/// How the connection that passed was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPath {
    /// TLS from the first byte.
    Implicit,
    /// The implicit-TLS socket failed and the plain fallback worked.
    FallbackPlain,
    /// Plain, upgraded with STARTTLS.
    StartTls,
    /// Plain text throughout.
    Plain,
}

impl ConnectionPath {
    /// As shown in `status.lastConnectionTest.path`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Implicit => "implicit",
            Self::FallbackPlain => "fallback-plain",
            Self::StartTls => "starttls",
            Self::Plain => "plain",
        }
    }

    /// The `tls` key of the published Secret: `none`, `starttls` or `implicit`.
    pub fn tls(self) -> &'static str {
        match self {
            Self::Implicit => "implicit",
            Self::StartTls => "starttls",
            Self::Plain | Self::FallbackPlain => "none",
        }
    }
}

/// A passed test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub path: ConnectionPath,
    /// The port that worked.
    pub port: u16,
    pub duration: Duration,
}

/// A message to send through a target: a test message on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The one recipient (`RCPT TO`).
    pub to: String,
    /// The whole message, headers and body, lines ending in CRLF.
    pub message: String,
}

/// What the server answered to a [`Letter`], once the connection, TLS, AUTH and `MAIL FROM`
/// had passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub path: ConnectionPath,
    pub port: u16,
    /// `RCPT TO` when the recipient was refused, else `DATA`.
    pub stage: &'static str,
    pub code: u16,
    /// The reply's first line, printable ASCII only.
    pub text: String,
}

impl Sent {
    /// The server took the message for delivery.
    pub fn accepted(&self) -> bool {
        self.stage == "DATA" && (200..300).contains(&self.code)
    }

    /// The id the server gave the message, when its reply names one: SES answers
    /// `250 Ok <id>`, Postfix `250 2.0.0 Ok: queued as <id>`.
    pub fn message_id(&self) -> Option<String> {
        if !self.accepted() {
            return None;
        }
        let text = self.text.trim();
        let id = match text.split_once("queued as ") {
            Some((_, id)) => id,
            None => text
                .strip_prefix("Ok ")
                .or_else(|| text.strip_prefix("OK "))?,
        };
        let id = id.split_whitespace().next()?;
        (!id.is_empty()).then(|| id.to_string())
    }
}

/// Bounds on one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For the TCP connect.
    pub connect: Duration,
    /// For everything after the connect (greeting, TLS, AUTH, MAIL FROM…) of one attempt.
    pub conversation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            conversation: Duration::from_secs(30),
        }
    }
}

/// Runs connection tests.
pub trait Prober: Send + Sync {
    fn probe(&self, target: &Target) -> impl Future<Output = Result<Outcome, Failure>> + Send;
}

/// Runs whole connection tests of prepared targets: the seam the controller is tested through
/// (with recording fakes), and that `plan --check-smtp` shares.
pub trait ConnectionTest: Send + Sync {
    fn test(
        &self,
        prepared: &target::Prepared,
    ) -> impl Future<Output = Result<Outcome, Failure>> + Send;
    /// Sends `letter` through `prepared` (a test message on request): the test's conversation,
    /// then `RCPT TO` and `DATA`.
    fn send(
        &self,
        prepared: &target::Prepared,
        letter: &Letter,
    ) -> impl Future<Output = Result<Sent, Failure>> + Send;
}

/// The real [`ConnectionTest`]: an OAuth 2.0 token when there is a grant, then the SMTP
/// conversation.
#[derive(Debug)]
pub struct Tester {
    prober: SmtpProber,
    tokens: oauth2::TokenSource,
}

/// The platform's CA certificates (PEM) trusted besides the web PKI.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// For OAuth 2.0 token endpoints (`--oauth2-ca-file`: an internal identity provider).
    pub token: Option<Vec<u8>>,
    /// For SMTP servers without a CA bundle of their own (`--smtp-ca-file`: a company's
    /// private PKI).
    pub smtp: Option<Vec<u8>>,
}

impl Tester {
    /// A tester connecting within `egress`, trusting `roots` besides the web PKI.
    pub fn new(timeouts: Timeouts, egress: Egress, roots: &Roots) -> Result<Self, String> {
        let tokens = oauth2::TokenSource::new(
            timeouts.conversation,
            egress.clone(),
            roots.token.as_deref(),
        )?;
        let mut prober = SmtpProber::new(timeouts, egress);
        if let Some(pem) = &roots.smtp {
            prober = prober.with_platform_roots(pem)?;
        }
        Ok(Self { prober, tokens })
    }
}

impl ConnectionTest for Tester {
    async fn test(&self, prepared: &target::Prepared) -> Result<Outcome, Failure> {
        run_test(&self.prober, &self.tokens, prepared).await
    }

    async fn send(&self, prepared: &target::Prepared, letter: &Letter) -> Result<Sent, Failure> {
        let prepared = match &prepared.oauth2 {
            Some(grant) => {
                let token = self.tokens.token(grant, prepared.target.restricted).await?;
                prepared.clone().with_token(token)
            }
            None => prepared.clone(),
        };
        self.prober.send(&prepared.target, letter).await
    }
}

/// The whole test of a prepared target: the OAuth2 token first when there is a grant (a token
/// that cannot be obtained is `AuthenticationFailed`), then the SMTP conversation.
pub async fn run_test(
    prober: &impl Prober,
    tokens: &oauth2::TokenSource,
    prepared: &target::Prepared,
) -> Result<Outcome, Failure> {
    match &prepared.oauth2 {
        Some(grant) => {
            let token = tokens.token(grant, prepared.target.restricted).await?;
            prober
                .probe(&prepared.clone().with_token(token).target)
                .await
        }
        None => prober.probe(&prepared.target).await,
    }
}
