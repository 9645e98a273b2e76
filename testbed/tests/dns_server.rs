//! The test bed's DNS server, queried with hickory-resolver over UDP and over TCP: records
//! added and removed through the control API appear and disappear.

mod ses_support;

use std::net::SocketAddr;

use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use serde_json::json;
use ses_support::{Control, start};

fn resolver(server: SocketAddr, tcp: bool) -> TokioResolver {
    let mut name_server = if tcp {
        NameServerConfig::tcp(server.ip())
    } else {
        NameServerConfig::udp(server.ip())
    };
    for connection in &mut name_server.connections {
        connection.port = server.port();
    }
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    Resolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], vec![name_server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("resolver")
}

#[tokio::test]
async fn records_added_and_removed_through_the_control_api_resolve() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let dns = bed.dns.addr();
    assert!(dns.ip().is_loopback());

    control
        .add_record(
            "abc._domainkey.yourcompany.com",
            "CNAME",
            "abc.dkim.amazonses.com",
        )
        .await;
    control
        .add_record(
            "yourcompany.com",
            "TXT",
            "v=spf1 mx include:amazonses.com ~all",
        )
        .await;
    control
        .add_record("yourcompany.com", "TXT", "google-site-verification=xyz")
        .await;
    control
        .add_record(
            "bounce.yourcompany.com",
            "MX",
            "10 feedback-smtp.us-east-1.amazonses.com",
        )
        .await;
    control
        .add_record("smtp.yourcompany.com", "A", "127.0.0.1")
        .await;
    let long_key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(400));
    control
        .add_record("sel._domainkey.yourcompany.com", "TXT", &long_key)
        .await;

    for tcp in [false, true] {
        let resolver = resolver(dns, tcp);
        let cname = resolver
            .lookup("abc._domainkey.yourcompany.com.", RecordType::CNAME)
            .await
            .expect("cname");
        let targets: Vec<String> = cname
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::CNAME(c) => Some(c.0.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(
            targets,
            vec!["abc.dkim.amazonses.com.".to_string()],
            "tcp={tcp}"
        );

        let txt = resolver
            .lookup("yourcompany.com.", RecordType::TXT)
            .await
            .expect("txt");
        let mut texts: Vec<String> = txt
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.to_string()),
                _ => None,
            })
            .collect();
        texts.sort();
        assert_eq!(
            texts,
            vec![
                "google-site-verification=xyz",
                "v=spf1 mx include:amazonses.com ~all"
            ]
        );

        let mx = resolver
            .lookup("bounce.yourcompany.com.", RecordType::MX)
            .await
            .expect("mx");
        assert!(mx.answers().iter().any(|r| matches!(&r.data, RData::MX(m)
            if m.preference == 10 && m.exchange.to_ascii() == "feedback-smtp.us-east-1.amazonses.com.")));

        let a = resolver
            .lookup("smtp.yourcompany.com.", RecordType::A)
            .await
            .expect("a");
        assert!(
            a.answers()
                .iter()
                .any(|r| matches!(&r.data, RData::A(ip) if ip.0.is_loopback()))
        );

        // A DKIM public key longer than 255 bytes comes back whole.
        let key = resolver
            .lookup("sel._domainkey.yourcompany.com.", RecordType::TXT)
            .await
            .expect("key");
        let joined = key.answers().iter().find_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        });
        assert_eq!(joined.as_deref(), Some(long_key.as_str()));
    }

    let listed = control.get("/dns/records").await;
    assert_eq!(listed["records"].as_array().map(Vec::len), Some(6));

    // Removing one TXT value keeps the other; removing the CNAME makes the name vanish.
    let (status, _) = control
        .call(
            reqwest::Method::DELETE,
            "/dns/records",
            Some(json!({"name": "yourcompany.com", "type": "TXT", "value": "google-site-verification=xyz"})),
        )
        .await;
    assert_eq!(status, 200);
    control
        .remove_record("abc._domainkey.yourcompany.com", "CNAME")
        .await;

    let resolver = resolver(dns, false);
    let err = resolver
        .lookup("abc._domainkey.yourcompany.com.", RecordType::CNAME)
        .await
        .expect_err("removed");
    assert!(err.is_nx_domain() || err.is_no_records_found(), "{err}");
    let txt = resolver
        .lookup("yourcompany.com.", RecordType::TXT)
        .await
        .expect("txt");
    assert_eq!(txt.answers().len(), 1);

    // Unknown names are NXDOMAIN; a name with other types only has no records of this type.
    let err = resolver
        .lookup("nothing.example.", RecordType::A)
        .await
        .expect_err("nx");
    assert!(err.is_nx_domain(), "{err}");
    let err = resolver
        .lookup("smtp.yourcompany.com.", RecordType::MX)
        .await
        .expect_err("nodata");
    assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err}");
}

#[tokio::test]
async fn bad_records_are_rejected() {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    for bad in [
        json!({"name": "x.example.com", "type": "SRV", "value": "0 0 25 mail.example.com"}),
        json!({"name": "x.example.com", "type": "A", "value": "not-an-ip"}),
        json!({"name": "x.example.com", "type": "MX", "value": "mail.example.com"}),
        json!({"name": "", "type": "A", "value": "127.0.0.1"}),
        json!({"name": "x.example.com", "type": "A"}),
    ] {
        let (status, body) = control
            .call(reqwest::Method::POST, "/dns/records", Some(bad.clone()))
            .await;
        assert!((400..500).contains(&status), "{bad} → {status} {body}");
    }
    let (status, _) = control
        .call(
            reqwest::Method::DELETE,
            "/dns/records",
            Some(json!({"name": "none.example.com", "type": "A"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(control.get("/dns/records").await["records"], json!([]));
}
