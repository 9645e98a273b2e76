//! Pruning of unknown fields and schema defaulting, in kube-apiserver's order (prune, then
//! default outside-in). A `null` in a field that is not nullable is pruned like an absent
//! field, so a default then applies.

use serde_json::Value;

pub(super) fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

pub(super) fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Drop every field the schema does not specify (unless it preserves unknown fields).
/// The object root and embedded resources always keep `apiVersion`, `kind`, `metadata`.
pub(super) fn prune(schema: &Value, value: &mut Value, root: bool) {
    if is_true(schema, "x-kubernetes-int-or-string") {
        return;
    }
    match value {
        Value::Object(map) => {
            let keep_meta = root || is_true(schema, "x-kubernetes-embedded-resource");
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve =
                preserves_unknown(schema) || additional.and_then(Value::as_bool) == Some(true);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = props
                    .and_then(|p| p.get(&k))
                    .or_else(|| additional.filter(|a| a.is_object()));
                match (child_schema, map.get_mut(&k)) {
                    // As kube-apiserver: a null in a field that is not nullable is dropped
                    // (before defaulting), as if the field were absent.
                    (Some(s), Some(Value::Null)) if !is_true(s, "nullable") => {
                        map.remove(&k);
                    }
                    (Some(s), Some(child)) => prune(s, child, false),
                    (None, _) if preserve => {}
                    (None, _) => {
                        map.remove(&k);
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    prune(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Fill missing fields (and `null` in non-nullable ones) from `default`, outside in.
pub(super) fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    let Some(default) = ps.get("default") else {
                        continue;
                    };
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !is_true(ps, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        let mut d = default.clone();
                        prune(ps, &mut d, false);
                        map.insert(k.clone(), d);
                    }
                }
                for (k, child) in map.iter_mut() {
                    if let Some(ps) = props.get(k) {
                        apply_defaults(ps, child);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let props = schema.get("properties").and_then(Value::as_object);
                for (k, child) in map.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(k)) {
                        apply_defaults(additional, child);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}
