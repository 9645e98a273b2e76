//! `events.k8s.io/v1` Events, validated as kubernetes pkg/apis/core/validation/events.go
//! validates them for that API (`ValidateEventCreate` / `ValidateEventUpdate` with the
//! strict rules of events.k8s.io/v1 and newer). Events are stored as the internal
//! `core.Event`, so error paths use its field names: `note` is `message`, `regarding` is
//! `involvedObject`, `deprecatedSource` is `source`, `deprecatedCount` is `count`.
//!
//! Lengths are Go `len`, i.e. bytes.

use email_operator::openapi::FieldError;
use serde_json::Value;

use super::meta;
use super::resources::ResourceType;
use super::validation::{invalid, invalid_str, qualified_name, required};

/// events.go limits.
const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

pub fn is_event(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events" && rt.crd.is_none()
}

fn s(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn set(obj: &Value, pointer: &str) -> bool {
    obj.pointer(pointer).is_some_and(|v| !v.is_null())
}

/// events.go `legacyValidateEvent`, which every Event passes on create and update.
fn legacy(event: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = meta::namespace(event);
    let regarding_ns = s(event, "/regarding/namespace");
    let event_time = !s(event, "/eventTime").is_empty();
    if !event_time {
        let mismatch = if regarding_ns.is_empty() {
            !ns.is_empty() && ns != "default"
        } else {
            ns != regarding_ns
        };
        if mismatch {
            errs.push(invalid_str(
                "involvedObject.namespace",
                &regarding_ns,
                "does not match event.namespace",
            ));
        }
    } else {
        if regarding_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(invalid_str(
                "involvedObject.namespace",
                &regarding_ns,
                "does not match event.namespace",
            ));
        }
        let controller = s(event, "/reportingController");
        if controller.is_empty() {
            errs.push(required("reportingController", ""));
        }
        for m in qualified_name(&controller) {
            errs.push(invalid_str("reportingController", &controller, &m));
        }
        let bounded = [
            (
                "reportingInstance",
                "/reportingInstance",
                REPORTING_INSTANCE_LENGTH_LIMIT,
                true,
            ),
            ("action", "/action", ACTION_LENGTH_LIMIT, true),
            ("reason", "/reason", REASON_LENGTH_LIMIT, true),
            ("message", "/note", NOTE_LENGTH_LIMIT, false),
        ];
        for (path, pointer, limit, needed) in bounded {
            let v = s(event, pointer);
            if needed && v.is_empty() {
                errs.push(required(path, ""));
            }
            if v.len() > limit {
                errs.push(invalid_str(
                    path,
                    "",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
    }
    for m in super::validation::dns1123_subdomain(ns) {
        errs.push(invalid_str("namespace", ns, &m));
    }
    errs
}

/// events.go `validateV1EventSeries`.
fn series(event: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if set(event, "/series") {
        if event
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            < 2
        {
            errs.push(invalid_str("series.count", "", "should be at least 2"));
        }
        if s(event, "/series/lastObservedTime").is_empty() {
            errs.push(required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// `ValidateEventCreate` for events.k8s.io/v1: the legacy checks, then the object metadata
/// (`meta_errs`, already computed with a DNS-subdomain name), the series, `eventTime`,
/// `type`, and the deprecated fields unset.
pub fn validate_create(event: &Value, meta_errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut errs = legacy(event);
    errs.extend(meta_errs);
    errs.extend(series(event));
    if s(event, "/eventTime").is_empty() {
        errs.push(required("eventTime", ""));
    }
    let type_ = s(event, "/type");
    if type_ != "Normal" && type_ != "Warning" {
        errs.push(invalid_str(
            "type",
            "",
            &format!("has invalid value: {type_}"),
        ));
    }
    for (path, pointer) in [
        ("firstTimestamp", "/deprecatedFirstTimestamp"),
        ("lastTimestamp", "/deprecatedLastTimestamp"),
    ] {
        if !s(event, pointer).is_empty() {
            errs.push(invalid_str(path, "", "needs to be unset"));
        }
    }
    if event
        .pointer("/deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        errs.push(invalid_str("count", "", "needs to be unset"));
    }
    if !s(event, "/deprecatedSource/component").is_empty()
        || !s(event, "/deprecatedSource/host").is_empty()
    {
        errs.push(invalid_str("source", "", "needs to be unset"));
    }
    errs
}

/// A field's value as `field.Invalid` prints it: strings quoted, numbers plain, anything
/// else as JSON (Go prints structs with `%#v`).
fn go_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "\"\"".into(),
        Some(Value::String(s)) => super::validation::go_quote(s),
        Some(other) => other.to_string(),
    }
}

/// `ValidateEventUpdate` for events.k8s.io/v1: the legacy checks, the metadata update
/// checks (`meta_errs`), the series when it changed, and the immutable fields.
pub fn validate_update(old: &Value, new: &Value, meta_errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut errs = legacy(new);
    errs.extend(meta_errs);
    if new.get("series") != old.get("series") {
        errs.extend(series(new));
    }
    // In events.go's order (`reason` is checked twice there).
    for (path, field) in [
        ("involvedObject", "regarding"),
        ("reason", "reason"),
        ("message", "note"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
        ("reason", "reason"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingController", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ] {
        let (a, b) = (new.get(field), old.get(field));
        let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || *v == "" || *v == 0);
        if a != b && !(empty(a) && empty(b)) {
            errs.push(invalid(path, &go_value(a), "field is immutable"));
        }
    }
    errs
}
