//! `email-operator records` (also `kubectl email records`, the same binary installed as
//! `kubectl-email`): the DNS records SenderIdentities ask for, in a form a DNS team can paste or
//! feed to its tooling — a table, BIND zone-file lines, CSV or JSON — and with `--check`, whether
//! each is in DNS now.

use super::args::parse_host_port;
use email_operator::crd::SenderIdentity;
use email_operator::crd::sender_identity::DnsRecord;
use email_operator::dns::lookup::{DnsLookup, HickoryLookup, is_published};
use kube::api::{Api, ListParams};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `records`.
#[derive(clap::Args)]
pub struct RecordsArgs {
    /// One SenderIdentity by name (in --namespace).
    name: Option<String>,
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// Only SenderIdentities with these labels, e.g. `team=billing`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Every record, not only those still to publish.
    #[arg(long)]
    all: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,
    /// TTL written in zone-file lines, in seconds.
    #[arg(long, default_value_t = 300)]
    ttl: u32,
    /// Look each record up now (instead of trusting the status) and exit 1 while any is
    /// missing or wrong.
    #[arg(long)]
    check: bool,
    /// The DNS server --check asks (default: the system's resolver).
    #[arg(long, value_parser = parse_host_port)]
    dns_server: Option<(String, u16)>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Zone,
    Csv,
    Json,
}

/// One record of one SenderIdentity.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub sender_identity: String,
    pub identity: String,
    #[serde(flatten)]
    pub record: DnsRecord,
}

/// Runs `records`: 0, or 1 with `--check` while a record is missing or wrong, 2 for errors.
pub fn run(args: RecordsArgs) -> ExitCode {
    let runtime = match super::args::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(records(&args)) {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Ok(rows) => {
            print!("{}", render(&rows, args.format, args.ttl));
            let missing = rows.iter().any(|r| r.record.published != Some(true));
            if args.check && missing {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

async fn records(args: &RecordsArgs) -> Result<Vec<Row>, String> {
    let (client, default_namespace) = super::args::kube_client(args.kubeconfig.as_ref()).await?;
    let api: Api<SenderIdentity> = if args.all_namespaces {
        Api::all(client)
    } else {
        let ns = args.namespace.clone().unwrap_or(default_namespace);
        Api::namespaced(client, &ns)
    };
    let items = match &args.name {
        Some(name) => vec![
            api.get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("SenderIdentity {name} not found"))?,
        ],
        None => {
            let mut params = ListParams::default();
            if let Some(s) = &args.selector {
                params = params.labels(s);
            }
            api.list(&params).await.map_err(|e| e.to_string())?.items
        }
    };
    let lookup = if args.check {
        let server = match &args.dns_server {
            Some((host, port)) => Some(
                tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("--dns-server {host}:{port}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--dns-server {host}:{port} does not resolve"))?,
            ),
            None => None,
        };
        Some(HickoryLookup::new(server)?)
    } else {
        None
    };
    let mut rows = vec![];
    for si in items {
        let namespace = si.metadata.namespace.clone().unwrap_or_default();
        let name = si.metadata.name.clone().unwrap_or_default();
        let records = si.status.map(|s| s.dns_records).unwrap_or_default();
        for mut record in records {
            if let Some(lookup) = &lookup {
                let answer = lookup.lookup(&record.name, &record.type_).await;
                record.published = Some(is_published(&record, &answer) == Some(true));
            }
            if args.all || args.check || record.published != Some(true) {
                rows.push(Row {
                    namespace: namespace.clone(),
                    sender_identity: name.clone(),
                    identity: si.spec.identity.clone(),
                    record,
                });
            }
        }
    }
    Ok(rows)
}

/// The rows in `format`.
pub fn render(rows: &[Row], format: Format, ttl: u32) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        Format::Csv => {
            let mut out = String::from(
                "namespace,senderIdentity,identity,type,name,value,purpose,published\n",
            );
            for r in rows {
                let fields = [
                    r.namespace.as_str(),
                    &r.sender_identity,
                    &r.identity,
                    &r.record.type_,
                    &r.record.name,
                    &r.record.value,
                    &r.record.purpose,
                    published(r),
                ];
                out += &fields.map(csv_field).join(",");
                out.push('\n');
            }
            out
        }
        Format::Zone => {
            let mut out = String::new();
            let mut last = None;
            for r in rows {
                let owner = (&r.namespace, &r.sender_identity);
                if last != Some(owner) {
                    out += &format!(
                        "; SenderIdentity {}/{} ({})\n",
                        r.namespace, r.sender_identity, r.identity
                    );
                    last = Some(owner);
                }
                out += &zone_line(&r.record, ttl);
                out.push('\n');
            }
            out
        }
        Format::Table => {
            let rows: Vec<[String; 7]> = rows
                .iter()
                .map(|r| {
                    [
                        r.namespace.clone(),
                        r.sender_identity.clone(),
                        r.record.type_.clone(),
                        r.record.name.clone(),
                        r.record.value.clone(),
                        r.record.purpose.clone(),
                        published(r).to_string(),
                    ]
                })
                .collect();
            email_operator::plan::render::columns(
                [
                    "NAMESPACE",
                    "SENDERIDENTITY",
                    "TYPE",
                    "NAME",
                    "VALUE",
                    "PURPOSE",
                    "PUBLISHED",
                ],
                &rows,
            )
        }
    }
}

fn published(r: &Row) -> &'static str {
    match r.record.published {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A fully qualified name: with its trailing dot.
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// One BIND zone-file line: absolute names, TXT values quoted (in 255-byte strings).
pub fn zone_line(r: &DnsRecord, ttl: u32) -> String {
    let value = match r.type_.as_str() {
        "CNAME" => absolute(&r.value),
        "MX" => match r.value.split_once(' ') {
            Some((preference, host)) => format!("{preference} {}", absolute(host)),
            None => absolute(&r.value),
        },
        "TXT" => {
            let bytes = r.value.as_bytes();
            bytes
                .chunks(255)
                .map(|c| {
                    let s = String::from_utf8_lossy(c);
                    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => r.value.clone(),
    };
    format!("{} {ttl} IN {} {value}", absolute(&r.name), r.type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(type_: &str, name: &str, value: &str) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            type_: type_.into(),
            value: value.into(),
            purpose: "DKIM".into(),
            published: Some(false),
        }
    }

    #[test]
    fn zone_lines_are_what_bind_reads() {
        assert_eq!(
            zone_line(
                &record(
                    "CNAME",
                    "abc._domainkey.yourcompany.com",
                    "abc.dkim.amazonses.com"
                ),
                300
            ),
            "abc._domainkey.yourcompany.com. 300 IN CNAME abc.dkim.amazonses.com."
        );
        assert_eq!(
            zone_line(
                &record(
                    "MX",
                    "bounce.yourcompany.com",
                    "10 feedback-smtp.us-east-1.amazonses.com"
                ),
                60
            ),
            "bounce.yourcompany.com. 60 IN MX 10 feedback-smtp.us-east-1.amazonses.com."
        );
        assert_eq!(
            zone_line(
                &record(
                    "TXT",
                    "yourcompany.com",
                    "v=spf1 include:amazonses.com ~all"
                ),
                300
            ),
            "yourcompany.com. 300 IN TXT \"v=spf1 include:amazonses.com ~all\""
        );
        let long = "a".repeat(300);
        let line = zone_line(&record("TXT", "x.example", &long), 300);
        assert!(
            line.ends_with(&format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))),
            "{line}"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let row = Row {
            namespace: "billing".into(),
            sender_identity: "yourcompany-com".into(),
            identity: "yourcompany.com".into(),
            record: record("TXT", "yourcompany.com", "v=spf1 include:a,b \"q\""),
        };
        let out = render(&[row], Format::Csv, 300);
        assert_eq!(
            out.lines().nth(1),
            Some(
                "billing,yourcompany-com,yourcompany.com,TXT,yourcompany.com,\"v=spf1 include:a,b \"\"q\"\"\",DKIM,no"
            )
        );
    }
}
