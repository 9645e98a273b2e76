//! The SES mailbox simulator: recipients at `simulator.amazonses.com` whose outcome SES fakes,
//! so that bounces and complaints can be tested without harming the sender's reputation.
//!
//! Source: SES Developer Guide, "Using the mailbox simulator manually": `success@`,
//! `bounce@`, `ooto@`, `complaint@` and `suppressionlist@simulator.amazonses.com`, each also
//! with a label (`bounce+label@…`); they may be used in the sandbox, and messages to them do not
//! count against the sending quota or the bounce and complaint rates.

use serde::Serialize;

/// The simulator's domain.
pub const DOMAIN: &str = "simulator.amazonses.com";

/// What SES does with a message to a simulator address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Accepted by the recipient's mail server (`success@`).
    Delivery,
    /// Rejected with a hard bounce (`bounce@`, SMTP 550 5.1.1 user unknown).
    Bounce,
    /// Delivered, and an out-of-the-office auto-reply sent back (`ooto@`).
    AutoReply,
    /// Delivered, and the recipient marks it as spam (`complaint@`).
    Complaint,
    /// Bounced by SES because the address is on the global suppression list
    /// (`suppressionlist@`).
    Suppression,
}

/// The simulated outcome for `address`, when it is a simulator address.
pub fn outcome(address: &str) -> Option<Outcome> {
    let (local, domain) = address.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(DOMAIN) {
        return None;
    }
    let mailbox = local.split_once('+').map_or(local, |(m, _)| m);
    match mailbox.to_ascii_lowercase().as_str() {
        "success" => Some(Outcome::Delivery),
        "bounce" => Some(Outcome::Bounce),
        "ooto" => Some(Outcome::AutoReply),
        "complaint" => Some(Outcome::Complaint),
        "suppressionlist" => Some(Outcome::Suppression),
        _ => None,
    }
}

/// One recipient's simulated outcome, as the outbox shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Simulated {
    pub recipient: String,
    pub outcome: Outcome,
}

/// The simulated outcomes of `recipients` that are simulator addresses.
pub fn simulate(recipients: &[String]) -> Vec<Simulated> {
    recipients
        .iter()
        .filter_map(|r| {
            outcome(r).map(|outcome| Simulated {
                recipient: r.clone(),
                outcome,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_mailboxes_with_or_without_a_label() {
        for (address, expected) in [
            ("success@simulator.amazonses.com", Outcome::Delivery),
            ("bounce@simulator.amazonses.com", Outcome::Bounce),
            ("bounce+run-7@simulator.amazonses.com", Outcome::Bounce),
            ("OOTO@Simulator.AmazonSES.com", Outcome::AutoReply),
            ("complaint@simulator.amazonses.com", Outcome::Complaint),
            (
                "suppressionlist@simulator.amazonses.com",
                Outcome::Suppression,
            ),
        ] {
            assert_eq!(outcome(address), Some(expected), "{address}");
        }
        for address in [
            "other@simulator.amazonses.com",
            "bounce@example.com",
            "bounce@sub.simulator.amazonses.com",
            "no-at-sign",
        ] {
            assert_eq!(outcome(address), None, "{address}");
        }
    }
}
