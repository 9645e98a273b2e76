//! Stand-ins for the mail servers a tenant names in an `ExternalSmtp` EmailSettings, and for
//! the OAuth 2.0 token endpoint of an XOAUTH2 one: real servers over real sockets and real TLS,
//! strict about credentials, so `testbed demo` can take every example to Ready with nothing
//! installed.
//!
//! * [`smtp`] — an SMTP submission server: STARTTLS required before AUTH, or TLS from the first
//!   byte; AUTH PLAIN/LOGIN against one account, or XOAUTH2 against tokens [`oauth`] issued;
//!   MAIL FROM only for the senders the account may use. Replies in the words of Postfix (a
//!   company's relay) or of Microsoft 365 (`smtp.office365.com`).
//! * [`oauth`] — the Microsoft identity platform's v2.0 token endpoint for the client
//!   credentials grant, over HTTPS.
//!
//! Certificates come from a [`crate::ses::smtp::tls::TestCa`] the caller makes.

pub mod oauth;
pub mod smtp;

pub use oauth::{OAuthClient, TokenServer, TokenServerOptions, Tokens};
pub use smtp::{Dialect, Login, Security, SmtpServer, SmtpServerOptions};
