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

/// A regular expression for an IPv6 address in hexadecimal notation (RFC 4291 §2.2 forms 1
/// and 2: eight groups, or `::` standing for one or more groups of zeros; no embedded IPv4
/// dotted quad, no zone). The CRDs use it instead of CEL's `isIP()`, which Kubernetes compiles
/// into a new CRD's rules only from 1.31 (the chart supports 1.29).
pub fn ipv6_pattern() -> String {
    const H: &str = "[0-9A-Fa-f]{1,4}";
    let forms = [
        format!("({H}:){{7}}{H}"),
        format!("({H}:){{1,7}}:"),
        format!("({H}:){{1,6}}:{H}"),
        format!("({H}:){{1,5}}(:{H}){{1,2}}"),
        format!("({H}:){{1,4}}(:{H}){{1,3}}"),
        format!("({H}:){{1,3}}(:{H}){{1,4}}"),
        format!("({H}:){{1,2}}(:{H}){{1,5}}"),
        format!("{H}:(:{H}){{1,6}}"),
        format!(":((:{H}){{1,7}}|:)"),
    ];
    format!("^({})$", forms.join("|"))
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

/// An email address, kept as written: SES treats the entire address as case-sensitive ("if
/// you verify sender@example.com, you cannot send emails from sender@EXAMPLE.com unless you
/// verify sender@EXAMPLE.com also" — SES Developer Guide, "Verifying email addresses"), so two
/// addresses are the same identity only when written the same. Its domain is also available
/// lower-cased, for the rules about domains (which SES compares case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailAddress {
    written: String,
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
            written: s.to_string(),
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

    /// Whether SES takes both for one address: written exactly the same (see the type).
    pub fn same_address(&self, other: &EmailAddress) -> bool {
        self.written == other.written
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
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
        // As written: SES tells addresses apart by case, so this is the name of its identity.
        assert_eq!(e.to_string(), "No.Reply+tag@EN.YourCompany.com");
        assert!(!e.same_address(&EmailAddress::parse("no.reply+tag@en.yourcompany.com").unwrap()));
        assert!(e.same_address(&EmailAddress::parse("No.Reply+tag@EN.YourCompany.com").unwrap()));
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
    fn ipv6_addresses_match_in_every_hex_form_and_nothing_else_does() {
        let re = regex::Regex::new(&ipv6_pattern()).unwrap();
        for ok in [
            "2001:db8:0:0:0:0:0:1",
            "2001:db8::1",
            "::1",
            "::",
            "fe80::",
            "FE80::1:2",
            "1:2:3:4:5:6:7::",
        ] {
            assert!(re.is_match(ok), "{ok}");
            assert!(ok.parse::<std::net::Ipv6Addr>().is_ok(), "{ok}");
        }
        for bad in [
            "2001:db8::1::2",
            "12345::1",
            "1:2:3:4:5:6:7:8:9",
            ":1",
            "g::1",
            "smtp.example.com",
            "10.0.0.1",
            "[::1]",
            "::1%eth0",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn identity_type_is_derived_from_at_sign() {
        assert!(IdentityName::parse("yourcompany.com").unwrap().is_domain());
        let email = IdentityName::parse("noreply@en.yourcompany.com").unwrap();
        assert!(!email.is_domain());
        assert_eq!(email.domain().as_str(), "en.yourcompany.com");
    }
}
