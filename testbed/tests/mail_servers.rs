//! The demo's mail servers and token endpoint (`testbed::mail`) over real sockets and TLS: the
//! operator's own connection test as the client for whole conversations, a raw line (or HTTP)
//! client for the protocol steps it would not take. Each rule the stand-ins enforce at its
//! limit and past it.

use std::sync::Arc;
use std::time::Duration;

use email_operator::smtp::egress::Allowed;
use email_operator::smtp::oauth2::{ClientCredentials, TokenSource};
use email_operator::smtp::{
    Auth, ConnectionPath, Egress, Failure, ImplicitTls, Prober, Secret, SmtpProber, Target,
    Timeouts,
};
use rustls::pki_types::ServerName;
use testbed::mail::{
    Dialect, Login, OAuthClient, Security, SmtpServer, SmtpServerOptions, TokenServer,
    TokenServerOptions, Tokens,
};
use testbed::ses::smtp::tls::TestCa;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const RELAY: &str = "relay.mail-servers.test";
const USER: &str = "notifications@yourcompany.com";
const PASSWORD: &str = "the-right-password";
const MAILBOX: &str = "support@yourcompany.com";
const SCOPE: &str = "https://outlook.office365.com/.default";
const LOGIN: &str = "login.mail-servers.test";

fn options(ca: &TestCa, security: Security, login: Login) -> SmtpServerOptions {
    let _ = rustls::crypto::ring::default_provider().install_default();
    SmtpServerOptions {
        addr: ([127, 0, 0, 1], 0).into(),
        name: RELAY.into(),
        dialect: Dialect::Postfix,
        security,
        tls: ca.server_config(RELAY, &[RELAY.to_string()]).expect("cert"),
        login,
        senders: vec!["yourcompany.com".into()],
        idle: Duration::from_secs(10),
    }
}

fn password_login() -> Login {
    Login::Password {
        username: USER.into(),
        password: PASSWORD.into(),
    }
}

/// The operator's connection test, routed to `server` under [`RELAY`]:587 (or :465).
fn prober(ca: &TestCa, server: &SmtpServer, port: u16) -> SmtpProber {
    let rule = format!("{RELAY}:{port}:127.0.0.1:{}", server.addr().port());
    let egress = Egress::new(
        vec![],
        vec![Allowed::parse(&server.addr().to_string()).unwrap()],
    )
    .with_connect_to(vec![
        email_operator::smtp::connect_to::ConnectTo::parse(&rule).unwrap(),
    ]);
    SmtpProber::new(
        Timeouts {
            connect: Duration::from_secs(5),
            conversation: Duration::from_secs(10),
        },
        egress,
    )
    .with_platform_roots(ca.pem().as_bytes())
    .expect("roots")
}

fn target(auth: Auth, from: &str) -> Target {
    Target {
        host: RELAY.into(),
        port: 587,
        implicit_tls: None,
        start_tls: true,
        auth: Some(auth),
        from: from.into(),
        ca_bundle_pem: None,
        restricted: true,
    }
}

fn password(p: &str) -> Auth {
    Auth::Password {
        username: USER.into(),
        password: Secret::new(p),
    }
}

/// A raw SMTP client: one command, one reply (all its lines).
struct Raw<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_line(&mut line))
                .await
                .expect("a reply in time")
                .expect("read");
            assert!(n > 0, "the server closed the connection");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, line: &str) -> String {
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
        self.reply().await
    }
}

async fn tls_client<S: AsyncRead + AsyncWrite + Unpin>(
    ca: &TestCa,
    stream: S,
    name: &str,
) -> tokio_rustls::client::TlsStream<S> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(testbed::ses::smtp::tls::ca_der(ca.pem()).expect("ca"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from(name.to_string()).expect("name"),
            stream,
        )
        .await
        .expect("TLS")
}

#[tokio::test]
async fn starttls_comes_before_credentials_and_credentials_before_mail() {
    let ca = TestCa::new("mail test CA").expect("ca");
    let server = SmtpServer::start(options(&ca, Security::StartTls, password_login()))
        .await
        .expect("server");
    let tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let mut plain = Raw {
        io: BufReader::new(tcp),
    };
    assert!(
        plain
            .reply()
            .await
            .starts_with(&format!("220 {RELAY} ESMTP Postfix"))
    );
    let ehlo = plain.send("EHLO client.test").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH before TLS: {ehlo}");
    assert!(
        plain
            .send("AUTH PLAIN AGFiAGM=")
            .await
            .starts_with("530 5.7.0 Must issue a STARTTLS")
    );
    assert!(
        plain
            .send("MAIL FROM:<billing@yourcompany.com>")
            .await
            .starts_with("530 5.7.0")
    );
    assert!(plain.send("STARTTLS").await.starts_with("220"));
    let tls = tls_client(&ca, plain.io.into_inner(), RELAY).await;
    let mut secure = Raw {
        io: BufReader::new(tls),
    };
    let ehlo = secure.send("EHLO client.test").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(
        secure.send("STARTTLS").await.starts_with("503"),
        "once only"
    );
    assert!(
        secure
            .send("MAIL FROM:<billing@yourcompany.com>")
            .await
            .starts_with("530 5.7.0 Authentication required"),
    );
    assert!(
        secure
            .send("RCPT TO:<a@example.com>")
            .await
            .starts_with("503")
    );
    assert!(secure.send("FROB").await.starts_with("502"));
    let long = format!("NOOP {}", "x".repeat(testbed::mail::smtp::MAX_COMMAND));
    assert!(secure.send(&long).await.starts_with("500"));
    assert!(secure.send("QUIT").await.starts_with("221"));
}

#[tokio::test]
async fn the_account_is_checked_exactly_and_senders_are_the_accounts_own() {
    let ca = TestCa::new("mail test CA").expect("ca");
    let server = SmtpServer::start(options(&ca, Security::StartTls, password_login()))
        .await
        .expect("server");
    let p = prober(&ca, &server, 587);
    let passed = p
        .probe(&target(password(PASSWORD), "billing@yourcompany.com"))
        .await
        .expect("the right password");
    assert_eq!(passed.path, ConnectionPath::StartTls);
    for wrong in [
        "the-right-passwor",
        "the-right-password ",
        "THE-RIGHT-PASSWORD",
        "",
    ] {
        let failure = p
            .probe(&target(password(wrong), "billing@yourcompany.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(failure, Failure::BadCredentials(_)),
            "{wrong:?}: {failure:?}"
        );
    }
    let other_user = Auth::Password {
        username: "someone@yourcompany.com".into(),
        password: Secret::new(PASSWORD),
    };
    let failure = p
        .probe(&target(other_user, "billing@yourcompany.com"))
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::BadCredentials(_)), "{failure:?}");
    let failure = p
        .probe(&target(password(PASSWORD), "billing@othercompany.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::SenderRejected(m) if m.contains("553 5.7.1")),
        "{failure:?}"
    );
    assert_eq!(server.logins(), (2, 5));
}

#[tokio::test]
async fn implicit_tls_starts_with_the_first_byte() {
    let ca = TestCa::new("mail test CA").expect("ca");
    let server = SmtpServer::start(options(&ca, Security::Implicit, password_login()))
        .await
        .expect("server");
    let mut t = target(password(PASSWORD), "reports@yourcompany.com");
    t.port = 25;
    t.start_tls = false;
    t.implicit_tls = Some(ImplicitTls {
        port: 465,
        fallback: false,
    });
    let passed = prober(&ca, &server, 465)
        .probe(&t)
        .await
        .expect("implicit TLS");
    assert_eq!((passed.path, passed.port), (ConnectionPath::Implicit, 465));
    // A plain client gets no greeting, only a TLS handshake it cannot do.
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
    tcp.write_all(b"EHLO client.test\r\n").await.expect("write");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await
    .expect("answered");
    assert!(
        !matches!(read, Ok(n) if buf[..n].starts_with(b"220")),
        "no plain greeting"
    );
}

async fn token_server(ca: &TestCa, lifetime: Duration) -> TokenServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TokenServer::start(TokenServerOptions {
        addr: ([127, 0, 0, 1], 0).into(),
        tls: ca.server_config(LOGIN, &[LOGIN.to_string()]).expect("cert"),
        clients: vec![OAuthClient {
            tenant: "tenant-1".into(),
            client_id: "app-1".into(),
            client_secret: "s3cret".into(),
            scopes: vec![SCOPE.into()],
        }],
        lifetime,
    })
    .await
    .expect("token endpoint")
}

fn office365(ca: &TestCa, tokens: Arc<Tokens>) -> SmtpServerOptions {
    let mut o = options(
        ca,
        Security::StartTls,
        Login::XOAuth2 {
            tokens,
            scope: SCOPE.into(),
            grants: vec![("app-1".into(), MAILBOX.into())],
        },
    );
    o.dialect = Dialect::Microsoft365;
    o.senders = vec![MAILBOX.into()];
    o
}

fn xoauth2(mailbox: &str, token: &str) -> Auth {
    Auth::XOAuth2 {
        username: mailbox.into(),
        token: Secret::new(token),
    }
}

#[tokio::test]
async fn xoauth2_takes_a_live_token_of_an_application_granted_the_mailbox() {
    let ca = TestCa::new("mail test CA").expect("ca");
    let tokens = token_server(&ca, Duration::from_secs(3599)).await;
    let server = SmtpServer::start(office365(&ca, tokens.tokens()))
        .await
        .expect("server");
    let token = tokens
        .tokens()
        .issue("app-1", SCOPE, Duration::from_secs(60));
    let p = prober(&ca, &server, 587);
    p.probe(&target(xoauth2(MAILBOX, &token), MAILBOX))
        .await
        .expect("granted mailbox, own address");
    let refused = [
        target(xoauth2("ceo@yourcompany.com", &token), MAILBOX),
        target(xoauth2(MAILBOX, "not-a-token"), MAILBOX),
        target(
            xoauth2(
                MAILBOX,
                &tokens.tokens().issue(
                    "app-1",
                    "https://graph.microsoft.com/.default",
                    Duration::from_secs(60),
                ),
            ),
            MAILBOX,
        ),
        target(
            xoauth2(
                MAILBOX,
                &tokens
                    .tokens()
                    .issue("app-2", SCOPE, Duration::from_secs(60)),
            ),
            MAILBOX,
        ),
        target(
            xoauth2(
                MAILBOX,
                &tokens.tokens().issue("app-1", SCOPE, Duration::ZERO),
            ),
            MAILBOX,
        ),
    ];
    for t in refused {
        let failure = p.probe(&t).await.unwrap_err();
        assert!(
            matches!(&failure, Failure::AuthenticationFailed(m) if m.contains("535 5.7.3")),
            "{failure:?}"
        );
    }
    let basic = p
        .probe(&target(password(PASSWORD), MAILBOX))
        .await
        .unwrap_err();
    assert!(
        matches!(&basic, Failure::BadCredentials(m) if m.contains("5.7.139")),
        "{basic:?}"
    );
    let send_as = p
        .probe(&target(xoauth2(MAILBOX, &token), "billing@yourcompany.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&send_as, Failure::SenderRejected(m) if m.contains("550 5.7.60")),
        "{send_as:?}"
    );
}

/// One HTTPS request to the token endpoint; (status, body).
async fn post(ca: &TestCa, server: &TokenServer, request: &str) -> (u16, String) {
    let tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let mut tls = tls_client(ca, tcp, LOGIN).await;
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    // The server may close without close_notify: what was read counts.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut bytes),
    )
    .await
    .expect("answered");
    let response = String::from_utf8_lossy(&bytes).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn form_request(path: &str, content_type: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {LOGIN}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn the_token_endpoint_answers_as_entra_id_does() {
    let ca = TestCa::new("mail test CA").expect("ca");
    let server = token_server(&ca, Duration::from_secs(3599)).await;
    let form = "application/x-www-form-urlencoded";
    let good = format!(
        "grant_type=client_credentials&client_id=app-1&client_secret=s3cret&scope={}",
        "https%3A%2F%2Foutlook.office365.com%2F.default"
    );
    let path = "/tenant-1/oauth2/v2.0/token";
    let (status, body) = post(&ca, &server, &form_request(path, form, &good)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"token_type\":\"Bearer\"") && body.contains("\"expires_in\":3599"),
        "{body}"
    );
    assert!(
        body.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{body}"
    );
    for (request, status, code) in [
        (
            form_request("/tenant-2/oauth2/v2.0/token", form, &good),
            400,
            "invalid_request",
        ),
        (
            form_request(path, "application/json", &good),
            400,
            "invalid_request",
        ),
        (
            form_request(path, form, &format!("{good}&client_id=app-1")),
            400,
            "invalid_request",
        ),
        (
            form_request(path, form, &good.replace("client_credentials", "password")),
            400,
            "unsupported_grant_type",
        ),
        (
            form_request(path, form, &good.replace("app-1", "app-2")),
            400,
            "unauthorized_client",
        ),
        (
            form_request(path, form, &good.replace("s3cret", "s3cre")),
            401,
            "invalid_client",
        ),
        (
            form_request(path, form, &good.replace("%2F.default", "")),
            400,
            "invalid_scope",
        ),
        (
            form_request(
                path,
                form,
                &good.replace("outlook.office365", "graph.microsoft"),
            ),
            400,
            "invalid_scope",
        ),
        (
            format!("GET {path} HTTP/1.1\r\nHost: {LOGIN}\r\nConnection: close\r\n\r\n"),
            405,
            "invalid_request",
        ),
        (
            form_request(
                path,
                form,
                &format!("{good}&pad={}", "x".repeat(testbed::mail::oauth::MAX_BODY)),
            ),
            413,
            "invalid_request",
        ),
    ] {
        let (got, body) = post(&ca, &server, &request).await;
        assert_eq!(got, status, "{request}: {body}");
        assert!(
            body.contains(&format!("\"error\":\"{code}\"")),
            "{request}: {body}"
        );
    }
    assert_eq!(server.tokens().issued(), 1);
    assert_eq!(server.tokens().refused(), 10);

    // The operator's client gets a token, cached.
    let egress = Egress::new(
        vec![],
        vec![Allowed::parse(&server.addr().to_string()).unwrap()],
    )
    .with_connect_to(vec![
        email_operator::smtp::connect_to::ConnectTo::parse(&format!(
            "{LOGIN}:443:127.0.0.1:{}",
            server.addr().port()
        ))
        .unwrap(),
    ]);
    let source = TokenSource::new(Duration::from_secs(10), egress, Some(ca.pem().as_bytes()))
        .expect("source");
    let grant = ClientCredentials {
        token_url: format!("https://{LOGIN}{path}"),
        client_id: "app-1".into(),
        client_secret: Secret::new("s3cret"),
        scopes: vec![SCOPE.into()],
    };
    let token = source.token(&grant, true).await.expect("token");
    assert_eq!(source.token(&grant, true).await.expect("cached"), token);
    assert_eq!(server.tokens().issued(), 2);
}
