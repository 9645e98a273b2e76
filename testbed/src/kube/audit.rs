//! An audit log like kube-apiserver's `--audit-log-path` at level `Metadata`: one JSON line
//! (`audit.k8s.io/v1` `Event`) per request, with the user, verb, object reference, response
//! code and the authorization decision — what a reviewer reads to see exactly which
//! permissions a client used. Watches are logged when their response starts.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::request_info::Attributes;

pub struct AuditLog {
    file: Mutex<File>,
}

/// What the request came to.
pub struct Outcome<'a> {
    pub code: u16,
    /// `allow` / `forbid`; empty when the request was not authenticated.
    pub decision: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub streaming: bool,
}

impl AuditLog {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    pub fn record(
        &self,
        request_uri: &str,
        user_agent: &str,
        attributes: Option<&Attributes>,
        outcome: &Outcome,
    ) {
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": if outcome.streaming { "ResponseStarted" } else { "ResponseComplete" },
            "requestURI": request_uri,
            "userAgent": user_agent,
            "responseStatus": {"metadata": {}, "code": outcome.code},
            "requestReceivedTimestamp": now,
            "stageTimestamp": now,
        });
        if outcome.code >= 400 && !outcome.message.is_empty() {
            event["responseStatus"]["status"] = json!("Failure");
            event["responseStatus"]["message"] = json!(outcome.message);
        }
        match attributes {
            Some(a) => {
                event["verb"] = json!(a.verb);
                event["user"] =
                    json!({"username": a.user.name, "uid": a.user.uid, "groups": a.user.groups});
                if a.resource_request {
                    let mut r = serde_json::Map::new();
                    for (k, v) in [
                        ("resource", &a.resource),
                        ("namespace", &a.namespace),
                        ("name", &a.name),
                        ("apiGroup", &a.api_group),
                        ("apiVersion", &a.api_version),
                        ("subresource", &a.subresource),
                    ] {
                        if !v.is_empty() {
                            r.insert(k.into(), json!(v));
                        }
                    }
                    event["objectRef"] = Value::Object(r);
                }
            }
            None => event["user"] = json!({}),
        }
        if !outcome.decision.is_empty() {
            event["annotations"] = json!({
                "authorization.k8s.io/decision": outcome.decision,
                "authorization.k8s.io/reason": outcome.reason,
            });
        }
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{event}");
        }
    }
}
