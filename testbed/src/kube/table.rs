//! Server-side Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), built
//! from the type's printer columns the way the apiextensions table convertor does: a `Name`
//! column, then each `additionalPrinterColumns` entry evaluated with its JSONPath; `date`
//! columns are rendered as a human-readable age. Also the `PartialObjectMetadata` form
//! (`Accept: …;as=PartialObjectMetadata…`) kube's metadata API and watchers ask for.

use serde_json::{Value, json};

use super::jsonpath;
use super::meta;
use super::resources::ResourceType;

/// Whether the `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| part.contains("as=Table"))
}

/// How a read answers: the objects, a Table, or `PartialObjectMetadata` (kube's metadata
/// API: `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Full,
    /// With the `includeObject` parameter: `None`, `Metadata` (default) or `Object`.
    Table(String),
    Metadata,
}

impl View {
    pub fn from_accept(accept: &str, include_object: Option<&str>) -> Self {
        if wants_table(accept) {
            View::Table(include_object.unwrap_or("Metadata").to_string())
        } else if accept
            .split(',')
            .any(|part| part.contains("as=PartialObjectMetadata"))
        {
            View::Metadata
        } else {
            View::Full
        }
    }
}

/// An object reduced to its metadata, as `PartialObjectMetadata`.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Kubernetes' `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn cell(obj: &Value, type_: &str, path: &str) -> Value {
    let values = jsonpath::select(obj, path);
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match type_ {
        "date" => match first
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        {
            Some(t) => json!(human_duration(
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
            )),
            None => Value::Null,
        },
        "integer" | "number" | "boolean" => first.clone(),
        _ => match first {
            Value::String(_) => first.clone(),
            Value::Null => Value::Null,
            _ => json!(
                values
                    .iter()
                    .map(|v| v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        },
    }
}

/// `include`: the `includeObject` parameter (`None`, `Metadata` (default) or `Object`).
pub fn build(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: &str,
) -> Value {
    let mut columns = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    })];
    for c in &rt.columns {
        columns.push(json!({ "name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![json!(meta::name(obj))];
            cells.extend(rt.columns.iter().map(|c| cell(obj, &c.type_, &c.json_path)));
            let mut row = json!({ "cells": cells });
            match include {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => row["object"] = partial(obj),
            }
            row
        })
        .collect();
    let mut metadata = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubernetes() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
    }
}
