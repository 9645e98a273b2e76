//! The SES SMTP interface stand-in over real sockets and TLS: lettre (a real SMTP client) for
//! whole sends, a raw line client where the case is a protocol step lettre will not take
//! (AUTH before STARTTLS, MAIL before AUTH, SIZE, timeouts). Each rule at its limit and past it.

mod ses_support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use email_operator::smtp::ses_password::smtp_password;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use ses_support::{Control, start};
use testbed::control::AwsTestbed;
use testbed::ses::smtp::{SesSmtp, SesSmtpOptions};

const KEY_ID: &str = "AKIASMTPSTANDIN00001";
const SECRET: &str = "smtp/StandInSecretAccessKey+0123456789abcd";
const SENDER: &str = "billing@yourcompany.com";
const REGION: &str = "us-east-1";

/// Every test is bounded: lettre's timeout covers the connect only (TOOLCHAIN.md).
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("test finished within 60 s")
}

/// The AWS test bed with the key registered through the control API and SENDER verified in
/// us-east-1.
async fn bed() -> (AwsTestbed, Control) {
    let bed = start().await;
    let control = Control::new(bed.control.url());
    let (status, body) = control
        .call(
            reqwest::Method::POST,
            "/ses/smtp-credentials",
            Some(json!({"accessKeyId": KEY_ID, "secretAccessKey": SECRET})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"accessKeyId": KEY_ID}),
        "the secret is not echoed"
    );
    verify(&bed, REGION, SENDER);
    (bed, control)
}

fn verify(bed: &AwsTestbed, region: &str, identity: &str) {
    let state = bed.ses.state();
    testbed::ses::ops::create_email_identity(
        &state,
        region,
        json!({ "EmailIdentity": identity }).to_string().as_bytes(),
    )
    .expect("create identity");
    state
        .confirm_email(identity, Some(region))
        .expect("confirm identity");
}

async fn put_account(control: &Control, change: Value) {
    let (status, body) = control
        .call(reqwest::Method::PUT, "/ses/account", Some(change))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: \"Billing\" <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <m1@yourcompany.com>\r\n\r\nHello.\r\n.hidden line that needs dot-stuffing\r\n"
    )
}

fn tls(bed: &AwsTestbed, server_name: &str) -> TlsParameters {
    TlsParameters::builder(server_name.to_string())
        .add_root_certificate(Certificate::from_pem(bed.ses_smtp.ca_pem().as_bytes()).unwrap())
        .build_rustls()
        .expect("tls parameters")
}

/// lettre over STARTTLS at 127.0.0.1, presenting `server_name` (SNI and certificate check).
fn lettre_client(
    bed: &AwsTestbed,
    server_name: &str,
    password: &str,
) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(bed.ses_smtp.addr().port())
        .tls(Tls::Required(tls(bed, server_name)))
        .credentials(Credentials::new(KEY_ID.into(), password.into()))
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

fn envelope(from: &str, to: &[String]) -> Envelope {
    Envelope::new(
        Some(from.parse().unwrap()),
        to.iter().map(|t| t.parse().unwrap()).collect(),
    )
    .unwrap()
}

/// Sends through lettre; Ok(the 250 text) or Err((code, text)).
async fn send(
    client: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    to: &[&str],
    raw: &str,
) -> Result<String, (String, String)> {
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    client
        .send_raw(&envelope(from, &to), raw.as_bytes())
        .await
        .map(|r| r.message().collect::<Vec<_>>().join(" "))
        .map_err(|e| {
            (
                e.status().map(|c| c.to_string()).unwrap_or_default(),
                e.to_string(),
            )
        })
}

fn outbox(bed: &AwsTestbed) -> Vec<Value> {
    bed.ses
        .state()
        .outbox()
        .into_iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .filter(|m| m["kind"] == "Sent")
        .collect()
}

// --- a raw line client, for protocol steps ---

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Raw {
    io: BufReader<Box<dyn Stream>>,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        Raw {
            io: BufReader::new(Box::new(tcp)),
        }
    }

    /// Reads one (possibly multi-line) reply: (code, lines).
    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.io.read_line(&mut line).await.unwrap();
            assert!(n > 0, "connection closed; replies so far {lines:?}");
            let line = line.trim_end().to_string();
            let code: u16 = line[..3].parse().unwrap();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line[4.min(line.len())..].to_string());
            if last {
                return (code, lines);
            }
        }
    }

    /// Sends a line and reads the reply as "CODE text" (last line).
    async fn cmd(&mut self, line: &str) -> String {
        self.io
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.io.flush().await.unwrap();
        let (code, lines) = self.reply().await;
        format!("{code} {}", lines.last().unwrap())
    }

    async fn starttls(self, ca_pem: &str, name: &str) -> Raw {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(testbed::ses::smtp::tls::ca_der(ca_pem).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let tls = connector
            .connect(name, self.io.into_inner())
            .await
            .expect("TLS handshake");
        Raw {
            io: BufReader::new(Box::new(tls)),
        }
    }

    /// Greeting, EHLO, STARTTLS, EHLO, AUTH PLAIN with the us-east-1 password.
    async fn logged_in(bed: &AwsTestbed) -> Raw {
        let mut raw = Raw::connect(bed.ses_smtp.addr().port()).await;
        assert_eq!(raw.reply().await.0, 220);
        assert_eq!(raw.cmd("EHLO client.example").await, "250 Ok");
        assert_eq!(raw.cmd("STARTTLS").await, "220 Ready to start TLS");
        let mut raw = raw.starttls(bed.ses_smtp.ca_pem(), "localhost").await;
        assert_eq!(raw.cmd("EHLO client.example").await, "250 Ok");
        let plain = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{KEY_ID}\0{}", smtp_password(SECRET, REGION)));
        assert_eq!(
            raw.cmd(&format!("AUTH PLAIN {plain}")).await,
            "235 Authentication successful."
        );
        raw
    }

    /// DATA with `text` (already dot-stuffed, CRLF lines) → the final reply.
    async fn data(&mut self, text: &str) -> String {
        assert_eq!(
            self.cmd("DATA").await,
            "354 End data with <CR><LF>.<CR><LF>"
        );
        self.cmd(&format!("{text}.")).await
    }
}

#[tokio::test]
async fn a_verified_sender_is_accepted_and_the_message_is_in_the_outbox() {
    bounded(async {
        let (bed, _control) = bed().await;
        let client = lettre_client(&bed, "localhost", &smtp_password(SECRET, REGION));
        let raw = message(SENDER, "someone@example.org", "Monthly invoice");
        let ok = send(&client, SENDER, &["someone@example.org"], &raw)
            .await
            .expect("accepted");
        // "250 Ok <message-id>", the id in SES's format.
        let id = ok.strip_prefix("Ok ").expect("250 Ok <id>");
        assert!(
            id.ends_with("-000000") && id.split('-').count() == 6,
            "{id}"
        );

        let sent = outbox(&bed);
        assert_eq!(sent.len(), 1);
        let m = &sent[0];
        assert_eq!(m["messageId"], id);
        assert_eq!(m["contentType"], "Smtp");
        assert_eq!(m["region"], REGION);
        assert_eq!(m["from"], SENDER);
        assert_eq!(m["to"], json!(["someone@example.org"]));
        assert_eq!(m["subject"], "Monthly invoice");
        let text = m["raw"].as_str().expect("raw text");
        assert!(
            text.contains("Message-ID: <m1@yourcompany.com>\r\n"),
            "{text}"
        );
        // lettre dot-stuffed the line; the stand-in un-stuffed it.
        assert!(
            text.contains("\r\n.hidden line that needs dot-stuffing\r\n"),
            "{text}"
        );
        assert!(!text.contains("..hidden"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn auth_login_over_implicit_tls_works_too() {
    bounded(async {
        let (bed, _control) = bed().await;
        let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(bed.ses_smtp.implicit_tls_addr().unwrap().port())
            .tls(Tls::Wrapper(tls(&bed, "localhost")))
            .credentials(Credentials::new(
                KEY_ID.into(),
                smtp_password(SECRET, REGION),
            ))
            .authentication(vec![Mechanism::Login])
            .timeout(Some(Duration::from_secs(10)))
            .build();
        assert!(client.test_connection().await.expect("login"));
        let raw = message(SENDER, "someone@example.org", "Over 465");
        send(&client, SENDER, &["someone@example.org"], &raw)
            .await
            .expect("accepted");
        assert_eq!(outbox(&bed).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_unverified_sender_is_refused_at_the_end_of_data_with_ses_text() {
    bounded(async {
        let (bed, _control) = bed().await;
        let mut raw = Raw::logged_in(&bed).await;
        // SES takes the envelope and answers only after the data.
        assert_eq!(raw.cmd("MAIL FROM:<nobody@unverified.example>").await, "250 Ok");
        assert_eq!(raw.cmd("RCPT TO:<someone@example.org>").await, "250 Ok");
        let reply = raw
            .data(&message("nobody@unverified.example", "someone@example.org", "x"))
            .await;
        assert_eq!(
            reply,
            "554 Message rejected: Email address is not verified. The following identities failed the check in region US-EAST-1: nobody@unverified.example"
        );
        // A verified envelope sender with an unverified From header: the header is named.
        assert_eq!(raw.cmd(&format!("MAIL FROM:<{SENDER}>")).await, "250 Ok");
        assert_eq!(raw.cmd("RCPT TO:<someone@example.org>").await, "250 Ok");
        let reply = raw
            .data(&message("spoof@elsewhere.example", "someone@example.org", "x"))
            .await;
        assert!(
            reply.ends_with("failed the check in region US-EAST-1: spoof@elsewhere.example"),
            "{reply}"
        );
        // No From header at all.
        assert_eq!(raw.cmd(&format!("MAIL FROM:<{SENDER}>")).await, "250 Ok");
        assert_eq!(raw.cmd("RCPT TO:<someone@example.org>").await, "250 Ok");
        assert_eq!(
            raw.data("Subject: no from\r\n\r\nbody\r\n").await,
            "554 Transaction failed: Missing required header 'From'."
        );
        assert!(outbox(&bed).is_empty());
        assert_eq!(raw.cmd("QUIT").await, "221 Bye");
    })
    .await;
}

#[tokio::test]
async fn the_sandbox_refuses_unverified_recipients_and_takes_the_simulator() {
    bounded(async {
        let (bed, control) = bed().await;
        put_account(
            &control,
            json!({"region": REGION, "productionAccessEnabled": false}),
        )
        .await;
        let client = lettre_client(&bed, "localhost", &smtp_password(SECRET, REGION));
        let (code, text) = send(
            &client,
            SENDER,
            &["stranger@example.org"],
            &message(SENDER, "stranger@example.org", "x"),
        )
        .await
        .expect_err("refused in the sandbox");
        assert_eq!(code, "554");
        assert!(
            text.contains("Email address is not verified. The following identities failed the check in region US-EAST-1: stranger@example.org"),
            "{text}"
        );
        // The refused send took none of the sandbox's 1 message a second; the simulator's
        // recipients take none either.
        let bounce = "bounce@simulator.amazonses.com";
        send(&client, SENDER, &[bounce], &message(SENDER, bounce, "sim"))
            .await
            .expect("simulator accepted in the sandbox");
        // A verified recipient is accepted too.
        verify(&bed, REGION, "friend@example.org");
        send(
            &client,
            SENDER,
            &["friend@example.org"],
            &message(SENDER, "friend@example.org", "y"),
        )
        .await
        .expect("verified recipient accepted");
        let sent = outbox(&bed);
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0]["simulated"],
            json!([{"recipient": bounce, "outcome": "Bounce"}])
        );
        assert!(sent[1].get("simulated").is_none());
    })
    .await;
}

#[tokio::test]
async fn a_shut_down_or_paused_account_is_refused() {
    bounded(async {
        let (bed, control) = bed().await;
        let client = lettre_client(&bed, "localhost", &smtp_password(SECRET, REGION));
        let raw = message(SENDER, "someone@example.org", "x");
        put_account(
            &control,
            json!({"region": REGION, "enforcementStatus": "SHUTDOWN"}),
        )
        .await;
        let (code, text) = send(&client, SENDER, &["someone@example.org"], &raw)
            .await
            .expect_err("shut down");
        assert_eq!(code, "554");
        assert!(
            text.contains("Message rejected: Sending suspended for this account."),
            "{text}"
        );
        put_account(
            &control,
            json!({"region": REGION, "enforcementStatus": "PROBATION", "sendingEnabled": false}),
        )
        .await;
        let (code, text) = send(&client, SENDER, &["someone@example.org"], &raw)
            .await
            .expect_err("paused");
        assert_eq!(code, "554");
        assert!(
            text.contains("Message rejected: Sending paused for this account."),
            "{text}"
        );
        put_account(&control, json!({"region": REGION, "sendingEnabled": true})).await;
        send(&client, SENDER, &["someone@example.org"], &raw)
            .await
            .expect("probation still sends");
    })
    .await;
}

#[tokio::test]
async fn bad_credentials_are_535_and_a_password_is_good_in_its_own_region_only() {
    bounded(async {
        let (bed, _control) = bed().await;
        let wrong = lettre_client(&bed, "localhost", "not-the-password");
        let error = wrong.test_connection().await.expect_err("535");
        assert_eq!(
            error.status().map(|c| c.to_string()).as_deref(),
            Some("535")
        );
        assert!(
            error
                .to_string()
                .contains("Authentication Credentials Invalid"),
            "{error}"
        );
        // The secret access key itself is not the SMTP password.
        let secret = lettre_client(&bed, "localhost", SECRET);
        assert!(secret.test_connection().await.is_err());

        // At us-east-1's endpoint (TLS server name), eu-west-1's password is refused.
        let eu_password = smtp_password(SECRET, "eu-west-1");
        let at_east = lettre_client(&bed, "email-smtp.us-east-1.amazonaws.com", &eu_password);
        let error = at_east.test_connection().await.expect_err("535");
        assert_eq!(
            error.status().map(|c| c.to_string()).as_deref(),
            Some("535")
        );
        let at_west = lettre_client(&bed, "email-smtp.eu-west-1.amazonaws.com", &eu_password);
        assert!(at_west.test_connection().await.expect("eu-west-1 login"));

        // Through `localhost` the session is eu-west-1's: the sender verified only in
        // us-east-1 fails the check there.
        let via_localhost = lettre_client(&bed, "localhost", &eu_password);
        let (code, text) = send(
            &via_localhost,
            SENDER,
            &["someone@example.org"],
            &message(SENDER, "someone@example.org", "x"),
        )
        .await
        .expect_err("unverified in eu-west-1");
        assert_eq!(code, "554");
        assert!(
            text.contains(&format!("in region EU-WEST-1: {SENDER}")),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn auth_needs_starttls_and_mail_needs_auth() {
    bounded(async {
        let (bed, _control) = bed().await;
        let mut raw = Raw::connect(bed.ses_smtp.addr().port()).await;
        let (code, greeting) = raw.reply().await;
        assert_eq!(code, 220);
        assert!(
            greeting[0].starts_with("email-smtp.amazonaws.com ESMTP SimpleEmailService"),
            "{greeting:?}"
        );
        assert_eq!(
            raw.cmd("MAIL FROM:<a@example.com>").await,
            "530 Authentication required"
        );
        assert_eq!(raw.cmd("STARTTLS").await, "503 Bad sequence of commands");
        raw.io.write_all(b"EHLO client.example\r\n").await.unwrap();
        let (code, ehlo) = raw.reply().await;
        assert_eq!(code, 250);
        assert_eq!(
            ehlo,
            [
                "email-smtp.amazonaws.com",
                "8BITMIME",
                "SIZE 41943040",
                "STARTTLS",
                "AUTH PLAIN LOGIN",
                "Ok"
            ]
        );
        let plain = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{KEY_ID}\0{}", smtp_password(SECRET, REGION)));
        assert_eq!(
            raw.cmd(&format!("AUTH PLAIN {plain}")).await,
            "530 Must issue a STARTTLS command first"
        );
        assert_eq!(
            raw.cmd("AUTH LOGIN").await,
            "530 Must issue a STARTTLS command first"
        );
        assert_eq!(
            raw.cmd("MAIL FROM:<a@example.com>").await,
            "530 Authentication required"
        );
        assert_eq!(raw.cmd("STARTTLS").await, "220 Ready to start TLS");
        let mut raw = raw.starttls(bed.ses_smtp.ca_pem(), "localhost").await;
        // After TLS the client starts over: EHLO first, and no STARTTLS on offer.
        assert_eq!(raw.cmd("AUTH LOGIN").await, "503 Bad sequence of commands");
        raw.io.write_all(b"EHLO client.example\r\n").await.unwrap();
        let (_, ehlo) = raw.reply().await;
        assert!(!ehlo.contains(&"STARTTLS".to_string()), "{ehlo:?}");
        assert_eq!(
            raw.cmd("MAIL FROM:<a@example.com>").await,
            "530 Authentication required"
        );
        assert_eq!(
            raw.cmd("AUTH CRAM-MD5").await,
            "504 Unrecognized authentication type"
        );
        // AUTH LOGIN step by step; "*" cancels.
        assert_eq!(raw.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
        assert_eq!(raw.cmd("*").await, "501 Authentication cancelled");
        assert_eq!(raw.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(raw.cmd(&b64(KEY_ID)).await, "334 UGFzc3dvcmQ6");
        assert_eq!(
            raw.cmd(&b64(&smtp_password(SECRET, REGION))).await,
            "235 Authentication successful."
        );
        assert_eq!(raw.cmd("AUTH LOGIN").await, "503 Bad sequence of commands");
        // Out of order once logged in.
        assert_eq!(
            raw.cmd("RCPT TO:<a@example.com>").await,
            "503 Bad sequence of commands"
        );
        assert_eq!(raw.cmd("DATA").await, "503 Bad sequence of commands");
        assert_eq!(
            raw.cmd("MAIL FROM:<not an address>").await,
            "501 Invalid MAIL FROM address provided"
        );
        assert_eq!(raw.cmd(&format!("MAIL FROM:<{SENDER}>")).await, "250 Ok");
        assert_eq!(
            raw.cmd(&format!("MAIL FROM:<{SENDER}>")).await,
            "503 Bad sequence of commands"
        );
        assert_eq!(raw.cmd("DATA").await, "503 Bad sequence of commands");
        assert_eq!(
            raw.cmd("RCPT TO:<nobody>").await,
            "501 Invalid RCPT TO address provided"
        );
        assert_eq!(raw.cmd("RSET").await, "250 Ok");
        assert_eq!(
            raw.cmd("RCPT TO:<a@example.com>").await,
            "503 Bad sequence of commands"
        );
        assert_eq!(raw.cmd("NOOP").await, "250 Ok");
        assert_eq!(
            raw.cmd("VRFY a@example.com").await,
            "502 Command not implemented"
        );
        assert_eq!(raw.cmd("FROB").await, "500 Unrecognized command");
        assert_eq!(raw.cmd("QUIT").await, "221 Bye");
    })
    .await;
}

#[tokio::test]
async fn fifty_recipients_are_accepted_and_a_fifty_first_is_refused() {
    bounded(async {
        let (bed, _control) = bed().await;
        let client = lettre_client(&bed, "localhost", &smtp_password(SECRET, REGION));
        let fifty: Vec<String> = (0..50).map(|i| format!("r{i}@example.org")).collect();
        let refs: Vec<&str> = fifty.iter().map(String::as_str).collect();
        let raw = message(SENDER, "list@example.org", "fifty");
        send(&client, SENDER, &refs, &raw)
            .await
            .expect("50 accepted");
        assert_eq!(outbox(&bed)[0]["to"].as_array().unwrap().len(), 50);

        let mut raw_client = Raw::logged_in(&bed).await;
        assert_eq!(
            raw_client.cmd(&format!("MAIL FROM:<{SENDER}>")).await,
            "250 Ok"
        );
        for r in &fifty {
            assert_eq!(raw_client.cmd(&format!("RCPT TO:<{r}>")).await, "250 Ok");
        }
        assert_eq!(
            raw_client.cmd("RCPT TO:<r50@example.org>").await,
            "452 Too many recipients"
        );
        // lettre sees the same refusal.
        let mut fifty_one = refs.clone();
        fifty_one.push("r50@example.org");
        let (code, _) = send(&client, SENDER, &fifty_one, &raw)
            .await
            .expect_err("51 refused");
        assert_eq!(code, "452");
        assert_eq!(outbox(&bed).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_daily_quota_counts_recipients_but_not_the_simulator() {
    bounded(async {
        let (bed, control) = bed().await;
        put_account(&control, json!({"region": REGION, "max24HourSend": 3})).await;
        let client = lettre_client(&bed, "localhost", &smtp_password(SECRET, REGION));
        let raw = message(SENDER, "a@example.org", "quota");
        // Two recipients, then one: exactly the quota of three.
        send(&client, SENDER, &["a@example.org", "b@example.org"], &raw)
            .await
            .expect("2 of 3");
        // A message that would go past the quota is refused whole.
        let (code, text) = send(&client, SENDER, &["c@example.org", "d@example.org"], &raw)
            .await
            .expect_err("4 of 3");
        assert_eq!(code, "454");
        assert!(
            text.contains("Throttling failure: Daily message quota exceeded."),
            "{text}"
        );
        send(&client, SENDER, &["c@example.org"], &raw)
            .await
            .expect("3 of 3");
        let (code, _) = send(&client, SENDER, &["d@example.org"], &raw)
            .await
            .expect_err("past the quota");
        assert_eq!(code, "454");
        // The mailbox simulator does not count: still accepted with the quota used up.
        for sim in [
            "success@simulator.amazonses.com",
            "ooto@simulator.amazonses.com",
        ] {
            send(&client, SENDER, &[sim], &raw)
                .await
                .expect("simulator not counted");
        }
        // 24 hours later (stand-in clock) the window has rolled.
        control.advance_hours(24).await;
        send(&client, SENDER, &["d@example.org"], &raw)
            .await
            .expect("a new day");
    })
    .await;
}

#[tokio::test]
async fn the_maximum_send_rate_is_enforced_per_region() {
    bounded(async {
        let (bed, control) = bed().await;
        put_account(&control, json!({"region": REGION, "maxSendRate": 1})).await;
        let client = lettre_client(&bed, "localhost", &smtp_password(SECRET, REGION));
        let raw = message(SENDER, "a@example.org", "rate");
        send(&client, SENDER, &["a@example.org"], &raw)
            .await
            .expect("first within the rate");
        let (code, text) = send(&client, SENDER, &["b@example.org"], &raw)
            .await
            .expect_err("second in the same second");
        assert_eq!(code, "454");
        assert!(
            text.contains("Throttling failure: Maximum sending rate exceeded."),
            "{text}"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        send(&client, SENDER, &["b@example.org"], &raw)
            .await
            .expect("a second later");
    })
    .await;
}

#[tokio::test]
async fn message_size_at_the_limit_and_past_it() {
    bounded(async {
        let (bed, _control) = bed().await;
        // SES's 40 MB, declared with SIZE (RFC 1870) on the shipped server.
        let mut raw = Raw::logged_in(&bed).await;
        assert_eq!(
            raw.cmd(&format!("MAIL FROM:<{SENDER}> SIZE=41943041"))
                .await,
            "552 Message is too long."
        );
        assert_eq!(
            raw.cmd(&format!("MAIL FROM:<{SENDER}> SIZE=41943040 BODY=8BITMIME"))
                .await,
            "250 Ok"
        );
        assert_eq!(raw.cmd("RSET").await, "250 Ok");

        // The data itself, against a server with a small limit on the same SES state.
        let limit = 4096;
        let small = SesSmtp::start(
            bed.ses.state(),
            SesSmtpOptions {
                max_message_bytes: limit,
                ..SesSmtpOptions::default()
            },
        )
        .await
        .unwrap();
        let head = message(SENDER, "a@example.org", "size");
        let exact = |n: usize| {
            // head + filler line + CRLF == n bytes as stored.
            let filler = n - head.len() - 2;
            format!("{head}{}\r\n", "x".repeat(filler))
        };
        for (size, expect) in [(limit, "250 Ok"), (limit + 1, "552 Message is too long.")] {
            let mut raw = Raw::connect(small.addr().port()).await;
            raw.reply().await;
            raw.cmd("EHLO c.example").await;
            raw.cmd("STARTTLS").await;
            let mut raw = raw.starttls(small.ca_pem(), "localhost").await;
            raw.cmd("EHLO c.example").await;
            let plain = base64::engine::general_purpose::STANDARD
                .encode(format!("\0{KEY_ID}\0{}", smtp_password(SECRET, REGION)));
            raw.cmd(&format!("AUTH PLAIN {plain}")).await;
            raw.cmd(&format!("MAIL FROM:<{SENDER}>")).await;
            raw.cmd("RCPT TO:<a@example.org>").await;
            // `head` has a dot-stuffed line already counted unstuffed: stuff it on the wire.
            let wire = exact(size).replace("\r\n.hidden", "\r\n..hidden");
            let reply = raw.data(&wire).await;
            assert!(reply.starts_with(expect), "{size} bytes: {reply}");
        }
        assert_eq!(outbox(&bed).len(), 1);
        assert_eq!(
            outbox(&bed)[0]["raw"].as_str().unwrap().len(),
            limit,
            "stored as received, unstuffed"
        );
    })
    .await;
}

#[tokio::test]
async fn an_idle_client_is_told_451_and_disconnected() {
    bounded(async {
        let (bed, _control) = bed().await;
        let quick = SesSmtp::start(
            bed.ses.state(),
            SesSmtpOptions {
                idle_timeout: Duration::from_millis(300),
                ..SesSmtpOptions::default()
            },
        )
        .await
        .unwrap();
        let mut raw = Raw::connect(quick.addr().port()).await;
        assert_eq!(raw.reply().await.0, 220);
        let (code, text) = raw.reply().await;
        assert_eq!(
            (code, text[0].as_str()),
            (451, "4.4.2 Timeout waiting for data from client.")
        );
        let mut rest = String::new();
        assert_eq!(raw.io.read_line(&mut rest).await.unwrap(), 0, "closed");
    })
    .await;
}

#[tokio::test]
async fn the_control_api_refuses_malformed_keys_and_the_ca_file_is_written() {
    bounded(async {
        let (bed, control) = bed().await;
        for body in [
            json!({"accessKeyId": "short", "secretAccessKey": "s"}),
            json!({"accessKeyId": KEY_ID, "secretAccessKey": ""}),
            json!({"accessKeyId": KEY_ID}),
        ] {
            let (status, _) = control
                .call(reqwest::Method::POST, "/ses/smtp-credentials", Some(body))
                .await;
            assert!(status == 400 || status == 422, "{status}");
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let server = SesSmtp::start(
            bed.ses.state(),
            SesSmtpOptions {
                ca_file: Some(ca.clone()),
                implicit_tls_addr: None,
                ..SesSmtpOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&ca).unwrap(), server.ca_pem());
        assert_eq!(server.implicit_tls_addr(), None);
        assert_eq!(
            server.endpoint(),
            format!("localhost:{}", server.addr().port())
        );
    })
    .await;
}

#[tokio::test]
async fn the_env_file_points_at_the_smtp_stand_in_and_its_ca() {
    bounded(async {
        let (bed, _control) = bed().await;
        let dir = tempfile::tempdir().unwrap();
        let env = testbed::demo::write_env(dir.path(), &bed, REGION, &dir.path().join("kc"))
            .expect("env written");
        let text = std::fs::read_to_string(env).unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}='")))
                .map(|v| v.trim_end_matches('\'').to_string())
                .unwrap_or_else(|| panic!("{name} missing from {text}"))
        };
        assert_eq!(
            value("TESTBED_SES_SMTP_ENDPOINT"),
            format!("localhost:{}", bed.ses_smtp.addr().port())
        );
        assert_eq!(
            value("TESTBED_SES_SMTPS_ENDPOINT"),
            format!(
                "localhost:{}",
                bed.ses_smtp.implicit_tls_addr().unwrap().port()
            )
        );
        let ca = value("TESTBED_SES_SMTP_CA");
        assert!(std::path::Path::new(&ca).is_absolute());
        assert_eq!(std::fs::read_to_string(&ca).unwrap(), bed.ses_smtp.ca_pem());
        // What the env names works: lettre at localhost:PORT trusting that CA file.
        let pem = std::fs::read(&ca).unwrap();
        let client: AsyncSmtpTransport<Tokio1Executor> =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost")
                .port(bed.ses_smtp.addr().port())
                .tls(Tls::Required(
                    TlsParameters::builder("localhost".into())
                        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
                        .build_rustls()
                        .unwrap(),
                ))
                .credentials(Credentials::new(
                    KEY_ID.into(),
                    smtp_password(SECRET, REGION),
                ))
                .timeout(Some(Duration::from_secs(10)))
                .build();
        assert!(client.test_connection().await.expect("login"));
    })
    .await;
}

/// The operator's own connection test (the client AdvancedSmtp uses) passes against the
/// stand-in with the derived password and is told "bad credentials" without it.
#[tokio::test]
async fn the_operators_connection_test_logs_in() {
    use email_operator::smtp::{Auth, ConnectionPath, Failure, Prober, Secret, SmtpProber, Target};
    bounded(async {
        let (bed, _control) = bed().await;
        let target = |password: String| Target {
            host: "localhost".into(),
            port: bed.ses_smtp.addr().port(),
            implicit_tls: None,
            start_tls: true,
            auth: Some(Auth::Password {
                username: KEY_ID.into(),
                password: Secret::new(password),
            }),
            from: SENDER.into(),
            ca_bundle_pem: Some(bed.ses_smtp.ca_pem().as_bytes().to_vec()),
            restricted: false,
        };
        let prober = SmtpProber::default();
        let outcome = prober
            .probe(&target(smtp_password(SECRET, "eu-west-1")))
            .await
            .expect("the operator's test passes");
        assert_eq!(outcome.path, ConnectionPath::StartTls);
        let failure = prober
            .probe(&target(SECRET.into()))
            .await
            .expect_err("the secret is not the password");
        assert!(matches!(failure, Failure::BadCredentials(_)), "{failure:?}");
    })
    .await;
}
