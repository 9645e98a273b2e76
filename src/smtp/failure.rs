//! Connection-test failures, classified as the source's error table does: each has a stable
//! reason (condition reason, Event reason, metric label), the table's message, and the
//! recommended action. Details never carry a secret: they are built from host names, ports,
//! SMTP reply codes and certificate problems only.

use crate::crd::conditions::reasons;

/// Why a connection test failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("Unknown SMTP host: {0}")]
    UnknownHost(String),
    /// Refused, unreachable or silent: a tenant is not told which (that would map networks).
    #[error("Could not connect to SMTP host: {0}")]
    ConnectFailed(String),
    /// The host (every address it resolves to) is one tenants' connections may not reach.
    #[error("Host not allowed: {0} is not a host a tenant's connection test may reach")]
    HostNotAllowed(String),
    #[error("Authentication failed: Bad username / password: {0}")]
    BadCredentials(String),
    #[error("Authentication failed: {0}")]
    AuthenticationFailed(String),
    #[error("Authentication required: {0}")]
    AuthenticationRequired(String),
    #[error("Read timed out: {0}")]
    ReadTimeout(String),
    #[error("Could not convert socket to TLS: {0}")]
    TlsUpgradeFailed(String),
    #[error("Sender rejected: {0}")]
    SenderRejected(String),
    /// The server authenticates only over TLS, offers STARTTLS, and `startTls` is false.
    #[error("Authentication requires STARTTLS: {0}")]
    StartTlsRequired(String),
}

impl Failure {
    /// The stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownHost(_) => reasons::UNKNOWN_HOST,
            Self::ConnectFailed(_) => reasons::CONNECT_FAILED,
            Self::HostNotAllowed(_) => reasons::HOST_NOT_ALLOWED,
            Self::BadCredentials(_) => reasons::BAD_CREDENTIALS,
            Self::AuthenticationFailed(_) => reasons::AUTHENTICATION_FAILED,
            Self::AuthenticationRequired(_) => reasons::AUTHENTICATION_REQUIRED,
            Self::ReadTimeout(_) => reasons::READ_TIMEOUT,
            Self::TlsUpgradeFailed(_) => reasons::TLS_UPGRADE_FAILED,
            Self::SenderRejected(_) => reasons::SENDER_REJECTED,
            Self::StartTlsRequired(_) => reasons::START_TLS_REQUIRED,
        }
    }

    /// What to do about it.
    pub fn action(&self) -> &'static str {
        match self {
            Self::UnknownHost(_) => "Check that externalSmtp.host is correct.",
            Self::ConnectFailed(_) => {
                "Check that the host and port are correct. If they are, the SMTP server may have a temporary problem; the test is retried automatically."
            }
            Self::HostNotAllowed(_) => {
                "Use the relay's public host name. An internal relay must be allowed by the platform team (the operator's --egress-allow)."
            }
            Self::BadCredentials(_) => {
                "Check the username and the password in the referenced Secret (Gmail needs an app password)."
            }
            Self::AuthenticationFailed(_) => {
                "Check the username and password, or the OAuth 2.0 provider settings (tokenUrl, clientId, client secret, scopes)."
            }
            Self::AuthenticationRequired(_) => {
                "Check the authentication settings: the server accepts mail only from authenticated clients."
            }
            Self::ReadTimeout(_) | Self::TlsUpgradeFailed(_) => {
                "Check socketFactory.port, socketFactory.class and socketFactory.fallback (and startTls) against what the server speaks on that port."
            }
            Self::SenderRejected(_) => {
                "Enable relaying for the from address on the SMTP server, or use an address the server accepts as sender."
            }
            Self::StartTlsRequired(_) => {
                "Set externalSmtp.startTls: true: the server offers authentication only on a connection upgraded with STARTTLS."
            }
        }
    }

    /// The detail the failure carries (host, port, what the server answered; never a secret).
    pub fn detail(&self) -> &str {
        match self {
            Self::UnknownHost(d)
            | Self::ConnectFailed(d)
            | Self::HostNotAllowed(d)
            | Self::BadCredentials(d)
            | Self::AuthenticationFailed(d)
            | Self::AuthenticationRequired(d)
            | Self::ReadTimeout(d)
            | Self::TlsUpgradeFailed(d)
            | Self::SenderRejected(d)
            | Self::StartTlsRequired(d) => d,
        }
    }

    /// The failure of `reason` with `detail` (as [`Failure::reason`] and [`Failure::detail`]
    /// gave them), e.g. read back from a status.
    pub fn from_reason(reason: &str, detail: String) -> Option<Self> {
        Some(match reason {
            reasons::UNKNOWN_HOST => Self::UnknownHost(detail),
            reasons::CONNECT_FAILED => Self::ConnectFailed(detail),
            reasons::HOST_NOT_ALLOWED => Self::HostNotAllowed(detail),
            reasons::BAD_CREDENTIALS => Self::BadCredentials(detail),
            reasons::AUTHENTICATION_FAILED => Self::AuthenticationFailed(detail),
            reasons::AUTHENTICATION_REQUIRED => Self::AuthenticationRequired(detail),
            reasons::READ_TIMEOUT => Self::ReadTimeout(detail),
            reasons::TLS_UPGRADE_FAILED => Self::TlsUpgradeFailed(detail),
            reasons::SENDER_REJECTED => Self::SenderRejected(detail),
            reasons::START_TLS_REQUIRED => Self::StartTlsRequired(detail),
            _ => return None,
        })
    }

    /// The condition message: what happened, the detail, and the action.
    pub fn condition_message(&self) -> String {
        format!("{self}. {}", self.action())
    }

    /// Failures that may pass on their own (worth a sooner retry).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::ConnectFailed(_) | Self::ReadTimeout(_))
    }
}

/// A readable account of a TLS failure: the certificate problem when there is one.
pub fn describe_tls_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return describe_rustls(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return describe_rustls(tls);
        }
        cur = e.source();
    }
    err.to_string()
}

fn describe_rustls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted CA (add the CA to caBundleSecretRef for a private relay)".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for this host name".into()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired".into()
        }
        other => format!("TLS handshake failed: {other}"),
    }
}
