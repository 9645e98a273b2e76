//! Looking records up through a DNS server, as SES does when it checks published records.
//!
//! The SES stand-in points a hickory resolver at the test bed's server (or any `ip:port` it is
//! configured with). Answers are not cached between checks: a record removed from the zone must
//! be seen as gone on the next tick, like SES seeing a deleted CNAME.

use std::net::SocketAddr;

use hickory_proto::rr::RecordType;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

use super::records::render_value;

/// Outcome of a lookup: answers, a definite "no such record", or a failure to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The values served for the name and type, normalised (see `records::render_value`).
    Found(Vec<String>),
    /// NXDOMAIN or no records of that type: the record is not published.
    Missing,
    /// The server could not be asked (timeout, refused): says nothing about the record.
    Unavailable(String),
}

/// A resolver that asks only `server`, over UDP with TCP fallback, without caching.
pub fn resolver(server: SocketAddr) -> Result<TokioResolver, String> {
    let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
    for connection in &mut name_server.connections {
        connection.port = server.port();
    }
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.attempts = 2;
    opts.timeout = std::time::Duration::from_secs(2);
    opts.preserve_intermediates = true;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|error| error.to_string())
}

/// Looks up `name`/`record_type` and returns the served values of exactly that type.
pub async fn lookup(resolver: &TokioResolver, name: &str, record_type: RecordType) -> Lookup {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match resolver.lookup(fqdn.as_str(), record_type).await {
        Ok(answer) => {
            let values: Vec<String> = answer
                .answers()
                .iter()
                .filter(|record| record.record_type() == record_type)
                .filter_map(|record| render_value(&record.data))
                .collect();
            if values.is_empty() {
                Lookup::Missing
            } else {
                Lookup::Found(values)
            }
        }
        Err(error) if error.is_nx_domain() || error.is_no_records_found() => Lookup::Missing,
        Err(error) => Lookup::Unavailable(error.to_string()),
    }
}
