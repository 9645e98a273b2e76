//! DELETE semantics: preconditions (uid / resourceVersion), finalizers (mark
//! `deletionTimestamp`, bump `generation`, keep the object), namespaces (mark Terminating;
//! the collector empties them), `propagationPolicy: Orphan` (dependents lose the owner
//! reference) and immediate removal answered with a `Success` Status.

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::meta;
use super::resources::ResourceType;
use super::state::Inner;
use super::write::{WriteOpts, remove, subject};

/// DELETE: with finalizers (or for a namespace) mark `deletionTimestamp` and keep the
/// object; otherwise remove it. Returns the response body.
pub fn delete(
    inner: &mut Inner,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    options: &Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let old = inner
        .store
        .get(&rt.key(), ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&subject(rt, name)))?;
    if let Some(uid) = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        && uid != meta::uid(&old)
    {
        return Err(ApiError::conflict(
            &subject(rt, name),
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(&old)
            ),
        ));
    }
    if let Some(rv) = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        && Some(rv) != meta::resource_version(&old)
    {
        return Err(ApiError::conflict(
            &subject(rt, name),
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::resource_version(&old).unwrap_or("")
            ),
        ));
    }
    let orphan = options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
        || options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    if opts.dry_run {
        return Ok(old);
    }
    if orphan {
        orphan_dependents(inner, meta::uid(&old));
    }
    let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
    if is_namespace || !meta::finalizers(&old).is_empty() {
        if meta::is_deleting(&old) {
            return Ok(old);
        }
        let mut marked = old.clone();
        let m = meta::meta_mut(&mut marked);
        m.insert("deletionTimestamp".into(), json!(meta::now_timestamp()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if rt.has_generation {
            let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
            m.insert("generation".into(), json!(generation + 1));
        }
        if is_namespace {
            marked["status"] = json!({ "phase": "Terminating" });
        }
        let stored = inner.store.put(&rt.key(), marked);
        inner.wake_gc();
        return Ok(stored);
    }
    let removed = remove(inner, rt, &old);
    let mut details = json!({ "name": name, "kind": rt.plural, "uid": meta::uid(&removed) });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    Ok(
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details }),
    )
}

/// `propagationPolicy: Orphan`: drop the owner reference from every dependent.
fn orphan_dependents(inner: &mut Inner, owner_uid: &str) {
    let dependents: Vec<(super::resources::TypeKey, Value)> = inner
        .store
        .all()
        .filter(|(_, v)| meta::owner_uids(v).iter().any(|u| u == owner_uid))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, mut obj) in dependents {
        if let Some(Value::Array(refs)) = meta::meta_mut(&mut obj).get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        inner.store.put(&key, obj);
    }
}
