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

use std::future::Future;

/// Tag marking an identity as created (or adopted) by email-operator.
pub const MANAGED_BY_KEY: &str = "email.ops.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "email-operator";
/// Prefix of the per-owner tags.
pub const OWNER_KEY_PREFIX: &str = "email.ops.dev/owner/";

/// What SES reports about one identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityDetails {
    /// `PENDING`, `SUCCESS`, `FAILED`, `TEMPORARY_FAILURE` or `NOT_STARTED`.
    pub verification_status: String,
    pub dkim_status: Option<String>,
    pub dkim_tokens: Vec<String>,
    pub signing_hosted_zone: Option<String>,
    pub verified_for_sending: bool,
    pub mail_from_domain: Option<String>,
    pub next_key_length: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// One row of `ListEmailIdentities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedIdentity {
    pub name: String,
    pub verification_status: String,
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
}

impl SesError {
    /// Stable CamelCase reason (condition, Event, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound => "SesNotFound",
            Self::AlreadyExists => "SesAlreadyExists",
            Self::Throttled(_) => "SesThrottled",
            Self::Unavailable(_) => "SesUnavailable",
            Self::Rejected(_) => "SesRequestRejected",
        }
    }

    /// Worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::Unavailable(_))
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
}

/// Who owns a SenderIdentity's claim on an SES identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Identifies the cluster, so two clusters sharing an account do not confuse owners.
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// `Delete` or `Retain`.
    pub deletion_policy: String,
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

    /// The owner's tag value: what it wants done on deletion, then who it is (for people
    /// reading the tags; cut to SES's 256 characters — the key is what identifies the owner).
    pub fn tag_value(&self) -> String {
        let mut v = format!(
            "{};{}/{}/{}",
            self.deletion_policy, self.cluster, self.namespace, self.name
        );
        v.truncate(256);
        v
    }

    /// The deletion policy recorded in an owner tag value.
    pub fn policy_of(tag_value: &str) -> &str {
        tag_value.split(';').next().unwrap_or_default()
    }

    /// Tags for creating an identity on behalf of this owner.
    pub fn creation_tags(&self) -> Vec<(String, String)> {
        vec![
            (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
            (self.tag_key(), self.tag_value()),
        ]
    }
}

/// Whether the identity's tags mark it as ours.
pub fn is_managed(tags: &[(String, String)]) -> bool {
    tags.iter()
        .any(|(k, v)| k == MANAGED_BY_KEY && v == MANAGED_BY_VALUE)
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
            deletion_policy: "Delete".into(),
        }
    }

    #[test]
    fn owner_tags_are_short_distinct_and_named() {
        let a = owner("billing", "yourcompany-com");
        let b = owner("sandbox", "yourcompany-com");
        assert_ne!(a.tag_key(), b.tag_key());
        assert!(a.tag_key().len() <= 128);
        assert_eq!(a.tag_key(), owner("billing", "yourcompany-com").tag_key());
        assert_eq!(a.tag_value(), "Delete;prod-eu/billing/yourcompany-com");
        assert_eq!(Owner::policy_of(&a.tag_value()), "Delete");
        let long = owner(&"n".repeat(63), &"x".repeat(253));
        assert!(long.tag_key().len() <= 128 && long.tag_value().len() <= 256);
    }

    #[test]
    fn management_and_owners_are_read_from_tags() {
        let tags = owner("billing", "a").creation_tags();
        assert!(is_managed(&tags));
        assert_eq!(owner_tags(&tags).len(), 1);
        assert!(!is_managed(&[("team".into(), "mail".into())]));
    }
}
