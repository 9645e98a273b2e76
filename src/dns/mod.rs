//! DNS record building (pure): the records a SenderIdentity needs published.
//!
//! * Easy DKIM: three `CNAME <token>._domainkey.<domain> -> <token>.<SigningHostedZone>`, with
//!   the zone SES reports for the identity's region (never a hard-coded `dkim.amazonses.com`).
//! * SPF: `v=spf1 mx include:amazonses.com ~all` as advice, or the domain's existing SPF record
//!   with `include:amazonses.com` merged in exactly once, keeping its mechanisms and qualifier.
//! * Custom MAIL FROM: an MX to the region's feedback endpoint and an SPF TXT on that domain.

pub mod lookup;

use crate::crd::sender_identity::DnsRecord;
use crate::names::DomainName;

/// Record purposes, as shown in `status.dnsRecords[].purpose`.
pub mod purpose {
    pub const DKIM: &str = "DKIM";
    pub const SPF: &str = "SPF";
    pub const MAIL_FROM_MX: &str = "MailFromMX";
    pub const MAIL_FROM_SPF: &str = "MailFromSPF";
}

/// The SPF mechanism that authorises SES to send for a domain.
pub const SES_SPF_INCLUDE: &str = "include:amazonses.com";
/// The SPF record advised for a domain that has none.
pub const DEFAULT_SPF: &str = "v=spf1 mx include:amazonses.com ~all";

fn record(name: String, type_: &str, value: String, purpose: &str) -> DnsRecord {
    DnsRecord {
        name,
        type_: type_.to_string(),
        value,
        purpose: purpose.to_string(),
        published: None,
    }
}

/// The Easy DKIM CNAMEs for `domain`, one per token SES returned.
pub fn dkim_records(
    domain: &DomainName,
    tokens: &[String],
    signing_hosted_zone: &str,
) -> Vec<DnsRecord> {
    let zone = signing_hosted_zone.trim_end_matches('.');
    tokens
        .iter()
        .map(|t| {
            record(
                format!("{t}._domainkey.{domain}"),
                "CNAME",
                format!("{t}.{zone}"),
                purpose::DKIM,
            )
        })
        .collect()
}

/// The SPF TXT record advised for `domain`: the existing SPF record (if any) with SES merged in.
pub fn spf_record(domain: &DomainName, existing: Option<&str>) -> DnsRecord {
    record(
        domain.to_string(),
        "TXT",
        spf_advice(existing),
        purpose::SPF,
    )
}

/// The SPF value to publish: [`DEFAULT_SPF`] when there is no SPF record, otherwise the
/// existing record with `include:amazonses.com` inserted before its `all` mechanism (or its
/// modifiers, or at the end), unless SES is already included.
pub fn spf_advice(existing: Option<&str>) -> String {
    let Some(existing) = existing.map(str::trim).filter(|s| is_spf(s)) else {
        return DEFAULT_SPF.to_string();
    };
    let terms: Vec<&str> = existing.split_whitespace().collect();
    let already = terms.iter().any(|t| {
        t.trim_start_matches(['+', '-', '~', '?'])
            .eq_ignore_ascii_case(SES_SPF_INCLUDE)
    });
    if already {
        return terms.join(" ");
    }
    // Mechanisms after `all` are never evaluated, and modifiers conventionally come last,
    // so the include goes before the first of either.
    let at = terms
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, t)| {
            let bare = t
                .trim_start_matches(['+', '-', '~', '?'])
                .to_ascii_lowercase();
            bare == "all" || t.contains('=')
        })
        .map_or(terms.len(), |(i, _)| i);
    let mut merged = terms;
    merged.insert(at, SES_SPF_INCLUDE);
    merged.join(" ")
}

/// Whether a TXT value is an SPF record.
pub fn is_spf(txt: &str) -> bool {
    let mut first = txt
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    first.make_ascii_lowercase();
    first == "v=spf1"
}

/// The records a custom MAIL FROM domain needs in `region`.
pub fn mail_from_records(mail_from: &DomainName, region: &str) -> Vec<DnsRecord> {
    vec![
        record(
            mail_from.to_string(),
            "MX",
            format!("10 feedback-smtp.{region}.amazonses.com"),
            purpose::MAIL_FROM_MX,
        ),
        record(
            mail_from.to_string(),
            "TXT",
            format!("v=spf1 {SES_SPF_INCLUDE} ~all"),
            purpose::MAIL_FROM_SPF,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    #[test]
    fn dkim_cnames_use_the_reported_signing_zone() {
        let tokens = vec![
            "ctoy2wj55u".to_string(),
            "abc".to_string(),
            "xyz".to_string(),
        ];
        let recs = dkim_records(
            &domain("yourcompany.com"),
            &tokens,
            "dkim.eu-south-1.amazonses.com.",
        );
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].name, "ctoy2wj55u._domainkey.yourcompany.com");
        assert_eq!(recs[0].type_, "CNAME");
        assert_eq!(recs[0].value, "ctoy2wj55u.dkim.eu-south-1.amazonses.com");
        assert_eq!(recs[0].purpose, "DKIM");
        assert!(recs.iter().all(|r| r.published.is_none()));
    }

    #[test]
    fn spf_without_a_record_is_the_default_advice() {
        assert_eq!(spf_advice(None), "v=spf1 mx include:amazonses.com ~all");
        // A TXT record that is not SPF (e.g. a site verification) is not merged into.
        assert_eq!(
            spf_advice(Some("google-site-verification=abc")),
            DEFAULT_SPF
        );
    }

    #[test]
    fn spf_merge_keeps_mechanisms_and_qualifier() {
        assert_eq!(
            spf_advice(Some("v=spf1 ip4:192.0.2.0/24 include:_spf.google.com -all")),
            "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com include:amazonses.com -all"
        );
        assert_eq!(
            spf_advice(Some("v=spf1 mx ?all")),
            "v=spf1 mx include:amazonses.com ?all"
        );
        assert_eq!(
            spf_advice(Some("V=SPF1 a  +all")),
            "V=SPF1 a include:amazonses.com +all"
        );
        assert_eq!(
            spf_advice(Some("v=spf1 a redirect=_spf.example.com")),
            "v=spf1 a include:amazonses.com redirect=_spf.example.com"
        );
        assert_eq!(
            spf_advice(Some("v=spf1 a")),
            "v=spf1 a include:amazonses.com"
        );
    }

    #[test]
    fn spf_merge_happens_exactly_once() {
        let once = spf_advice(Some("v=spf1 mx ~all"));
        assert_eq!(spf_advice(Some(&once)), once);
        assert_eq!(
            spf_advice(Some("v=spf1 +include:AmazonSES.com ~all")),
            "v=spf1 +include:AmazonSES.com ~all"
        );
        assert_eq!(once.matches(SES_SPF_INCLUDE).count(), 1);
    }

    #[test]
    fn mail_from_records_point_at_the_region() {
        let recs = mail_from_records(&domain("bounce.yourcompany.com"), "eu-west-1");
        assert_eq!(recs[0].type_, "MX");
        assert_eq!(recs[0].value, "10 feedback-smtp.eu-west-1.amazonses.com");
        assert_eq!(recs[1].type_, "TXT");
        assert_eq!(recs[1].value, "v=spf1 include:amazonses.com ~all");
        assert!(recs.iter().all(|r| r.name == "bounce.yourcompany.com"));
        let spf = spf_record(&domain("yourcompany.com"), Some("v=spf1 mx -all"));
        assert_eq!(
            (spf.name.as_str(), spf.value.as_str()),
            ("yourcompany.com", "v=spf1 mx include:amazonses.com -all")
        );
    }
}
