//! `labelSelector` and `fieldSelector` query parameters, parsed and matched as
//! kube-apiserver does (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`; field selectors on
//! `metadata.name` and `metadata.namespace`).

use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::meta;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector plus field selector.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    labels: Vec<Req>,
    fields: Vec<Req>,
}

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

fn parse_req(term: &str, allow_sets: bool) -> Option<Req> {
    if let Some((k, v)) = term.split_once("!=") {
        return Some(Req::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Some(Req::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Some(Req::Eq(k.trim().into(), v.trim().into()));
    }
    if !allow_sets {
        return None;
    }
    if let Some(key) = term.strip_prefix('!') {
        return Some(Req::NotExists(key.trim().into()));
    }
    let mut parts = term.splitn(2, char::is_whitespace);
    let key = parts.next()?.trim().to_string();
    match parts.next().map(str::trim) {
        None => Some(Req::Exists(key)),
        Some(rest) => {
            if let Some(set) = rest.strip_prefix("notin") {
                Some(Req::NotIn(key, parse_set(set)?))
            } else if let Some(set) = rest.strip_prefix("in") {
                Some(Req::In(key, parse_set(set)?))
            } else {
                None
            }
        }
    }
}

impl Selector {
    /// The selectors of a request to a type answering the field selectors `fields`
    /// ([`super::resources::ResourceType::field_labels`]).
    pub fn parse_for(
        fields: &[&str],
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> ApiResult<Self> {
        let mut sel = Selector::default();
        for term in split_top(label_selector.unwrap_or("")) {
            sel.labels.push(parse_req(&term, true).ok_or_else(|| {
                ApiError::bad_request(format!("unable to parse requirement: {term:?}"))
            })?);
        }
        for term in split_top(field_selector.unwrap_or("")) {
            let req = parse_req(&term, false).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ))
            })?;
            let field = match &req {
                Req::Eq(k, _) | Req::NotEq(k, _) => k.clone(),
                _ => String::new(),
            };
            if !fields.contains(&field.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            sel.fields.push(req);
        }
        Ok(sel)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = meta::labels(obj);
        let label = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_string);
        let field = |k: &str| match k {
            "metadata.name" => Some(meta::name(obj).to_string()),
            "metadata.namespace" => Some(meta::namespace(obj).to_string()),
            // The API server matches `source` on the source's component.
            "source" => Some(
                obj["source"]["component"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ),
            path => {
                let v = path.split('.').fold(obj, |v, k| &v[k]);
                Some(match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
            }
        };
        self.labels.iter().all(|r| eval(r, &label)) && self.fields.iter().all(|r| eval(r, &field))
    }
}

fn eval(req: &Req, get: &dyn Fn(&str) -> Option<String>) -> bool {
    match req {
        Req::Eq(k, v) => get(k).as_deref() == Some(v.as_str()),
        Req::NotEq(k, v) => get(k).as_deref() != Some(v.as_str()),
        Req::In(k, set) => get(k).is_some_and(|x| set.contains(&x)),
        Req::NotIn(k, set) => get(k).is_none_or(|x| !set.contains(&x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_and_field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns1", "labels": {"app": "web", "tier": "front"}}});
        let m = |l: &str, f: &str| {
            Selector::parse_for(&["metadata.name", "metadata.namespace"], Some(l), Some(f))
                .map(|s| s.matches(&obj))
                .unwrap_or(false)
        };
        assert!(m("app=web", ""));
        assert!(m("app==web,tier", ""));
        assert!(!m("app!=web", ""));
        assert!(m("app in (db, web)", ""));
        assert!(!m("app notin (web)", ""));
        assert!(m("!missing", "metadata.name=a"));
        assert!(!m("", "metadata.namespace=ns2"));
        assert!(m("", "metadata.namespace!=ns2"));
        assert!(
            Selector::parse_for(
                &["metadata.name", "metadata.namespace"],
                None,
                Some("spec.x=1")
            )
            .is_err()
        );
    }
}
