//! The registry strategies of the built-in types that differ from plain storage: a
//! Secret's `type` defaults to `Opaque` and its write-only `stringData` is folded into
//! `data`; a new Namespace gets the `kubernetes` finalizer, phase `Active` and the
//! `kubernetes.io/metadata.name` label.

use base64::Engine;
use serde_json::{Value, json};

use super::meta;
use super::resources::ResourceType;

fn is(rt: &ResourceType, plural: &str) -> bool {
    rt.group.is_empty() && rt.plural == plural
}

/// Defaults set when an object is created (`name` is the final name).
pub fn on_create(rt: &ResourceType, obj: &mut Value, name: &str) {
    if is(rt, "secrets") && obj.get("type").is_none_or(|t| t == "") {
        obj["type"] = json!("Opaque");
    }
    if is(rt, "namespaces") {
        obj["spec"] = json!({ "finalizers": ["kubernetes"] });
        obj["status"] = json!({ "phase": "Active" });
        if let Value::Object(labels) = meta::meta_mut(obj)
            .entry("labels")
            .or_insert_with(|| json!({}))
        {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    on_write(rt, obj);
}

/// Normalization on every write.
pub fn on_write(rt: &ResourceType, obj: &mut Value) {
    if is(rt, "secrets") {
        fold_string_data(obj);
    }
}

/// kube-apiserver merges `stringData` into `data` (base64) and never stores it.
fn fold_string_data(obj: &mut Value) {
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if let Some(Value::Object(data)) = obj
        .as_object_mut()
        .map(|o| o.entry("data").or_insert_with(|| json!({})))
    {
        for (k, v) in strings {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}
