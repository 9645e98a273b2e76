//! Connection-test failures, classified as the source's error table does: each has a stable
//! reason (condition reason, Event reason, metric label), the table's message, and the
//! recommended action. Details never carry a secret: they are built from host names, ports,
//! SMTP reply codes and certificate problems only.

use crate::crd::conditions::reasons;
use crate::crd::email_settings::Delivery;

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

    /// What to do about it, for a tenant whose mail leaves by `delivery`: the source's table
    /// for an external server (its fields named); for SES and the default relay, what that
    /// tenant has to check instead (there is no `externalSmtp` to correct).
    pub fn action(&self, delivery: Delivery) -> &'static str {
        match delivery {
            Delivery::ExternalSmtp => self.external_action(),
            Delivery::AdvancedSmtp => self.ses_action(),
            Delivery::Default => self.relay_action(),
        }
    }

    fn external_action(&self) -> &'static str {
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

    /// AdvancedSmtp: the host is the region's SES SMTP endpoint, the credentials come from
    /// `advancedSmtp.smtpCredentialsSecretRef`.
    fn ses_action(&self) -> &'static str {
        match self {
            Self::UnknownHost(_) | Self::HostNotAllowed(_) => {
                "Check advancedSmtp.region: it must be a region where SES offers its SMTP interface. If it is, the platform team should check the operator's DNS and --ses-smtp-endpoint."
            }
            Self::ConnectFailed(_) | Self::ReadTimeout(_) | Self::TlsUpgradeFailed(_) => {
                "SES's SMTP endpoint for advancedSmtp.region could not be reached over TLS: the platform team should check the operator's network path to it (port 587). The test is retried automatically."
            }
            Self::BadCredentials(_)
            | Self::AuthenticationFailed(_)
            | Self::AuthenticationRequired(_) => {
                "Check the Secret named by advancedSmtp.smtpCredentialsSecretRef: it must hold an active IAM access key (accessKeyId, secretAccessKey) of a user allowed ses:SendRawEmail."
            }
            Self::SenderRejected(_) => {
                "SES refused the from address: verify it, or its domain, with a SenderIdentity of this EmailSettings."
            }
            Self::StartTlsRequired(_) => {
                "SES requires TLS: the platform team should check --ses-smtp-endpoint."
            }
        }
    }

    /// Default delivery: the relay, its host and its credentials are the platform team's.
    fn relay_action(&self) -> &'static str {
        match self {
            Self::SenderRejected(_) => {
                "The platform's default relay does not accept this from address: use an address it relays for, or ask the platform team to allow it."
            }
            Self::ConnectFailed(_) | Self::ReadTimeout(_) => {
                "The platform's default relay did not answer; the test is retried automatically. If it persists, tell the platform team."
            }
            _ => {
                "The platform's default relay is misconfigured (its host, TLS or credentials): tell the platform team, who set it with --default-relay-secret."
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

    /// The condition message: what happened, the detail, and the action for `delivery`.
    pub fn condition_message(&self, delivery: Delivery) -> String {
        format!("{self}. {}", self.action(delivery))
    }

    /// One failure of each kind, with `detail` (for tests that must cover every kind).
    #[cfg(test)]
    pub(crate) fn every_kind(detail: &str) -> Vec<Failure> {
        let d = || detail.to_string();
        vec![
            Self::UnknownHost(d()),
            Self::ConnectFailed(d()),
            Self::HostNotAllowed(d()),
            Self::BadCredentials(d()),
            Self::AuthenticationFailed(d()),
            Self::AuthenticationRequired(d()),
            Self::ReadTimeout(d()),
            Self::TlsUpgradeFailed(d()),
            Self::SenderRejected(d()),
            Self::StartTlsRequired(d()),
        ]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tenant using SES or the default relay has no `externalSmtp` to check: the advice
    /// names what that tenant can act on.
    #[test]
    fn the_advice_names_only_fields_the_delivery_has() {
        for delivery in [Delivery::AdvancedSmtp, Delivery::Default] {
            for f in Failure::every_kind("smtp.example.com:587") {
                let message = f.condition_message(delivery);
                for field in ["externalSmtp", "socketFactory", "startTls", "tokenUrl"] {
                    assert!(
                        !message.contains(field),
                        "{delivery:?} {}: {message}",
                        f.reason()
                    );
                }
            }
        }
        let ses = Failure::BadCredentials(String::new()).condition_message(Delivery::AdvancedSmtp);
        assert!(ses.contains("smtpCredentialsSecretRef"), "{ses}");
        let relay = Failure::UnknownHost(String::new()).condition_message(Delivery::Default);
        assert!(relay.contains("platform team"), "{relay}");
    }

    /// With an external server the advice is the source's table (its fields named).
    #[test]
    fn external_smtp_keeps_the_tables_advice() {
        let unknown = Failure::UnknownHost("x".into()).condition_message(Delivery::ExternalSmtp);
        assert_eq!(
            unknown,
            "Unknown SMTP host: x. Check that externalSmtp.host is correct."
        );
        let tls = Failure::TlsUpgradeFailed("x".into()).condition_message(Delivery::ExternalSmtp);
        assert!(tls.contains("socketFactory.port"), "{tls}");
    }
}
