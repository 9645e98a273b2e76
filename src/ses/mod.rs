//! Amazon SES behind a small trait ([`SesApi`]), so the reconcile logic is testable and the
//! real client ([`aws::AwsSes`]) is tested against real SES-compatible servers.
//!
//! Ownership is recorded in SES itself, as tags on the identity: `email.ops.dev/managed-by`
//! marks an identity as ours, and each SenderIdentity that uses it holds one
//! `email.ops.dev/owner/<digest>` tag whose value names it (cluster/namespace/name) and its
//! deletion policy. Identities are account-global, so SenderIdentities in several namespaces
//! (or clusters) can share one; it is deleted only when its last owner goes.

pub mod aws;
pub mod limiter;
pub mod turns;

use std::future::Future;

/// Tag marking an identity as created (or adopted) by email-operator.
pub const MANAGED_BY_KEY: &str = "email.ops.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "email-operator";
/// Marks an identity the operator adopted (it existed before; the operator never deletes it).
pub const ADOPTED_KEY: &str = "email.ops.dev/adopted";

/// Prefix of the per-owner tags.
pub const OWNER_KEY_PREFIX: &str = "email.ops.dev/owner/";

/// SES allows at most this many tags per identity (SES v2 API Reference, `Tag`); tags with the
/// reserved `aws:` prefix do not count.
pub const MAX_TAGS: usize = 50;

/// Letters, digits, white space and `_ . : / = + -`: all SES accepts in a tag key or value.
static TAG_CHARSET: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-]*$").ok());

/// Why SES would refuse this tag (SES v2 API Reference, `Tag`: a key of 1–128 and a value of
/// 0–256 characters, letters, digits, white space and `_ . : / = + -` only, no `aws:` prefix),
/// or `None` when it accepts it. SES refuses such a tag only when it is sent (the SDK does not
/// check), so everything the operator tags with is checked here first.
pub fn tag_problem(key: &str, value: &str) -> Option<String> {
    let allowed = |s: &str| TAG_CHARSET.as_ref().is_some_and(|re| re.is_match(s));
    if key.is_empty() || key.chars().count() > 128 {
        Some(format!("the tag key {key:?} must have 1 to 128 characters"))
    } else if value.chars().count() > 256 {
        Some(format!(
            "the value of tag {key:?} must have at most 256 characters"
        ))
    } else if !allowed(key) || !allowed(value) {
        Some(format!(
            "the tag {key:?}={value:?} may contain only letters, digits, spaces and _ . : / = + -"
        ))
    } else if is_reserved_tag(key) || is_reserved_tag(value) {
        Some(format!(
            "the tag {key:?} uses the prefix aws:, which AWS reserves"
        ))
    } else {
        None
    }
}

/// Tags (keys) that AWS reserves: they cannot be set, changed or removed by anyone else, and do
/// not count against the 50.
pub fn is_reserved_tag(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// Why `id` cannot name this cluster in ownership tags, or `None`. It becomes part of every
/// owner tag's value, between `/` separators, so it may use the characters SES allows in a tag
/// value except `/` and white space, and at most 63 of them.
pub fn cluster_id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:=+-".contains(c));
    (!ok).then(|| {
        format!(
            "cluster id {id:?} is not usable in SES tags: use 1 to 63 letters, digits and _ . : = + - (SES tag values allow no other characters)"
        )
    })
}

/// The form under which SES tells identities apart: a domain case-insensitively (lower-cased),
/// an email address exactly as written (SES treats the entire address as case-sensitive).
pub fn identity_key(name: &str) -> String {
    if name.contains('@') {
        name.to_string()
    } else {
        name.to_ascii_lowercase()
    }
}

/// A verification status as SES reports it, for an identity, its Easy DKIM or its MAIL FROM
/// domain (SES v2 API Reference, `VerificationStatus`, `DkimStatus`, `MailFromDomainStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerificationStatus {
    #[default]
    Pending,
    Success,
    Failed,
    TemporaryFailure,
    NotStarted,
}

impl VerificationStatus {
    const ALL: [Self; 5] = [
        Self::Pending,
        Self::Success,
        Self::Failed,
        Self::TemporaryFailure,
        Self::NotStarted,
    ];

    /// SES's spelling: `PENDING`, `TEMPORARY_FAILURE`, …
    pub fn as_ses(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::TemporaryFailure => "TEMPORARY_FAILURE",
            Self::NotStarted => "NOT_STARTED",
        }
    }

    /// As status and `kubectl get` show it: `Pending`, `TemporaryFailure`, …
    pub fn shown(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::TemporaryFailure => "TemporaryFailure",
            Self::NotStarted => "NotStarted",
        }
    }

    /// From SES's spelling; a value SES may add later counts as not started (nothing is
    /// concluded from it).
    pub fn from_ses(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|v| v.as_ses() == s)
            .unwrap_or(Self::NotStarted)
    }

    /// From the spelling status shows.
    pub fn from_shown(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.shown() == s)
    }
}

/// What SES reports about one identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityDetails {
    pub verification_status: VerificationStatus,
    pub dkim_status: Option<VerificationStatus>,
    pub dkim_tokens: Vec<String>,
    pub signing_hosted_zone: Option<String>,
    pub verified_for_sending: bool,
    pub mail_from_domain: Option<String>,
    /// When a MAIL FROM domain is set.
    pub mail_from_status: Option<VerificationStatus>,
    pub next_key_length: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// The account's standing in one region, as `GetAccount` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountStanding {
    /// False while the region is in the sandbox (verified recipients only, 200 a day, 1/s).
    pub production_access: bool,
    /// False while sending is paused.
    pub sending_enabled: bool,
    /// `HEALTHY`, `PROBATION` or `SHUTDOWN` (SES may add others).
    pub enforcement_status: String,
    pub max_24_hour_send: f64,
    pub max_send_rate: f64,
    pub sent_last_24_hours: f64,
}

/// One row of `ListEmailIdentities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedIdentity {
    pub name: String,
    pub verification_status: VerificationStatus,
    pub sending_enabled: bool,
}

/// A failed SES call, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SesError {
    #[error("the identity does not exist in SES")]
    NotFound,
    #[error("the identity already exists in SES")]
    AlreadyExists,
    #[error("SES throttled the request: {0}")]
    Throttled(String),
    #[error("SES is unavailable: {0}")]
    Unavailable(String),
    #[error("SES rejected the request: {0}")]
    Rejected(String),
    /// A quota of the account, not a rate: SES allows 10,000 identities per region
    /// (`LimitExceededException`, HTTP 400). Retrying does not help until something is freed.
    #[error("an SES quota of the account is reached: {0}")]
    QuotaExceeded(String),
    /// STS could not say which AWS account the credentials belong to (identity ARNs need it).
    #[error("AWS STS could not name the account (GetCallerIdentity): {0}")]
    Sts(String),
}

impl AccountStanding {
    /// A healthy region with production access (SES's usual quota for one).
    pub fn production() -> Self {
        Self {
            production_access: true,
            sending_enabled: true,
            enforcement_status: "HEALTHY".into(),
            max_24_hour_send: 50_000.0,
            max_send_rate: 14.0,
            sent_last_24_hours: 0.0,
        }
    }
}

impl SesError {
    /// Stable CamelCase reason (condition, Event, metric label).
    pub fn reason(&self) -> &'static str {
        use crate::crd::conditions::reasons;
        match self {
            Self::NotFound => reasons::SES_NOT_FOUND,
            Self::AlreadyExists => reasons::SES_ALREADY_EXISTS,
            Self::Throttled(_) => reasons::SES_THROTTLED,
            Self::Unavailable(_) => reasons::SES_UNAVAILABLE,
            Self::Rejected(_) => reasons::SES_REQUEST_REJECTED,
            Self::QuotaExceeded(_) => reasons::SES_QUOTA_EXCEEDED,
            Self::Sts(_) => reasons::STS_UNAVAILABLE,
        }
    }

    /// Worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled(_) | Self::Unavailable(_) | Self::Sts(_)
        )
    }
}

/// The SES v2 operations the operator uses.
pub trait SesApi: Send + Sync {
    /// Creates the identity. Its details come back when the answer holds all that the status
    /// shows (for a domain, the three DKIM tokens and their signing zone), which saves the
    /// read after creating; otherwise `None`, and the caller reads it.
    fn create_identity(
        &self,
        name: &str,
        tags: &[(String, String)],
        key_length: Option<&str>,
    ) -> impl Future<Output = Result<Option<IdentityDetails>, SesError>> + Send;
    fn get_identity(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<IdentityDetails, SesError>> + Send;
    /// One page of identities (up to 1,000) and the next page's token.
    fn list_identities(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<(Vec<ListedIdentity>, Option<String>), SesError>> + Send;
    fn delete_identity(&self, name: &str) -> impl Future<Output = Result<(), SesError>> + Send;
    fn tag_identity(
        &self,
        name: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), SesError>> + Send;
    fn untag_identity(
        &self,
        name: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), SesError>> + Send;
    fn put_mail_from(
        &self,
        name: &str,
        domain: Option<&str>,
    ) -> impl Future<Output = Result<(), SesError>> + Send;
    fn put_dkim_key_length(
        &self,
        name: &str,
        key_length: &str,
    ) -> impl Future<Output = Result<(), SesError>> + Send;
    /// The account's standing in this client's region.
    fn get_account(&self) -> impl Future<Output = Result<AccountStanding, SesError>> + Send;
    /// The turn of a reconcile of object `id` in `namespace` at this account and region's SES
    /// budget ([`turns`]); clients without a budget of their own let everyone in.
    fn turn(&self, _namespace: &str, _id: &str) -> turns::Turn {
        turns::Turn::Go(turns::Permit::free())
    }
    /// Whether other calls are waiting for this budget now ([`limiter::RateLimiter::busy`]).
    fn busy(&self) -> bool {
        false
    }
}

/// Who owns a SenderIdentity's claim on an SES identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Identifies the cluster, so two clusters sharing an account do not confuse owners.
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub deletion_policy: crate::crd::sender_identity::DeletionPolicy,
}

impl Owner {
    /// The owner's tag key: a digest, because SES tag keys are limited to 128 characters.
    pub fn tag_key(&self) -> String {
        let id = format!("{}/{}/{}", self.cluster, self.namespace, self.name);
        let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
        let hex: String = digest.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{OWNER_KEY_PREFIX}{hex}")
    }

    /// The owner's tag value: what it wants done on deletion, a space, then who it is
    /// (`Delete prod-eu/billing/yourcompany-com`, for people reading the tags; cut to SES's 256
    /// characters — the key is what identifies the owner). Only characters SES allows in tag
    /// values: Kubernetes names and a checked cluster id (see [`cluster_id_problem`]).
    pub fn tag_value(&self) -> String {
        format!(
            "{} {}/{}/{}",
            self.deletion_policy.as_str(),
            self.cluster,
            self.namespace,
            self.name
        )
        .chars()
        .take(256)
        .collect()
    }

    /// Tags for creating an identity on behalf of this owner.
    pub fn creation_tags(&self) -> Vec<(String, String)> {
        vec![
            (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
            (self.tag_key(), self.tag_value()),
        ]
    }
}

/// The tags of an identity that a re-creation carries over: all but the ones AWS reserves (SES
/// refuses `aws:` tags in a request).
pub fn carried_tags(tags: &[(String, String)]) -> Vec<(String, String)> {
    tags.iter()
        .filter(|(k, _)| !is_reserved_tag(k))
        .cloned()
        .collect()
}

/// How many of the identity's tags count against SES's limit of [`MAX_TAGS`] after `adding`.
pub fn tag_count_after(tags: &[(String, String)], adding: &[(String, String)]) -> usize {
    let counted = |k: &String| !is_reserved_tag(k);
    let present = tags.iter().filter(|(k, _)| counted(k)).count();
    let new = adding
        .iter()
        .filter(|(k, _)| counted(k) && !tags.iter().any(|(t, _)| t == k))
        .count();
    present + new
}

/// Whether the identity's tags mark it as ours.
pub fn is_managed(tags: &[(String, String)]) -> bool {
    tags.iter()
        .any(|(k, v)| k == MANAGED_BY_KEY && v == MANAGED_BY_VALUE)
}

/// Whether the operator adopted the identity (it was not created by the operator): it is
/// never deleted nor re-created, only claimed and released.
pub fn is_adopted(tags: &[(String, String)]) -> bool {
    tags.iter().any(|(k, _)| k == ADOPTED_KEY)
}

/// The owner tags on an identity (key, value).
pub fn owner_tags(tags: &[(String, String)]) -> Vec<&(String, String)> {
    tags.iter()
        .filter(|(k, _)| k.starts_with(OWNER_KEY_PREFIX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(ns: &str, name: &str) -> Owner {
        Owner {
            cluster: "prod-eu".into(),
            namespace: ns.into(),
            name: name.into(),
            deletion_policy: crate::crd::sender_identity::DeletionPolicy::Delete,
        }
    }

    #[test]
    fn owner_tags_are_short_distinct_and_named() {
        let a = owner("billing", "yourcompany-com");
        let b = owner("sandbox", "yourcompany-com");
        assert_ne!(a.tag_key(), b.tag_key());
        assert!(a.tag_key().len() <= 128);
        assert_eq!(a.tag_key(), owner("billing", "yourcompany-com").tag_key());
        assert_eq!(a.tag_value(), "Delete prod-eu/billing/yourcompany-com");
        let long = owner(&"n".repeat(63), &"x".repeat(253));
        assert!(long.tag_key().len() <= 128 && long.tag_value().len() <= 256);
    }

    #[test]
    fn every_tag_the_operator_writes_is_one_ses_accepts() {
        let longest = Owner {
            cluster: "c".repeat(63),
            namespace: "n".repeat(63),
            name: format!("{}.{}", "x".repeat(200), "y".repeat(52)),
            deletion_policy: crate::crd::sender_identity::DeletionPolicy::Retain,
        };
        for o in [owner("billing", "yourcompany-com"), longest] {
            for (k, v) in o.creation_tags() {
                assert_eq!(tag_problem(&k, &v), None, "{k}={v}");
            }
        }
    }

    #[test]
    fn tags_are_checked_as_ses_checks_them() {
        assert_eq!(tag_problem(&"k".repeat(128), &"é".repeat(256)), None);
        assert!(tag_problem(&"k".repeat(129), "v").is_some());
        assert!(tag_problem("k", &"v".repeat(257)).is_some());
        assert!(tag_problem("", "v").is_some());
        for bad in [";", "@", "a,b", "#"] {
            assert!(tag_problem("k", bad).is_some(), "{bad}");
        }
        assert!(tag_problem("aws:x", "v").is_some());
        assert!(tag_problem("k", "AWS:v").is_some());
        assert_eq!(tag_problem("team", "mail ops: a/b=c+d_e.f-g"), None);
    }

    #[test]
    fn cluster_ids_must_fit_a_tag_value() {
        assert_eq!(cluster_id_problem("prod-eu_1"), None);
        assert_eq!(cluster_id_problem(&"c".repeat(63)), None);
        for bad in [
            "",
            "prod;eu",
            "prod/eu",
            "prod eu",
            "prod@eu",
            &"c".repeat(64),
        ] {
            assert!(cluster_id_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn reserved_tags_are_neither_carried_nor_counted() {
        let tags = vec![
            ("aws:cloudformation:stack-name".to_string(), "s".to_string()),
            (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
        ];
        assert_eq!(carried_tags(&tags), tags[1..].to_vec());
        let me = owner("billing", "a").creation_tags();
        assert_eq!(
            tag_count_after(&tags, &me),
            2,
            "managed-by is already there"
        );
        assert_eq!(tag_count_after(&tags, &tags), 1);
    }

    #[test]
    fn management_and_owners_are_read_from_tags() {
        let tags = owner("billing", "a").creation_tags();
        assert!(is_managed(&tags));
        assert_eq!(owner_tags(&tags).len(), 1);
        assert!(!is_managed(&[("team".into(), "mail".into())]));
    }
}
