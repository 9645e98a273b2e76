//! One connection to an [`super::SmtpServer`]: the command state machine, with the replies
//! and the rules the module header lists.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{
    Accepted, Dialect, Login, MAX_COMMAND, MAX_KEPT, MAX_MESSAGE, Security, Shared,
    SmtpServerOptions,
};
use crate::ses::smtp::reply::Reply;
use crate::ses::smtp::session::{
    Line, accept_tls, b64, command, mechanism, path, read_line, send, valid_address,
};

#[derive(Default)]
struct Session {
    tls: bool,
    greeted: bool,
    /// The mailbox or account logged in.
    user: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
}

/// Serves one connection to its end.
pub(super) async fn serve(shared: Arc<Shared>, tcp: TcpStream) {
    let result = async {
        let mut session = Session::default();
        match shared.options.security {
            Security::Implicit => {
                let tls = accept_tls(&shared.tls, tcp, shared.options.idle).await?;
                session.tls = true;
                run(&shared, &mut session, tls, true).await?;
            }
            Security::StartTls => {
                if let Some(tcp) = run(&shared, &mut session, tcp, true).await? {
                    let tls = accept_tls(&shared.tls, tcp, shared.options.idle).await?;
                    session = Session {
                        tls: true,
                        ..Session::default()
                    };
                    run(&shared, &mut session, tls, false).await?;
                }
            }
        }
        Ok::<_, io::Error>(())
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(%error, server = shared.options.name, "smtp connection ended");
    }
}

fn greeting(o: &SmtpServerOptions) -> Reply {
    match o.dialect {
        Dialect::Postfix => Reply::new(220, format!("{} ESMTP Postfix", o.name)),
        Dialect::Microsoft365 => Reply::new(
            220,
            format!(
                "{} Microsoft ESMTP MAIL Service ready at {}",
                o.name,
                chrono::Utc::now().format("%a, %-d %b %Y %H:%M:%S +0000")
            ),
        ),
    }
}

fn ehlo(o: &SmtpServerOptions, session: &Session) -> Reply {
    let mut lines = vec![o.name.clone()];
    lines.extend([
        format!("SIZE {MAX_MESSAGE}"),
        "PIPELINING".into(),
        "ENHANCEDSTATUSCODES".into(),
        "8BITMIME".into(),
    ]);
    if session.tls {
        lines.push(match o.login {
            Login::Password { .. } => "AUTH PLAIN LOGIN".into(),
            Login::XOAuth2 { .. } => "AUTH LOGIN XOAUTH2".into(),
        });
    } else {
        lines.push("STARTTLS".into());
    }
    Reply::multi(250, lines)
}

fn must_start_tls() -> Reply {
    Reply::new(530, "5.7.0 Must issue a STARTTLS command first")
}

fn bad_sequence() -> Reply {
    Reply::new(503, "5.5.1 Error: bad sequence of commands")
}

fn refused_login(o: &SmtpServerOptions) -> Reply {
    match o.dialect {
        Dialect::Postfix => Reply::new(535, "5.7.8 Error: authentication failed"),
        Dialect::Microsoft365 => Reply::new(535, "5.7.3 Authentication unsuccessful"),
    }
}

/// Runs commands until QUIT or STARTTLS (then the plain stream is handed back; what the
/// client pipelined after STARTTLS is dropped with the buffer, RFC 3207 §4.2).
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    session: &mut Session,
    stream: S,
    greet: bool,
) -> io::Result<Option<S>> {
    let o = &shared.options;
    let mut io = BufReader::new(stream);
    if greet {
        send(&mut io, &greeting(o)).await?;
    }
    loop {
        let line = match read_line(&mut io, o.idle, MAX_COMMAND).await? {
            Line::Text(line) => line,
            Line::TooLong => {
                send(&mut io, &Reply::new(500, "5.5.2 Error: line too long")).await?;
                continue;
            }
            Line::Timeout => {
                let text = format!("4.4.2 {} Error: timeout exceeded", o.name);
                send(&mut io, &Reply::new(421, text)).await?;
                return Ok(None);
            }
            Line::Eof => return Ok(None),
        };
        let (verb, arg) = command(&line);
        let reply = match verb.as_str() {
            "EHLO" | "HELO" if arg.is_empty() => Reply::new(501, "5.5.4 Syntax: EHLO hostname"),
            "EHLO" => {
                session.greeted = true;
                session.mail_from = None;
                session.recipients.clear();
                ehlo(o, session)
            }
            "HELO" => {
                session.greeted = true;
                Reply::new(250, o.name.clone())
            }
            "STARTTLS" if session.tls || !session.greeted || o.security == Security::Implicit => {
                bad_sequence()
            }
            "STARTTLS" => {
                send(&mut io, &Reply::new(220, "2.0.0 Ready to start TLS")).await?;
                return Ok(Some(io.into_inner()));
            }
            "AUTH" if !session.tls => must_start_tls(),
            "AUTH" if !session.greeted || session.user.is_some() => bad_sequence(),
            "AUTH" => match auth(shared, &mut io, &arg).await? {
                Some(Ok(user)) => {
                    shared.counters.logins.fetch_add(1, Ordering::Relaxed);
                    session.user = Some(user);
                    Reply::new(235, "2.7.0 Authentication successful")
                }
                Some(Err(reply)) => {
                    shared
                        .counters
                        .refused_logins
                        .fetch_add(1, Ordering::Relaxed);
                    reply
                }
                None => return Ok(None),
            },
            "MAIL" if !session.tls => must_start_tls(),
            "MAIL" => mail(o, session, &arg),
            "RCPT" if session.mail_from.is_none() => {
                Reply::new(503, "5.5.1 Error: need MAIL command")
            }
            "RCPT" => match path(&arg, "TO:").filter(|(a, _)| valid_address(a)) {
                Some((address, _)) => {
                    session.recipients.push(address.to_string());
                    Reply::new(250, "2.1.5 Ok")
                }
                None => Reply::new(501, "5.1.3 Bad recipient address syntax"),
            },
            "DATA" if session.recipients.is_empty() => {
                Reply::new(503, "5.5.1 Error: need RCPT command")
            }
            "DATA" => match data(shared, session, &mut io).await? {
                Some(reply) => reply,
                None => return Ok(None),
            },
            "RSET" => {
                session.mail_from = None;
                session.recipients.clear();
                Reply::new(250, "2.0.0 Ok")
            }
            "NOOP" => Reply::new(250, "2.0.0 Ok"),
            "QUIT" => {
                send(&mut io, &Reply::new(221, "2.0.0 Bye")).await?;
                let _ = io.shutdown().await;
                return Ok(None);
            }
            _ => Reply::new(502, "5.5.2 Error: command not recognized"),
        };
        send(&mut io, &reply).await?;
    }
}

/// One AUTH exchange: `Some(Ok(user))` logged in, `Some(Err(reply))` refused, None: the
/// connection is over.
async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    io: &mut BufReader<S>,
    arg: &str,
) -> io::Result<Option<Result<String, Reply>>> {
    let o = &shared.options;
    let (mechanism, initial) = mechanism(arg);
    let unknown = || Reply::new(504, "5.5.4 Unrecognized authentication type");
    let invalid = || Reply::new(501, "5.5.2 Cannot decode response");
    match (&o.login, mechanism.as_str()) {
        (Login::Password { username, password }, "PLAIN") => {
            let Some(response) = response(o, io, initial, "").await? else {
                return Ok(None);
            };
            let Some(decoded) = b64(&response) else {
                return Ok(Some(Err(invalid())));
            };
            let parts: Vec<&str> = decoded.split('\0').collect();
            Ok(Some(match parts.as_slice() {
                [authzid, user, pass]
                    if (authzid.is_empty() || authzid == user)
                        && user == username
                        && pass == password =>
                {
                    Ok(user.to_string())
                }
                _ => Err(refused_login(o)),
            }))
        }
        (Login::Password { username, password }, "LOGIN") => {
            let Some(user) = response(o, io, initial, "VXNlcm5hbWU6").await? else {
                return Ok(None);
            };
            let Some(pass) = continuation(o, io, "UGFzc3dvcmQ6").await? else {
                return Ok(None);
            };
            let (Some(user), Some(pass)) = (b64(&user), b64(&pass)) else {
                return Ok(Some(Err(invalid())));
            };
            Ok(Some(if &user == username && &pass == password {
                Ok(user)
            } else {
                Err(refused_login(o))
            }))
        }
        (Login::XOAuth2 { .. }, "PLAIN" | "LOGIN") => Ok(Some(Err(Reply::new(
            535,
            "5.7.139 Authentication unsuccessful, basic authentication is disabled.",
        )))),
        (
            Login::XOAuth2 {
                tokens,
                scope,
                grants,
            },
            "XOAUTH2",
        ) => {
            let Some(response) = response(o, io, initial, "").await? else {
                return Ok(None);
            };
            let Some(decoded) = b64(&response) else {
                return Ok(Some(Err(invalid())));
            };
            let mut user = None;
            let mut bearer = None;
            for field in decoded.split('\x01') {
                if let Some(u) = field.strip_prefix("user=") {
                    user = Some(u.to_string());
                } else if let Some(t) = field.strip_prefix("auth=Bearer ") {
                    bearer = Some(t.to_string());
                }
            }
            let granted = match (&user, bearer.and_then(|t| tokens.check(&t))) {
                (Some(user), Some(issued)) => {
                    &issued.scope == scope
                        && grants.iter().any(|(app, mailbox)| {
                            *app == issued.client_id && mailbox.eq_ignore_ascii_case(user)
                        })
                }
                _ => false,
            };
            Ok(Some(match user {
                Some(user) if granted => Ok(user),
                _ => Err(refused_login(o)),
            }))
        }
        _ => Ok(Some(Err(unknown()))),
    }
}

/// The client's response to AUTH: sent with the command (the initial response), or asked for
/// with a 334 `prompt`; `None` when the client went away.
async fn response<S: AsyncRead + AsyncWrite + Unpin>(
    o: &SmtpServerOptions,
    io: &mut BufReader<S>,
    initial: Option<String>,
    prompt: &str,
) -> io::Result<Option<String>> {
    match initial {
        Some(i) => Ok(Some(i)),
        None => continuation(o, io, prompt).await,
    }
}

/// Sends a 334 challenge and reads the answer; None when the client went away (a `*` that
/// cancels the exchange is not valid base64, and is refused as such).
async fn continuation<S: AsyncRead + AsyncWrite + Unpin>(
    o: &SmtpServerOptions,
    io: &mut BufReader<S>,
    challenge: &str,
) -> io::Result<Option<String>> {
    send(io, &Reply::new(334, challenge)).await?;
    Ok(match read_line(io, o.idle, MAX_COMMAND).await? {
        Line::Text(line) => Some(line),
        Line::TooLong | Line::Eof | Line::Timeout => None,
    })
}

/// Whether the logged-in account may send as `address`.
fn may_send_as(o: &SmtpServerOptions, address: &str) -> bool {
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    o.senders
        .iter()
        .any(|s| s.eq_ignore_ascii_case(address) || s.eq_ignore_ascii_case(domain))
}

fn mail(o: &SmtpServerOptions, session: &mut Session, arg: &str) -> Reply {
    let Some(user) = session.user.clone() else {
        return match o.dialect {
            Dialect::Postfix => Reply::new(530, "5.7.0 Authentication required"),
            Dialect::Microsoft365 => {
                Reply::new(530, "5.7.57 Client not authenticated to send mail.")
            }
        };
    };
    if session.mail_from.is_some() {
        return Reply::new(503, "5.5.1 Error: nested MAIL command");
    }
    let Some((address, _)) = path(arg, "FROM:").filter(|(a, _)| valid_address(a)) else {
        return Reply::new(501, "5.1.7 Bad sender address syntax");
    };
    if !may_send_as(o, address) {
        return match o.dialect {
            Dialect::Postfix => Reply::new(
                553,
                format!("5.7.1 <{address}>: Sender address rejected: not owned by user {user}"),
            ),
            Dialect::Microsoft365 => Reply::new(
                550,
                "5.7.60 SMTP; Client does not have permissions to send as this sender",
            ),
        };
    }
    session.mail_from = Some(address.to_string());
    Reply::new(250, "2.1.0 Ok")
}

/// DATA: reads the message (dot-unstuffed, RFC 5321 §4.5.2) and keeps it. None: the connection
/// is over.
async fn data<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    session: &mut Session,
    io: &mut BufReader<S>,
) -> io::Result<Option<Reply>> {
    send(io, &Reply::new(354, "End data with <CR><LF>.<CR><LF>")).await?;
    let mut message = Vec::new();
    let mut too_long = false;
    loop {
        let line = match read_line(io, shared.options.idle, MAX_COMMAND).await? {
            Line::Text(line) => line,
            Line::TooLong => {
                too_long = true;
                continue;
            }
            Line::Eof | Line::Timeout => return Ok(None),
        };
        if line == "." {
            break;
        }
        let line = line.strip_prefix('.').unwrap_or(&line);
        message.extend_from_slice(line.as_bytes());
        message.extend_from_slice(b"\r\n");
        too_long |= message.len() > MAX_MESSAGE;
        if too_long {
            message.clear();
        }
    }
    let mail_from = session.mail_from.take().unwrap_or_default();
    let recipients = std::mem::take(&mut session.recipients);
    if too_long {
        return Ok(Some(Reply::new(552, "5.3.4 Error: message file too big")));
    }
    if let Ok(mut kept) = shared.kept.lock() {
        if kept.len() >= MAX_KEPT {
            kept.remove(0);
        }
        kept.push(Accepted {
            mail_from,
            recipients,
            data: message,
        });
    }
    let id = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(rand::random::<[u8; 6]>())
        .replace(['+', '/'], "X");
    Ok(Some(Reply::new(250, format!("2.0.0 Ok: queued as {id}"))))
}
