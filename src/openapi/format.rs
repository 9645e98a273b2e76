//! The string `format`s kube-openapi checks (email, hostname, ip, uuid, date-time, …);
//! unknown formats are not validated, as there.

use regex::Regex;

pub(super) fn format_ok(format: &str, s: &str) -> bool {
    use std::sync::LazyLock;
    static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$").ok()
    });
    static DURATION: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"^(?:[-+]?\d+(?:\.\d+)?\s*(?:ns|us|µs|ms|s|m|h|d|w|sec|secs|second|seconds|min|mins|minute|minutes|hour|hours|day|days|week|weeks)\s*)+$").ok()
    });
    static UUID: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"^(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
    });
    static DATE_TIME: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$").ok()
    });
    static DATE: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$").ok());
    let re_ok = |re: &LazyLock<Option<Regex>>| re.as_ref().is_none_or(|r| r.is_match(s));
    match format {
        "email" => re_ok(&EMAIL),
        "hostname" => hostname_ok(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()
        }),
        "uuid" => re_ok(&UUID),
        "date-time" | "datetime" => re_ok(&DATE_TIME),
        "date" => re_ok(&DATE),
        "duration" => re_ok(&DURATION),
        "byte" => base64_ok(s),
        "uri" => s.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }),
        _ => true,
    }
}

fn hostname_ok(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn base64_ok(s: &str) -> bool {
    let t: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    t.len().is_multiple_of(4) && {
        let body = t
            .iter()
            .rposition(|b| *b != b'=')
            .map(|i| &t[..=i])
            .unwrap_or(&[]);
        t.len() - body.len() <= 2
            && body
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    }
}
