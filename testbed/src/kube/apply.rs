//! Server-side apply and `metadata.managedFields`.
//!
//! Field ownership is tracked per manager as a set of leaf paths (objects are recursed
//! into; lists and scalars are atomic leaves), rendered as `fieldsV1`. An apply by manager M:
//! 1. conflicts with any other manager owning a path M sets to a *different* value
//!    (409 `FieldManagerConflict` causes) unless `force=true`, which takes the path over;
//! 2. removes the paths M owned before, no longer applies, and nobody else owns (and any
//!    object left empty by that removal);
//! 3. deep-merges the applied configuration into the object (lists replaced whole).
//!
//! Simplification against the real structured-merge-diff: every list is atomic (no
//! `x-kubernetes-list-type: map/set` item-level ownership), and Update operations
//! (PUT/patch) record the leaves they changed rather than a full diff of the typed value.
//! For the single-manager status case kube-rs uses (`PatchParams::apply(m).force()` on
//! `/status`) the result is exact: the new status is the applied status.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};
use super::meta;
use super::resources::ResourceType;
use super::state::Inner;
use super::write::{self, WriteOpts, subject};

type Path = Vec<String>;

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = meta::meta(obj)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut fields = BTreeSet::new();
            if let Some(tree) = e.get("fieldsV1") {
                collect_fields(tree, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                subresource: s("subresource"),
                api_version: s("apiVersion"),
                time: s("time"),
                fields,
            }
        })
        .collect()
}

fn collect_fields(tree: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let children: Vec<(&String, &Value)> = tree
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| k.as_str() != ".").collect())
        .unwrap_or_default();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (k, v) in children {
        prefix.push(k.strip_prefix("f:").unwrap_or(k).to_string());
        collect_fields(v, prefix, out);
        prefix.pop();
    }
}

fn render_fields(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for seg in path {
            let child = node.entry(format!("f:{seg}")).or_insert_with(|| json!({}));
            if !child.is_object() {
                *child = json!({});
            }
            let Value::Object(next) = child else { break };
            node = next;
        }
    }
    Value::Object(root)
}

fn store_entries(obj: &mut Value, list: &[Entry]) {
    let rendered: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": render_fields(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let m = meta::meta_mut(obj);
    if rendered.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(rendered));
    }
}

/// The part of an object whose fields are owned through the given endpoint.
fn tracked(obj: &Value, rt: &ResourceType, status: bool) -> Value {
    let mut out = Map::new();
    let Some(o) = obj.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in o {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if status || !rt.status_subresource => {
                out.insert(k.clone(), v.clone());
            }
            "status" => {}
            _ if status => {}
            "metadata" => {
                let mut m = Map::new();
                for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(x) = v.get(f) {
                        m.insert(f.into(), x.clone());
                    }
                }
                if !m.is_empty() {
                    out.insert(k.clone(), Value::Object(m));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// `metadata.finalizers` and `metadata.ownerReferences` are owned as a whole.
fn atomic(prefix: &[String]) -> bool {
    prefix.len() == 2
        && prefix[0] == "metadata"
        && matches!(prefix[1].as_str(), "finalizers" | "ownerReferences")
}

fn leaves(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v.as_object() {
        Some(o) if !o.is_empty() && !atomic(prefix) => {
            for (k, child) in o {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

fn leaf_set(v: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg.as_str()))
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Remove `path`, then any object the removal left empty.
fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(parent)) = at_mut(v, parents) {
        parent.remove(last);
        if parent.is_empty() && !parents.is_empty() {
            remove_path(v, parents);
        }
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(v, |cur, seg| cur.get_mut(seg.as_str()))
}

/// Merge an applied configuration: objects recursively, everything else replaced.
fn merge(into: &mut Value, applied: &Value) {
    match (into, applied) {
        (Value::Object(dst), Value::Object(src)) => {
            for (k, v) in src {
                match dst.get_mut(k) {
                    Some(d) if d.is_object() && v.is_object() => merge(d, v),
                    _ => {
                        dst.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (dst, src) => *dst = src.clone(),
    }
}

/// Record an Update operation by `manager`: it owns the leaves it changed, others lose them.
pub fn record_update(
    new: &mut Value,
    old: Option<&Value>,
    manager: &str,
    rt: &ResourceType,
    status: bool,
) {
    // System writes (no manager) record nothing.
    if manager.is_empty() {
        return;
    }
    let now_tracked = tracked(new, rt, status);
    let before = old
        .map(|o| tracked(o, rt, status))
        .unwrap_or_else(|| json!({}));
    let changed: BTreeSet<Path> = leaf_set(&now_tracked)
        .into_iter()
        .filter(|p| at(&now_tracked, p) != at(&before, p))
        .collect();
    let gone: BTreeSet<Path> = leaf_set(&before)
        .into_iter()
        .filter(|p| at(&now_tracked, p).is_none())
        .collect();
    if changed.is_empty() && gone.is_empty() {
        return;
    }
    let subresource = if status { "status" } else { "" };
    let mut list = entries(new);
    for e in list.iter_mut() {
        e.fields
            .retain(|p| !changed.iter().chain(gone.iter()).any(|c| overlaps(p, c)));
    }
    let now = meta::now_timestamp();
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now;
        }
        None if !changed.is_empty() => list.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            subresource: subresource.into(),
            api_version: rt.api_version(),
            time: now,
            fields: changed,
        }),
        None => {}
    }
    store_entries(new, &list);
}

/// PATCH with `application/apply-patch+yaml`. Returns (HTTP code, object).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    inner: &mut Inner,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    status: bool,
    applied: Value,
    force: bool,
    opts: &WriteOpts,
) -> ApiResult<(u16, Value)> {
    if opts.manager.is_empty() {
        return Err(ApiError::bad_request(
            "fieldManager: Required value: is required for apply patch",
        ));
    }
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "apply patch must be a YAML or JSON object",
        ));
    }
    for field in ["apiVersion", "kind"] {
        if applied
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "{field} must be set in an apply patch"
            )));
        }
    }
    // kube-rs status applies carry no metadata at all; the URL names the object then.
    let applied_name = meta::name(&applied);
    if !applied_name.is_empty() && applied_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({applied_name}) does not match the name on the URL ({name})"
        )));
    }
    let applied_tracked = tracked(&applied, rt, status);
    let applied_set = leaf_set(&applied_tracked);
    let subresource = if status { "status" } else { "" };
    let now = meta::now_timestamp();
    let own_entry = || Entry {
        manager: opts.manager.clone(),
        operation: "Apply".into(),
        subresource: subresource.into(),
        api_version: rt.api_version(),
        time: now.clone(),
        fields: applied_set.clone(),
    };

    let Some(current) = inner.store.get(&rt.key(), ns, name).cloned() else {
        if status {
            return Err(ApiError::not_found(&subject(rt, name)));
        }
        let mut obj = applied.clone();
        meta::meta_mut(&mut obj).insert("name".into(), json!(name));
        store_entries(&mut obj, &[own_entry()]);
        return write::create_with(inner, rt, ns, &mut obj, opts, true).map(|o| (201, o));
    };
    if let Some(rv) = meta::resource_version(&applied)
        && Some(rv) != meta::resource_version(&current)
    {
        return Err(ApiError::stale(&subject(rt, name)));
    }

    let current_tracked = tracked(&current, rt, status);
    let mut list = entries(&current);
    let mine = |e: &Entry| {
        e.manager == opts.manager && e.operation == "Apply" && e.subresource == subresource
    };
    let mut conflicts = Vec::new();
    for e in list.iter().filter(|e| !mine(e)) {
        for owned in &e.fields {
            for p in applied_set.iter().filter(|p| overlaps(p, owned)) {
                let shorter: &[String] = if p.len() <= owned.len() { p } else { owned };
                if at(&applied_tracked, shorter) != at(&current_tracked, shorter) {
                    conflicts.push((e.manager.clone(), format!(".{}", owned.join("."))));
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(ApiError::apply_conflict(&subject(rt, name), &conflicts));
    }
    // Forced (or equal-valued) paths: a forced apply takes them from their old owners.
    if force {
        for e in list.iter_mut().filter(|e| {
            !(e.manager == opts.manager && e.operation == "Apply" && e.subresource == subresource)
        }) {
            e.fields.retain(|owned| {
                !applied_set
                    .iter()
                    .any(|p| overlaps(p, owned) && conflicts.iter().any(|(m, _)| *m == e.manager))
            });
        }
    }
    let previously: BTreeSet<Path> = list
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: BTreeSet<Path> = list
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut new = current.clone();
    for p in previously.iter().filter(|p| {
        !applied_set.iter().any(|a| overlaps(a, p)) && !others.iter().any(|o| overlaps(o, p))
    }) {
        remove_path(&mut new, p);
    }
    merge(&mut new, &applied_tracked);
    list.retain(|e| !mine(e));
    list.push(own_entry());
    store_entries(&mut new, &list);
    // The resourceVersion check was done above against the applied configuration.
    if let Some(rv) = meta::resource_version(&current) {
        meta::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
    }
    write::commit(inner, rt, &current, new, status, opts, true).map(|o| (200, o))
}
