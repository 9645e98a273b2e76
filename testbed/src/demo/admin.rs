//! The people the demo plays once the operator runs: the DNS administrator, who publishes every
//! record the SenderIdentities' statuses ask for (`status.dnsRecords`: DKIM CNAMEs, SPF, MAIL
//! FROM MX and TXT) in the test bed's DNS, and the owners of the addresses SES writes to, who
//! click the verification link in SES's message.

use std::collections::BTreeSet;
use std::sync::Arc;

use ::kube::api::DynamicObject;
use serde_json::Value;

use crate::dns::Zone;
use crate::ses::SesState;
use crate::ses::model::Status;
use crate::ses::outbox::MessageKind;

/// A record published for an identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    /// The owner name, e.g. `<token>._domainkey.yourcompany.com`.
    pub name: String,
    /// CNAME, TXT or MX.
    pub type_: String,
    /// In zone-file notation (`10 feedback-smtp.…` for MX).
    pub value: String,
    /// DKIM, SPF, MailFromMX, MailFromSPF.
    pub purpose: String,
    /// `NAMESPACE/NAME` of the SenderIdentity that asked for it.
    pub owner: String,
}

/// The DNS administrator and the mailbox owners.
pub struct Admin {
    zone: Zone,
    ses: Arc<SesState>,
    /// Every record published so far, in order.
    pub records: Vec<Published>,
    seen: BTreeSet<(String, String, String)>,
    /// `(region, address)` of every verification link clicked.
    pub clicked: Vec<(String, String)>,
    links: BTreeSet<String>,
}

impl Admin {
    /// Publishes into `zone` and clicks the links of `ses`' verification messages.
    pub fn new(zone: Zone, ses: Arc<SesState>) -> Self {
        Self {
            zone,
            ses,
            records: vec![],
            seen: BTreeSet::new(),
            clicked: vec![],
            links: BTreeSet::new(),
        }
    }

    /// Publishes the records `identities`' statuses list that are not published yet, and has
    /// SES look at once. Returns a line for each.
    pub async fn publish(&mut self, identities: &[DynamicObject]) -> Vec<String> {
        let mut lines = vec![];
        for identity in identities {
            let owner = format!(
                "{}/{}",
                identity.metadata.namespace.as_deref().unwrap_or_default(),
                identity.metadata.name.as_deref().unwrap_or_default()
            );
            let records = identity
                .data
                .pointer("/status/dnsRecords")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for record in records {
                let field = |f: &str| {
                    record
                        .get(f)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let (name, type_, value) = (field("name"), field("type"), field("value"));
                if name.is_empty() || type_.is_empty() || value.is_empty() {
                    continue;
                }
                let key = (
                    name.to_ascii_lowercase(),
                    type_.to_ascii_uppercase(),
                    value.clone(),
                );
                if self.seen.contains(&key) {
                    continue;
                }
                match self.zone.add(&name, &type_, &value, None).await {
                    Ok(_) => {
                        self.seen.insert(key);
                        lines.push(format!("DNS: published {type_} {name} {value}"));
                        self.records.push(Published {
                            name,
                            type_,
                            value,
                            purpose: field("purpose"),
                            owner: owner.clone(),
                        });
                    }
                    Err(error) => {
                        lines.push(format!("DNS: cannot publish {type_} {name}: {error}"))
                    }
                }
            }
        }
        if !lines.is_empty() {
            self.ses.recheck_now();
        }
        lines
    }

    /// Clicks the link of every verification message SES sent for an email identity that is
    /// still pending — once the DNS administrator has published every record the matching
    /// SenderIdentities' statuses ask for, so that the check that finds the identity verified
    /// also finds its records (`published: true`). Returns a line for each.
    pub fn click_links(&mut self, identities: &[DynamicObject]) -> Vec<String> {
        let pending: BTreeSet<(String, String)> = self
            .ses
            .identities()
            .into_iter()
            .filter(|(i, _)| i.status == Status::Pending)
            .map(|(i, _)| (i.region.clone(), i.name.to_ascii_lowercase()))
            .collect();
        let records_published = |address: &str| {
            identities
                .iter()
                .filter(|i| {
                    i.data
                        .pointer("/spec/identity")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.eq_ignore_ascii_case(address))
                })
                .all(|i| {
                    // Wait for a status written from SES' answer (it lists the records then);
                    // one without records asks for none.
                    let Some(status) = i
                        .data
                        .get("status")
                        .filter(|s| s.get("verificationStatus").is_some())
                    else {
                        return false;
                    };
                    let records = status.get("dnsRecords").and_then(Value::as_array);
                    records.into_iter().flatten().all(|r| {
                        let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
                        self.seen.contains(&(
                            field("name").to_ascii_lowercase(),
                            field("type").to_ascii_uppercase(),
                            field("value").to_string(),
                        ))
                    })
                })
        };
        let mut lines = vec![];
        for message in self.ses.outbox() {
            let Some(address) = message.identity.clone() else {
                continue;
            };
            if message.kind != MessageKind::Verification
                || !pending.contains(&(message.region.clone(), address.to_ascii_lowercase()))
                || !records_published(&address)
                || !self.links.insert(message.message_id.clone())
            {
                continue;
            }
            match self.ses.confirm_email(&address, Some(&message.region)) {
                Ok(_) => {
                    lines.push(format!(
                        "mailbox: {address} clicked the verification link from SES ({})",
                        message.region
                    ));
                    self.clicked.push((message.region.clone(), address));
                }
                Err(error) => lines.push(format!("mailbox: {address}: {error}")),
            }
        }
        lines
    }
}
