//! Parsed names: [`EmailAddress`] and [`DomainName`], checked once and then trusted.
//!
//! The same patterns are used by the CRDs' CEL rules (so the API server rejects what these
//! types would reject) and by the pure policy, which works on the parsed forms. Only ASCII is
//! accepted: internationalised domains must be written in their punycode (`xn--`) form, which
//! also rules out Unicode look-alikes such as a Cyrillic `а` in `yourcompаny.com`.

use std::fmt;

/// One DNS label: letters, digits and inner hyphens, 1–63 characters.
const LABEL: &str = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
/// Characters of an unquoted local part (RFC 5322 `atext`, minus the quote characters that
/// cannot appear inside a CEL string literal).
const ATEXT: &str = "[A-Za-z0-9!#$%&*+/=?^_{|}~-]";

/// A regular expression (RE2 and Rust `regex` compatible) for a domain of two or more labels.
pub fn domain_pattern() -> String {
    format!("^{LABEL}([.]{LABEL})+$")
}

/// A regular expression for a host name: one or more labels (a single label such as an
/// in-cluster Service name is allowed).
pub fn hostname_pattern() -> String {
    format!("^{LABEL}([.]{LABEL})*$")
}

/// A regular expression for an email address `local@domain` with a dot-atom local part.
pub fn email_pattern() -> String {
    format!("^{ATEXT}+([.]{ATEXT}+)*@{LABEL}([.]{LABEL})+$")
}

/// Why a string is not a name of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not a valid domain name")]
    Domain(String),
    #[error("{0:?} is not a valid email address")]
    Email(String),
}

/// The patterns, compiled once on first use (names are parsed on every reconcile).
type Compiled = std::sync::LazyLock<Option<regex::Regex>>;
static DOMAIN: Compiled = Compiled::new(|| regex::Regex::new(&domain_pattern()).ok());
static EMAIL: Compiled = Compiled::new(|| regex::Regex::new(&email_pattern()).ok());

fn matches(re: &Compiled, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// A lower-cased DNS domain name (no trailing dot), at most 253 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        if trimmed.len() > 253 || !matches(&DOMAIN, trimmed) {
            return Err(NameError::Domain(s.to_string()));
        }
        Ok(Self(trimmed.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` equals `parent` or is a subdomain of it (`en.yourcompany.com` is
    /// within `yourcompany.com`; `notyourcompany.com` is not).
    pub fn is_within(&self, parent: &DomainName) -> bool {
        self.0 == parent.0
            || self
                .0
                .strip_suffix(parent.0.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address; the domain is lower-cased, the local part kept as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailAddress {
    local: String,
    domain: DomainName,
}

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let invalid = || NameError::Email(s.to_string());
        if s.len() > 254 || !matches(&EMAIL, s) {
            return Err(invalid());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(invalid)?;
        if local.len() > 64 {
            return Err(invalid());
        }
        let domain = DomainName::parse(domain).map_err(|_| invalid())?;
        Ok(Self {
            local: local.to_string(),
            domain,
        })
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &DomainName {
        &self.domain
    }

    /// Addresses compare case-insensitively in practice (SES treats identities so).
    pub fn same_address(&self, other: &EmailAddress) -> bool {
        self.domain == other.domain && self.local.eq_ignore_ascii_case(&other.local)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// What a SenderIdentity names: a whole domain or one address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityName {
    Domain(DomainName),
    Email(EmailAddress),
}

impl IdentityName {
    /// An identity containing `@` is an email address, anything else a domain.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains('@') {
            EmailAddress::parse(s).map(Self::Email)
        } else {
            DomainName::parse(s).map(Self::Domain)
        }
    }

    /// The domain the identity is in (the identity itself for a domain identity).
    pub fn domain(&self) -> &DomainName {
        match self {
            Self::Domain(d) => d,
            Self::Email(e) => e.domain(),
        }
    }

    pub fn is_domain(&self) -> bool {
        matches!(self, Self::Domain(_))
    }
}

impl fmt::Display for IdentityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => d.fmt(f),
            Self::Email(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_parse_lowercased_and_reject_garbage() {
        assert_eq!(
            DomainName::parse("YourCompany.COM.").unwrap().as_str(),
            "yourcompany.com"
        );
        for bad in [
            "localhost",
            "-bad.com",
            "bad-.com",
            "a..b.com",
            "http://x.com",
            "x.com/path",
            "yourcompаny.com", // Cyrillic а
            "",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(DomainName::parse(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(DomainName::parse("xn--80ak6aa92e.com").is_ok());
    }

    #[test]
    fn subdomain_test_is_label_aligned() {
        let parent = DomainName::parse("yourcompany.com").unwrap();
        assert!(
            DomainName::parse("yourcompany.com")
                .unwrap()
                .is_within(&parent)
        );
        assert!(
            DomainName::parse("en.yourcompany.com")
                .unwrap()
                .is_within(&parent)
        );
        assert!(
            DomainName::parse("a.b.yourcompany.com")
                .unwrap()
                .is_within(&parent)
        );
        assert!(
            !DomainName::parse("notyourcompany.com")
                .unwrap()
                .is_within(&parent)
        );
        assert!(
            !DomainName::parse("yourcompany.com.evil.io")
                .unwrap()
                .is_within(&parent)
        );
    }

    #[test]
    fn emails_parse_and_reject_garbage() {
        let e = EmailAddress::parse("No.Reply+tag@EN.YourCompany.com").unwrap();
        assert_eq!(e.local_part(), "No.Reply+tag");
        assert_eq!(e.domain().as_str(), "en.yourcompany.com");
        assert_eq!(e.to_string(), "No.Reply+tag@en.yourcompany.com");
        for bad in [
            "plain",
            "@yourcompany.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            ".a@c.com",
            "a.@c.com",
            "\"quoted\"@c.com",
            "émile@c.com",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(EmailAddress::parse(&format!("{}@c.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn identity_type_is_derived_from_at_sign() {
        assert!(IdentityName::parse("yourcompany.com").unwrap().is_domain());
        let email = IdentityName::parse("noreply@en.yourcompany.com").unwrap();
        assert!(!email.is_domain());
        assert_eq!(email.domain().as_str(), "en.yourcompany.com");
    }
}
