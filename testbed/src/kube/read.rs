//! GET of one object and LIST with `labelSelector`, `fieldSelector` and `limit`/`continue`
//! paging, as JSON, as a Table or as `PartialObjectMetadata`.
//!
//! Continue tokens carry the list's revision and the last key returned; a token older than
//! the kept history is answered with `410 Expired`, like an etcd-compacted continue.

use base64::Engine;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::resources::ResourceType;
use super::selector::Selector;
use super::state::Inner;
use super::table::{self, View};
use super::write::subject;

/// Query parameters of a read.
pub struct ReadParams<'a> {
    pub label_selector: Option<&'a str>,
    pub field_selector: Option<&'a str>,
    pub limit: Option<usize>,
    pub continue_token: Option<&'a str>,
    pub view: View,
}

/// Objects are stored under one version; answer in the version (and view) asked for.
fn as_version(rt: &ResourceType, obj: Value) -> Value {
    rt.present(obj)
}

pub fn get(
    inner: &Inner,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    view: &View,
) -> ApiResult<Value> {
    let obj = inner
        .store
        .get(&rt.key(), ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&subject(rt, name)))?;
    let obj = as_version(rt, obj);
    Ok(match view {
        View::Table(include) => table::build(
            rt,
            &[obj],
            &inner.store.revision().to_string(),
            None,
            include,
        ),
        View::Metadata => table::partial(&obj),
        View::Full => obj,
    })
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "rv": rv, "ns": ns, "name": name }).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok((rv, s("ns"), s("name")))
}

pub fn list(
    inner: &Inner,
    rt: &ResourceType,
    ns: Option<&str>,
    params: &ReadParams<'_>,
) -> ApiResult<Value> {
    let selector = Selector::parse_for(
        rt.field_labels(),
        params.label_selector,
        params.field_selector,
    )?;
    let mut list_rv = inner.store.revision();
    let mut after: Option<(String, String)> = None;
    if let Some(token) = params.continue_token.filter(|t| !t.is_empty()) {
        let (rv, tns, tname) = decode_continue(token)?;
        if rv < inner.store.compacted() {
            return Err(ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        list_rv = rv;
        after = Some((tns, tname));
    }
    let matching: Vec<Value> = inner
        .store
        .list(&rt.key(), ns)
        .filter(|o| {
            after.as_ref().is_none_or(|(a_ns, a_name)| {
                (super::meta::namespace(o), super::meta::name(o)) > (a_ns.as_str(), a_name.as_str())
            })
        })
        .map(|o| as_version(rt, o.clone()))
        .filter(|o| selector.matches(o))
        .collect();
    let limit = params.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let page: Vec<Value> = matching.iter().take(limit).cloned().collect();
    let remaining = matching.len() - page.len();
    let continue_token = match page.last() {
        Some(last) if remaining > 0 => Some(encode_continue(
            list_rv,
            super::meta::namespace(last),
            super::meta::name(last),
        )),
        _ => None,
    };
    let (kind, api_version, page) = match &params.view {
        View::Table(include) => {
            return Ok(table::build(
                rt,
                &page,
                &list_rv.to_string(),
                continue_token.as_deref(),
                include,
            ));
        }
        View::Metadata => (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
            page.iter().map(table::partial).collect(),
        ),
        View::Full => (rt.list_kind.clone(), rt.api_version(), page),
    };
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
        metadata["remainingItemCount"] = json!(remaining);
    }
    Ok(json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page }))
}
