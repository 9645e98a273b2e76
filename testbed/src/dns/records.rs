//! The record types the test bed's zone serves, and their text form.
//!
//! The control API speaks `{"name","type","value"}` with values in zone-file notation
//! (`CNAME` → a host name, `MX` → `"10 mail.example.com"`, `TXT` → the text). This module
//! turns that notation into hickory's `RData` and back, so the control API, the zone and the
//! SES stand-in's DNS checks all compare the same normalised strings.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};

/// Record types the editable zone accepts.
pub const SUPPORTED_TYPES: [&str; 5] = ["A", "AAAA", "CNAME", "MX", "TXT"];

/// One record as the control API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Owner name, lower case, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `MX` or `TXT`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The value in zone-file notation, normalised (see [`normalize_value`]).
    pub value: String,
    /// Time to live in seconds.
    pub ttl: u32,
}

/// Why a record could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("invalid name {0:?}")]
    InvalidName(String),
    #[error("unsupported record type {0:?} (supported: A, AAAA, CNAME, MX, TXT)")]
    UnsupportedType(String),
    #[error("invalid {record_type} value {value:?}: {reason}")]
    InvalidValue {
        record_type: String,
        value: String,
        reason: String,
    },
}

/// Lower-cases a host name and strips the trailing dot: the form used in keys and listings.
pub fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Parses a host name into a fully qualified hickory `Name`.
pub fn parse_name(name: &str) -> Result<Name, RecordError> {
    let normalized = normalize_name(name);
    if normalized.is_empty() {
        return Err(RecordError::InvalidName(name.to_string()));
    }
    Name::from_ascii(format!("{normalized}."))
        .map_err(|_| RecordError::InvalidName(name.to_string()))
}

/// Parses a record type name (case-insensitive) among the supported ones.
pub fn parse_type(record_type: &str) -> Result<RecordType, RecordError> {
    match record_type.trim().to_ascii_uppercase().as_str() {
        "A" => Ok(RecordType::A),
        "AAAA" => Ok(RecordType::AAAA),
        "CNAME" => Ok(RecordType::CNAME),
        "MX" => Ok(RecordType::MX),
        "TXT" => Ok(RecordType::TXT),
        _ => Err(RecordError::UnsupportedType(record_type.to_string())),
    }
}

/// Parses a value in zone-file notation into record data.
pub fn parse_value(record_type: RecordType, value: &str) -> Result<RData, RecordError> {
    let invalid = |reason: &str| RecordError::InvalidValue {
        record_type: record_type.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let value = value.trim();
    match record_type {
        RecordType::A => value
            .parse::<Ipv4Addr>()
            .map(|ip| RData::A(A(ip)))
            .map_err(|_| invalid("not an IPv4 address")),
        RecordType::AAAA => value
            .parse::<Ipv6Addr>()
            .map(|ip| RData::AAAA(AAAA(ip)))
            .map_err(|_| invalid("not an IPv6 address")),
        RecordType::CNAME => parse_name(value)
            .map(|name| RData::CNAME(CNAME(name)))
            .map_err(|_| invalid("not a host name")),
        RecordType::MX => {
            let (preference, exchange) = value
                .split_once(char::is_whitespace)
                .ok_or_else(|| invalid("expected \"<preference> <host>\""))?;
            let preference = preference
                .parse::<u16>()
                .map_err(|_| invalid("preference is not a number 0..65535"))?;
            let exchange = parse_name(exchange).map_err(|_| invalid("not a host name"))?;
            Ok(RData::MX(MX::new(preference, exchange)))
        }
        RecordType::TXT => {
            let text = unquote(value);
            // A TXT character-string holds at most 255 bytes; longer texts (DKIM keys) are
            // split into several strings, which resolvers concatenate.
            let chunks = chunk_utf8(text, 255);
            Ok(RData::TXT(TXT::new(chunks)))
        }
        _ => Err(RecordError::UnsupportedType(record_type.to_string())),
    }
}

/// Renders record data back into the normalised notation used by the control API.
pub fn render_value(data: &RData) -> Option<String> {
    match data {
        RData::A(a) => Some(a.0.to_string()),
        RData::AAAA(aaaa) => Some(aaaa.0.to_string()),
        RData::CNAME(cname) => Some(normalize_name(&cname.0.to_ascii())),
        RData::MX(mx) => Some(format!(
            "{} {}",
            mx.preference,
            normalize_name(&mx.exchange.to_ascii())
        )),
        RData::TXT(txt) => Some(
            txt.txt_data
                .iter()
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<String>(),
        ),
        _ => None,
    }
}

/// Normalises a value the way the zone stores it (so deletes by value match what was added).
pub fn normalize_value(record_type: RecordType, value: &str) -> Result<String, RecordError> {
    let data = parse_value(record_type, value)?;
    render_value(&data).ok_or_else(|| RecordError::UnsupportedType(record_type.to_string()))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn chunk_utf8(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if current.len() + ch.len_utf8() > max {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    chunks.push(current);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_in_normal_form() {
        let cases = [
            ("A", "192.0.2.1", "192.0.2.1"),
            ("aaaa", "2001:db8::1", "2001:db8::1"),
            ("CNAME", "Tok.DKIM.amazonses.com.", "tok.dkim.amazonses.com"),
            (
                "MX",
                "10  feedback-smtp.us-east-1.amazonses.com",
                "10 feedback-smtp.us-east-1.amazonses.com",
            ),
            (
                "TXT",
                "\"v=spf1 include:amazonses.com ~all\"",
                "v=spf1 include:amazonses.com ~all",
            ),
        ];
        for (ty, input, expected) in cases {
            let ty = parse_type(ty).expect("type");
            assert_eq!(normalize_value(ty, input).expect("value"), expected);
        }
    }

    #[test]
    fn long_txt_is_split_into_255_byte_strings_and_joined_back() {
        let long = "p".repeat(600);
        let data = parse_value(RecordType::TXT, &long).expect("txt");
        let RData::TXT(txt) = &data else {
            panic!("not TXT")
        };
        assert_eq!(txt.txt_data.len(), 3);
        assert!(txt.txt_data.iter().all(|s| s.len() <= 255));
        assert_eq!(render_value(&data).as_deref(), Some(long.as_str()));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            parse_type("SRV"),
            Err(RecordError::UnsupportedType(_))
        ));
        assert!(parse_value(RecordType::A, "not-an-ip").is_err());
        assert!(parse_value(RecordType::MX, "mail.example.com").is_err());
        assert!(parse_name("").is_err());
    }
}
