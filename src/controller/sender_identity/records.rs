//! The records a SenderIdentity asks to be published, each checked with the operator's own DNS
//! lookup; the SPF advice is merged into the domain's current SPF record when it can be read.

use crate::crd::SenderIdentity;
use crate::crd::sender_identity::{DnsRecord, SesLocation};
use crate::dns::{self, lookup::DnsLookup, lookup::is_published};
use crate::names::{DomainName, IdentityName};
use crate::ses::IdentityDetails;

/// The records to publish, each checked in DNS.
pub(super) async fn records(
    id: &IdentityName,
    si: &SenderIdentity,
    details: &IdentityDetails,
    location: &SesLocation,
    lookup: &impl DnsLookup,
) -> Vec<DnsRecord> {
    let domain = id.domain();
    let mut records = vec![];
    if let IdentityName::Domain(d) = id
        && let Some(zone) = details.signing_hosted_zone.as_deref()
    {
        records.extend(dns::dkim_records(d, &details.dkim_tokens, zone));
    }
    // A placeholder: `check` fills in the advice from the domain's current SPF record.
    records.push(dns::spf_record(domain, None));
    if let Some(mf) = si
        .spec
        .mail_from_domain
        .as_deref()
        .filter(|_| id.is_domain())
        .and_then(|m| DomainName::parse(m).ok())
    {
        records.extend(dns::mail_from_records(&mf, &location.region));
    }
    check(domain, records, lookup).await
}

/// Looks each record up: `published` follows DNS, and the SPF advice is merged into the
/// domain's current SPF record. Needs no SES call, so pending identities are re-checked here
/// between the bulk listings of their SES status.
pub(super) async fn check(
    domain: &DomainName,
    mut records: Vec<DnsRecord>,
    lookup: &impl DnsLookup,
) -> Vec<DnsRecord> {
    let current = lookup.lookup(domain.as_str(), "TXT").await;
    for r in &mut records {
        let answer = if r.purpose == dns::purpose::SPF {
            *r = dns::spf_record(domain, dns::lookup::current_spf(&current));
            current.clone()
        } else {
            lookup.lookup(&r.name, &r.type_).await
        };
        r.published = is_published(r, &answer);
    }
    records
}
