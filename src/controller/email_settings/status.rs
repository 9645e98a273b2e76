//! The status of an EmailSettings (pure): the connection test, the published Secret, and for
//! AdvancedSmtp whether verified SenderIdentities cover the `from` address.

use super::decide::Next;
use crate::controller::account::Reading;
use crate::crd::conditions::{Progress, condition, reasons, set_condition, set_progress, types};
use crate::crd::email_settings::{
    ConnectionTest, Delivery, EmailSettingsStatus, IdentityUsage, OutputSecret, SesAccount,
    TestMessage,
};
use crate::crd::{EmailSettings, SenderIdentity};
use crate::names::EmailAddress;
use crate::policy::{self, Usage, Verdict};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// Why there is nothing to test or publish: a stable reason and a message saying what to do.
pub use crate::smtp::target::Unprepared as Problem;

/// Why the output Secret cannot be written, and whether that passes on its own (the Secret of
/// a deleted predecessor, collected soon) or waits for someone (another's Secret, a conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishProblem {
    pub problem: Problem,
    pub progress: Progress,
}

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
    /// Why the Secret cannot be written.
    pub publish_problem: Option<&'a PublishProblem>,
    /// AdvancedSmtp only.
    pub senders: Option<&'a Senders>,
    /// The version of the inputs tested ([`super::dereference::Subject::inputs`]).
    pub inputs: Option<&'a str>,
    /// AdvancedSmtp: the SES account's standing in this region, when it could be read.
    pub account: Option<(&'a str, &'a Reading)>,
    /// The test message sent in this reconcile.
    pub test_message: Option<&'a TestMessage>,
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
    let mut conditions: Vec<Condition> = prior.conditions.clone();
    let advanced = es.spec.delivery == Delivery::AdvancedSmtp;
    conditions.retain(|c| {
        advanced
            || ![
                types::SENDER_VERIFIED,
                types::DMARC_ALIGNED,
                types::SES_ACCOUNT_HEALTHY,
            ]
            .contains(&c.type_.as_str())
    });
    let (connection, last_test, connection_progress) =
        connection(i, prior.last_connection_test.clone());
    let connected = connection.status == "True";
    let blocked = (!connected).then(|| {
        (
            connection.reason.clone(),
            connection.message.clone(),
            connection_progress,
        )
    });
    set_condition(&mut conditions, connection);
    let mut identity_usage = None;
    let mut sender_problem = None;
    if let Some(s) = i.senders {
        sender_problem = sender_conditions(&mut conditions, i, s);
        identity_usage = Some(IdentityUsage {
            domain: format!("{}/{}", s.usage.domains, policy::MAX_DOMAIN_IDENTITIES),
            email: format!("{}/{}", s.usage.emails, policy::MAX_EMAIL_IDENTITIES),
        });
    }
    let mut ses_account = prior.ses_account.clone().filter(|_| advanced);
    let mut account_problem = None;
    if let Some((region, reading)) = i.account.filter(|_| advanced) {
        let (shown, problem, condition) = account(i, region, reading);
        ses_account = shown.or(ses_account.filter(|a| a.region == region));
        account_problem = problem;
        set_condition(&mut conditions, condition);
    }
    let (ready, progress) = ready(i, blocked.or(account_problem).or(sender_problem));
    set_progress(&mut conditions, progress, &ready);
    set_condition(&mut conditions, ready);
    EmailSettingsStatus {
        observed_generation: es.metadata.generation,
        conditions,
        last_connection_test: last_test,
        output_secret: i.published_generation.map(|g| OutputSecret {
            name: es.output_secret_name(),
            validated_generation: g,
        }),
        identity_usage,
        last_test_message: i
            .test_message
            .cloned()
            .or_else(|| prior.last_test_message.clone()),
        ses_account,
    }
}

/// `SesAccountHealthy` from a GetAccount reading, what the status shows of it, and the problem
/// Ready reports when the account cannot send at all (someone must act: Stalled). The sandbox
/// and a review are warnings only: mail still leaves.
fn account(
    i: &Inputs,
    region: &str,
    reading: &Reading,
) -> (
    Option<SesAccount>,
    Option<(String, String, Progress)>,
    Condition,
) {
    let t = types::SES_ACCOUNT_HEALTHY;
    let a = match &reading.result {
        Ok(a) => a,
        Err(e) => {
            let mut c = cond(
                i,
                t,
                false,
                reasons::SES_ACCOUNT_UNREADABLE,
                format!(
                    "GetAccount failed in {region} ({}): {e}; it is read again within 5 minutes (the operator's credentials, or the role, need ses:GetAccount)",
                    e.reason()
                ),
            );
            c.status = "Unknown".into();
            return (None, None, c);
        }
    };
    let shown = SesAccount {
        region: region.to_string(),
        production_access: a.production_access,
        sending_enabled: a.sending_enabled,
        enforcement_status: a.enforcement_status.clone(),
        max24_hour_send: a.max_24_hour_send as i64,
        max_send_rate: a.max_send_rate as i64,
        sent_last24_hours: a.sent_last_24_hours as i64,
        checked_time: Time(reading.at),
    };
    // (healthy, reason, message, whether no mail leaves: Ready stalls on it)
    let (ok, reason, message, stops) = if a.enforcement_status == "SHUTDOWN" {
        (
            false,
            reasons::SES_ACCOUNT_SHUT_DOWN,
            format!(
                "AWS has shut down the SES account's sending in {region} (enforcement status SHUTDOWN): no mail leaves; see the SES account dashboard and contact AWS Support"
            ),
            true,
        )
    } else if !a.sending_enabled {
        (
            false,
            reasons::SES_SENDING_PAUSED,
            format!(
                "sending is paused for the SES account in {region}: no mail leaves; if it was paused on purpose resume it (aws sesv2 put-account-sending-attributes --sending-enabled --region {region}), otherwise see the SES account dashboard"
            ),
            true,
        )
    } else if a.enforcement_status == "PROBATION" {
        (
            false,
            reasons::SES_ACCOUNT_ON_PROBATION,
            format!(
                "AWS is reviewing the SES account in {region} (enforcement status PROBATION), usually for high bounce or complaint rates: mail still leaves, but sending may be shut down; see the SES account dashboard"
            ),
            false,
        )
    } else if !a.production_access {
        (
            false,
            reasons::SES_SANDBOX,
            format!(
                "the SES account is in the sandbox in {region}: mail goes only to verified addresses and domains and to the mailbox simulator, at most {} messages in 24 hours ({} sent) and {} a second; request production access for {region} (SES console, Get set up; or aws sesv2 put-account-details --production-access-enabled --region {region})",
                shown.max24_hour_send, shown.sent_last24_hours, shown.max_send_rate
            ),
            false,
        )
    } else {
        (
            true,
            reasons::SES_ACCOUNT_IN_GOOD_STANDING,
            format!(
                "the SES account has production access in {region} and may send {} messages in 24 hours ({} sent), {} a second",
                shown.max24_hour_send, shown.sent_last24_hours, shown.max_send_rate
            ),
            false,
        )
    };
    let c = cond(i, t, ok, reason, message.clone());
    let problem = stops.then(|| (reason.to_string(), message, Progress::Stalled));
    (Some(shown), problem, c)
}

fn cond(i: &Inputs, t: &str, ok: bool, reason: &str, message: String) -> Condition {
    condition(
        t,
        ok,
        reason,
        message,
        i.es.metadata.generation,
        Time(i.now),
    )
}

/// `ConnectionVerified` from where the test stands, the last test to show, and — when it did
/// not pass — whether that passes on its own (a timeout, a refused connection, a test still to
/// run: Reconciling) or waits for someone (Stalled).
fn connection(
    i: &Inputs,
    mut last_test: Option<ConnectionTest>,
) -> (Condition, Option<ConnectionTest>, Progress) {
    let t = types::CONNECTION_VERIFIED;
    let c = match i.test {
        Test::Unavailable(p) => {
            let c = cond(i, t, false, p.reason, p.message.clone());
            return (c, last_test, Progress::Stalled);
        }
        Test::Known(Next::Passed { at, outcome, .. }) => {
            let detail = match outcome {
                Some(o) => {
                    last_test = Some(ConnectionTest {
                        time: Time(*at),
                        duration_ms: i64::try_from(o.duration.as_millis()).unwrap_or(i64::MAX),
                        reason: reasons::SUCCEEDED.into(),
                        path: Some(o.path.as_str().into()),
                        detail: None,
                        failures: None,
                        inputs: i.inputs.map(str::to_string),
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
            cond(i, t, true, reasons::SUCCEEDED, with_hints(detail, i.hints))
        }
        Test::Known(Next::Failed {
            at,
            duration,
            failure,
            failures,
            due,
        }) => {
            last_test = Some(ConnectionTest {
                time: Time(*at),
                duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
                reason: failure.reason().into(),
                path: None,
                detail: Some(failure.detail().to_string()),
                failures: Some(*failures),
                inputs: i.inputs.map(str::to_string),
            });
            let message = format!(
                "{} Next test at {due}.",
                failure.condition_message(i.es.spec.delivery)
            );
            let c = cond(i, t, false, failure.reason(), with_hints(message, i.hints));
            let progress = if failure.is_transient() {
                Progress::Reconciling
            } else {
                Progress::Stalled
            };
            return (c, last_test, progress);
        }
        Test::Known(Next::Test) => cond(
            i,
            t,
            false,
            reasons::TESTING,
            "the connection test has not run yet".into(),
        ),
    };
    (c, last_test, Progress::Reconciling)
}

/// `SenderVerified` and `DmarcAligned` (AdvancedSmtp); the problem Ready reports when the
/// sender is not covered yet (it will be once its identity verifies: Reconciling).
fn sender_conditions(
    conditions: &mut Vec<Condition>,
    i: &Inputs,
    s: &Senders,
) -> Option<(String, String, Progress)> {
    let from = &i.es.spec.from;
    let (ok, reason, message) = match &s.sender_verified {
        Some(by) => (
            true,
            reasons::SENDER_COVERED,
            format!("{from} is covered by verified {by}"),
        ),
        None => (false, reasons::SENDER_NOT_VERIFIED, s.missing.clone()),
    };
    set_condition(
        conditions,
        cond(i, types::SENDER_VERIFIED, ok, reason, message.clone()),
    );
    let domain = from.rsplit_once('@').map_or(from.as_str(), |(_, d)| d);
    let aligned = match &s.dmarc_aligned {
        Some(by) => cond(
            i,
            types::DMARC_ALIGNED,
            true,
            reasons::DOMAIN_IDENTITY_VERIFIED,
            format!("mail from {from} is DKIM-signed by verified {by}"),
        ),
        None => cond(
            i,
            types::DMARC_ALIGNED,
            false,
            reasons::NO_VERIFIED_DOMAIN_IDENTITY,
            format!(
                "mail is DKIM-signed by amazonses.com, which does not align with {domain} under DMARC; verify a domain identity for {domain} to sign with your own domain"
            ),
        ),
    };
    set_condition(conditions, aligned);
    (!ok).then(|| (reason.to_string(), message, Progress::Reconciling))
}

/// `Ready` and where the object stands (kstatus): published for the current generation, or
/// why not — whatever fails, applications keep the last configuration that passed, and the
/// message says which.
fn ready(i: &Inputs, blocked: Option<(String, String, Progress)>) -> (Condition, Progress) {
    let es = i.es;
    let secret = es.output_secret_name();
    let current =
        i.published_generation.is_some() && i.published_generation == es.metadata.generation;
    let still = match i.published_generation {
        Some(g) => format!(
            "; Secret {secret} still holds the last validated configuration (generation {g})"
        ),
        None => String::new(),
    };
    let t = types::READY;
    if let Some(p) = i.publish_problem {
        let message = format!("{}{still}", p.problem.message);
        return (cond(i, t, false, p.problem.reason, message), p.progress);
    }
    if let Some((reason, message, progress)) = blocked {
        return (
            cond(i, t, false, &reason, format!("{message}{still}")),
            progress,
        );
    }
    if current {
        let message = format!("the validated configuration is published in Secret {secret}");
        return (
            cond(i, t, true, reasons::PUBLISHED, message),
            Progress::Done,
        );
    }
    let message = format!("publishing the validated configuration to Secret {secret}{still}");
    (
        cond(i, t, false, reasons::PUBLISHING, message),
        Progress::Reconciling,
    )
}

/// A condition change worth an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// One Event per transition of the conditions users act on — `ConnectionVerified`,
/// `SenderVerified`, `Ready` — where the status or reason changed; Ready repeats a reason just
/// reported by the other two, so it is not said twice.
pub fn transitions(prior: &EmailSettingsStatus, new: &EmailSettingsStatus) -> Vec<Transition> {
    let mut out: Vec<Transition> = vec![];
    for t in [
        types::CONNECTION_VERIFIED,
        types::SENDER_VERIFIED,
        types::SES_ACCOUNT_HEALTHY,
        types::READY,
    ] {
        let (before, after) = (state(prior, t), state(new, t));
        // An account found in good standing is no news; a change of standing is.
        let routine = t == types::SES_ACCOUNT_HEALTHY
            && before.is_none()
            && after.as_ref().is_some_and(|a| a.0 == "True");
        if routine {
            continue;
        }
        if let Some((status, reason, message)) = after
            && before.as_ref().map(|b| (&b.0, &b.1)) != Some((&status, &reason))
            && !out.iter().any(|o| o.reason == reason)
        {
            out.push(Transition {
                warning: status != "True",
                reason,
                message,
            });
        }
    }
    out
}

/// The condition of a type in a status, as (status, reason, message).
fn state(status: &EmailSettingsStatus, t: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}
