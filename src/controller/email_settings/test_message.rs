//! Test messages on request (pure): when the annotation `email.ops.dev/send-test` asks for one,
//! what the message says, and what its outcome means. A connection test proves the server takes
//! the login and the sender; a test message proves a message leaves — through the Secret
//! applications mount, read the way they read it. Sending is `apply`'s.

use crate::controller::SEND_TEST_ANNOTATION;
use crate::crd::EmailSettings;
use crate::crd::conditions::reasons;
use crate::crd::email_settings::{Delivery, EmailSettingsStatus, TestMessage};
use crate::smtp::{Failure, Letter, Sent};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// The recipient a test message is asked for, when one is due: the annotation is set, and to a
/// value not yet answered (the same value is never sent twice).
pub fn requested(es: &EmailSettings, prior: &EmailSettingsStatus) -> Option<String> {
    let asked = es.annotations().get(SEND_TEST_ANNOTATION)?.trim();
    let answered = prior
        .last_test_message
        .as_ref()
        .map(|t| t.recipient.as_str());
    (!asked.is_empty() && Some(asked) != answered).then(|| asked.to_string())
}

/// What the message went through: a published Secret's name, the generation validated in it
/// and its data (the keys an application reads; only `host`, `port`, `tls`, `from` and
/// `configurationSet` are used here).
pub struct Via<'a> {
    pub secret: &'a str,
    pub generation: Option<i64>,
    pub data: &'a std::collections::BTreeMap<String, String>,
}

impl Via<'_> {
    fn key(&self, k: &str) -> &str {
        self.data.get(k).map_or("", |v| v.trim())
    }
}

/// Who asks for the message, for its headers and body: the EmailSettings (namespace, name) and
/// what asked (the annotation, or the command line).
pub struct Origin<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub asked_by: &'a str,
}

impl<'a> Origin<'a> {
    /// An EmailSettings' annotation asks.
    pub fn annotation(namespace: &'a str, name: &'a str) -> Self {
        Self {
            namespace,
            name,
            asked_by: "the annotation email.ops.dev/send-test on",
        }
    }
}

/// The message: who sent it and why in the headers and the body, nothing secret. Lines end in
/// CRLF; the body is ASCII unless a name is not.
pub fn letter(origin: &Origin, via: &Via, recipient: &str, now: Timestamp, nonce: &str) -> Letter {
    let (namespace, name) = (origin.namespace, origin.name);
    let from = via.key("from");
    let generation = via
        .generation
        .map_or("unknown".to_string(), |g| g.to_string());
    let mut headers = vec![
        format!("From: {from}"),
        format!("To: {recipient}"),
        format!("Subject: Test message from EmailSettings {namespace}/{name}"),
        format!("Date: {}", now.strftime("%a, %d %b %Y %H:%M:%S +0000")),
        format!("Message-ID: <{nonce}@email-operator.invalid>"),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
        "Content-Transfer-Encoding: 8bit".to_string(),
        // RFC 3834: not written by a person; auto-responders should not answer it.
        "Auto-Submitted: auto-generated".to_string(),
        format!("X-Email-Operator-Test: {namespace}/{name}"),
    ];
    let configuration_set = via.key("configurationSet");
    if !configuration_set.is_empty() {
        // How SES's SMTP interface is told the configuration set (its event destinations get
        // this message's delivery, bounce and complaint events).
        headers.push(format!("X-SES-CONFIGURATION-SET: {configuration_set}"));
    }
    let body = [
        "This is a test message sent by email-operator.".to_string(),
        String::new(),
        format!(
            "It was asked for by {} EmailSettings {name} in namespace {namespace}, and sent at {now} through Secret {} (the configuration applications mount, validated for generation {generation}): server {}, port {}, TLS {}.",
            origin.asked_by,
            via.secret,
            via.key("host"),
            via.key("port"),
            via.key("tls"),
        ),
        String::new(),
        format!(
            "If you can read it, mail from {from} leaves through this configuration. No reply is needed."
        ),
    ];
    let message = headers
        .into_iter()
        .chain([String::new()])
        .chain(body)
        .map(|l| l + "\r\n")
        .collect();
    Letter {
        to: recipient.to_string(),
        message,
    }
}

/// The outcome of a message that was not sent: the recipient is not an address, or the Secret
/// cannot be read.
pub fn not_sent(
    recipient: &str,
    now: Timestamp,
    via: &Via,
    reason: &str,
    why: String,
) -> TestMessage {
    TestMessage {
        recipient: recipient.to_string(),
        time: Time(now),
        accepted: false,
        reason: reason.to_string(),
        code: None,
        reply: String::new(),
        message_id: None,
        secret: via.secret.to_string(),
        generation: via.generation,
        message: why,
    }
}

/// The outcome of a message sent (or of a connection that failed before it).
pub fn outcome(
    delivery: Delivery,
    recipient: &str,
    now: Timestamp,
    via: &Via,
    result: &Result<Sent, Failure>,
) -> TestMessage {
    let host = via.key("host");
    let (accepted, reason, code, reply, message_id, message) = match result {
        Err(f) => (
            false,
            f.reason().to_string(),
            None,
            f.detail().to_string(),
            None,
            format!(
                "no server took the message: {}",
                f.condition_message(delivery).trim_end_matches('.')
            ),
        ),
        Ok(sent) if sent.accepted() => {
            let id = sent.message_id();
            let named = id.as_deref().map_or(String::new(), |i| format!(" as {i}"));
            (
                true,
                reasons::TEST_MESSAGE_ACCEPTED.to_string(),
                Some(i32::from(sent.code)),
                sent.text.clone(),
                id,
                format!(
                    "{host} accepted the message for {recipient}{named}; whether it is delivered is now up to the recipient's server{}",
                    simulator_note(recipient)
                ),
            )
        }
        Ok(sent) => (
            false,
            reasons::TEST_MESSAGE_REFUSED.to_string(),
            Some(i32::from(sent.code)),
            sent.text.clone(),
            None,
            refusal_advice(recipient, via.key("from"), sent),
        ),
    };
    TestMessage {
        recipient: recipient.to_string(),
        time: Time(now),
        accepted,
        reason,
        code,
        reply,
        message_id,
        secret: via.secret.to_string(),
        generation: via.generation,
        message,
    }
}

/// What SES's mailbox simulator does with the message, when the recipient is one of its
/// addresses.
fn simulator_note(recipient: &str) -> &'static str {
    let Some((local, domain)) = recipient.rsplit_once('@') else {
        return "";
    };
    if !domain.eq_ignore_ascii_case("simulator.amazonses.com") {
        return "";
    }
    let mailbox = local.split_once('+').map_or(local, |(m, _)| m);
    match mailbox.to_ascii_lowercase().as_str() {
        "success" => " (the SES mailbox simulator: a delivery)",
        "bounce" => {
            " (the SES mailbox simulator: a hard bounce, reported to the sender or the configuration set's event destinations)"
        }
        "ooto" => " (the SES mailbox simulator: an out-of-office auto-reply to the sender)",
        "complaint" => {
            " (the SES mailbox simulator: a complaint, reported to the sender or the configuration set's event destinations)"
        }
        "suppressionlist" => {
            " (the SES mailbox simulator: a bounce, as for an address on SES's suppression list)"
        }
        _ => "",
    }
}

/// Why the server refused, and what to do: SES's "not verified" answers name the identities
/// that failed its check — the recipient in the sandbox, or the sender.
fn refusal_advice(recipient: &str, from: &str, sent: &Sent) -> String {
    let at = if sent.stage == "RCPT TO" {
        "the recipient"
    } else {
        "the message"
    };
    let said = format!("the server refused {at} with {} {}", sent.code, sent.text);
    let named = sent
        .text
        .split_once("failed the check in region ")
        .map(|(_, rest)| {
            let (region, names) = rest.split_once(':').unwrap_or((rest, ""));
            let names: Vec<String> = names
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect();
            (region.trim().to_ascii_lowercase(), names)
        });
    match named {
        Some((region, names)) if names.contains(&recipient.to_ascii_lowercase()) => format!(
            "{said}: the SES account is in the sandbox in {region}, where mail goes only to verified addresses and domains and to the mailbox simulator (for example success@simulator.amazonses.com); verify {recipient} in SES, test with the simulator, or request production access for {region}"
        ),
        Some((region, names)) if names.contains(&from.to_ascii_lowercase()) => format!(
            "{said}: SES does not consider the sender {from} verified in {region}; check that a verified SenderIdentity covers it in {region}"
        ),
        _ => format!("{said}; check the recipient address and the server's rules for it"),
    }
}
