//! One SMTP connection to the SES SMTP stand-in: the command state machine.
//!
//! What SES answers, and where it is written (SES Developer Guide "SMTP response codes returned
//! by Amazon SES" unless said otherwise; wording of greeting, EHLO and AUTH replies from public
//! transcripts of `email-smtp.*.amazonaws.com` sessions):
//! * greeting `220 email-smtp.amazonaws.com ESMTP SimpleEmailService-…`; EHLO lists
//!   `8BITMIME`, `SIZE`, `STARTTLS` (before TLS only) and `AUTH PLAIN LOGIN`, ending `250 Ok`.
//! * Every connection must be encrypted ("Connecting to an Amazon SES SMTP endpoint"): AUTH
//!   before STARTTLS → `530 Must issue a STARTTLS command first`.
//! * MAIL FROM before a successful AUTH → `530 Authentication required`; bad credentials →
//!   `535 Authentication Credentials Invalid`; success → `235 Authentication successful.`
//! * Malformed addresses → `501 Invalid MAIL FROM address provided` / `501 Invalid RCPT TO
//!   address provided` (AWS Knowledge Center, "SES 501 errors on the SMTP endpoint").
//! * More than 50 RCPT TO → `452 Too many recipients` (the limit is SES's, "Service quotas";
//!   SES does not document its reply, so the code and text are RFC 5321 §4.5.3.1.10's).
//! * Idle for 10 seconds → `451 4.4.2 Timeout waiting for data from client.` and the
//!   connection closes ("Testing your connection … the connection automatically closes after
//!   about 10 seconds of inactivity").
//! * Commands out of order → `503 Bad sequence of commands` (RFC 5321 §4.3.2); unknown
//!   commands `500`, unsupported ones `502`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::credentials::region_of_server_name;
use super::reply::Reply;
use super::rules::{self, MAX_RECIPIENTS, SendRate, Submission};
use crate::ses::SesState;

/// The longest command line accepted (RFC 5321 §4.5.3.1.4: 512 octets; AUTH lines are longer).
const MAX_COMMAND: usize = 2048;
const HOST: &str = "email-smtp.amazonaws.com";

/// What every connection shares.
pub(super) struct Shared {
    pub state: Arc<SesState>,
    pub rate: SendRate,
    pub tls: tokio_rustls::TlsAcceptor,
    pub idle: Duration,
    pub max_bytes: usize,
}

#[derive(Default)]
struct Session {
    tls: bool,
    /// The region named by the TLS server name, when the client named a regional endpoint.
    sni_region: Option<&'static str>,
    greeted: bool,
    /// The region of the authenticated session.
    region: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }
}

/// One command line read, or why there is none.
pub(crate) enum Line {
    Text(String),
    TooLong,
    Eof,
    Timeout,
}

/// Serves one connection to its end.
pub(super) async fn serve(shared: Arc<Shared>, tcp: TcpStream, implicit_tls: bool) {
    let result = async {
        let mut session = Session::default();
        if implicit_tls {
            let tls = accept_tls(&shared.tls, tcp, shared.idle).await?;
            start_tls(&mut session, &tls);
            run(&shared, &mut session, tls, true).await?;
        } else if let Some(tcp) = run(&shared, &mut session, tcp, true).await? {
            let tls = accept_tls(&shared.tls, tcp, shared.idle).await?;
            start_tls(&mut session, &tls);
            run(&shared, &mut session, tls, false).await?;
        }
        Ok::<_, io::Error>(())
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(%error, "ses smtp connection ended");
    }
}

/// The server side of a TLS handshake, given up after `idle` (a client that connects and says
/// nothing must not hold a task forever). Also the demo's mail servers'.
pub(crate) async fn accept_tls(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    idle: Duration,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(idle, acceptor.accept(tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// RFC 3207 §4.2: after TLS the client starts over with EHLO; nothing said before counts.
fn start_tls(session: &mut Session, tls: &tokio_rustls::server::TlsStream<TcpStream>) {
    *session = Session {
        tls: true,
        sni_region: tls
            .get_ref()
            .1
            .server_name()
            .and_then(region_of_server_name),
        ..Session::default()
    };
}

fn greeting() -> Reply {
    let token = crate::random_text(20);
    Reply::new(
        220,
        format!("{HOST} ESMTP SimpleEmailService-d-TESTBED00 {token}"),
    )
}

/// Writes one reply and flushes it.
pub(crate) async fn send<S: AsyncWrite + Unpin>(io: &mut S, reply: &Reply) -> io::Result<()> {
    io.write_all(reply.wire().as_bytes()).await?;
    io.flush().await
}

/// Reads one line (without its CRLF) within the idle timeout, at most `max` bytes.
pub(crate) async fn read_line<S: AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    idle: Duration,
    max: usize,
) -> io::Result<Line> {
    let read = async {
        let mut out = Vec::new();
        let mut overflow = false;
        loop {
            let buf = io.fill_buf().await?;
            if buf.is_empty() {
                return Ok(Line::Eof);
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if !overflow {
                if out.len() + take > max + 2 {
                    overflow = true;
                    out = Vec::new();
                } else {
                    out.extend_from_slice(&buf[..take]);
                }
            }
            io.consume(take);
            if done {
                break;
            }
        }
        if overflow {
            return Ok(Line::TooLong);
        }
        while matches!(out.last(), Some(b'\n' | b'\r')) {
            out.pop();
        }
        Ok(Line::Text(String::from_utf8_lossy(&out).into_owned()))
    };
    match tokio::time::timeout(idle, read).await {
        Ok(result) => result,
        Err(_) => Ok(Line::Timeout),
    }
}

fn timeout_reply() -> Reply {
    Reply::new(451, "4.4.2 Timeout waiting for data from client.")
}

fn bad_sequence() -> Reply {
    Reply::new(503, "Bad sequence of commands")
}

/// Runs commands until the client quits or asks for STARTTLS (then the stream is handed back
/// for the handshake; whatever the client pipelined after STARTTLS is discarded with the
/// buffer, as RFC 3207 §4.2 requires).
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    session: &mut Session,
    stream: S,
    greet: bool,
) -> io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if greet {
        send(&mut io, &greeting()).await?;
    }
    loop {
        let line = match read_line(&mut io, shared.idle, MAX_COMMAND).await? {
            Line::Text(line) => line,
            Line::TooLong => {
                send(&mut io, &Reply::new(500, "Line too long")).await?;
                continue;
            }
            Line::Timeout => {
                send(&mut io, &timeout_reply()).await?;
                return Ok(None);
            }
            Line::Eof => return Ok(None),
        };
        let (verb, arg) = command(&line);
        let reply = match verb.as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                Reply::new(501, "Syntax error in parameters or arguments")
            }
            "EHLO" => {
                session.greeted = true;
                session.reset_transaction();
                let mut lines = vec![
                    HOST.to_string(),
                    "8BITMIME".to_string(),
                    format!("SIZE {}", shared.max_bytes),
                ];
                if !session.tls {
                    lines.push("STARTTLS".into());
                }
                lines.extend(["AUTH PLAIN LOGIN".to_string(), "Ok".to_string()]);
                Reply::multi(250, lines)
            }
            "HELO" => {
                session.greeted = true;
                session.reset_transaction();
                Reply::new(250, HOST)
            }
            "STARTTLS" if session.tls || !session.greeted => bad_sequence(),
            "STARTTLS" if !arg.is_empty() => {
                Reply::new(501, "Syntax error in parameters or arguments")
            }
            "STARTTLS" => {
                send(&mut io, &Reply::new(220, "Ready to start TLS")).await?;
                return Ok(Some(io.into_inner()));
            }
            "AUTH" => match auth(shared, session, &mut io, &arg).await? {
                Some(reply) => reply,
                None => return Ok(None),
            },
            "MAIL" => mail(shared, session, &arg),
            "RCPT" => rcpt(session, &arg),
            "DATA" => match data(shared, session, &mut io, &arg).await? {
                Some(reply) => reply,
                None => return Ok(None),
            },
            "RSET" => {
                session.reset_transaction();
                Reply::new(250, "Ok")
            }
            "NOOP" => Reply::new(250, "Ok"),
            "QUIT" => {
                send(&mut io, &Reply::new(221, "Bye")).await?;
                let _ = io.shutdown().await;
                return Ok(None);
            }
            "VRFY" | "EXPN" | "HELP" | "TURN" | "ETRN" | "BDAT" => {
                Reply::new(502, "Command not implemented")
            }
            _ => Reply::new(500, "Unrecognized command"),
        };
        send(&mut io, &reply).await?;
    }
}

/// Base64 text decoded to UTF-8, if it is both.
/// A command line as (verb in upper case, its argument trimmed; empty when there is none).
pub(crate) fn command(line: &str) -> (String, String) {
    match line.split_once(' ') {
        Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim().to_string()),
        None => (line.trim().to_ascii_uppercase(), String::new()),
    }
}

/// AUTH's argument as (mechanism in upper case, the initial response when one is given).
pub(crate) fn mechanism(arg: &str) -> (String, Option<String>) {
    match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_string())),
        None => (arg.to_ascii_uppercase(), None),
    }
}

pub(crate) fn b64(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Reads one AUTH continuation line; None when the connection ended.
async fn continuation<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    io: &mut BufReader<S>,
    challenge: &str,
) -> io::Result<Result<String, Option<Reply>>> {
    send(io, &Reply::new(334, challenge)).await?;
    Ok(match read_line(io, shared.idle, MAX_COMMAND).await? {
        Line::Text(line) if line.trim() == "*" => {
            Err(Some(Reply::new(501, "Authentication cancelled")))
        }
        Line::Text(line) => Ok(line),
        Line::TooLong => Err(Some(Reply::new(500, "Line too long"))),
        Line::Timeout => {
            send(io, &timeout_reply()).await?;
            Err(None)
        }
        Line::Eof => Err(None),
    })
}

/// AUTH PLAIN (RFC 4616) and AUTH LOGIN. None: the connection is over.
async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    session: &mut Session,
    io: &mut BufReader<S>,
    arg: &str,
) -> io::Result<Option<Reply>> {
    if !session.tls {
        return Ok(Some(Reply::new(530, "Must issue a STARTTLS command first")));
    }
    if !session.greeted || session.region.is_some() {
        return Ok(Some(bad_sequence()));
    }
    let (mechanism, initial) = mechanism(arg);
    let invalid_base64 = || Some(Reply::new(501, "Invalid base64 data"));
    let (username, password) = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(i) if i == "=" => String::new(),
                Some(i) => i,
                None => match continuation(shared, io, "").await? {
                    Ok(line) => line,
                    Err(reply) => return Ok(reply),
                },
            };
            let Some(decoded) = b64(&response) else {
                return Ok(invalid_base64());
            };
            let parts: Vec<&str> = decoded.split('\0').collect();
            let [authzid, user, pass] = parts.as_slice() else {
                return Ok(Some(Reply::new(535, "Authentication Credentials Invalid")));
            };
            if !authzid.is_empty() && authzid != user {
                return Ok(Some(Reply::new(535, "Authentication Credentials Invalid")));
            }
            (user.to_string(), pass.to_string())
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => i,
                None => match continuation(shared, io, "VXNlcm5hbWU6").await? {
                    Ok(line) => line,
                    Err(reply) => return Ok(reply),
                },
            };
            let Some(user) = b64(&user) else {
                return Ok(invalid_base64());
            };
            let pass = match continuation(shared, io, "UGFzc3dvcmQ6").await? {
                Ok(line) => line,
                Err(reply) => return Ok(reply),
            };
            let Some(pass) = b64(&pass) else {
                return Ok(invalid_base64());
            };
            (user, pass)
        }
        _ => return Ok(Some(Reply::new(504, "Unrecognized authentication type"))),
    };
    let region =
        shared
            .state
            .smtp_credentials
            .authenticate(&username, &password, session.sni_region);
    Ok(Some(match region {
        Some(region) => {
            tracing::debug!(%region, "ses smtp login");
            session.region = Some(region);
            Reply::new(235, "Authentication successful.")
        }
        None => Reply::new(535, "Authentication Credentials Invalid"),
    }))
}

/// A plausible mailbox: `local@domain.tld`, no spaces or brackets.
pub(crate) fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
}

/// `FROM:<a> params` / `TO:<a> params` → (address, params); SES also takes a bare address.
pub(crate) fn path<'a>(arg: &'a str, prefix: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let (address, params) = match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>')?,
        None => rest.split_once(' ').unwrap_or((rest, "")),
    };
    Some((address.trim(), params.split_whitespace().collect()))
}

fn mail(shared: &Shared, session: &mut Session, arg: &str) -> Reply {
    if session.region.is_none() {
        return Reply::new(530, "Authentication required");
    }
    if session.mail_from.is_some() {
        return bad_sequence();
    }
    let Some((address, params)) = path(arg, "FROM:").filter(|(a, _)| valid_address(a)) else {
        return Reply::new(501, "Invalid MAIL FROM address provided");
    };
    for param in params {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            // RFC 1870: a declared size over the limit is refused before any data is sent.
            "SIZE" => match value.parse::<u64>() {
                Ok(size) if size > shared.max_bytes as u64 => {
                    return Reply::new(552, "Message is too long.");
                }
                Ok(_) => {}
                Err(_) => return Reply::new(501, "Syntax error in parameters or arguments"),
            },
            "BODY" if matches!(value.to_ascii_uppercase().as_str(), "7BIT" | "8BITMIME") => {}
            _ => return Reply::new(555, "Unsupported parameter"),
        }
    }
    session.mail_from = Some(address.to_string());
    Reply::new(250, "Ok")
}

fn rcpt(session: &mut Session, arg: &str) -> Reply {
    if session.region.is_none() {
        return Reply::new(530, "Authentication required");
    }
    if session.mail_from.is_none() {
        return bad_sequence();
    }
    let Some((address, params)) = path(arg, "TO:").filter(|(a, _)| valid_address(a)) else {
        return Reply::new(501, "Invalid RCPT TO address provided");
    };
    if !params.is_empty() {
        return Reply::new(555, "Unsupported parameter");
    }
    if session.recipients.len() >= MAX_RECIPIENTS {
        return Reply::new(452, "Too many recipients");
    }
    session.recipients.push(address.to_string());
    Reply::new(250, "Ok")
}

/// DATA: reads the message (dot-unstuffed, RFC 5321 §4.5.2) and decides on it. None: the
/// connection is over.
async fn data<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    session: &mut Session,
    io: &mut BufReader<S>,
    arg: &str,
) -> io::Result<Option<Reply>> {
    let Some(region) = session.region.clone() else {
        return Ok(Some(Reply::new(530, "Authentication required")));
    };
    if session.mail_from.is_none() || session.recipients.is_empty() {
        return Ok(Some(bad_sequence()));
    }
    if !arg.is_empty() {
        return Ok(Some(Reply::new(
            501,
            "Syntax error in parameters or arguments",
        )));
    }
    send(io, &Reply::new(354, "End data with <CR><LF>.<CR><LF>")).await?;
    let mut message = Vec::new();
    let mut too_long = false;
    loop {
        let line = match read_line(io, shared.idle, shared.max_bytes).await? {
            Line::Text(line) => line,
            Line::TooLong => {
                too_long = true;
                continue;
            }
            Line::Timeout => {
                send(io, &timeout_reply()).await?;
                return Ok(None);
            }
            Line::Eof => return Ok(None),
        };
        if line == "." {
            break;
        }
        let line = line.strip_prefix('.').unwrap_or(&line);
        if !too_long {
            message.extend_from_slice(line.as_bytes());
            message.extend_from_slice(b"\r\n");
            too_long = message.len() > shared.max_bytes;
        }
    }
    let mail_from = session.mail_from.take().unwrap_or_default();
    let recipients = std::mem::take(&mut session.recipients);
    if too_long {
        return Ok(Some(Reply::new(552, "Message is too long.")));
    }
    let decided = rules::submit(
        &shared.state,
        &shared.rate,
        shared.max_bytes,
        Submission {
            region: &region,
            mail_from: &mail_from,
            recipients: &recipients,
            data: &message,
        },
    );
    Ok(Some(match decided {
        Ok(message_id) => Reply::new(250, format!("Ok {message_id}")),
        Err(reply) => reply,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_and_without_brackets_and_parameters() {
        assert_eq!(
            path("FROM:<a@example.com> SIZE=10 BODY=8BITMIME", "FROM:"),
            Some(("a@example.com", vec!["SIZE=10", "BODY=8BITMIME"]))
        );
        assert_eq!(
            path("to: b@example.com", "TO:"),
            Some(("b@example.com", vec![]))
        );
        assert_eq!(path("FROM <a@example.com>", "FROM:"), None);
        assert_eq!(path("FROM:<a@example.com", "FROM:"), None);
        for bad in ["", "a", "a@b", "@b.c", "a b@c.d", "a@b.c.", "SES (<a@b.c>)"] {
            assert!(!valid_address(bad), "{bad}");
        }
        assert!(valid_address("billing+x@yourcompany.com"));
    }
}
