//! The offline reconcile: admission (schema + CEL) for each object, then the cross-object
//! policy per namespace, then actions and knowable DNS records for what is accepted.

use super::{Document, Ignored, ObjectReport, Report, actions};
use crate::controller::config::Tenancy;
use crate::controller::tenancy as tenancy_claims;
use crate::crd::conditions::reasons;
use crate::crd::{API_VERSION, EmailSettings, GROUP, SenderIdentity, SenderPolicy};
use crate::openapi;
use crate::policy::tenancy::{Grant, Judge, Snapshot};
use crate::policy::{self, Verdict};
use kube::CustomResourceExt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const ES: &str = "EmailSettings";
const SID: &str = "SenderIdentity";
const SPOL: &str = "SenderPolicy";

/// One of our objects on its way through the plan.
struct Entry {
    report: ObjectReport,
    typed: Option<Typed>,
}

enum Typed {
    Settings(Box<EmailSettings>),
    Identity(Box<SenderIdentity>),
    Policy(Box<SenderPolicy>),
}

fn schema_of<K: CustomResourceExt>() -> Value {
    crate::crd::definition::<K>()
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Plans the documents: every EmailSettings, SenderIdentity and SenderPolicy gets a report, in
/// input order. SenderPolicies in `tenancy.policy_namespace` are honoured as the operator
/// would; Namespace manifests among the inputs give the labels their selectors match.
pub fn evaluate(docs: &[Document], tenancy: &Tenancy) -> Report {
    let schemas = [
        (ES, schema_of::<EmailSettings>()),
        (SID, schema_of::<SenderIdentity>()),
        (SPOL, schema_of::<SenderPolicy>()),
    ];
    let mut world = Snapshot {
        policy_namespace: tenancy.policy_namespace.clone(),
        relay_namespaces: tenancy.default_relay_namespaces.clone(),
        labels: namespace_labels(docs),
        ..Snapshot::default()
    };
    let mut entries: Vec<Entry> = vec![];
    let mut ignored = vec![];
    let mut seen: BTreeMap<(String, String, String), String> = BTreeMap::new();

    for doc in docs {
        let source = format!("{}#{}", doc.file.display(), doc.index);
        let api_version = str_at(&doc.object, &["apiVersion"])
            .unwrap_or_default()
            .to_string();
        let kind = str_at(&doc.object, &["kind"])
            .unwrap_or_default()
            .to_string();
        let name = str_at(&doc.object, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let namespace = str_at(&doc.object, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_string();
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let ours = group == GROUP && (kind == ES || kind == SID || kind == SPOL);
        if !ours {
            ignored.push(Ignored {
                note: "not a kind email-operator manages".into(),
                namespace: str_at(&doc.object, &["metadata", "namespace"]).map(str::to_string),
                kind,
                api_version,
                name,
                source,
            });
            continue;
        }
        let mut report = ObjectReport {
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            source: source.clone(),
            accepted: false,
            reason: reasons::INVALID.into(),
            message: String::new(),
            actions: vec![],
            dns_records: vec![],
            notes: vec![],
        };
        let key = (kind.clone(), namespace.clone(), name.clone());
        let problem = if api_version != API_VERSION {
            Some(format!(
                "apiVersion {api_version} is not served; use {API_VERSION}"
            ))
        } else if let Err(e) = check_name(
            doc.object.get("metadata").and_then(|m| m.get("name")),
            &name,
        ) {
            Some(e)
        } else if let Some(first) = seen.get(&key) {
            report.reason = "DuplicateObject".into();
            Some(format!(
                "{kind} {namespace}/{name} is already defined at {first}; a later apply would overwrite it"
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            report.message = message;
            entries.push(Entry {
                report,
                typed: None,
            });
            continue;
        }
        seen.insert(key, source);
        let schema = schemas.iter().find(|(k, _)| *k == kind).map(|(_, s)| s);
        let typed = match admit(
            &doc.object,
            &namespace,
            schema.unwrap_or(&Value::Null),
            &kind,
        ) {
            Ok(typed) => Some(typed),
            Err(message) => {
                report.message = message;
                None
            }
        };
        entries.push(Entry { report, typed });
    }

    for e in &mut entries {
        if let Some(Typed::Policy(p)) = &e.typed {
            if e.report.namespace == tenancy.policy_namespace {
                world.grants.push(Grant::of(p));
                actions::for_policy(p, &mut e.report);
            } else {
                e.report.actions.push(format!(
                    "none: the operator honours SenderPolicies only in namespace {} (--policy-namespace)",
                    tenancy.policy_namespace
                ));
            }
            accept(&mut e.report);
        }
    }
    cross_object(&mut entries, &mut world);
    Report {
        objects: entries.into_iter().map(|e| e.report).collect(),
        ignored,
    }
}

/// The labels of the Namespace manifests among the inputs.
fn namespace_labels(docs: &[Document]) -> BTreeMap<String, BTreeMap<String, String>> {
    docs.iter()
        .filter(|d| str_at(&d.object, &["kind"]) == Some("Namespace"))
        .filter_map(|d| {
            let name = str_at(&d.object, &["metadata", "name"])?.to_string();
            let labels = d
                .object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            Some((name, labels))
        })
        .collect()
}

fn check_name(raw: Option<&Value>, name: &str) -> Result<(), String> {
    if let Some(v) = raw.filter(|v| !v.is_string()) {
        return Err(format!(
            "metadata.name: Invalid value: {v}: must be a string (quote it in YAML)"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && regex::Regex::new("^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .is_ok_and(|re| re.is_match(name));
    if ok {
        Ok(())
    } else if name.is_empty() {
        Err("metadata.name: Required value: name is required".into())
    } else {
        Err(format!(
            "metadata.name: Invalid value: {name:?}: must be a lower-case DNS subdomain name"
        ))
    }
}

/// Admission as the API server does it for a create: the spec checked against the schema and
/// CEL rules (strict field validation, as `kubectl apply` uses: unknown fields are errors),
/// then read into the Rust type.
fn admit(object: &Value, namespace: &str, schema: &Value, kind: &str) -> Result<Typed, String> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let candidate = serde_json::json!({ "spec": spec });
    let admitted = openapi::admit(schema, &candidate, None).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let mut unknown = vec![];
    pruned_paths(&candidate, &admitted, "", &mut unknown);
    if !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect();
        return Err(fields.join("; "));
    }
    let mut full = admitted;
    full["apiVersion"] = object["apiVersion"].clone();
    full["kind"] = object["kind"].clone();
    full["metadata"] = object
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    full["metadata"]["namespace"] = Value::String(namespace.to_string());
    let typed = match kind {
        ES => serde_json::from_value(full).map(|o| Typed::Settings(Box::new(o))),
        SID => serde_json::from_value(full).map(|o| Typed::Identity(Box::new(o))),
        _ => serde_json::from_value(full).map(|o| Typed::Policy(Box::new(o))),
    };
    typed.map_err(|e| format!("cannot read the object: {e}"))
}

/// Paths present in `input` but gone from `output` (what pruning removed).
fn pruned_paths(input: &Value, output: &Value, prefix: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match o.get(k) {
                    Some(ov) => pruned_paths(v, ov, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                pruned_paths(iv, ov, &format!("{prefix}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// The policy across objects of each namespace, then tenancy across namespaces, then actions
/// for what is accepted.
fn cross_object(entries: &mut [Entry], world: &mut Snapshot) {
    let namespaces: BTreeSet<String> = entries.iter().map(|e| e.report.namespace.clone()).collect();
    // Per namespace: the EmailSettings' output Secret conflicts and their identities' verdicts.
    let mut conflicts: BTreeMap<(String, String), Verdict> = BTreeMap::new();
    let mut verdicts: BTreeMap<(String, String), Verdict> = BTreeMap::new();
    for ns in &namespaces {
        let settings = settings_in(entries, ns);
        let identities = identities_in(entries, ns);
        for (name, v) in policy::output_secret_conflicts(&settings) {
            conflicts.insert((ns.clone(), name), v);
        }
        let refs: BTreeSet<&str> = identities
            .iter()
            .map(|si| si.spec.email_settings_ref.name.as_str())
            .collect();
        for r in refs {
            let es = settings
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(r));
            for (name, v) in policy::decide(r, es, &identities) {
                verdicts.insert((ns.clone(), name), v);
            }
        }
    }
    // Across namespaces: every claim, then each judged against the others.
    for e in entries.iter() {
        match &e.typed {
            Some(Typed::Settings(es)) => world.claims.extend(tenancy_claims::settings_claim(es)),
            Some(Typed::Identity(si)) => {
                let key = (e.report.namespace.clone(), e.report.name.clone());
                if let Some(Verdict::Admitted(id)) = verdicts.get(&key)
                    && let Some(es) = settings_of(entries, si)
                {
                    world
                        .claims
                        .extend(tenancy_claims::identity_claim(si, id, &es));
                }
            }
            _ => {}
        }
    }
    let judge = Judge::new(&*world);
    let claims = world.claims.clone();
    let refused = |ns: &str, name: &str, kind: &str| -> Option<Verdict> {
        let claim = claims
            .iter()
            .find(|c| c.namespace == ns && c.name == name && c.kind == kind)?;
        let v = judge.judge(claim);
        (!v.is_admitted()).then_some(v)
    };
    for (key, v) in verdicts.iter_mut() {
        if v.is_admitted()
            && let Some(r) = refused(&key.0, &key.1, SID)
        {
            *v = r;
        }
    }
    for entry in entries
        .iter()
        .filter(|e| matches!(e.typed, Some(Typed::Settings(_))))
    {
        let key = (entry.report.namespace.clone(), entry.report.name.clone());
        if let Some(r) = refused(&key.0, &key.1, ES) {
            conflicts.entry(key).or_insert(r);
        }
    }
    for ns in &namespaces {
        report_namespace(entries, ns, &conflicts, &verdicts);
    }
}

fn settings_in(entries: &[Entry], ns: &str) -> Vec<EmailSettings> {
    entries
        .iter()
        .filter(|e| e.report.namespace == ns)
        .filter_map(|e| match &e.typed {
            Some(Typed::Settings(s)) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

fn identities_in(entries: &[Entry], ns: &str) -> Vec<SenderIdentity> {
    entries
        .iter()
        .filter(|e| e.report.namespace == ns)
        .filter_map(|e| match &e.typed {
            Some(Typed::Identity(s)) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

/// The EmailSettings a SenderIdentity names, among the inputs.
fn settings_of(entries: &[Entry], si: &SenderIdentity) -> Option<EmailSettings> {
    let ns = si.metadata.namespace.as_deref()?;
    settings_in(entries, ns)
        .into_iter()
        .find(|s| s.metadata.name.as_ref() == Some(&si.spec.email_settings_ref.name))
}

/// The reports of one namespace: rejections, or acceptance and actions.
fn report_namespace(
    entries: &mut [Entry],
    ns: &str,
    conflicts: &BTreeMap<(String, String), Verdict>,
    verdicts: &BTreeMap<(String, String), Verdict>,
) {
    let settings = settings_in(entries, ns);
    let identities = identities_in(entries, ns);
    let admitted: Vec<(&SenderIdentity, &Verdict)> = identities
        .iter()
        .filter_map(|si| {
            let v = verdicts.get(&(ns.to_string(), si.metadata.name.clone()?))?;
            v.is_admitted().then_some((si, v))
        })
        .collect();
    for entry in entries.iter_mut().filter(|e| e.report.namespace == ns) {
        let report = &mut entry.report;
        let key = (ns.to_string(), report.name.clone());
        let verdict = match &entry.typed {
            None | Some(Typed::Policy(_)) => continue,
            Some(Typed::Settings(es)) => match conflicts.get(&key) {
                Some(v) => v.clone(),
                None => {
                    actions::for_settings(es, &admitted, report);
                    accept(report);
                    continue;
                }
            },
            Some(Typed::Identity(si)) => {
                let v = verdicts.get(&key).cloned();
                if let Some(Verdict::Admitted(id)) = &v {
                    let es = settings.iter().find(|s| {
                        s.metadata.name.as_ref() == Some(&si.spec.email_settings_ref.name)
                    });
                    if let Some(es) = es {
                        actions::for_identity(si, id, es, report);
                    }
                }
                match v {
                    Some(v) => v,
                    None => continue,
                }
            }
        };
        match verdict {
            Verdict::Admitted(_) => accept(report),
            Verdict::Rejected { reason, message } => {
                report.reason = reason.to_string();
                report.message = message;
            }
        }
    }
}

fn accept(report: &mut ObjectReport) {
    report.accepted = true;
    report.reason = reasons::ACCEPTED.into();
}
