//! The connection test against real servers: aiosmtpd (STARTTLS, implicit TLS, plain AUTH,
//! XOAUTH2), oauth2-mock-server for client-credentials tokens, and sockets that misbehave on
//! purpose (broken STARTTLS, no greeting, full backlog, closed port). Every reason in the
//! source's table is produced by at least one real server here.
//!
//! The servers come from `tests/support/`; `.ci/setup-smtp-tests.sh` installs what they need.
//! Outside CI a missing Python package or Node module skips a test with the reason printed;
//! in CI (`CI` set) it fails.

mod support;

use email_operator::crd::email_settings::Delivery;
use email_operator::smtp::egress::Allowed;
use email_operator::smtp::oauth2::{ClientCredentials, TokenSource};
use email_operator::smtp::{
    Auth, ConnectionPath, Egress, Failure, ImplicitTls, Prober, Secret, SmtpProber, Target,
    Timeouts,
};
use std::time::Duration;
use support::{PASSWORD, USER, cert_dir, oauth_server, smtp_server};

/// The test CA (written by the first Python server a test starts; none for the in-process ones).
fn ca() -> Option<Vec<u8>> {
    std::fs::read(cert_dir().join("ca.pem")).ok()
}

fn target(port: u16) -> Target {
    Target {
        host: "localhost".into(),
        port,
        implicit_tls: None,
        start_tls: true,
        auth: Some(Auth::Password {
            username: USER.into(),
            password: Secret::new(PASSWORD),
        }),
        from: "billing@yourcompany.com".into(),
        ca_bundle_pem: ca(),
        // The test servers are on loopback: as the platform's relay (unrestricted) unless a
        // test says otherwise.
        restricted: false,
    }
}

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    conversation: Duration::from_secs(3),
};

fn prober() -> SmtpProber {
    let _ = rustls::crypto::ring::default_provider().install_default();
    SmtpProber::new(TIMEOUTS, Egress::default())
}

/// The failure's condition message for each delivery (the advice differs, the detail not).
fn every_message(f: &Failure) -> Vec<String> {
    [
        Delivery::ExternalSmtp,
        Delivery::AdvancedSmtp,
        Delivery::Default,
    ]
    .map(|d| f.condition_message(d))
    .to_vec()
}

fn assert_reason(
    result: Result<email_operator::smtp::Outcome, Failure>,
    reason: &str,
    fragment: &str,
) -> Failure {
    let failure = result.expect_err("the test should fail");
    assert_eq!(failure.reason(), reason, "{failure}");
    let message = failure.condition_message(Delivery::ExternalSmtp);
    assert!(
        message.contains(fragment),
        "{message:?} should contain {fragment:?}"
    );
    assert!(
        !message.contains(PASSWORD),
        "a failure message leaked the password: {message}"
    );
    failure
}

#[tokio::test]
async fn starttls_with_password_passes() {
    let Some(s) = smtp_server("starttls-auth", &[]) else {
        return;
    };
    let outcome = prober()
        .probe(&target(s.port))
        .await
        .expect("connection test");
    assert_eq!(outcome.path, ConnectionPath::StartTls);
    assert_eq!(outcome.path.tls(), "starttls");
    assert_eq!(outcome.port, s.port);
}

#[tokio::test]
async fn implicit_tls_passes() {
    let Some(s) = smtp_server("implicit-tls", &[]) else {
        return;
    };
    let t = Target {
        port: 1,
        start_tls: false,
        implicit_tls: Some(ImplicitTls {
            port: s.port,
            fallback: false,
        }),
        ..target(0)
    };
    let outcome = prober().probe(&t).await.expect("connection test");
    assert_eq!(
        (outcome.path, outcome.port),
        (ConnectionPath::Implicit, s.port)
    );
    assert_eq!(outcome.path.tls(), "implicit");
}

#[tokio::test]
async fn plain_auth_passes_when_tls_is_not_asked_for() {
    let Some(s) = smtp_server("plain-auth", &[]) else {
        return;
    };
    let outcome = prober()
        .probe(&Target {
            start_tls: false,
            ..target(s.port)
        })
        .await
        .expect("test");
    assert_eq!(outcome.path, ConnectionPath::Plain);
    assert_eq!(outcome.path.tls(), "none");
}

#[tokio::test]
async fn a_wrong_password_is_bad_credentials() {
    let Some(s) = smtp_server("starttls-auth", &[]) else {
        return;
    };
    let t = Target {
        auth: Some(Auth::Password {
            username: USER.into(),
            password: Secret::new("wrong"),
        }),
        ..target(s.port)
    };
    assert_reason(
        prober().probe(&t).await,
        "BadCredentials",
        "Authentication failed: Bad username / password",
    );
}

#[tokio::test]
async fn auth_offered_only_after_starttls_asks_for_starttls_not_the_password() {
    let Some(s) = smtp_server("starttls-auth", &[]) else {
        return;
    };
    let t = Target {
        start_tls: false,
        ..target(s.port)
    };
    let failure = assert_reason(
        prober().probe(&t).await,
        "StartTlsRequired",
        "startTls: true",
    );
    assert!(
        every_message(&failure)
            .iter()
            .all(|m| !m.contains("password")),
        "{failure}"
    );
}

#[tokio::test]
async fn mail_from_without_auth_is_authentication_required() {
    let Some(s) = smtp_server("auth-required", &[]) else {
        return;
    };
    let t = Target {
        start_tls: false,
        auth: None,
        ..target(s.port)
    };
    assert_reason(
        prober().probe(&t).await,
        "AuthenticationRequired",
        "Authentication required",
    );
}

#[tokio::test]
async fn a_refused_sender_is_sender_rejected_and_an_allowed_one_passes() {
    let Some(s) = smtp_server(
        "reject-sender",
        &["--allow-sender", "relay@yourcompany.com"],
    ) else {
        return;
    };
    let f = assert_reason(
        prober().probe(&target(s.port)).await,
        "SenderRejected",
        "MAIL FROM:<billing@yourcompany.com>",
    );
    assert!(f.to_string().contains("550"), "{f}");
    let t = Target {
        from: "relay@yourcompany.com".into(),
        ..target(s.port)
    };
    prober().probe(&t).await.expect("the allowed sender passes");
}

#[tokio::test]
async fn a_broken_starttls_handshake_cannot_convert_the_socket() {
    let Some(s) = smtp_server("broken-starttls", &[]) else {
        return;
    };
    assert_reason(
        prober().probe(&target(s.port)).await,
        "TlsUpgradeFailed",
        "Could not convert socket to TLS",
    );
}

#[tokio::test]
async fn required_starttls_that_is_not_offered_fails_instead_of_going_plain() {
    let Some(s) = smtp_server("plain-auth", &[]) else {
        return;
    };
    assert_reason(
        prober().probe(&target(s.port)).await,
        "TlsUpgradeFailed",
        "does not offer STARTTLS",
    );
}

#[tokio::test]
async fn a_server_that_never_greets_is_a_read_timeout() {
    let Some(s) = smtp_server("never-greets", &[]) else {
        return;
    };
    assert_reason(
        prober().probe(&target(s.port)).await,
        "ReadTimeout",
        "did not greet",
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_named() {
    let Some(s) = smtp_server("untrusted-cert", &[]) else {
        return;
    };
    // With the web PKI roots and with the test CA: a self-signed certificate is trusted by neither.
    for ca_bundle_pem in [None, ca()] {
        let t = Target {
            auth: None,
            ca_bundle_pem,
            ..target(s.port)
        };
        assert_reason(
            prober().probe(&t).await,
            "TlsUpgradeFailed",
            "not signed by a trusted CA",
        );
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_is_named() {
    let Some(s) = smtp_server("wrong-host", &[]) else {
        return;
    };
    let t = Target {
        auth: None,
        ..target(s.port)
    };
    assert_reason(
        prober().probe(&t).await,
        "TlsUpgradeFailed",
        "not valid for this host name",
    );
}

/// A tenant is not told a filtered port (no answer) from a closed one (refused): both are
/// `ConnectFailed` with the same message, so the connection test cannot map a network.
#[tokio::test]
async fn a_full_backlog_and_a_closed_port_look_the_same() {
    let Some(full) = smtp_server("full-backlog", &[]) else {
        return;
    };
    let Some(closed) = smtp_server("closed", &[]) else {
        return;
    };
    let mut messages = vec![];
    for s in [full, closed] {
        let f = assert_reason(
            prober().probe(&target(s.port)).await,
            "ConnectFailed",
            "Could not connect to SMTP host",
        );
        messages.push(f.to_string().replace(&s.port.to_string(), "PORT"));
    }
    assert_eq!(messages[0], messages[1]);
    assert!(!messages[0].contains("refused") && !messages[0].contains("127.0.0.1"));
}

#[tokio::test]
async fn an_unresolvable_host_is_unknown() {
    let t = Target {
        host: "no-such-relay.invalid".into(),
        ..target(25)
    };
    assert_reason(prober().probe(&t).await, "UnknownHost", "Unknown SMTP host");
}

#[tokio::test]
async fn implicit_tls_falls_back_to_plain_when_allowed() {
    let Some(plain) = smtp_server("plain-auth", &[]) else {
        return;
    };
    let Some(closed) = smtp_server("closed", &[]) else {
        return;
    };
    let mut t = Target {
        start_tls: false,
        implicit_tls: Some(ImplicitTls {
            port: closed.port,
            fallback: true,
        }),
        ..target(plain.port)
    };
    let outcome = prober().probe(&t).await.expect("fallback to plain");
    assert_eq!(
        (outcome.path, outcome.port),
        (ConnectionPath::FallbackPlain, plain.port)
    );
    assert_eq!(outcome.path.tls(), "none");

    t.implicit_tls = Some(ImplicitTls {
        port: closed.port,
        fallback: false,
    });
    assert_reason(
        prober().probe(&t).await,
        "ConnectFailed",
        "Could not connect to SMTP host",
    );
}

#[tokio::test]
async fn implicit_tls_against_a_plain_server_cannot_convert_the_socket() {
    let Some(plain) = smtp_server("plain-auth", &[]) else {
        return;
    };
    let t = Target {
        start_tls: false,
        implicit_tls: Some(ImplicitTls {
            port: plain.port,
            fallback: false,
        }),
        ..target(1)
    };
    assert_reason(
        prober().probe(&t).await,
        "TlsUpgradeFailed",
        "Could not convert socket to TLS",
    );
}

async fn xoauth2_case(secret_used: &str) -> Option<Result<email_operator::smtp::Outcome, Failure>> {
    let oauth = oauth_server("email-operator", "client-s3cret")?;
    let jwks = format!("https://localhost:{}/jwks", oauth.port);
    let smtp = smtp_server("xoauth2", &["--jwks", &jwks])?;
    let tokens = token_source(Egress::default());
    let creds = ClientCredentials {
        token_url: format!("https://localhost:{}/token", oauth.port),
        client_id: "email-operator".into(),
        client_secret: Secret::new(secret_used),
        scopes: vec!["https://outlook.office365.com/.default".into()],
    };
    let token = match tokens.token(&creds, false).await {
        Ok(t) => t,
        Err(f) => return Some(Err(f)),
    };
    // The cache answers the second request with the same token.
    assert_eq!(tokens.token(&creds, false).await.expect("cached"), token);
    let t = Target {
        auth: Some(Auth::XOAuth2 {
            username: USER.into(),
            token,
        }),
        ..target(smtp.port)
    };
    Some(prober().probe(&t).await)
}

#[tokio::test]
async fn xoauth2_with_a_valid_client_secret_passes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(result) = xoauth2_case("client-s3cret").await else {
        return;
    };
    assert_eq!(result.expect("XOAUTH2").path, ConnectionPath::StartTls);
}

#[tokio::test]
async fn xoauth2_with_a_wrong_client_secret_is_authentication_failed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(result) = xoauth2_case("not-the-secret").await else {
        return;
    };
    let f = assert_reason(result, "AuthenticationFailed", "invalid_client");
    assert!(
        every_message(&f)
            .iter()
            .all(|m| !m.contains("not-the-secret"))
    );
}

#[tokio::test]
async fn xoauth2_with_a_forged_token_is_authentication_failed() {
    let Some(oauth) = oauth_server("email-operator", "client-s3cret") else {
        return;
    };
    let jwks = format!("https://localhost:{}/jwks", oauth.port);
    let Some(smtp) = smtp_server("xoauth2", &["--jwks", &jwks]) else {
        return;
    };
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
    let t = Target {
        auth: Some(Auth::XOAuth2 {
            username: USER.into(),
            token: Secret::new(forged),
        }),
        ..target(smtp.port)
    };
    let f = assert_reason(
        prober().probe(&t).await,
        "AuthenticationFailed",
        "Authentication failed",
    );
    assert!(every_message(&f).iter().all(|m| !m.contains(forged)));
}

/// A token source trusting the test CA (the OAuth server's certificate).
fn token_source(egress: Egress) -> TokenSource {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(cert_dir().join("ca.pem")).ok();
    TokenSource::new(Duration::from_secs(5), egress, ca.as_deref()).expect("token source")
}

/// A plain TCP server on loopback that writes `script` to each connection (then keeps it
/// open), counting connections.
async fn scripted(script: &'static [u8]) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = s.write_all(script).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn a_tenants_host_on_an_internal_address_is_refused_without_connecting() {
    let (port, connections) = scripted(b"220 ready\r\n").await;
    for host in ["127.0.0.1", "localhost", "169.254.169.254", "10.96.0.10"] {
        let t = Target {
            host: host.into(),
            restricted: true,
            ..target(port)
        };
        let f = assert_reason(prober().probe(&t).await, "HostNotAllowed", "--egress-allow");
        assert!(
            !f.to_string().contains("127.0.0.1:") || host == "127.0.0.1",
            "{f}"
        );
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The platform allows one internal relay, on its port only.
    let Some(relay) = smtp_server("starttls-auth", &[]) else {
        return;
    };
    let allowed = SmtpProber::new(
        TIMEOUTS,
        Egress::new(
            vec![],
            vec![Allowed::parse(&format!("127.0.0.1:{}", relay.port)).expect("allow")],
        ),
    );
    let t = Target {
        restricted: true,
        ..target(relay.port)
    };
    allowed.probe(&t).await.expect("the allowed relay passes");
    let elsewhere = Target {
        restricted: true,
        ..target(port)
    };
    assert_reason(allowed.probe(&elsewhere).await, "HostNotAllowed", "");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_never_ends_a_line_costs_a_bounded_read() {
    static ENDLESS: [u8; 1 << 20] = [b'A'; 1 << 20];
    let (port, _) = scripted(&ENDLESS).await;
    let f = assert_reason(
        prober().probe(&target(port)).await,
        "ConnectFailed",
        "did not answer as an SMTP server",
    );
    assert!(
        !f.to_string().contains("AAAA"),
        "nothing it sent is repeated"
    );
}

#[tokio::test]
async fn a_banner_that_is_not_smtp_is_not_repeated() {
    let (port, _) = scripted(b"SSH-2.0-OpenSSH_9.6 internal-build-host\r\n").await;
    let f = assert_reason(
        prober().probe(&target(port)).await,
        "ConnectFailed",
        "did not answer as an SMTP server",
    );
    assert!(!f.to_string().contains("OpenSSH"), "{f}");
}

#[tokio::test]
async fn one_deadline_bounds_the_whole_test() {
    // A greeting that never ends: one continuation line a second, forever.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                while s.write_all(b"220-still greeting\r\n").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    let started = std::time::Instant::now();
    let f = prober()
        .probe(&target(port))
        .await
        .expect_err("never finishes");
    let budget = TIMEOUTS.connect + TIMEOUTS.conversation;
    assert!(
        started.elapsed() < budget + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(f, Failure::ReadTimeout(_) | Failure::ConnectFailed(_)),
        "{f:?}"
    );
}

#[tokio::test]
async fn token_urls_are_https_only_checked_for_egress_and_read_with_a_bound() {
    let creds = |url: String| ClientCredentials {
        token_url: url,
        client_id: "email-operator".into(),
        client_secret: Secret::new("client-s3cret"),
        scopes: vec![],
    };
    let tokens = token_source(Egress::default());
    let f = tokens
        .token(&creds("http://login.example.com/token".into()), true)
        .await
        .expect_err("http");
    assert!(f.to_string().contains("must be an https:// URL"), "{f}");
    let f = tokens
        .token(
            &creds("https://169.254.169.254/latest/meta-data".into()),
            true,
        )
        .await
        .expect_err("metadata");
    assert_eq!(f.reason(), "HostNotAllowed", "{f}");

    // An HTTPS server that answers with a body that never ends.
    let Some(port) = endless_https_server().await else {
        return;
    };
    let tokens = token_source(Egress::new(
        vec![],
        vec![Allowed::parse(&format!("127.0.0.1:{port}")).expect("allow")],
    ));
    let started = std::time::Instant::now();
    let f = tokens
        .token(&creds(format!("https://localhost:{port}/token")), true)
        .await
        .expect_err("endless");
    assert!(f.to_string().contains("at most 64 KiB"), "{f}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!f.to_string().contains("client-s3cret"));
}

/// An HTTPS server (the test CA's certificate for localhost) answering 200 with a body that
/// never ends.
async fn endless_https_server() -> Option<u16> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    smtp_server("closed", &[])?; // the SMTP test tools (and the test CA) are there
    let (cert, key) = support::localhost_cert();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("cert")
        .collect::<Result<_, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(&key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
                while tls.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    Some(port)
}
