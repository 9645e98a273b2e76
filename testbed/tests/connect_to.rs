//! The operator's `--connect-to` and `--smtp-ca-file` over real sockets: its connection test
//! and its OAuth 2.0 client (the very `Tester` parts `email-operator run` builds from the
//! flags) reaching the test bed's mail servers under names that exist nowhere but in the rule
//! or the test bed's DNS, with TLS still verified against the name, the egress rules still
//! applied to the address connected to, and the tenant told the host and port it wrote.

use std::net::SocketAddr;
use std::time::Duration;

use email_operator::smtp::connect_to::ConnectTo;
use email_operator::smtp::egress::Allowed;
use email_operator::smtp::oauth2::{ClientCredentials, TokenSource};
use email_operator::smtp::{
    Auth, ConnectionPath, Egress, Failure, Prober, Secret, SmtpProber, Target, Timeouts,
};
use testbed::dns::{DnsServer, Zone};
use testbed::mail::{
    Dialect, Login, OAuthClient, Security, SmtpServer, SmtpServerOptions, TokenServer,
    TokenServerOptions,
};
use testbed::ses::smtp::tls::TestCa;

const HOST: &str = "smtp.connect-to.test";
const USER: &str = "notifications@yourcompany.com";
const PASSWORD: &str = "the-right-password";
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    conversation: Duration::from_secs(10),
};

async fn relay(ca: &TestCa, name: &str) -> SmtpServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    SmtpServer::start(SmtpServerOptions {
        addr: ([127, 0, 0, 1], 0).into(),
        name: name.into(),
        dialect: Dialect::Postfix,
        security: Security::StartTls,
        tls: ca.server_config(name, &[name.to_string()]).expect("cert"),
        login: Login::Password {
            username: USER.into(),
            password: PASSWORD.into(),
        },
        senders: vec!["yourcompany.com".into()],
        idle: Duration::from_secs(10),
    })
    .await
    .expect("relay")
}

fn target(host: &str) -> Target {
    Target {
        host: host.into(),
        port: 587,
        implicit_tls: None,
        start_tls: true,
        auth: Some(Auth::Password {
            username: USER.into(),
            password: Secret::new(PASSWORD),
        }),
        from: "billing@yourcompany.com".into(),
        ca_bundle_pem: None,
        restricted: true,
    }
}

fn rule(s: &str) -> ConnectTo {
    ConnectTo::parse(s).expect(s)
}

fn allow(addr: SocketAddr) -> Vec<Allowed> {
    vec![Allowed::parse(&addr.to_string()).expect("allowed")]
}

fn prober(egress: Egress, ca: &TestCa) -> SmtpProber {
    SmtpProber::new(TIMEOUTS, egress)
        .with_platform_roots(ca.pem().as_bytes())
        .expect("roots")
}

#[tokio::test]
async fn a_rule_sends_the_connection_elsewhere_and_the_tenant_still_sees_its_host_and_port() {
    let ca = TestCa::new("connect-to test CA").expect("ca");
    let server = relay(&ca, HOST).await;
    let routed = Egress::new(vec![], allow(server.addr())).with_connect_to(vec![rule(&format!(
        "{HOST}:587:127.0.0.1:{}",
        server.addr().port()
    ))]);
    let outcome = prober(routed, &ca)
        .probe(&target(HOST))
        .await
        .expect("the routed test passes");
    assert_eq!(outcome.path, ConnectionPath::StartTls);
    assert_eq!(outcome.port, 587, "the port the tenant wrote");
    assert_eq!(server.logins(), (1, 0));

    // Without the rule the name resolves nowhere.
    let unrouted = Egress::new(vec![], allow(server.addr()));
    let failure = prober(unrouted, &ca)
        .probe(&target(HOST))
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::UnknownHost(_)), "{failure:?}");
}

#[tokio::test]
async fn an_empty_addr_keeps_resolving_the_host_through_the_dns_server() {
    let ca = TestCa::new("connect-to test CA").expect("ca");
    let server = relay(&ca, HOST).await;
    let zone = Zone::new();
    zone.add(HOST, "A", "127.0.0.1", None)
        .await
        .expect("A record");
    let dns = DnsServer::start(([127, 0, 0, 1], 0).into(), zone)
        .await
        .expect("dns");
    let egress = Egress::new(vec![], allow(server.addr()))
        .with_dns_server(Some(dns.addr()))
        .with_connect_to(vec![rule(&format!("{HOST}:587::{}", server.addr().port()))]);
    prober(egress, &ca)
        .probe(&target(HOST))
        .await
        .expect("resolved through --dns-server, port from the rule");
}

#[tokio::test]
async fn tls_is_still_verified_against_the_host_and_trusted_through_the_platform_roots() {
    let ca = TestCa::new("connect-to test CA").expect("ca");
    let server = relay(&ca, HOST).await;
    let other = "other.connect-to.test";
    let egress = || {
        Egress::new(vec![], allow(server.addr())).with_connect_to(vec![rule(&format!(
            ":587:127.0.0.1:{}",
            server.addr().port()
        ))])
    };
    // A certificate for HOST does not do for another name routed to the same server.
    let failure = prober(egress(), &ca)
        .probe(&target(other))
        .await
        .unwrap_err();
    assert!(
        matches!(failure, Failure::TlsUpgradeFailed(_)),
        "{failure:?}"
    );
    assert!(!failure.to_string().contains("127.0.0.1"), "{failure}");
    // Without --smtp-ca-file the private CA is not trusted.
    let failure = SmtpProber::new(TIMEOUTS, egress())
        .probe(&target(HOST))
        .await
        .unwrap_err();
    assert!(
        matches!(failure, Failure::TlsUpgradeFailed(_)),
        "{failure:?}"
    );
    // A target's own CA bundle replaces the platform's roots.
    let mut own = target(HOST);
    own.ca_bundle_pem = Some(
        TestCa::new("another CA")
            .expect("ca")
            .pem()
            .as_bytes()
            .to_vec(),
    );
    let failure = prober(egress(), &ca).probe(&own).await.unwrap_err();
    assert!(
        matches!(failure, Failure::TlsUpgradeFailed(_)),
        "{failure:?}"
    );
    assert!(
        SmtpProber::new(TIMEOUTS, egress())
            .with_platform_roots(b"not a certificate")
            .is_err()
    );
}

#[tokio::test]
async fn the_egress_rules_apply_to_the_address_connected_to() {
    let ca = TestCa::new("connect-to test CA").expect("ca");
    let server = relay(&ca, HOST).await;
    let to = format!("{HOST}:587:127.0.0.1:{}", server.addr().port());
    let denied = Egress::default().with_connect_to(vec![rule(&to)]);
    let failure = prober(denied, &ca).probe(&target(HOST)).await.unwrap_err();
    assert!(matches!(failure, Failure::HostNotAllowed(_)), "{failure:?}");
    assert!(
        failure.to_string().contains(&format!("{HOST}:587")),
        "the tenant reads its own host and port: {failure}"
    );
    assert!(
        !failure
            .to_string()
            .contains(&server.addr().port().to_string())
    );
    // Allowed on another port only: still denied.
    let other_port = Egress::new(vec![], vec![Allowed::parse("127.0.0.1:1").expect("allow")])
        .with_connect_to(vec![rule(&to)]);
    let failure = prober(other_port, &ca)
        .probe(&target(HOST))
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::HostNotAllowed(_)), "{failure:?}");
    // The platform's own relay (not restricted) is not subject to them.
    let mut platform = target(HOST);
    platform.restricted = false;
    prober(Egress::default().with_connect_to(vec![rule(&to)]), &ca)
        .probe(&platform)
        .await
        .expect("the platform's relay");
}

#[tokio::test]
async fn token_requests_follow_the_rules_and_verify_the_url_host() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = TestCa::new("connect-to test CA").expect("ca");
    let login = "login.connect-to.test";
    let server = TokenServer::start(TokenServerOptions {
        addr: ([127, 0, 0, 1], 0).into(),
        tls: ca.server_config(login, &[login.to_string()]).expect("cert"),
        clients: vec![OAuthClient {
            tenant: "tenant-1".into(),
            client_id: "app-1".into(),
            client_secret: "s3cret".into(),
            scopes: vec!["https://outlook.office365.com/.default".into()],
        }],
        lifetime: Duration::from_secs(3599),
    })
    .await
    .expect("token endpoint");
    let egress = Egress::new(vec![], allow(server.addr())).with_connect_to(vec![rule(&format!(
        "{login}:443:127.0.0.1:{}",
        server.addr().port()
    ))]);
    let tokens = TokenSource::new(Duration::from_secs(10), egress, Some(ca.pem().as_bytes()))
        .expect("token source");
    let grant = |secret: &str| ClientCredentials {
        token_url: format!("https://{login}/tenant-1/oauth2/v2.0/token"),
        client_id: "app-1".into(),
        client_secret: Secret::new(secret),
        scopes: vec!["https://outlook.office365.com/.default".into()],
    };
    let token = tokens.token(&grant("s3cret"), true).await.expect("a token");
    assert!(server.tokens().check(token.expose()).is_some());
    let refused = tokens.token(&grant("wrong"), true).await.unwrap_err();
    assert!(
        matches!(&refused, Failure::AuthenticationFailed(m) if m.contains("HTTP 401 (invalid_client)")),
        "{refused:?}"
    );
    assert!(
        !refused.to_string().contains("wrong"),
        "no secret in the message"
    );
}
