//! `plan --check-smtp`: the real connection test for every accepted ExternalSmtp and
//! AdvancedSmtp EmailSettings (the same test the controller runs, with the same reasons),
//! with the referenced Secrets read from Secret manifests among the inputs (`data` or
//! `stringData`). Tests run concurrently, so many settings cost about one timeout, not the sum.

use super::{Document, ObjectReport, Report};
use crate::crd::EmailSettings;
use crate::smtp::target::{self, SecretSource, SesEndpoint};
use crate::smtp::{ConnectionTest, Tester};
use base64::Engine as _;
use serde_json::Value;
use std::collections::HashMap;

/// Secrets from the input manifests: (namespace, name, key) → bytes.
struct ManifestSecrets<'a> {
    namespace: &'a str,
    all: &'a HashMap<(String, String, String), Vec<u8>>,
}

impl SecretSource for ManifestSecrets<'_> {
    fn get(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        self.all
            .get(&(
                self.namespace.to_string(),
                name.to_string(),
                key.to_string(),
            ))
            .cloned()
    }
}

/// What the connection test of `es` (in `namespace`) would use, with its Secrets read from the
/// manifests among `docs`; None for `delivery: Default` (the operator's relay).
pub fn manifest_target(
    docs: &[Document],
    es: &EmailSettings,
    namespace: &str,
    ses_endpoint: &SesEndpoint,
) -> Result<Option<target::Prepared>, target::Unprepared> {
    let all = secrets(docs);
    let source = ManifestSecrets {
        namespace,
        all: &all,
    };
    target::for_settings(es, &source, ses_endpoint)
}

fn secrets(docs: &[Document]) -> HashMap<(String, String, String), Vec<u8>> {
    let mut out = HashMap::new();
    for d in docs
        .iter()
        .filter(|d| d.object["apiVersion"] == "v1" && d.object["kind"] == "Secret")
    {
        let ns = d.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = d.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(data) = d.object["data"].as_object() {
            for (k, v) in data {
                if let Some(bytes) = v
                    .as_str()
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                {
                    out.insert((ns.clone(), name.clone(), k.clone()), bytes);
                }
            }
        }
        // stringData wins over data, as on the API server.
        if let Some(data) = d.object["stringData"].as_object() {
            for (k, v) in data {
                if let Some(s) = v.as_str() {
                    out.insert((ns.clone(), name.clone(), k.clone()), s.as_bytes().to_vec());
                }
            }
        }
    }
    out
}

fn settings_of(docs: &[Document], report: &ObjectReport) -> Option<EmailSettings> {
    let doc = docs
        .iter()
        .find(|d| format!("{}#{}", d.file.display(), d.index) == report.source)?;
    let mut obj: Value = doc.object.clone();
    obj["metadata"]["namespace"] = Value::String(report.namespace.clone());
    serde_json::from_value(obj).ok()
}

/// Runs the tests and folds their outcome into the report. AdvancedSmtp settings are tested
/// against `ses_endpoint` (by default the region's SES SMTP endpoint); `delivery: Default` is
/// the operator's relay, which only the operator can test.
pub async fn check(
    report: &mut Report,
    docs: &[Document],
    tester: &Tester,
    ses_endpoint: &SesEndpoint,
) -> Result<(), String> {
    let all = secrets(docs);
    let mut jobs = vec![];
    for (i, entry) in report.objects.iter().enumerate() {
        if entry.kind != "EmailSettings" || !entry.accepted {
            continue;
        }
        let Some(es) = settings_of(docs, entry) else {
            continue;
        };
        let source = ManifestSecrets {
            namespace: &entry.namespace,
            all: &all,
        };
        let prepared = target::for_settings(&es, &source, ses_endpoint);
        let tester = &tester;
        jobs.push(async move {
            let outcome = match prepared {
                Ok(None) => return (i, None),
                Err(u) => Err((u.reason, u.message)),
                Ok(Some(p)) => tester
                    .test(&p)
                    .await
                    .map(|o| {
                        format!(
                            "connection test passed ({}, port {}, {} ms)",
                            o.path.as_str(),
                            o.port,
                            o.duration.as_millis()
                        )
                    })
                    .map_err(|f| (f.reason(), f.condition_message(es.spec.delivery))),
            };
            (i, Some(outcome))
        });
    }
    for (i, outcome) in futures::future::join_all(jobs).await {
        let entry = &mut report.objects[i];
        match outcome {
            None => {}
            Some(Ok(passed)) => entry.notes.push(passed),
            Some(Err((reason, message))) => {
                entry.accepted = false;
                entry.reason = reason.to_string();
                entry.message = message;
            }
        }
    }
    Ok(())
}
