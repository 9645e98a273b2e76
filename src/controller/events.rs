//! Events (`events.k8s.io/v1`) about our objects, written so the API server accepts them
//! whatever the object's name: kube-apiserver validates an Event's name as a DNS subdomain
//! (at most 253 characters) and its note at 1024 bytes (kubernetes `pkg/apis/core/validation/
//! events.go`, `NoteLengthLimit`), while kube's `Recorder` names an Event `<object name>.<hex
//! time>` — too long for objects whose names use most of their 253 characters — and cuts nothing.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// The longest Event name (a DNS subdomain).
const MAX_NAME: usize = 253;
/// The longest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 1024;
/// The longest `reportingInstance`.
const MAX_INSTANCE: usize = 128;

/// Who reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub controller: String,
    pub instance: Option<String>,
}

/// The Event's name: the object's name, cut so that `.<hex time>` fits in 253 characters and
/// still ending in a letter or digit (a DNS subdomain), then the time in nanoseconds.
pub fn name(object: &str, now: Timestamp) -> String {
    let suffix = format!(".{:x}", now.as_nanosecond());
    let room = MAX_NAME - suffix.len();
    let prefix = object
        .get(..room.min(object.len()))
        .unwrap_or(object)
        .trim_end_matches(['.', '-']);
    format!("{prefix}{suffix}")
}

/// `note` cut to at most 1024 bytes on a character boundary, marked with `…` when cut.
pub fn note(note: &str) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_string();
    }
    const MARK: &str = " …";
    let mut end = MAX_NOTE_BYTES - MARK.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &note[..end])
}

/// The Event about `regarding`.
pub fn build(
    reporter: &Reporter,
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    text: &str,
    now: Timestamp,
) -> Event {
    let object = regarding
        .name
        .clone()
        .unwrap_or_else(|| reporter.controller.clone());
    let instance: String = reporter
        .instance
        .clone()
        .unwrap_or_else(|| reporter.controller.clone())
        .chars()
        .take(MAX_INSTANCE)
        .collect();
    Event {
        metadata: ObjectMeta {
            name: Some(name(&object, now)),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        action: Some("Reconcile".into()),
        reason: Some(reason.to_string()),
        note: Some(note(text)),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(instance),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        ..Default::default()
    }
}

/// Publishes the Event in the object's namespace.
pub async fn publish(client: &Client, event: &Event) -> Result<(), kube::Error> {
    let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
    Api::<Event>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), event)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns_subdomain(s: &str) -> bool {
        let label = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        s.len() <= 253 && s.split('.').all(label)
    }

    #[test]
    fn names_fit_a_dns_subdomain_for_any_object_name() {
        let now = Timestamp::from_second(1_800_000_000).expect("time");
        let short = name("notifications", now);
        assert!(
            short.starts_with("notifications.") && dns_subdomain(&short),
            "{short}"
        );
        for object in [
            "a".repeat(253),
            format!("{}.{}", "a".repeat(200), "b".repeat(52)),
            format!("{}-{}", "a".repeat(235), "b".repeat(17)),
            format!("{}.-x", "a".repeat(234)),
        ] {
            let n = name(&object, now);
            assert!(dns_subdomain(&n), "{n} ({} characters)", n.len());
            assert!(n.len() <= 253);
        }
    }

    #[test]
    fn notes_are_cut_at_1024_bytes_on_a_character_boundary() {
        assert_eq!(note("short"), "short");
        let exactly = "x".repeat(1024);
        assert_eq!(note(&exactly), exactly);
        let long = "é".repeat(600); // 1200 bytes
        let cut = note(&long);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with(" …"));
        assert!(cut.starts_with("éé"));
    }
}
