//! `--connect-to HOST:PORT:ADDR:PORT`, as curl's option of the same name: a connection meant for
//! `HOST:PORT` goes to `ADDR:PORT` instead, while everything else about it stays the same — the
//! TLS certificate is still verified against `HOST`, an OAuth 2.0 request still names `HOST`,
//! and `status` and the published Secret still say `HOST:PORT`. For an egress proxy or
//! port-forward in front of a relay, a relay reached through another name inside the network,
//! and test beds whose servers cannot bind the well-known ports.
//!
//! Each of the four parts may be empty: an empty `HOST` or first `PORT` matches any host or
//! port; an empty `ADDR` keeps resolving `HOST` (through `--dns-server` when given); an empty
//! second `PORT` keeps the port. IPv6 addresses are written in brackets (`[::1]`). The first
//! rule that matches applies. The address connected to is still checked against the egress
//! rules ([`super::Egress`]): a route does not open a way around them.

use std::fmt;

/// One `--connect-to` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// The host it applies to, lower case; None: every host.
    pub host: Option<String>,
    /// The port it applies to; None: every port.
    pub port: Option<u16>,
    /// Where to connect instead (a host name or an IP address); None: `host` itself.
    pub to_host: Option<String>,
    /// The port to connect to instead; None: the same port.
    pub to_port: Option<u16>,
}

impl ConnectTo {
    /// `HOST:PORT:ADDR:PORT`, each part possibly empty, IPv6 addresses in brackets.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts = split(s)?;
        let [host, port, to_host, to_port] = parts.as_slice() else {
            return Err(format!(
                "{s:?} is not HOST:PORT:ADDR:PORT (four parts, each possibly empty)"
            ));
        };
        let host_part = |h: &str| -> Result<Option<String>, String> {
            if h.is_empty() {
                return Ok(None);
            }
            if h.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
                return Err(format!("{s:?}: {h:?} is not a host name or an address"));
            }
            Ok(Some(h.to_ascii_lowercase()))
        };
        let port_part = |p: &str| -> Result<Option<u16>, String> {
            if p.is_empty() {
                return Ok(None);
            }
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .map(Some)
                .ok_or_else(|| format!("{s:?}: {p:?} is not a TCP port"))
        };
        Ok(Self {
            host: host_part(host)?,
            port: port_part(port)?,
            to_host: host_part(to_host)?,
            to_port: port_part(to_port)?,
        })
    }

    /// Whether a connection to `host:port` takes this route.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host.trim_end_matches('.')))
            && self.port.is_none_or(|p| p == port)
    }
}

impl fmt::Display for ConnectTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &Option<String>| match h {
            Some(h) if h.contains(':') => format!("[{h}]"),
            Some(h) => h.clone(),
            None => String::new(),
        };
        let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
        write!(
            f,
            "{}:{}:{}:{}",
            host(&self.host),
            port(self.port),
            host(&self.to_host),
            port(self.to_port)
        )
    }
}

/// Where a connection to `host:port` goes under `rules`: the first matching rule's address and
/// port, else `host:port` itself.
pub fn route<'a>(rules: &'a [ConnectTo], host: &'a str, port: u16) -> (&'a str, u16) {
    match rules.iter().find(|r| r.matches(host, port)) {
        Some(rule) => (
            rule.to_host.as_deref().unwrap_or(host),
            rule.to_port.unwrap_or(port),
        ),
        None => (host, port),
    }
}

/// Splits on the colons outside brackets; a bracketed part loses its brackets.
fn split(s: &str) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => parts.push(String::new()),
            '[' => {
                let current = parts.last_mut().ok_or("empty")?;
                if !current.is_empty() {
                    return Err(format!("{s:?}: '[' in the middle of a part"));
                }
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                if inner.is_empty() || s.matches('[').count() != s.matches(']').count() {
                    return Err(format!("{s:?}: unbalanced or empty brackets"));
                }
                current.push_str(&inner);
                current.push(']');
            }
            ']' => return Err(format!("{s:?}: ']' without '['")),
            c => {
                let current = parts.last_mut().ok_or("empty")?;
                if current.ends_with(']') {
                    return Err(format!("{s:?}: text after ']' in a part"));
                }
                current.push(c);
            }
        }
    }
    Ok(parts
        .into_iter()
        .map(|p| p.trim_end_matches(']').to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> ConnectTo {
        ConnectTo::parse(s).expect(s)
    }

    #[test]
    fn the_four_parts_parse_and_empty_ones_mean_any_or_same() {
        assert_eq!(
            rule("smtp.yourcompany.com:587:127.0.0.1:2587"),
            ConnectTo {
                host: Some("smtp.yourcompany.com".into()),
                port: Some(587),
                to_host: Some("127.0.0.1".into()),
                to_port: Some(2587),
            }
        );
        assert_eq!(
            rule("Smtp.YourCompany.com:587::2587"),
            ConnectTo {
                host: Some("smtp.yourcompany.com".into()),
                port: Some(587),
                to_host: None,
                to_port: Some(2587),
            },
            "an empty ADDR keeps resolving HOST; names are lower-cased"
        );
        assert_eq!(
            rule("::proxy.internal:3128"),
            ConnectTo {
                host: None,
                port: None,
                to_host: Some("proxy.internal".into()),
                to_port: Some(3128),
            }
        );
        assert_eq!(
            rule(":::"),
            ConnectTo {
                host: None,
                port: None,
                to_host: None,
                to_port: None,
            }
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed_and_shown_the_same_way() {
        let r = rule("[2001:db8::1]:465:[::1]:10465");
        assert_eq!(r.host.as_deref(), Some("2001:db8::1"));
        assert_eq!(r.to_host.as_deref(), Some("::1"));
        assert_eq!(r.to_port, Some(10465));
        assert_eq!(r.to_string(), "[2001:db8::1]:465:[::1]:10465");
        assert_eq!(
            rule("smtp.yourcompany.com:587::2587").to_string(),
            "smtp.yourcompany.com:587::2587"
        );
        assert!(r.matches("[2001:db8::1]", 465));
        assert!(r.matches("2001:db8::1", 465));
    }

    #[test]
    fn malformed_rules_say_why() {
        for (bad, why) in [
            ("smtp.yourcompany.com:587", "four parts"),
            ("a:587:b:2587:extra", "four parts"),
            ("a:0:b:1", "not a TCP port"),
            ("a:587:b:65536", "not a TCP port"),
            ("a:smtp:b:1", "not a TCP port"),
            ("[::1:587::1", "brackets"),
            ("::1]:587::1", "without '['"),
            ("[]:587::1", "brackets"),
            ("[::1]x:587::1", "after ']'"),
            ("a b:587::1", "not a host name"),
            ("user@a:587::1", "not a host name"),
        ] {
            let error = ConnectTo::parse(bad).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn the_first_matching_rule_routes_and_others_pass_through() {
        let rules = vec![
            rule("smtp.yourcompany.com:587::2587"),
            rule("smtp.yourcompany.com::127.0.0.2:"),
            rule(":443:127.0.0.1:8443"),
        ];
        assert_eq!(
            route(&rules, "smtp.yourcompany.com", 587),
            ("smtp.yourcompany.com", 2587)
        );
        assert_eq!(
            route(&rules, "SMTP.yourcompany.com.", 587),
            ("SMTP.yourcompany.com.", 2587),
            "case and a trailing dot do not matter; an empty ADDR keeps the host as written"
        );
        assert_eq!(
            route(&rules, "smtp.yourcompany.com", 465),
            ("127.0.0.2", 465),
            "an empty port matches any, an empty second port keeps it"
        );
        assert_eq!(
            route(&rules, "login.microsoftonline.com", 443),
            ("127.0.0.1", 8443)
        );
        assert_eq!(
            route(&rules, "relay.example.org", 25),
            ("relay.example.org", 25)
        );
        assert_eq!(route(&[], "a.example", 25), ("a.example", 25));
    }
}
