//! DNS lookups the operator makes itself: whether each record it asks for is published, and
//! the domain's current SPF record (so the advice merges with it). Behind [`DnsLookup`] so
//! reconcile logic is testable; [`HickoryLookup`] asks the system resolvers, or one server
//! (`--dns-server`). A failed lookup says nothing: the record is then reported as unknown,
//! never as missing, and never causes an SES change.

use crate::crd::sender_identity::DnsRecord;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The values served (CNAME/MX targets without the trailing dot; TXT strings joined).
    Found(Vec<String>),
    /// NXDOMAIN or no record of the type.
    Missing,
    /// The question could not be answered (timeout, refused).
    Unknown,
}

/// DNS questions.
pub trait DnsLookup: Send + Sync {
    fn lookup(&self, name: &str, record_type: &str) -> impl Future<Output = Answer> + Send;
}

/// [`DnsLookup`] with hickory-resolver, uncached so a removed record is seen at once.
#[derive(Clone)]
pub struct HickoryLookup {
    resolver: TokioResolver,
}

impl std::fmt::Debug for HickoryLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryLookup")
    }
}

impl HickoryLookup {
    /// Asks `server` only, or the system's resolvers when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.attempts = 2;
        opts.timeout = Duration::from_secs(3);
        let builder = match server {
            Some(server) => {
                let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                for c in &mut ns.connections {
                    c.port = server.port();
                }
                Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => Resolver::builder_tokio().map_err(|e| e.to_string())?,
        };
        let resolver = builder
            .with_options(opts)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { resolver })
    }
}

impl DnsLookup for HickoryLookup {
    async fn lookup(&self, name: &str, record_type: &str) -> Answer {
        let rt = match record_type {
            "CNAME" => RecordType::CNAME,
            "TXT" => RecordType::TXT,
            "MX" => RecordType::MX,
            "A" => RecordType::A,
            "AAAA" => RecordType::AAAA,
            _ => return Answer::Unknown,
        };
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.lookup(fqdn.as_str(), rt).await {
            Ok(answer) => {
                let values: Vec<String> = answer
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rt)
                    .filter_map(|r| render(&r.data))
                    .collect();
                if values.is_empty() {
                    Answer::Missing
                } else {
                    Answer::Found(values)
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Answer::Missing,
            Err(_) => Answer::Unknown,
        }
    }
}

fn render(data: &RData) -> Option<String> {
    let name = |n: String| n.trim_end_matches('.').to_ascii_lowercase();
    match data {
        RData::CNAME(c) => Some(name(c.0.to_ascii())),
        RData::MX(mx) => Some(format!(
            "{} {}",
            mx.preference,
            name(mx.exchange.to_ascii())
        )),
        RData::A(a) => Some(a.0.to_string()),
        RData::AAAA(a) => Some(a.0.to_string()),
        RData::TXT(txt) => Some(
            txt.txt_data
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// Whether `record` is published as asked: a CNAME or MX with exactly its value; an SPF TXT
/// (ours or the merged advice) that includes amazonses.com.
pub fn is_published(record: &DnsRecord, answer: &Answer) -> Option<bool> {
    let values = match answer {
        Answer::Unknown => return None,
        Answer::Missing => return Some(false),
        Answer::Found(v) => v,
    };
    let want = record.value.trim_end_matches('.').to_ascii_lowercase();
    Some(match record.type_.as_str() {
        "TXT" => values.iter().any(|v| {
            super::is_spf(v)
                && v.split_whitespace().any(|t| {
                    t.trim_start_matches(['+', '~', '?', '-'])
                        .eq_ignore_ascii_case(super::SES_SPF_INCLUDE)
                })
        }),
        _ => values.iter().any(|v| v.to_ascii_lowercase() == want),
    })
}

/// The SPF record among a name's TXT values, if there is exactly one (two SPF records are an
/// SPF error, and merging into either would hide that).
pub fn current_spf(answer: &Answer) -> Option<&str> {
    match answer {
        Answer::Found(values) => {
            let spf: Vec<&String> = values.iter().filter(|v| super::is_spf(v)).collect();
            (spf.len() == 1).then(|| spf[0].as_str())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(type_: &str, value: &str) -> DnsRecord {
        DnsRecord {
            name: "x".into(),
            type_: type_.into(),
            value: value.into(),
            purpose: "DKIM".into(),
            published: None,
        }
    }

    #[test]
    fn published_means_the_asked_value_is_served() {
        let cname = rec("CNAME", "tok.dkim.amazonses.com");
        assert_eq!(
            is_published(
                &cname,
                &Answer::Found(vec!["tok.dkim.amazonses.com".into()])
            ),
            Some(true)
        );
        assert_eq!(
            is_published(&cname, &Answer::Found(vec!["other.example".into()])),
            Some(false)
        );
        assert_eq!(is_published(&cname, &Answer::Missing), Some(false));
        assert_eq!(is_published(&cname, &Answer::Unknown), None);
        let spf = rec("TXT", "v=spf1 mx include:amazonses.com ~all");
        assert_eq!(
            is_published(
                &spf,
                &Answer::Found(vec!["v=spf1 a include:amazonses.com -all".into()])
            ),
            Some(true)
        );
        assert_eq!(
            is_published(&spf, &Answer::Found(vec!["v=spf1 a -all".into()])),
            Some(false)
        );
    }

    #[test]
    fn only_a_single_spf_record_is_merged_into() {
        let one = Answer::Found(vec![
            "google-site-verification=x".into(),
            "v=spf1 mx -all".into(),
        ]);
        assert_eq!(current_spf(&one), Some("v=spf1 mx -all"));
        let two = Answer::Found(vec!["v=spf1 mx -all".into(), "v=spf1 a -all".into()]);
        assert_eq!(current_spf(&two), None);
        assert_eq!(current_spf(&Answer::Missing), None);
    }
}
