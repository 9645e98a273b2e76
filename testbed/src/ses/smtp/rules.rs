//! What SES decides about a message once its data has arrived, in the region of the session.
//!
//! SES answers these at the end of DATA, not at MAIL FROM or RCPT TO: real transcripts show
//! `250 Ok` to MAIL FROM and RCPT TO for an unverified sender and the `554 Message rejected`
//! only "after end of data" (exim: "SMTP error from remote mail server after end of data: 554
//! Message rejected: Email address is not verified…"; Xero: "DATA END command failed … Sending
//! paused for this account"). In order:
//!
//! 1. **Size** — SES v2 API or SMTP: at most 40 MB per message (SES Developer Guide, "Service
//!    quotas in Amazon SES", *Message quotas*); past it `552 Message is too long.` ("SMTP
//!    response codes returned by Amazon SES").
//! 2. **Account** — `SHUTDOWN` → `554 Message rejected: Sending suspended for this account. …`,
//!    sending paused → `554 Message rejected: Sending paused for this account. …` (texts as SES
//!    sends them, quoted in error-handling code across public repositories; the SES v2
//!    equivalents are `AccountSuspendedException` / `SendingPausedException`).
//! 3. **From header** — a message without one: `554 Transaction failed: Missing required header
//!    'From'.` (SES's SendRawEmail text "Missing required header 'From'.", with the SMTP
//!    interface's `554 Transaction failed:` prefix).
//! 4. **Verified identities** — the envelope sender (Return-Path), the `From`, `Sender` and
//!    `Return-Path` headers, and in the sandbox every recipient that is not a mailbox
//!    simulator address, must be verified in the session's region; else `554 Message rejected:
//!    Email address is not verified. The following identities failed the check in region
//!    REGION: a, b` ("SMTP response codes returned by Amazon SES", *Unverified email address*;
//!    "Service quotas", *Sender and recipient quotas*; "Request production access").
//! 5. **Daily quota** — counted per recipient ("Quotas are based on the number of recipients,
//!    rather than on the number of messages", "Service quotas"), over a rolling 24 hours on
//!    the stand-in clock; a message that would exceed `Max24HourSend` → `454 Throttling
//!    failure: Daily message quota exceeded.` ("Errors related to the sending quotas").
//!    Mailbox simulator recipients do not count ("Using the mailbox simulator").
//! 6. **Sending rate** — `MaxSendRate` recipients a second, a token bucket per region on real
//!    time holding one second's worth (bursts allowed, as SES says short bursts may exceed the
//!    rate) → `454 Throttling failure: Maximum sending rate exceeded.`

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::ses::SesState;
use crate::ses::faults::lock;
use crate::ses::ops;
use crate::ses::outbox::{self, MessageKind, OutboxMessage};
use crate::ses::simulator;

use super::reply::Reply;

/// SES's maximum message size for SMTP: 40 MB (taken as MiB, as SES advertised its former
/// 10 MB limit as `SIZE 10485760`).
pub const MAX_MESSAGE_BYTES: usize = 40 * 1024 * 1024;
/// SES's maximum number of recipients per message ("Service quotas", *Sender and recipient
/// quotas*): any To, CC or BCC address — on SMTP, each RCPT TO.
pub const MAX_RECIPIENTS: usize = 50;

const ACCOUNT_TEXT: &str = "For more information, please check the inbox of the email address associated with your AWS account.";

/// The envelope and data of one message.
pub struct Submission<'a> {
    pub region: &'a str,
    pub mail_from: &'a str,
    pub recipients: &'a [String],
    pub data: &'a [u8],
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-region sending-rate buckets.
#[derive(Default)]
pub struct SendRate {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl SendRate {
    /// Takes `count` tokens at `rate` a second if the bucket is not empty (a burst may drive it
    /// negative; it refills before the next message is admitted).
    fn admit(&self, region: &str, rate: f64, count: usize, now: Instant) -> bool {
        if count == 0 {
            return true;
        }
        let capacity = rate.max(1.0);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(region.to_string()).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        if rate > 0.0 && bucket.tokens >= 1.0 {
            bucket.tokens -= count as f64;
            true
        } else {
            false
        }
    }
}

/// Every address in a header value (`"A" <a@x>, b@y`).
fn header_addresses(message: &str, header: &str) -> Vec<String> {
    outbox::raw_header(message, header)
        .map(|value| {
            value
                .split(',')
                .map(outbox::address_of)
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn push_unique(list: &mut Vec<String>, address: String) {
    if !list.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
        list.push(address);
    }
}

/// Decides on a message; an accepted one is in the outbox and its SES message id returned.
pub fn submit(
    state: &SesState,
    rate: &SendRate,
    max_bytes: usize,
    sub: Submission<'_>,
) -> Result<String, Reply> {
    if sub.data.len() > max_bytes {
        return Err(Reply::new(552, "Message is too long."));
    }
    let standing = state.account.standing(sub.region);
    if standing.enforcement_status == crate::ses::account::Enforcement::Shutdown {
        return Err(Reply::new(
            554,
            format!("Message rejected: Sending suspended for this account. {ACCOUNT_TEXT}"),
        ));
    }
    if !standing.sending_enabled {
        return Err(Reply::new(
            554,
            format!("Message rejected: Sending paused for this account. {ACCOUNT_TEXT}"),
        ));
    }
    let message = String::from_utf8_lossy(sub.data).into_owned();
    let from_header = header_addresses(&message, "From");
    if from_header.is_empty() {
        return Err(Reply::new(
            554,
            "Transaction failed: Missing required header 'From'.",
        ));
    }

    let mut senders = vec![sub.mail_from.to_string()];
    for header in ["From", "Sender", "Return-Path"] {
        for address in header_addresses(&message, header) {
            push_unique(&mut senders, address);
        }
    }
    let mut failed: Vec<String> = {
        let store = lock(&state.store);
        senders
            .into_iter()
            .filter(|s| !store.sender_verified(sub.region, s))
            .collect()
    };
    for refused in ops::sandbox_refused(state, sub.region, sub.recipients) {
        push_unique(&mut failed, refused);
    }
    if !failed.is_empty() {
        return Err(Reply::new(
            554,
            format!(
                "Message rejected: {}",
                ops::not_verified(sub.region, &failed)
            ),
        ));
    }

    let simulated = simulator::simulate(sub.recipients);
    let counted = sub.recipients.len() - simulated.len();
    // One lock over count and append, so concurrent sessions cannot both take the last slot.
    let mut outbox = lock(&state.outbox);
    let sent = ops::counted_last_24_hours(&outbox, sub.region, state);
    if counted > 0 && (sent + counted) as f64 > standing.max_24_hour_send {
        return Err(Reply::new(
            454,
            "Throttling failure: Daily message quota exceeded.",
        ));
    }
    if !rate.admit(sub.region, standing.max_send_rate, counted, Instant::now()) {
        return Err(Reply::new(
            454,
            "Throttling failure: Maximum sending rate exceeded.",
        ));
    }
    let message_id = outbox::message_id();
    outbox.push(OutboxMessage {
        message_id: message_id.clone(),
        kind: MessageKind::Sent,
        region: sub.region.to_string(),
        from: sub.mail_from.to_string(),
        to: sub.recipients.to_vec(),
        subject: outbox::raw_header(&message, "Subject").unwrap_or_default(),
        identity: None,
        link: None,
        expires: None,
        content_type: Some("Smtp".into()),
        simulated,
        raw: Some(message),
        sent_at: state.clock.now(),
    });
    Ok(message_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_bucket_holds_a_second_and_lets_a_burst_through_once() {
        let rate = SendRate::default();
        let t0 = Instant::now();
        assert!(rate.admit("us-east-1", 1.0, 1, t0));
        assert!(!rate.admit("us-east-1", 1.0, 1, t0 + Duration::from_millis(500)));
        assert!(rate.admit("us-east-1", 1.0, 1, t0 + Duration::from_millis(1000)));
        // A 3-recipient burst at 2/s goes through, then the bucket must refill.
        assert!(rate.admit("eu-west-1", 2.0, 3, t0));
        assert!(!rate.admit("eu-west-1", 2.0, 1, t0 + Duration::from_millis(500)));
        assert!(rate.admit("eu-west-1", 2.0, 1, t0 + Duration::from_millis(1500)));
        // Simulator-only messages take nothing.
        assert!(rate.admit("us-east-1", 1.0, 0, t0 + Duration::from_millis(1000)));
        assert!(!rate.admit("ap-south-1", 0.0, 1, t0));
    }

    #[test]
    fn header_addresses_are_read_from_the_header_block() {
        let raw = "From: \"Billing\" <billing@example.com>\r\nSender: a@example.org, b@example.org\r\n\r\nFrom: x@y.z\r\n";
        assert_eq!(header_addresses(raw, "From"), vec!["billing@example.com"]);
        assert_eq!(
            header_addresses(raw, "sender"),
            vec!["a@example.org", "b@example.org"]
        );
        assert!(header_addresses(raw, "Return-Path").is_empty());
    }
}
