//! Admission of custom resources: the CRD's `openAPIV3Schema` and CEL rules through
//! [`email_operator::openapi::admit`] (422 Invalid with per-field causes), and
//! `fieldValidation=Strict`, which turns silently pruned unknown fields into a 400 the way
//! kube-apiserver's strict field validation does (kubectl asks for it by default).

use serde_json::Value;

use email_operator::openapi;

use super::error::{ApiError, ApiResult};
use super::resources::ResourceType;
use super::write::subject;

/// Schema + CEL admission for custom resources; other types pass unchanged. With
/// `strict`, fields the schema prunes are refused the way kube-apiserver's strict field
/// validation refuses them.
pub fn admit(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
    strict: bool,
) -> ApiResult<Value> {
    let (Some(schema), true) = (&rt.schema, rt.is_custom()) else {
        return Ok(obj.clone());
    };
    let admitted = openapi::admit(schema, obj, old)
        .map_err(|errs| ApiError::invalid(&rt.kind, &subject(rt, name), &errs))?;
    if strict {
        let mut unknown = Vec::new();
        pruned_paths(obj, &admitted, "", &mut unknown);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|p| format!("unknown field {p:?}"))
                .collect();
            return Err(ApiError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                list.join(", "),
                kind = rt.kind,
                version = rt.version
            )));
        }
    }
    Ok(admitted)
}

/// Paths present in `before` but missing from `after` (what pruning removed).
fn pruned_paths(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    Some(av) => pruned_paths(v, av, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                pruned_paths(bv, av, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}
