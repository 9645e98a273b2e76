//! The structural-schema check kube-apiserver runs when a CRD is installed, plus the
//! compile check of its `x-kubernetes-validations` rules.

use std::collections::BTreeSet;

use kube::core::cel::{CompilationError, CompiledSchema, compile_schema};
use serde_json::Value;

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn preserves_unknown(schema: &Value) -> bool {
    is_true(schema, "x-kubernetes-preserve-unknown-fields")
}

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
const UNSUPPORTED: [&str; 6] = [
    "$ref",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
    "id",
];

/// The structural-schema check kube-apiserver does on CRD install; Err lists the
/// violations as `path: message`, paths relative to `openAPIV3Schema`
/// (`properties[spec].properties[port].type: Required value: …`). Also refuses
/// `x-kubernetes-validations` rules that do not compile.
pub(super) fn check_structural(schema: &Value) -> Result<(), Vec<String>> {
    let mut out = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {}
        Some(other) => out.push(format!(
            "type: Invalid value: \"{other}\": must be object at the root"
        )),
        None => out.push("type: Required value: must not be empty at the root".into()),
    }
    check_node(schema, "", Place::Root, &mut out);
    if let Some(meta) = schema.pointer("/properties/metadata") {
        let extra: Vec<&String> = meta
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.keys()
                    .filter(|k| *k != "name" && *k != "generateName")
                    .collect()
            })
            .unwrap_or_default();
        if !extra.is_empty()
            || meta
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "object")
        {
            out.push("properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified".into());
        }
    }
    let compiled = compile_schema(schema);
    collect_cel_errors(&compiled, "", &mut out);
    let unique: BTreeSet<String> = out.into_iter().collect();
    if unique.is_empty() {
        Ok(())
    } else {
        Err(unique.into_iter().collect())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Place {
    Root,
    Property,
    Items,
}

fn at(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn check_node(schema: &Value, path: &str, place: Place, out: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        out.push(format!(
            "{}: Invalid value: must be a schema object",
            if path.is_empty() { "<root>" } else { path }
        ));
        return;
    };
    let int_or_string = is_true(schema, "x-kubernetes-int-or-string");
    let preserve = preserves_unknown(schema);
    match node.get("type").and_then(Value::as_str) {
        None if place != Place::Root && !int_or_string && !preserve => {
            let what = if place == Place::Items {
                "specified array items"
            } else {
                "specified object fields"
            };
            out.push(format!(
                "{}: Required value: must not be empty for {what}",
                at(path, "type")
            ));
        }
        Some(t) if !TYPES.contains(&t) => {
            out.push(format!("{}: Unsupported value: \"{t}\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"", at(path, "type")));
        }
        Some(t) if int_or_string => {
            out.push(format!(
                "{}: Invalid value: \"{t}\": must be empty if x-kubernetes-int-or-string is true",
                at(path, "type")
            ));
        }
        Some("array") if !node.contains_key("items") => out.push(format!(
            "{}: Required value: must be specified",
            at(path, "items")
        )),
        _ => {}
    }
    for f in UNSUPPORTED {
        if node.contains_key(f) {
            out.push(format!("{}: Forbidden: {f} is not supported", at(path, f)));
        }
    }
    if is_true(schema, "uniqueItems") {
        out.push(format!("{}: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic", at(path, "uniqueItems")));
    }
    if node.get("additionalProperties").and_then(Value::as_bool) == Some(false) {
        out.push(format!(
            "{}: Forbidden: additionalProperties cannot be set to false",
            at(path, "additionalProperties")
        ));
    }
    if node.contains_key("properties")
        && node
            .get("additionalProperties")
            .is_some_and(|a| a.is_object() || a == &Value::Bool(true))
    {
        out.push(format!(
            "{}: Forbidden: additionalProperties and properties are mutual exclusive",
            at(path, "additionalProperties")
        ));
    }
    if is_true(schema, "x-kubernetes-embedded-resource")
        && node.get("type").and_then(Value::as_str) != Some("object")
    {
        out.push(format!(
            "{}: Required value: must be object if x-kubernetes-embedded-resource is true",
            at(path, "type")
        ));
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map")
            if node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .is_none_or(|k| k.is_empty()) =>
        {
            out.push(format!(
                "{}: Required value: must not be empty if x-kubernetes-list-type is map",
                at(path, "x-kubernetes-list-map-keys")
            ));
        }
        Some("map" | "set" | "atomic") | None => {}
        Some(other) => out.push(format!(
            "{}: Unsupported value: \"{other}\": supported values: \"atomic\", \"map\", \"set\"",
            at(path, "x-kubernetes-list-type")
        )),
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            check_node(
                s,
                &at(path, &format!("properties[{k}]")),
                Place::Property,
                out,
            );
        }
    }
    if let Some(items) = node.get("items") {
        if items.is_array() {
            out.push(format!(
                "{}: Forbidden: items must be a schema object and not an array",
                at(path, "items")
            ));
        } else {
            check_node(items, &at(path, "items"), Place::Items, out);
        }
    }
    if let Some(a) = node.get("additionalProperties").filter(|a| a.is_object()) {
        check_node(a, &at(path, "additionalProperties"), Place::Property, out);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = node.get(junctor).and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                check_junctor(
                    b,
                    schema,
                    &at(path, &format!("{junctor}[{i}]")),
                    int_or_string,
                    out,
                );
            }
        }
    }
    if let Some(not) = node.get("not") {
        check_junctor(not, schema, &at(path, "not"), int_or_string, out);
    }
}

/// Inside allOf/anyOf/oneOf/not only value validations are allowed, and only over fields
/// the surrounding structure declares.
fn check_junctor(
    branch: &Value,
    outer: &Value,
    path: &str,
    int_or_string: bool,
    out: &mut Vec<String>,
) {
    let Some(node) = branch.as_object() else {
        return;
    };
    for f in [
        "type",
        "default",
        "nullable",
        "additionalProperties",
        "description",
        "title",
    ] {
        // The int-or-string idiom: anyOf: [{type: integer}, {type: string}].
        if f == "type" && int_or_string {
            continue;
        }
        if node.contains_key(f) {
            let msg = if f == "default" || f == "nullable" || f == "type" {
                "must be empty to be structural"
            } else {
                "must be undefined to be structural"
            };
            out.push(format!("{}: Forbidden: {msg}", at(path, f)));
        }
    }
    for f in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if node.contains_key(f) {
            out.push(format!(
                "{}: Forbidden: must be false to be structural",
                at(path, f)
            ));
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            match outer.get("properties").and_then(|p| p.get(k)) {
                Some(outer_prop) => check_junctor(s, outer_prop, &at(path, &format!("properties[{k}]")), false, out),
                None => out.push(format!("{}: Required value: must have a corresponding property in the structural schema", at(path, &format!("properties[{k}]")))),
            }
        }
    }
    if let Some(items) = node.get("items") {
        match outer.get("items") {
            Some(outer_items) => check_junctor(items, outer_items, &at(path, "items"), false, out),
            None => out.push(format!("{}: Required value: must have a corresponding items schema in the structural schema", at(path, "items"))),
        }
    }
}

fn collect_cel_errors(compiled: &CompiledSchema, path: &str, out: &mut Vec<String>) {
    for (i, e) in compiled.validations.iter().enumerate() {
        if let Err(e) = e {
            let detail = match e {
                CompilationError::Parse { rule, source } => format!(
                    "Invalid value: {}: compilation failed: {source}",
                    Value::String(rule.clone())
                ),
                other => format!("Invalid value: \"rule\": {other}"),
            };
            out.push(format!(
                "{}: {detail}",
                at(path, &format!("x-kubernetes-validations[{i}].rule"))
            ));
        }
    }
    let mut props: Vec<(&String, &CompiledSchema)> = compiled.properties.iter().collect();
    props.sort_by(|a, b| a.0.cmp(b.0));
    for (k, c) in props {
        collect_cel_errors(c, &at(path, &format!("properties[{k}]")), out);
    }
    if let Some(items) = &compiled.items {
        collect_cel_errors(items, &at(path, "items"), out);
    }
    if let Some(a) = &compiled.additional_properties {
        collect_cel_errors(a, &at(path, "additionalProperties"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structural_check_accepts_good_and_names_violations() {
        let good = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"port": {"type": "integer"}}},
            "list": {"type": "array", "items": {"type": "string"}}
        }});
        assert_eq!(check_structural(&good), Ok(()));
        let bad = json!({"type": "object", "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "list": {"type": "array"},
            "both": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "junk": {"type": "string", "anyOf": [{"type": "string"}]},
            "rule": {"type": "string", "x-kubernetes-validations": [{"rule": "self ==", "message": "m"}]}
        }});
        let errs = check_structural(&bad).expect_err("not structural");
        let has = |needle: &str| errs.iter().any(|e| e.starts_with(needle));
        assert!(
            has(
                "properties[spec].type: Required value: must not be empty for specified object fields"
            ),
            "{errs:?}"
        );
        assert!(has("properties[list].items: Required value"));
        assert!(has("properties[both].additionalProperties: Forbidden"));
        assert!(has("properties[junk].anyOf[0].type: Forbidden"));
        assert!(has(
            "properties[rule].x-kubernetes-validations[0].rule: Invalid value"
        ));
        let int_or_string = json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}});
        assert_eq!(check_structural(&int_or_string), Ok(()));
    }
}
