//! The connection test against real servers: aiosmtpd (STARTTLS, implicit TLS, plain AUTH,
//! XOAUTH2), oauth2-mock-server for client-credentials tokens, and sockets that misbehave on
//! purpose (broken STARTTLS, no greeting, full backlog, closed port). Every reason in the
//! source's table is produced by at least one real server here.
//!
//! The servers come from `tests/support/`; `.ci/setup-smtp-tests.sh` installs what they need.
//! Outside CI a missing Python package or Node module skips a test with the reason printed;
//! in CI (`CI` set) it fails.

mod support;

use email_operator::smtp::oauth2::{ClientCredentials, TokenSource};
use email_operator::smtp::{
    Auth, ConnectionPath, Failure, ImplicitTls, LettreProber, Prober, Secret, Target, Timeouts,
};
use std::time::Duration;
use support::{PASSWORD, USER, cert_dir, oauth_server, smtp_server};

fn ca() -> Option<Vec<u8>> {
    Some(std::fs::read(cert_dir().join("ca.pem")).expect("the servers write ca.pem"))
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
    }
}

fn prober() -> LettreProber {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LettreProber::new(Timeouts {
        connect: Duration::from_secs(2),
        conversation: Duration::from_secs(3),
    })
}

fn assert_reason(
    result: Result<email_operator::smtp::Outcome, Failure>,
    reason: &str,
    fragment: &str,
) -> Failure {
    let failure = result.expect_err("the test should fail");
    assert_eq!(failure.reason(), reason, "{failure}");
    let message = failure.condition_message();
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
        !failure.condition_message().contains("password"),
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

#[tokio::test]
async fn a_full_backlog_is_a_connect_timeout() {
    let Some(s) = smtp_server("full-backlog", &[]) else {
        return;
    };
    assert_reason(
        prober().probe(&target(s.port)).await,
        "ConnectTimeout",
        "Connect timed out",
    );
}

#[tokio::test]
async fn a_closed_port_cannot_be_connected() {
    let Some(s) = smtp_server("closed", &[]) else {
        return;
    };
    assert_reason(
        prober().probe(&target(s.port)).await,
        "ConnectFailed",
        "connection refused",
    );
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
        "connection refused",
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
    let jwks = format!("http://127.0.0.1:{}/jwks", oauth.port);
    let smtp = smtp_server("xoauth2", &["--jwks", &jwks])?;
    let tokens = TokenSource::new(Duration::from_secs(5)).expect("token source");
    let creds = ClientCredentials {
        token_url: format!("http://127.0.0.1:{}/token", oauth.port),
        client_id: "email-operator".into(),
        client_secret: Secret::new(secret_used),
        scopes: vec!["https://outlook.office365.com/.default".into()],
    };
    let token = match tokens.token(&creds).await {
        Ok(t) => t,
        Err(f) => return Some(Err(f)),
    };
    // The cache answers the second request with the same token.
    assert_eq!(tokens.token(&creds).await.expect("cached"), token);
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
    assert!(!f.condition_message().contains("not-the-secret"));
}

#[tokio::test]
async fn xoauth2_with_a_forged_token_is_authentication_failed() {
    let Some(oauth) = oauth_server("email-operator", "client-s3cret") else {
        return;
    };
    let jwks = format!("http://127.0.0.1:{}/jwks", oauth.port);
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
    assert!(!f.condition_message().contains(forged));
}
