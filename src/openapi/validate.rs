//! Value validation against a structural schema: type, nullable, enum, string bounds,
//! pattern and format, numeric bounds, item counts and list-type uniqueness, required
//! properties and value-validation junctors — with kube-apiserver's paths and wording.

use serde_json::{Map, Value};

use regex::Regex;

use super::format::format_ok;
use super::prune::is_true;
use super::{FieldError, FieldErrorKind};

/// A field path, rendered like `k8s.io/apimachinery/pkg/util/validation/field.Path`.
#[derive(Clone)]
pub(super) struct Path(String);

impl Path {
    pub(super) fn root() -> Self {
        Path(String::new())
    }
    fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }
    fn index(&self, i: usize) -> Self {
        Path(format!("{}[{i}]", self.0))
    }
    fn key(&self, k: &str) -> Self {
        Path(format!("{}[{k}]", self.0))
    }
}

/// How Go's `%v`/`%q` print a value inside `Invalid value: …`.
fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        _ => true,
    }
}

fn err(errors: &mut Vec<FieldError>, path: &Path, kind: FieldErrorKind, message: String) {
    errors.push(FieldError {
        path: path.0.clone(),
        kind,
        message,
    });
}

pub(super) fn validate(
    schema: &Value,
    v: &Value,
    path: &Path,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    let p = &path.0;
    if v.is_null() {
        if is_true(schema, "nullable") {
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            err(
                errors,
                path,
                FieldErrorKind::TypeInvalid,
                format!("Invalid value: \"null\": {p} in body must be of type {t}: \"null\""),
            );
            return;
        }
    }
    if is_true(schema, "x-kubernetes-int-or-string") {
        if !(v.is_string() || type_matches("integer", v)) {
            let t = json_type(v);
            err(
                errors,
                path,
                FieldErrorKind::TypeInvalid,
                format!(
                    "Invalid value: \"{t}\": {p} in body must be of type integer,string: \"{t}\""
                ),
            );
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_matches(t, v)
    {
        let actual = json_type(v);
        err(
            errors,
            path,
            FieldErrorKind::TypeInvalid,
            format!("Invalid value: \"{actual}\": {p} in body must be of type {t}: \"{actual}\""),
        );
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        err(
            errors,
            path,
            FieldErrorKind::Unsupported,
            format!(
                "Unsupported value: {}: supported values: {}",
                v,
                list.join(", ")
            ),
        );
    }
    match v {
        Value::String(s) => validate_string(schema, s, path, errors),
        Value::Number(_) => validate_number(schema, v, path, errors),
        Value::Array(items) => validate_array(schema, items, path, errors),
        Value::Object(map) => validate_object(schema, map, path, root, errors),
        _ => {}
    }
    validate_junctors(schema, v, path, root, errors);
}

fn validate_string(schema: &Value, s: &str, path: &Path, errors: &mut Vec<FieldError>) {
    let p = &path.0;
    let shown = Value::String(s.to_string()).to_string();
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && s.chars().count() as u64 > max
    {
        err(
            errors,
            path,
            FieldErrorKind::TooLong,
            format!("Too long: may not be more than {max} bytes"),
        );
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        err(
            errors,
            path,
            FieldErrorKind::Invalid,
            format!("Invalid value: {shown}: {p} in body should be at least {min} chars long"),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => {
                err(
                    errors,
                    path,
                    FieldErrorKind::Invalid,
                    format!("Invalid value: {shown}: {p} in body should match '{pattern}'"),
                );
            }
            Ok(_) => {}
            Err(e) => err(
                errors,
                path,
                FieldErrorKind::Invalid,
                format!("Invalid value: {shown}: pattern '{pattern}' does not compile: {e}"),
            ),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format_ok(format, s)
    {
        err(
            errors,
            path,
            FieldErrorKind::Invalid,
            format!("Invalid value: {shown}: {p} in body must be of type {format}: {shown}"),
        );
    }
}

/// The string formats kube-openapi checks; unknown formats are not validated (as there).
fn validate_number(schema: &Value, v: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    let p = &path.0;
    let Some(x) = v.as_f64() else { return };
    let fmt = |n: &Value| n.to_string();
    if let Some(max) = schema.get("maximum") {
        let exclusive = is_true(schema, "exclusiveMaximum");
        let m = max.as_f64().unwrap_or(f64::INFINITY);
        if (exclusive && x >= m) || (!exclusive && x > m) {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            err(
                errors,
                path,
                FieldErrorKind::Invalid,
                format!(
                    "Invalid value: {v}: {p} in body should be {rel} {}",
                    fmt(max)
                ),
            );
        }
    }
    if let Some(min) = schema.get("minimum") {
        let exclusive = is_true(schema, "exclusiveMinimum");
        let m = min.as_f64().unwrap_or(f64::NEG_INFINITY);
        if (exclusive && x <= m) || (!exclusive && x < m) {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            err(
                errors,
                path,
                FieldErrorKind::Invalid,
                format!(
                    "Invalid value: {v}: {p} in body should be {rel} {}",
                    fmt(min)
                ),
            );
        }
    }
    if let Some(multiple) = schema.get("multipleOf").and_then(Value::as_f64)
        && multiple > 0.0
        && (x / multiple).fract() != 0.0
    {
        err(
            errors,
            path,
            FieldErrorKind::Invalid,
            format!("Invalid value: {v}: {p} in body should be a multiple of {multiple}"),
        );
    }
}

/// `maxItems`/`minItems` or `maxProperties`/`minProperties`, worded as kube-apiserver does
/// (its "too many" message says "items" for both).
fn check_count(
    schema: &Value,
    (max_key, min_key, noun): (&str, &str, &str),
    n: usize,
    path: &Path,
    errors: &mut Vec<FieldError>,
) {
    let p = &path.0;
    let n = n as u64;
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && n > max
    {
        err(
            errors,
            path,
            FieldErrorKind::TooMany,
            format!("Too many: {n}: must have at most {max} items"),
        );
    }
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && n < min
    {
        err(
            errors,
            path,
            FieldErrorKind::Invalid,
            format!("Invalid value: {n}: {p} in body should have at least {min} {noun}"),
        );
    }
}

fn validate_array(schema: &Value, items: &[Value], path: &Path, errors: &mut Vec<FieldError>) {
    check_count(
        schema,
        ("maxItems", "minItems", "items"),
        items.len(),
        path,
        errors,
    );
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if seen.contains(&item) {
                    err(
                        errors,
                        &path.index(i),
                        FieldErrorKind::Invalid,
                        format!("Duplicate value: {}", show(item)),
                    );
                } else {
                    seen.push(item);
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen: Vec<Vec<Option<&Value>>> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<Option<&Value>> = keys.iter().map(|k| item.get(*k)).collect();
                if seen.contains(&key) {
                    let shown: Vec<String> = keys
                        .iter()
                        .zip(&key)
                        .map(|(k, v)| {
                            format!(
                                "\"{k}\":{}",
                                v.map(Value::to_string).unwrap_or("null".into())
                            )
                        })
                        .collect();
                    err(
                        errors,
                        &path.index(i),
                        FieldErrorKind::Invalid,
                        format!(
                            "Duplicate value: map[string]interface {{}}{{{}}}",
                            shown.join(", ")
                        ),
                    );
                } else {
                    seen.push(key);
                }
            }
        }
        _ => {}
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &path.index(i), false, errors);
        }
    }
}

fn validate_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &Path,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                err(
                    errors,
                    &path.child(r),
                    FieldErrorKind::Required,
                    "Required value".into(),
                );
            }
        }
    }
    check_count(
        schema,
        ("maxProperties", "minProperties", "properties"),
        map.len(),
        path,
        errors,
    );
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let embedded = root || is_true(schema, "x-kubernetes-embedded-resource");
    for (k, child) in map {
        if embedded && k == "metadata" && props.and_then(|ps| ps.get(k)).is_none() {
            continue;
        }
        if let Some(ps) = props.and_then(|ps| ps.get(k)) {
            // The root's metadata is ObjectMeta: only its name restrictions apply here.
            if embedded && k == "metadata" {
                validate_metadata(ps, child, &path.child(k), errors);
            } else {
                validate(ps, child, &path.child(k), false, errors);
            }
        } else if let Some(a) = additional {
            validate(a, child, &path.key(k), false, errors);
        }
    }
}

fn validate_metadata(schema: &Value, meta: &Value, path: &Path, errors: &mut Vec<FieldError>) {
    for field in ["name", "generateName"] {
        if let (Some(s), Some(v)) = (
            schema.get("properties").and_then(|p| p.get(field)),
            meta.get(field),
        ) {
            validate(s, v, &path.child(field), false, errors);
        }
    }
}

fn validate_junctors(
    schema: &Value,
    v: &Value,
    path: &Path,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    let p = &path.0;
    let passes = |s: &Value| {
        let mut e = Vec::new();
        validate(s, v, path, root, &mut e);
        e
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            errors.extend(passes(s));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && any.iter().all(|s| !passes(s).is_empty())
    {
        err(
            errors,
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: {p} in body must validate at least one schema (anyOf)",
                show(v)
            ),
        );
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
    {
        let ok = one.iter().filter(|s| passes(s).is_empty()).count();
        if ok != 1 {
            err(
                errors,
                path,
                FieldErrorKind::Invalid,
                format!(
                    "Invalid value: {}: {p} in body must validate one and only one schema (oneOf)",
                    show(v)
                ),
            );
        }
    }
    if let Some(not) = schema.get("not")
        && passes(not).is_empty()
    {
        err(
            errors,
            path,
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: {p} in body should not validate the schema (not)",
                show(v)
            ),
        );
    }
}
