//! The sender policy (pure): which SenderIdentities of an EmailSettings may exist in SES.
//!
//! * An identity's domain must equal, or be a subdomain of, the email domain of one of the
//!   EmailSettings' `activeUsers` (the local part of an email identity does not matter).
//! * At most one domain identity and three email identities per EmailSettings, and a domain
//!   identity and an email identity may not share a domain.
//! * Conflicts go to the oldest object (`creationTimestamp`, then name), so re-applying the
//!   same manifests always admits the same objects, and deleting a holder promotes the next.
//!
//! Nothing here performs I/O: the controller and `plan` feed it objects and act on verdicts.

use crate::crd::conditions::reasons;
use crate::crd::{EmailSettings, SenderIdentity};
use crate::names::{DomainName, EmailAddress, IdentityName};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// At most this many domain identities per EmailSettings.
pub const MAX_DOMAIN_IDENTITIES: usize = 1;
/// At most this many email identities per EmailSettings.
pub const MAX_EMAIL_IDENTITIES: usize = 3;

/// The policy's answer for one SenderIdentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// May exist in SES.
    Admitted(IdentityName),
    /// Must not reach SES.
    Rejected {
        /// Stable CamelCase reason (see [`reasons`]).
        reason: &'static str,
        /// What rule was broken and which object holds the slot.
        message: String,
    },
}

impl Verdict {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Self::Admitted(_))
    }

    fn rejected(reason: &'static str, message: String) -> Self {
        Self::Rejected { reason, message }
    }
}

/// Identity slots in use by the admitted identities of one EmailSettings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub domains: usize,
    pub emails: usize,
}

impl Usage {
    pub fn of(verdicts: &BTreeMap<String, Verdict>) -> Self {
        verdicts.values().fold(Self::default(), |mut u, v| {
            match v {
                Verdict::Admitted(IdentityName::Domain(_)) => u.domains += 1,
                Verdict::Admitted(IdentityName::Email(_)) => u.emails += 1,
                Verdict::Rejected { .. } => {}
            }
            u
        })
    }
}

/// The admission order: objects that already exist (have a creation time) oldest first, then
/// objects not yet created (as in `plan`), each group by name.
fn admission_key(si: &SenderIdentity) -> (bool, Option<Timestamp>, String) {
    let created = si.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        created.is_none(),
        created,
        si.metadata.name.clone().unwrap_or_default(),
    )
}

fn describe(name: &str, identity: &IdentityName) -> String {
    format!("SenderIdentity {name} ({identity})")
}

/// Decides every SenderIdentity in `identities` that refers to the EmailSettings named
/// `settings_name` (others are ignored) and is not being deleted. `settings` is that
/// EmailSettings, or `None` when it does not exist. The result is keyed by object name.
pub fn decide(
    settings_name: &str,
    settings: Option<&EmailSettings>,
    identities: &[SenderIdentity],
) -> BTreeMap<String, Verdict> {
    let mut candidates: Vec<&SenderIdentity> = identities
        .iter()
        .filter(|si| si.spec.email_settings_ref.name == settings_name)
        .filter(|si| si.metadata.deletion_timestamp.is_none())
        .collect();
    candidates.sort_by_key(|si| admission_key(si));

    let mut verdicts = BTreeMap::new();
    let mut admitted: Vec<(String, IdentityName)> = vec![];
    for si in candidates {
        let name = si.metadata.name.clone().unwrap_or_default();
        let verdict = match settings {
            None => Verdict::rejected(
                reasons::EMAIL_SETTINGS_NOT_FOUND,
                format!("EmailSettings {settings_name} does not exist in this namespace"),
            ),
            Some(es) => judge(settings_name, es, &si.spec.identity, &admitted),
        };
        if let Verdict::Admitted(id) = &verdict {
            admitted.push((name.clone(), id.clone()));
        }
        verdicts.insert(name, verdict);
    }
    verdicts
}

/// One identity against the settings and the identities admitted before it.
fn judge(
    settings_name: &str,
    settings: &EmailSettings,
    identity: &str,
    admitted: &[(String, IdentityName)],
) -> Verdict {
    if settings.spec.advanced_smtp.is_none() {
        return Verdict::rejected(
            reasons::SES_NOT_CONFIGURED,
            format!(
                "EmailSettings {settings_name} has no advancedSmtp settings, so there is no SES \
                 region to verify identities in; add spec.advancedSmtp.region"
            ),
        );
    }
    let id = match IdentityName::parse(identity) {
        Ok(id) => id,
        Err(e) => return Verdict::rejected(reasons::INVALID, e.to_string()),
    };

    let user_domains = active_user_domains(settings);
    if !user_domains.iter().any(|d| id.domain().is_within(d)) {
        let listed = if user_domains.is_empty() {
            "it lists no activeUsers".to_string()
        } else {
            let names: Vec<&str> = user_domains.iter().map(DomainName::as_str).collect();
            format!("active user domains: {}", names.join(", "))
        };
        return Verdict::rejected(
            reasons::NOT_AN_ACTIVE_USER_DOMAIN,
            format!(
                "{} must be the email domain of an active user of EmailSettings {settings_name} \
                 or a subdomain of one ({listed}); add and activate such a user first",
                id.domain()
            ),
        );
    }

    if let Some((holder, held)) = admitted.iter().find(|(_, other)| same_identity(other, &id)) {
        return Verdict::rejected(
            reasons::DUPLICATE_IDENTITY,
            format!(
                "{id} is already requested for EmailSettings {settings_name} by {}",
                describe(holder, held)
            ),
        );
    }

    if let Some((holder, held)) = admitted
        .iter()
        .find(|(_, other)| other.is_domain() != id.is_domain() && other.domain() == id.domain())
    {
        return Verdict::rejected(
            reasons::DOMAIN_CONFLICT,
            format!(
                "a domain identity and an email identity may not have the same domain: {} is \
                 already used by {}",
                id.domain(),
                describe(holder, held)
            ),
        );
    }

    let (limit, kind) = if id.is_domain() {
        (MAX_DOMAIN_IDENTITIES, "domain")
    } else {
        (MAX_EMAIL_IDENTITIES, "email")
    };
    let holders: Vec<String> = admitted
        .iter()
        .filter(|(_, other)| other.is_domain() == id.is_domain())
        .map(|(n, other)| describe(n, other))
        .collect();
    if holders.len() >= limit {
        let plural = if limit == 1 { "identity" } else { "identities" };
        return Verdict::rejected(
            reasons::LIMIT_EXCEEDED,
            format!(
                "EmailSettings {settings_name} may have at most {limit} {kind} {plural}; held by {}",
                holders.join(", ")
            ),
        );
    }
    Verdict::Admitted(id)
}

fn same_identity(a: &IdentityName, b: &IdentityName) -> bool {
    match (a, b) {
        (IdentityName::Domain(x), IdentityName::Domain(y)) => x == y,
        (IdentityName::Email(x), IdentityName::Email(y)) => x.same_address(y),
        _ => false,
    }
}

/// The distinct email domains of the settings' active users (unparseable entries are the
/// schema's business and are skipped here).
pub fn active_user_domains(settings: &EmailSettings) -> Vec<DomainName> {
    let mut domains: Vec<DomainName> = settings
        .spec
        .active_users
        .iter()
        .filter_map(|u| EmailAddress::parse(u).ok())
        .map(|e| e.domain().clone())
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

/// Whether a verified `identity` lets SES send mail from `from`: an email identity covers
/// exactly its address; a domain identity covers its domain and every subdomain.
pub fn covers(identity: &IdentityName, from: &EmailAddress) -> bool {
    match identity {
        IdentityName::Email(e) => e.same_address(from),
        IdentityName::Domain(d) => from.domain().is_within(d),
    }
}

/// Whether mail from `from` carries a DKIM signature of the sender's own domain, which DMARC
/// alignment needs: only a verified *domain* identity covering the from domain provides it.
pub fn dmarc_aligned(identity: &IdentityName, from: &EmailAddress) -> bool {
    identity.is_domain() && covers(identity, from)
}

/// EmailSettings in one namespace that would publish to the same Secret: the oldest keeps it,
/// the others are rejected with `OutputSecretConflict`. Returns only the rejected ones.
pub fn output_secret_conflicts(settings: &[EmailSettings]) -> BTreeMap<String, Verdict> {
    let mut ordered: Vec<&EmailSettings> = settings.iter().collect();
    ordered.sort_by_key(|es| {
        let created = es.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (
            created.is_none(),
            created,
            es.metadata.name.clone().unwrap_or_default(),
        )
    });
    let mut holders: BTreeMap<String, String> = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    for es in ordered {
        let name = es.metadata.name.clone().unwrap_or_default();
        let secret = es.output_secret_name();
        match holders.get(&secret) {
            Some(holder) => {
                rejected.insert(
                    name,
                    Verdict::rejected(
                        reasons::OUTPUT_SECRET_CONFLICT,
                        format!("Secret {secret} is already published by EmailSettings {holder}; set a different spec.outputSecretName"),
                    ),
                );
            }
            None => {
                holders.insert(secret, name);
            }
        }
    }
    rejected
}

pub mod tenancy;

#[cfg(test)]
mod tests;
