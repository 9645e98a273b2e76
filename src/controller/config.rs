//! The operator's settings, typed and grouped as the command line groups them; `main.rs`
//! builds them once, and nothing below parses a flag.

use crate::smtp::Timeouts;
use crate::smtp::target::SesEndpoint;
use std::time::Duration;

/// Operator-wide settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names this cluster in SES ownership tags (checked against SES's tag rules).
    pub cluster_id: String,
    /// Reconciles each controller runs at once.
    pub concurrency: u16,
    pub ses: Ses,
    pub recheck: Recheck,
    pub smtp: Smtp,
    pub tenancy: Tenancy,
    /// The namespaces watched; empty: the whole cluster.
    pub watch_namespaces: Vec<String>,
}

/// Who may send as which domain.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    /// The namespace whose SenderPolicies are honoured (the operator's own).
    pub policy_namespace: String,
    /// Namespaces that may use the default relay whatever the policies say (`*`: all).
    pub default_relay_namespaces: Vec<String>,
}

/// How SES is called.
#[derive(Debug, Clone)]
pub struct Ses {
    /// Requests per second per account and region (SES allows 1).
    pub max_rps: f64,
    /// The AWS account of identity ARNs, when STS should not be asked.
    pub aws_account_id: Option<String>,
    /// How often the account's standing (`GetAccount`) is read at each location AdvancedSmtp
    /// EmailSettings use.
    pub account_every: Duration,
}

/// How often the account's standing is read by default: twice a day.
pub const ACCOUNT_EVERY: Duration = Duration::from_secs(12 * 3600);

/// When identities are looked at again.
#[derive(Debug, Clone)]
pub struct Recheck {
    /// Verified identities are listed in bulk this often.
    pub verified_every: Duration,
    pub windows: Windows,
}

/// The time windows and intervals of an identity's verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// A domain identity pending this long is re-created (fresh DKIM tokens).
    pub domain_pending: Duration,
    /// An email verification link is valid this long.
    pub email_link: Duration,
    /// Verification emails re-sent at most this many times (after the first).
    pub max_resends: i32,
    /// Pending identities are polled no more often than this …
    pub pending_min: Duration,
    /// … and no less often than this.
    pub pending_max: Duration,
    /// TemporaryFailure (records removed?) is looked at again after this.
    pub temporary_failure: Duration,
    /// An identity with a custom MAIL FROM domain is read by itself this often (the bulk
    /// listing does not carry the MAIL FROM status), and every `pending_max` while that
    /// status is pending.
    pub mail_from_every: Duration,
    /// SES lets the DKIM key length change at most once in this long.
    pub key_length_change: Duration,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            domain_pending: Duration::from_secs(72 * 3600),
            email_link: Duration::from_secs(24 * 3600),
            max_resends: 3,
            pending_min: Duration::from_secs(30),
            pending_max: Duration::from_secs(15 * 60),
            temporary_failure: Duration::from_secs(5 * 60),
            mail_from_every: Duration::from_secs(12 * 3600),
            key_length_change: Duration::from_secs(24 * 3600),
        }
    }
}

/// How connections are tested.
#[derive(Debug, Clone, Default)]
pub struct Smtp {
    /// Where tenants' tests may connect.
    pub egress: crate::smtp::Egress,
    /// The platform's CAs trusted for token endpoints and SMTP servers besides the web PKI.
    pub roots: crate::smtp::Roots,
    /// The Secret (namespace, name) holding the operator-wide default relay.
    pub default_relay: Option<(String, String)>,
    /// Where AdvancedSmtp connection tests go.
    pub ses_endpoint: SesEndpoint,
    /// Bounds on each connection test.
    pub timeouts: Timeouts,
}
