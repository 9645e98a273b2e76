//! The status of an EmailSettings (pure): the connection test, the published Secret, and for
//! AdvancedSmtp whether verified SenderIdentities cover the `from` address.

use super::decide::Next;
use crate::crd::conditions::{Progress, condition, reasons, set_condition, set_progress, types};
use crate::crd::email_settings::{
    ConnectionTest, Delivery, EmailSettingsStatus, IdentityUsage, OutputSecret,
};
use crate::crd::{EmailSettings, SenderIdentity};
use crate::names::EmailAddress;
use crate::policy::{self, Usage, Verdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// Why there is nothing to test or publish: a stable reason and a message saying what to do.
pub use crate::smtp::target::Unprepared as Problem;

/// Where the connection test stands for the current inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// The test cannot run (a missing Secret, no default relay…).
    Unavailable(Problem),
    /// The outcome for the current inputs (see [`Next`]; `Test` never reaches here).
    Known(Next),
}

/// Whether SenderIdentities cover the `from` address (AdvancedSmtp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Senders {
    pub sender_verified: Option<String>,
    pub dmarc_aligned: Option<String>,
    /// Why not, when `sender_verified` is None.
    pub missing: String,
    pub usage: Usage,
}

fn describe(si: &SenderIdentity) -> String {
    format!("SenderIdentity {} ({})", si.name_any(), si.spec.identity)
}

/// Checks the SenderIdentities of the namespace against `es.spec.from`.
pub fn senders(es: &EmailSettings, identities: &[SenderIdentity]) -> Senders {
    let name = es.name_any();
    let verdicts = policy::decide(&name, Some(es), identities);
    let usage = Usage::of(&verdicts);
    let region = es.spec.advanced_smtp.as_ref().map(|a| a.region.as_str());
    let Ok(from) = EmailAddress::parse(&es.spec.from) else {
        return Senders {
            sender_verified: None,
            dmarc_aligned: None,
            missing: format!("{} is not an email address", es.spec.from),
            usage,
        };
    };
    let covering: Vec<(&SenderIdentity, bool, bool)> = identities
        .iter()
        .filter_map(|si| match verdicts.get(&si.name_any()) {
            Some(Verdict::Admitted(id)) if policy::covers(id, &from) => {
                let st = si.status.as_ref();
                let verified = st.and_then(|s| s.verified_for_sending) == Some(true)
                    && st.and_then(|s| s.ses.as_ref()).map(|l| l.region.as_str()) == region;
                Some((si, verified, policy::dmarc_aligned(id, &from)))
            }
            _ => None,
        })
        .collect();
    let verified = covering
        .iter()
        .find(|(_, v, _)| *v)
        .map(|(si, ..)| describe(si));
    let aligned = covering
        .iter()
        .find(|(_, v, a)| *v && *a)
        .map(|(si, ..)| describe(si));
    let missing = match covering.first() {
        Some((si, ..)) => format!(
            "{} covers {from} but is not verified yet; publish its DNS records (kubectl describe senderidentity {})",
            describe(si),
            si.name_any()
        ),
        None => format!(
            "no SenderIdentity of EmailSettings {name} covers {from}; create one for the address or for the domain {}",
            from.domain()
        ),
    };
    Senders {
        sender_verified: verified,
        dmarc_aligned: aligned,
        missing,
        usage,
    }
}

/// Everything the status is computed from.
pub struct Inputs<'a> {
    pub es: &'a EmailSettings,
    pub now: Timestamp,
    pub test: &'a Test,
    /// Provider hints for the host tested.
    pub hints: &'a [String],
    /// The generation the output Secret now holds, if it is ours.
    pub published_generation: Option<i64>,
    /// Why the Secret could not be written.
    pub publish_problem: Option<&'a Problem>,
    /// AdvancedSmtp only.
    pub senders: Option<&'a Senders>,
}

fn with_hints(message: String, hints: &[String]) -> String {
    if hints.is_empty() {
        message
    } else {
        format!("{message}. Note: {}.", hints.join("; "))
    }
}

/// The new status, keeping transition times of conditions whose status did not change.
pub fn compute(prior: &EmailSettingsStatus, i: &Inputs) -> EmailSettingsStatus {
    let es = i.es;
    let generation = es.metadata.generation;
    let now = Time(i.now);
    let cond = |t: &str, ok: bool, reason: &str, message: String| {
        condition(t, ok, reason, message, generation, now.clone())
    };
    let mut conditions: Vec<Condition> = prior.conditions.clone();
    conditions.retain(|c| {
        es.spec.delivery == Delivery::AdvancedSmtp
            || (c.type_ != types::SENDER_VERIFIED && c.type_ != types::DMARC_ALIGNED)
    });

    let mut last_test = prior.last_connection_test.clone();
    let connection = match i.test {
        Test::Unavailable(p) => cond(
            types::CONNECTION_VERIFIED,
            false,
            p.reason,
            p.message.clone(),
        ),
        Test::Known(Next::Passed { at, outcome, .. }) => {
            let detail = match outcome {
                Some(o) => {
                    last_test = Some(ConnectionTest {
                        time: Time(*at),
                        duration_ms: i64::try_from(o.duration.as_millis()).unwrap_or(i64::MAX),
                        reason: reasons::SUCCEEDED.into(),
                        path: Some(o.path.as_str().into()),
                    });
                    format!(
                        "connection test passed ({}, port {}, {} ms)",
                        o.path.as_str(),
                        o.port,
                        o.duration.as_millis()
                    )
                }
                None => format!("connection test passed at {at}"),
            };
            cond(
                types::CONNECTION_VERIFIED,
                true,
                reasons::SUCCEEDED,
                with_hints(detail, i.hints),
            )
        }
        Test::Known(Next::Failed {
            at,
            duration,
            failure,
            due,
        }) => {
            last_test = Some(ConnectionTest {
                time: Time(*at),
                duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
                reason: failure.reason().into(),
                path: None,
            });
            cond(
                types::CONNECTION_VERIFIED,
                false,
                failure.reason(),
                with_hints(
                    format!("{} Next test at {due}.", failure.condition_message()),
                    i.hints,
                ),
            )
        }
        Test::Known(Next::Test) => cond(
            types::CONNECTION_VERIFIED,
            false,
            "Testing",
            "the connection test has not run yet".into(),
        ),
    };
    let connected = connection.status == "True";
    let connection_reason = connection.reason.clone();
    let connection_message = connection.message.clone();
    set_condition(&mut conditions, connection);

    let mut sender_problem: Option<(String, String)> = None;
    let mut identity_usage = None;
    if let Some(s) = i.senders {
        let (ok, reason, message) = match &s.sender_verified {
            Some(by) => (
                true,
                reasons::SENDER_COVERED,
                format!("{} is covered by verified {by}", es.spec.from),
            ),
            None => (false, reasons::SENDER_NOT_VERIFIED, s.missing.clone()),
        };
        if !ok {
            sender_problem = Some((reason.to_string(), message.clone()));
        }
        set_condition(
            &mut conditions,
            cond(types::SENDER_VERIFIED, ok, reason, message),
        );
        let domain = es
            .spec
            .from
            .rsplit_once('@')
            .map_or(es.spec.from.as_str(), |(_, d)| d);
        let aligned = match &s.dmarc_aligned {
            Some(by) => cond(
                types::DMARC_ALIGNED,
                true,
                reasons::DOMAIN_IDENTITY_VERIFIED,
                format!("mail from {} is DKIM-signed by verified {by}", es.spec.from),
            ),
            None => cond(
                types::DMARC_ALIGNED,
                false,
                reasons::NO_VERIFIED_DOMAIN_IDENTITY,
                format!(
                    "mail is DKIM-signed by amazonses.com, which does not align with {domain} under DMARC; verify a domain identity for {domain} to sign with your own domain"
                ),
            ),
        };
        set_condition(&mut conditions, aligned);
        identity_usage = Some(IdentityUsage {
            domain: format!("{}/{}", s.usage.domains, policy::MAX_DOMAIN_IDENTITIES),
            email: format!("{}/{}", s.usage.emails, policy::MAX_EMAIL_IDENTITIES),
        });
    }

    let secret = es.output_secret_name();
    let current = i.published_generation.is_some() && i.published_generation == generation;
    // Whatever fails, applications keep the last configuration that passed: say which.
    let still = match i.published_generation {
        Some(g) => format!(
            "; Secret {secret} still holds the last validated configuration (generation {g})"
        ),
        None => String::new(),
    };
    let ready = if let Some(p) = i.publish_problem {
        cond(
            types::READY,
            false,
            p.reason,
            format!("{}{still}", p.message),
        )
    } else if !connected {
        cond(
            types::READY,
            false,
            &connection_reason,
            format!("{connection_message}{still}"),
        )
    } else if let Some((reason, message)) = sender_problem {
        cond(types::READY, false, &reason, format!("{message}{still}"))
    } else if current {
        cond(
            types::READY,
            true,
            reasons::PUBLISHED,
            format!("the validated configuration is published in Secret {secret}"),
        )
    } else {
        cond(
            types::READY,
            false,
            "Publishing",
            format!("publishing the validated configuration to Secret {secret}{still}"),
        )
    };
    // kstatus: failures that pass on their own (and waits) are Reconciling; the rest wait for
    // someone to act, Stalled.
    let progress = if ready.status == "True" {
        Progress::Done
    } else if [
        reasons::CONNECT_FAILED,
        reasons::CONNECT_TIMEOUT,
        reasons::READ_TIMEOUT,
        reasons::SENDER_NOT_VERIFIED,
        reasons::OUTPUT_SECRET_OF_PREDECESSOR,
        "Publishing",
        "Testing",
    ]
    .contains(&ready.reason.as_str())
    {
        Progress::Reconciling
    } else {
        Progress::Stalled
    };
    set_progress(&mut conditions, progress, &ready);
    set_condition(&mut conditions, ready);

    EmailSettingsStatus {
        observed_generation: generation,
        conditions,
        last_connection_test: last_test,
        output_secret: i.published_generation.map(|g| OutputSecret {
            name: secret,
            validated_generation: g,
        }),
        identity_usage,
    }
}
