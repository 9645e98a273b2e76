//! The SES stand-in's state: identities per region, their DKIM / MAIL FROM settings and tags,
//! and the rules SES applies when they are created, listed, tagged and deleted.
//!
//! Pure data and rules: every function takes "now" from the caller (the stand-in clock), and
//! nothing here does I/O, so the lifecycle and the wire layer stay thin.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;

use super::errors::SesError;

/// Largest `PageSize` ListEmailIdentities accepts.
pub const MAX_PAGE_SIZE: usize = 1_000;
/// Page size when the caller sends none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Verification / DKIM / MAIL FROM status, spelled as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Success,
    Failed,
    TemporaryFailure,
    NotStarted,
}

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::TemporaryFailure => "TEMPORARY_FAILURE",
            Self::NotStarted => "NOT_STARTED",
        }
    }

    /// Whether an identity in this state may send: SES keeps a verified identity usable while
    /// it re-checks records that went missing (TemporaryFailure).
    pub fn is_verified(self) -> bool {
        matches!(self, Self::Success | Self::TemporaryFailure)
    }
}

/// Domain or email address identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum IdentityType {
    #[serde(rename = "DOMAIN")]
    Domain,
    #[serde(rename = "EMAIL_ADDRESS")]
    EmailAddress,
}

impl IdentityType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domain => "DOMAIN",
            Self::EmailAddress => "EMAIL_ADDRESS",
        }
    }
}

/// Easy DKIM state of a domain identity.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dkim {
    pub tokens: Vec<String>,
    pub signing_hosted_zone: String,
    pub current_key_length: String,
    pub next_key_length: String,
    /// When PutEmailIdentityDkimSigningAttributes last changed `next_key_length` ("This can be
    /// changed at most once per day" — SES v2 API Reference, `DkimSigningAttributes`).
    pub next_key_length_changed: Option<DateTime<Utc>>,
    pub last_key_generation: DateTime<Utc>,
}

/// Custom MAIL FROM domain of an identity.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFrom {
    pub domain: String,
    pub behavior_on_mx_failure: String,
    pub status: Status,
    pub status_since: DateTime<Utc>,
}

/// One SES identity.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Unique per creation, so a lifecycle check started before a delete + re-create does not
    /// land on the new identity.
    pub id: u64,
    pub name: String,
    pub region: String,
    pub identity_type: IdentityType,
    pub created: DateTime<Utc>,
    pub status: Status,
    pub status_since: DateTime<Utc>,
    pub dkim: Option<Dkim>,
    pub mail_from: Option<MailFrom>,
    pub tags: BTreeMap<String, String>,
    pub configuration_set_name: Option<String>,
    pub last_checked: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last DNS check did not verify (`HOST_NOT_FOUND`, `INVALID_VALUE`, …).
    pub error_type: Option<String>,
    /// Real-time instant before which the lifecycle skips this identity's DNS check (backoff).
    #[serde(skip)]
    pub next_check: Option<std::time::Instant>,
    /// Consecutive DNS checks that did not change anything (drives the backoff).
    #[serde(skip)]
    pub idle_checks: u32,
}

/// What CreateEmailIdentity asks for.
#[derive(Debug, Default)]
pub struct CreateRequest {
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub key_length: Option<String>,
    pub configuration_set_name: Option<String>,
}

/// The store's key of an identity: domains are case-insensitive, and an email address is
/// case-sensitive as a whole ("The entire email address is case-sensitive. For example, if you
/// verify sender@example.com, you cannot send emails from sender@EXAMPLE.com unless you verify
/// sender@EXAMPLE.com also. (Domain verification, however, is case-insensitive.)" — SES
/// Developer Guide, "Verifying email addresses").
pub fn identity_key(region: &str, name: &str) -> (String, String) {
    let name = if name.contains('@') {
        name.to_string()
    } else {
        name.to_ascii_lowercase()
    };
    (region.to_string(), name)
}

/// All identities, keyed by [`identity_key`].
#[derive(Default)]
pub struct Store {
    identities: BTreeMap<(String, String), Identity>,
    next_id: u64,
}

impl Store {
    /// Creates an identity, within the region's identity quota. Domains get Easy DKIM with
    /// three fresh tokens and start Pending; email addresses start Pending until their
    /// verification link is confirmed.
    pub fn create(
        &mut self,
        region: &str,
        request: CreateRequest,
        hosted_zone: String,
        now: DateTime<Utc>,
        quota: usize,
    ) -> Result<&Identity, SesError> {
        let identity_type = classify(&request.name)?;
        let key = identity_key(region, &request.name);
        if self.identities.contains_key(&key) {
            return Err(SesError::AlreadyExists(format!(
                "Email identity {} already exist.",
                request.name
            )));
        }
        if self.identities.keys().filter(|(r, _)| r == region).count() >= quota {
            return Err(SesError::LimitExceeded(format!(
                "Maximum number of identities ({quota}) reached in {region}."
            )));
        }
        super::tags::validate(&request.tags)?;
        let tags: BTreeMap<String, String> = request.tags.into_iter().collect();
        let key_length = match request.key_length.as_deref() {
            None => "RSA_2048_BIT".to_string(),
            Some(length) => validate_key_length(length)?,
        };
        let dkim = (identity_type == IdentityType::Domain).then(|| Dkim {
            tokens: (0..3).map(|_| dkim_token()).collect(),
            signing_hosted_zone: hosted_zone,
            current_key_length: key_length.clone(),
            next_key_length: key_length,
            next_key_length_changed: None,
            last_key_generation: now,
        });
        self.next_id += 1;
        let identity = Identity {
            id: self.next_id,
            name: request.name,
            region: region.to_string(),
            identity_type,
            created: now,
            status: Status::Pending,
            status_since: now,
            dkim,
            mail_from: None,
            tags,
            configuration_set_name: request.configuration_set_name,
            last_checked: None,
            last_success: None,
            error_type: None,
            next_check: None,
            idle_checks: 0,
        };
        Ok(self.identities.entry(key).or_insert(identity))
    }

    /// One identity.
    pub fn get(&self, region: &str, name: &str) -> Result<&Identity, SesError> {
        self.identities
            .get(&identity_key(region, name))
            .ok_or_else(|| not_found(name))
    }

    /// One identity, for changing it.
    pub fn get_mut(&mut self, region: &str, name: &str) -> Result<&mut Identity, SesError> {
        self.identities
            .get_mut(&identity_key(region, name))
            .ok_or_else(|| not_found(name))
    }

    /// Deletes an identity.
    pub fn delete(&mut self, region: &str, name: &str) -> Result<Identity, SesError> {
        self.identities
            .remove(&identity_key(region, name))
            .ok_or_else(|| not_found(name))
    }

    /// One page of a region's identities in name order, and the token for the next page.
    /// The token is the key of the last identity returned, so pages stay consistent while
    /// identities are added or removed between calls.
    pub fn list(
        &self,
        region: &str,
        page_size: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<&Identity>, Option<String>), SesError> {
        let page_size = match page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(size) if (0..=MAX_PAGE_SIZE as i64).contains(&size) => {
                if size == 0 {
                    DEFAULT_PAGE_SIZE
                } else {
                    size as usize
                }
            }
            Some(size) => {
                return Err(SesError::BadRequest(format!(
                    "PageSize {size} is out of range: must be between 0 and {MAX_PAGE_SIZE}."
                )));
            }
        };
        let after = match next_token {
            None | Some("") => None,
            Some(token) => Some(decode_token(token)?),
        };
        let mut in_region = self
            .identities
            .iter()
            .filter(|((r, _), _)| r == region)
            .filter(|((_, name), _)| after.as_ref().is_none_or(|after| name > after))
            .map(|(_, identity)| identity);
        let page: Vec<&Identity> = in_region.by_ref().take(page_size).collect();
        let next = match (page.last(), in_region.next()) {
            (Some(last), Some(_)) => Some(encode_token(&identity_key(region, &last.name).1)),
            _ => None,
        };
        Ok((page, next))
    }

    /// Every identity in every region (for the control API).
    pub fn all(&self) -> impl Iterator<Item = &Identity> {
        self.identities.values()
    }

    /// Every identity, for the lifecycle.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Identity> {
        self.identities.values_mut()
    }

    /// Whether an identity may be used to send: its own status, or, for an email address, a
    /// verified domain identity of its domain or a parent domain (as in SES).
    pub fn verified_for_sending(&self, identity: &Identity) -> bool {
        identity.status.is_verified()
            || (identity.identity_type == IdentityType::EmailAddress
                && self.domain_verified(&identity.region, email_domain(&identity.name)))
    }

    /// Whether `address` may be used as a sender in `region`.
    pub fn sender_verified(&self, region: &str, address: &str) -> bool {
        let exact = self
            .get(region, address)
            .is_ok_and(|identity| identity.status.is_verified());
        exact || self.domain_verified(region, email_domain(address))
    }

    fn domain_verified(&self, region: &str, domain: &str) -> bool {
        let mut candidate = domain.to_ascii_lowercase();
        loop {
            if let Ok(identity) = self.get(region, &candidate)
                && identity.identity_type == IdentityType::Domain
                && identity.status.is_verified()
            {
                return true;
            }
            match candidate.split_once('.') {
                Some((_, parent)) if parent.contains('.') => candidate = parent.to_string(),
                _ => return false,
            }
        }
    }

    /// Resets every identity's DNS-check backoff so the next lifecycle tick checks them all.
    pub fn reset_backoff(&mut self) {
        for identity in self.identities.values_mut() {
            identity.next_check = None;
            identity.idle_checks = 0;
        }
    }
}

/// Accepts the key lengths Easy DKIM supports.
pub fn validate_key_length(length: &str) -> Result<String, SesError> {
    match length {
        "RSA_1024_BIT" | "RSA_2048_BIT" => Ok(length.to_string()),
        other => Err(SesError::BadRequest(format!(
            "Invalid NextSigningKeyLength {other:?}: expected RSA_1024_BIT or RSA_2048_BIT."
        ))),
    }
}

/// The domain part of an email address (the whole string if there is no `@`).
pub fn email_domain(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map_or(address, |(_, domain)| domain)
}

/// Decides whether a name is a domain or an email address, rejecting malformed names.
pub fn classify(name: &str) -> Result<IdentityType, SesError> {
    let invalid = || SesError::BadRequest(format!("Invalid email identity: {name:?}"));
    match name.rsplit_once('@') {
        Some((local, domain)) => {
            let local_ok = !local.is_empty()
                && local.len() <= 64
                && !local
                    .chars()
                    .any(|c| c.is_whitespace() || c == '@' || c.is_control());
            if local_ok && valid_domain(domain) {
                Ok(IdentityType::EmailAddress)
            } else {
                Err(invalid())
            }
        }
        None if valid_domain(name) => Ok(IdentityType::Domain),
        None => Err(invalid()),
    }
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn not_found(name: &str) -> SesError {
    SesError::NotFound(format!("Email identity {name} does not exist."))
}

/// A fresh Easy DKIM token: 32 characters of lower-case letters and digits, like SES's.
fn dkim_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<String, SesError> {
    let invalid = || SesError::BadRequest("Invalid NextToken.".into());
    if !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn create(store: &mut Store, name: &str) -> Result<Identity, SesError> {
        let request = CreateRequest {
            name: name.into(),
            ..CreateRequest::default()
        };
        store
            .create(
                "us-east-1",
                request,
                "dkim.amazonses.com".into(),
                Utc::now(),
                10_000,
            )
            .cloned()
    }

    #[test]
    fn domain_gets_three_distinct_tokens_and_duplicates_are_rejected() {
        let mut store = Store::default();
        let identity = create(&mut store, "example.com").expect("create");
        let dkim = identity.dkim.expect("dkim");
        assert_eq!(dkim.tokens.len(), 3);
        assert_eq!(dkim.tokens.iter().collect::<HashSet<_>>().len(), 3);
        assert!(dkim.tokens.iter().all(|t| t.len() == 32));
        assert!(matches!(
            create(&mut store, "EXAMPLE.com"),
            Err(SesError::AlreadyExists(_))
        ));
        assert!(matches!(
            create(&mut store, "not a domain"),
            Err(SesError::BadRequest(_))
        ));
        assert!(
            create(&mut store, "a@example.com")
                .expect("email")
                .dkim
                .is_none()
        );
    }

    #[test]
    fn pages_cover_every_identity_once() {
        let mut store = Store::default();
        for i in 0..25 {
            create(&mut store, &format!("d{i:02}.example.com")).expect("create");
        }
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (page, next) = store
                .list("us-east-1", Some(10), token.as_deref())
                .expect("list");
            seen.extend(page.iter().map(|i| i.name.clone()));
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
        assert!(store.list("us-east-1", Some(1001), None).is_err());
        assert!(store.list("us-east-1", None, Some("zz")).is_err());
    }

    #[test]
    fn email_is_verified_for_sending_through_a_verified_parent_domain() {
        let mut store = Store::default();
        create(&mut store, "example.com").expect("domain");
        let email = create(&mut store, "noreply@en.example.com").expect("email");
        assert!(!store.verified_for_sending(&email));
        store
            .get_mut("us-east-1", "example.com")
            .expect("domain")
            .status = Status::Success;
        assert!(store.verified_for_sending(&email));
        assert!(store.sender_verified("us-east-1", "anyone@example.com"));
        assert!(!store.sender_verified("us-east-1", "anyone@example.org"));
        assert!(!store.sender_verified("eu-west-1", "anyone@example.com"));
    }
}
