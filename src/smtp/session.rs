//! The SMTP client side of a connection test (RFC 5321, with STARTTLS per RFC 3207 and AUTH
//! per RFC 4954): greeting, EHLO, STARTTLS, AUTH (PLAIN, LOGIN or XOAUTH2), MAIL FROM, RSET,
//! QUIT — nothing is ever sent.
//!
//! Written for a server that may be hostile: every reply line is read with a bound
//! ([`MAX_LINE`] bytes, [`MAX_REPLY_LINES`] lines a reply), so a server that never sends a line
//! end costs a few kilobytes, not the operator's memory; nothing is logged, so a credential
//! sent in AUTH never reaches a log at any level; a reply that is not SMTP is refused without
//! being repeated to the tenant.

use super::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The longest reply line read (RFC 5321 allows 512 octets; extensions' lines are longer).
pub const MAX_LINE: usize = 2048;
/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 100;

/// A reply: its code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The code and the first line, cut and reduced to printable ASCII, for a message.
    pub fn summary(&self) -> String {
        let text: String = self
            .lines
            .first()
            .map(String::as_str)
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(160)
            .collect();
        format!("{} {}", self.code, text.trim())
    }
}

/// Why the conversation stopped.
#[derive(Debug)]
pub enum Error {
    /// The socket failed or closed.
    Io(std::io::Error),
    /// The server sent something that is not an SMTP reply (not told to the tenant).
    NotSmtp,
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// The connection, plain or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What EHLO said the server offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub starttls: bool,
    /// AUTH mechanisms, upper-case.
    pub auth: Vec<String>,
}

impl Extensions {
    fn of(reply: &Reply) -> Self {
        let mut ext = Self::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STARTTLS") => ext.starttls = true,
                Some("AUTH") => ext.auth.extend(words.map(str::to_ascii_uppercase)),
                _ => {}
            }
        }
        ext
    }

    pub fn offers(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m == mechanism)
    }
}

/// One SMTP session.
pub struct Session {
    conn: Conn,
    /// Bytes read past the last line.
    pending: Vec<u8>,
}

impl Session {
    pub fn new(conn: Conn) -> Self {
        Self {
            conn,
            pending: Vec::new(),
        }
    }

    /// Reads one line (without CRLF), at most [`MAX_LINE`] bytes.
    async fn line(&mut self) -> Result<String, Error> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return String::from_utf8(line).map_err(|_| Error::NotSmtp);
            }
            if self.pending.len() >= MAX_LINE {
                return Err(Error::NotSmtp);
            }
            let mut buf = [0u8; 512];
            let room = (MAX_LINE - self.pending.len()).min(buf.len());
            let n = self.conn.read(&mut buf[..room]).await?;
            if n == 0 {
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads one reply (every line `NNN-text`, the last `NNN text`).
    pub async fn reply(&mut self) -> Result<Reply, Error> {
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let line = self.line().await?;
            let bytes = line.as_bytes();
            if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
                return Err(Error::NotSmtp);
            }
            let this: u16 = line[..3].parse().map_err(|_| Error::NotSmtp)?;
            if *code.get_or_insert(this) != this || !(200..600).contains(&this) {
                return Err(Error::NotSmtp);
            }
            let (more, text) = match bytes.get(3) {
                Some(b'-') => (true, &line[4..]),
                Some(b' ') => (false, &line[4..]),
                None => (false, ""),
                Some(_) => return Err(Error::NotSmtp),
            };
            lines.push(text.to_string());
            if !more {
                return Ok(Reply { code: this, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(Error::NotSmtp);
            }
        }
    }

    /// Sends one command line and reads the reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, Error> {
        self.conn.write_all(line.as_bytes()).await?;
        self.conn.write_all(b"\r\n").await?;
        self.conn.flush().await?;
        self.reply().await
    }

    /// EHLO, and what the server offers.
    pub async fn ehlo(&mut self) -> Result<(Reply, Extensions), Error> {
        let reply = self.command("EHLO email-operator.local").await?;
        let ext = Extensions::of(&reply);
        Ok((reply, ext))
    }

    /// Asks for STARTTLS; on 220 returns the plain connection to upgrade. Bytes the server sent
    /// after its 220 (a command injection attempt) end the session.
    pub async fn starttls(mut self) -> Result<Result<TcpStream, Reply>, Error> {
        let reply = self.command("STARTTLS").await?;
        if reply.code != 220 {
            return Ok(Err(reply));
        }
        if !self.pending.is_empty() {
            return Err(Error::NotSmtp);
        }
        match self.conn {
            Conn::Plain(tcp) => Ok(Ok(tcp)),
            Conn::Tls(_) => Err(Error::NotSmtp),
        }
    }

    /// AUTH PLAIN with an initial response (RFC 4616).
    pub async fn auth_plain(&mut self, user: &str, password: &Secret) -> Result<Reply, Error> {
        let token = B64.encode(format!("\0{user}\0{}", password.expose()));
        let reply = self.command(&format!("AUTH PLAIN {token}")).await?;
        self.cancel_challenge(reply).await
    }

    /// AUTH LOGIN: user name and password each in answer to a 334 challenge.
    pub async fn auth_login(&mut self, user: &str, password: &Secret) -> Result<Reply, Error> {
        let reply = self.command("AUTH LOGIN").await?;
        if reply.code != 334 {
            return Ok(reply);
        }
        let reply = self.command(&B64.encode(user)).await?;
        if reply.code != 334 {
            return Ok(reply);
        }
        let reply = self.command(&B64.encode(password.expose())).await?;
        self.cancel_challenge(reply).await
    }

    /// AUTH XOAUTH2 with an initial response; a 334 carries the error, answered with an empty
    /// line to get the final reply.
    pub async fn auth_xoauth2(&mut self, user: &str, token: &Secret) -> Result<Reply, Error> {
        let response = B64.encode(format!(
            "user={user}\x01auth=Bearer {}\x01\x01",
            token.expose()
        ));
        let reply = self.command(&format!("AUTH XOAUTH2 {response}")).await?;
        if reply.code == 334 {
            return self.command("").await;
        }
        Ok(reply)
    }

    /// An unexpected challenge after the whole response is cancelled (`*`).
    async fn cancel_challenge(&mut self, reply: Reply) -> Result<Reply, Error> {
        if reply.code == 334 {
            return self.command("*").await;
        }
        Ok(reply)
    }

    /// DATA: the message (lines joined with CRLF, dot-stuffed here as RFC 5321 4.5.2 asks), then
    /// the server's verdict on it. A refused DATA command is returned as it is.
    pub async fn data(&mut self, message: &str) -> Result<Reply, Error> {
        let reply = self.command("DATA").await?;
        if reply.code != 354 {
            return Ok(reply);
        }
        let mut body = String::with_capacity(message.len() + 16);
        for line in message.trim_end_matches("\r\n").split("\r\n") {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        self.conn.write_all(body.as_bytes()).await?;
        self.conn.flush().await?;
        self.reply().await
    }

    /// Ends politely; failures do not matter any more.
    pub async fn quit(mut self) {
        let _ = self.command("RSET").await;
        let _ = self.command("QUIT").await;
        let _ = self.conn.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A session with a server that writes `script` and then holds the connection open.
    async fn session_with(script: &'static [u8]) -> Session {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let _ = s.write_all(script).await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        Session::new(Conn::Plain(
            TcpStream::connect(addr).await.expect("connect"),
        ))
    }

    #[tokio::test]
    async fn multi_line_replies_and_extensions_are_read() {
        let mut s = session_with(
            b"250-mail.example greets you\r\n250-STARTTLS\r\n250 AUTH plain LOGIN\r\n",
        )
        .await;
        let reply = s.reply().await.expect("reply");
        assert_eq!(reply.code, 250);
        let ext = Extensions::of(&reply);
        assert!(ext.starttls);
        assert!(ext.offers("PLAIN") && ext.offers("LOGIN") && !ext.offers("XOAUTH2"));
    }

    #[tokio::test]
    async fn a_line_without_end_stops_at_the_bound() {
        static ENDLESS: [u8; 64 * 1024] = [b'2'; 64 * 1024];
        let mut s = session_with(&ENDLESS).await;
        assert!(matches!(s.reply().await, Err(Error::NotSmtp)));
        assert!(s.pending.len() <= MAX_LINE, "read at most one line's bound");
    }

    #[tokio::test]
    async fn what_is_not_smtp_is_refused() {
        for script in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"220-first\r\n250 second\r\n",
            b"999 no\r\n",
        ] {
            let mut s = session_with(script).await;
            assert!(matches!(s.reply().await, Err(Error::NotSmtp)), "{script:?}");
        }
    }

    #[test]
    fn a_summary_is_short_and_printable() {
        let reply = Reply {
            code: 550,
            lines: vec![format!("5.7.1 relay denied \u{1b}[31m{}", "x".repeat(500))],
        };
        let s = reply.summary();
        assert!(s.starts_with("550 5.7.1 relay denied [31m"), "{s}");
        assert!(s.len() <= 170);
    }
}
