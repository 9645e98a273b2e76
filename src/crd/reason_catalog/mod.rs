//! What every reason the operator writes means and what to do about it: one entry per
//! constant of [`super::conditions::reasons`], kept beside them so that a new reason without
//! an entry fails `tests/docs.rs`. The troubleshooting page (`docs/operations/troubleshooting.md`)
//! is rendered from it by [`troubleshooting`].

mod common;
mod email_settings;
mod sender_identity;

use super::reference::generated_banner;
use std::fmt::Write;

/// What a reason asks of whoever reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The healthy state: nothing to do.
    Ok,
    /// On its way (kstatus `Reconciling`): it finishes without anyone acting.
    Progressing,
    /// Mail still flows, but something deserves a look.
    Warning,
    /// Stuck until someone changes something (kstatus `Stalled`).
    ActionNeeded,
    /// A call failed; the operator retries on its own (metrics and log).
    Retried,
}

impl Severity {
    /// How the troubleshooting page names it.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Progressing => "progressing",
            Severity::Warning => "warning",
            Severity::ActionNeeded => "action needed",
            Severity::Retried => "retried",
        }
    }
}

/// Which objects carry a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// EmailSettings only.
    EmailSettings,
    /// SenderIdentity only.
    SenderIdentity,
    /// Both kinds.
    Both,
}

impl Object {
    /// How the troubleshooting page names it.
    pub fn label(self) -> &'static str {
        match self {
            Object::EmailSettings => "EmailSettings",
            Object::SenderIdentity => "SenderIdentity",
            Object::Both => "EmailSettings, SenderIdentity",
        }
    }
}

/// One reason: where it shows, what it means, what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// The reason exactly as written (a constant of `reasons`).
    pub name: &'static str,
    /// The objects it is written on.
    pub object: Object,
    /// Where it shows: condition types (with their status), Events, status fields, metric
    /// labels.
    pub seen_in: &'static str,
    /// What it asks of the reader.
    pub severity: Severity,
    /// What it means.
    pub meaning: &'static str,
    /// What to do about it.
    pub action: &'static str,
}

/// Reasons that arise in the same place, as the troubleshooting page groups them.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The section's heading.
    pub title: &'static str,
    /// One paragraph on where these reasons come from.
    pub about: &'static str,
    /// Its reasons, in reading order.
    pub reasons: &'static [Reason],
}

/// Every section, in the order of the page.
pub const SECTIONS: &[Section] = &[
    common::ADMISSION,
    common::TENANCY,
    sender_identity::IN_SES,
    sender_identity::EVENTS,
    email_settings::CONNECTION_TEST,
    email_settings::PUBLISHING,
    email_settings::SES_ACCOUNT,
    email_settings::TEST_MESSAGES,
    common::FAILED_CALLS,
];

/// Every entry of every section.
pub fn entries() -> impl Iterator<Item = &'static Reason> {
    SECTIONS.iter().flat_map(|s| s.reasons.iter())
}

/// The entry of the reason `name`.
pub fn find(name: &str) -> Option<&'static Reason> {
    entries().find(|r| r.name == name)
}

/// The troubleshooting page: every reason by section, with an index.
pub fn troubleshooting() -> String {
    let mut out = generated_banner();
    out.push_str(TROUBLESHOOTING_INTRO);
    out.push_str("\n| reason | objects | severity |\n|---|---|---|\n");
    let mut all: Vec<&Reason> = entries().collect();
    all.sort_by_key(|r| r.name);
    for r in all {
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} | {} |",
            r.name,
            r.name.to_lowercase(),
            r.object.label(),
            r.severity.label()
        );
    }
    for section in SECTIONS {
        let _ = write!(out, "\n## {}\n\n{}\n", section.title, section.about);
        for r in section.reasons {
            let _ = write!(
                out,
                "\n### {}\n\n**{}** · seen in {} · {}\n\n{}\n\n**What to do:** {}\n",
                r.name,
                r.object.label(),
                r.seen_in,
                r.severity.label(),
                r.meaning,
                r.action
            );
        }
    }
    out
}

const TROUBLESHOOTING_INTRO: &str = "
# Troubleshooting by reason

Every condition the operator writes, every Event it records and every failure it counts
carries a reason: a fixed CamelCase word, the same in `kubectl get`, `kubectl describe`, the
Events, the metrics' labels and the log. Find yours below — what it means and what to do.
The list is generated from the one module that defines the reasons
(`src/crd/conditions.rs`), and a test fails when a reason has no entry here.

Where to look:

```sh
kubectl get emset,sid -n billing                      # Ready, and the connection test's reason
kubectl describe sid yourcompany-com -n billing       # every condition, and the Events
kubectl get sid yourcompany-com -n billing -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}'
kubectl get events -n billing --field-selector reason=BadCredentials
```

Severity: **ok** — the healthy state; **progressing** — on its way, it finishes without
anyone acting (the object is `Reconciling`); **warning** — mail still flows, but look at it;
**action needed** — stuck until someone changes something (the object is `Stalled`);
**retried** — a call failed and the operator retries on its own (these show in the metrics
`email_operator_reconcile_errors_total` and `email_operator_ses_requests_total` and in the
log, not in status).
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ses::VerificationStatus;

    #[test]
    fn names_are_unique_and_every_entry_says_what_to_do() {
        let mut names: Vec<&str> = entries().map(|r| r.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a reason listed twice");
        for r in entries() {
            assert!(!r.meaning.trim().is_empty(), "{}: no meaning", r.name);
            assert!(!r.action.trim().is_empty(), "{}: no action", r.name);
            assert!(!r.seen_in.trim().is_empty(), "{}: not said where", r.name);
        }
    }

    /// SES's verification statuses are written as reasons as they are shown (`Verified`,
    /// `DkimVerified`, `Ready`), not through a constant: each needs an entry too.
    #[test]
    fn every_ses_status_written_as_a_reason_has_an_entry() {
        for s in [
            VerificationStatus::Pending,
            VerificationStatus::Success,
            VerificationStatus::Failed,
            VerificationStatus::TemporaryFailure,
            VerificationStatus::NotStarted,
        ] {
            assert!(find(s.shown()).is_some(), "{} has no entry", s.shown());
        }
    }

    /// Each connection-test failure's reason has an entry, whatever its constant.
    #[test]
    fn every_connection_test_failure_has_an_entry() {
        for f in crate::smtp::Failure::every_kind("") {
            assert!(find(f.reason()).is_some(), "{} has no entry", f.reason());
        }
    }

    #[test]
    fn the_page_links_every_entry_to_its_heading() {
        let page = troubleshooting();
        for r in entries() {
            assert!(page.contains(&format!("\n### {}\n", r.name)), "{}", r.name);
            assert!(page.contains(&format!("](#{})", r.name.to_lowercase())));
        }
    }
}
