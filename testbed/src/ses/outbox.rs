//! The stand-in's outbox: the verification messages SES would send to new email identities,
//! and the messages accepted by SendEmail. Nothing leaves the machine; tests read the outbox
//! through the control API (`GET /ses/outbox`) and "click the link" with
//! `POST /ses/confirm-email`.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;

/// What kind of message this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MessageKind {
    /// The "please verify your address" message sent on CreateEmailIdentity.
    Verification,
    /// A message accepted by SendEmail.
    Sent,
}

/// One message in the outbox.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    pub message_id: String,
    pub kind: MessageKind,
    pub region: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// For verification messages: the identity to confirm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// For verification messages: the link a person would click.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// For verification messages: when the link stops working (sent + 24 h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// For sent messages: `Simple` or `Raw` (SendEmail), `Smtp` (the SMTP interface).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// For sent messages: what the mailbox simulator did for each of its recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub simulated: Vec<super::simulator::Simulated>,
    /// For messages sent through the SMTP interface: the message as received (dot-unstuffed,
    /// CRLF line ends), headers and body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    pub sent_at: DateTime<Utc>,
}

/// A message id in SES's format (hex groups, then a region-ish suffix).
pub fn message_id() -> String {
    let mut rng = rand::rng();
    let hex = |n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
        (0..n)
            .map(|_| format!("{:x}", rng.random_range(0..16u8)))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}-000000",
        hex(16, &mut rng),
        hex(8, &mut rng),
        hex(4, &mut rng),
        hex(4, &mut rng),
        hex(12, &mut rng)
    )
}

/// The verification message for a new email identity.
pub fn verification_message(
    region: &str,
    account_id: &str,
    identity: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> OutboxMessage {
    let token: String = {
        let mut rng = rand::rng();
        (0..40)
            .map(|_| format!("{:x}", rng.random_range(0..16u8)))
            .collect()
    };
    OutboxMessage {
        message_id: message_id(),
        kind: MessageKind::Verification,
        region: region.to_string(),
        from: "no-reply-aws@amazon.com".into(),
        to: vec![identity.to_string()],
        subject: format!(
            "Amazon Web Services - Email Address Verification Request in region {}",
            region.to_ascii_uppercase()
        ),
        identity: Some(identity.to_string()),
        link: Some(format!(
            "https://email-verification.{region}.amazonaws.com/?Context={account_id}&Identity.IdentityName={identity}&Namespace=SES&Signature={token}"
        )),
        expires: Some(expires),
        content_type: None,
        simulated: Vec::new(),
        raw: None,
        sent_at: now,
    }
}

/// The address in a `From:` header value (`"Name" <a@b>` or a bare `a@b`).
pub fn address_of(header_value: &str) -> String {
    let value = header_value.trim();
    match (value.rfind('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end => value[start + 1..end].trim().to_string(),
        _ => value.to_string(),
    }
}

/// Reads a header (`From`, `To`, `Subject`) from a raw MIME message's header block.
pub fn raw_header(message: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in message.lines() {
        if line.is_empty() {
            break; // end of the header block
        }
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header.
            if let Some(value) = found.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_headers() {
        let raw = "From: \"Billing\" <billing@example.com>\r\nTo: a@example.org,\r\n b@example.org\r\nSubject: Hi\r\n\r\nFrom: not-a-header@example.net\r\n";
        assert_eq!(
            raw_header(raw, "from").map(|v| address_of(&v)).as_deref(),
            Some("billing@example.com")
        );
        assert_eq!(
            raw_header(raw, "To").as_deref(),
            Some("a@example.org, b@example.org")
        );
        assert_eq!(raw_header(raw, "Cc"), None);
        assert_eq!(address_of("plain@example.com"), "plain@example.com");
    }
}
