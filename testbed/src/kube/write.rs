//! Create, update and delete, with the registry strategies of kube-apiserver:
//!
//! * create: `generateName`, `uid`, `creationTimestamp`, `generation: 1`, a fresh
//!   `resourceVersion`; `.status` dropped when the type has a status subresource;
//! * update: optimistic concurrency on `metadata.resourceVersion` (409 when stale); writes
//!   to the main resource keep the stored `.status`, writes to `/status` keep everything
//!   but `.status`; `generation` moves only when something outside `metadata` (and
//!   `status`, with the subresource) changes; a no-op update writes nothing;
//! * finalizers: delete only marks `deletionTimestamp` while finalizers remain, the update
//!   that removes the last one deletes the object, and no finalizer may be added once
//!   deleting;
//! * custom resources go through schema + CEL admission (422 Invalid), see
//!   [`super::admission`]; writes by a user then go through the optional
//!   `OwnerReferencesPermissionEnforcement` plugin ([`super::owner_refs`]); deletion is in
//!   [`super::delete`];
//! * object metadata is validated on create and on every update before admission (names
//!   per kind: RBAC objects take path-segment names such as `system:discovery`, namespaces
//!   DNS labels, everything else DNS subdomains; labels, annotations, owner references,
//!   finalizers; Events' own rules), see [`super::validation`];
//! * a binding's `roleRef` cannot change.

use serde_json::{Value, json};

use email_operator::openapi::{FieldError, FieldErrorKind};

use super::authn::UserInfo;
use super::error::{ApiError, ApiResult, Subject};
use super::resources::ResourceType;
use super::state::{Inner, NamespaceState};
use super::{admission, apply, builtin, crd, meta, owner_refs, validation};

/// apiserver pkg/storage/names/generate.go `MaxGeneratedNameLength`.
const MAX_GENERATED_NAME_LENGTH: usize = 63 - 5;

/// Who writes, and whether to persist.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being pruned.
    pub strict: bool,
    /// The requesting user, for admission plugins that authorize (None: the server itself).
    pub user: Option<UserInfo>,
}

impl WriteOpts {
    /// Writes the server makes itself (bootstrap, CRDs loaded at start, garbage
    /// collection): they record no field manager, so a later apply owns what it sets.
    pub fn system() -> Self {
        Self {
            manager: String::new(),
            dry_run: false,
            strict: false,
            user: None,
        }
    }
}

pub fn subject(rt: &ResourceType, name: &str) -> Subject {
    Subject::new(&rt.group, &rt.plural, name)
}

fn field_invalid(
    rt: &ResourceType,
    name: &str,
    path: &str,
    kind: FieldErrorKind,
    message: String,
) -> ApiError {
    ApiError::invalid(
        &rt.kind,
        &subject(rt, name),
        &[FieldError {
            path: path.into(),
            kind,
            message,
        }],
    )
}

/// Set `apiVersion`/`kind` and check any the client sent.
fn check_type(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Some(kind) = obj
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    if let Some(av) = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
    {
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        if group != rt.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    Ok(())
}

/// Create an object (POST, or the create half of server-side apply when
/// `prepared_fields` already holds the applier's managed fields).
pub fn create(
    inner: &mut Inner,
    rt: &ResourceType,
    ns: &str,
    mut obj: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    create_with(inner, rt, ns, &mut obj, opts, false)
}

pub fn create_with(
    inner: &mut Inner,
    rt: &ResourceType,
    ns: &str,
    obj: &mut Value,
    opts: &WriteOpts,
    prepared_fields: bool,
) -> ApiResult<Value> {
    check_type(rt, obj)?;
    let body_ns = meta::namespace(obj).to_string();
    let m = meta::meta_mut(obj);
    if rt.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
    let mut name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let generate = m
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        if generate.is_empty() {
            return Err(field_invalid(
                rt,
                "",
                "metadata.name",
                FieldErrorKind::Required,
                "Required value: name or generateName is required".into(),
            ));
        }
        // apiserver pkg/storage/names/generate.go: the prefix is cut to
        // MaxGeneratedNameLength (63 - 5) before the random suffix is appended.
        let base: String = generate.chars().take(MAX_GENERATED_NAME_LENGTH).collect();
        name = format!("{base}{}", meta::random_suffix());
        while inner.store.get(&rt.key(), ns, &name).is_some() {
            name = format!("{base}{}", meta::random_suffix());
        }
    }
    // Object metadata (and Event) validation, as the registry's BeforeCreate runs it: before
    // the namespace lifecycle check and any admission.
    meta::meta_mut(obj).insert("name".into(), json!(name));
    let errors = validation::validate_create(rt, obj);
    if !errors.is_empty() {
        return Err(ApiError::invalid(&rt.kind, &subject(rt, &name), &errors));
    }
    if rt.namespaced {
        match inner.namespace_state(ns) {
            NamespaceState::Active => {}
            NamespaceState::Missing => {
                return Err(ApiError::not_found(&Subject::new("", "namespaces", ns)));
            }
            NamespaceState::Terminating => {
                return Err(ApiError::forbidden(
                    &subject(rt, &name),
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ));
            }
        }
    }
    if inner.store.get(&rt.key(), ns, &name).is_some() {
        return Err(ApiError::already_exists(&subject(rt, &name)));
    }
    let m = meta::meta_mut(obj);
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(meta::now_timestamp()));
    for system in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "selfLink",
    ] {
        m.remove(system);
    }
    if rt.has_generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    if !prepared_fields {
        m.remove("managedFields");
    }
    if rt.status_subresource
        && rt.is_custom()
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    builtin::on_create(rt, obj, &name);
    let is_crd = is_crd_type(rt);
    if is_crd {
        crd::prepare(obj, inner.kube_version)
            .map_err(|errs| ApiError::invalid(&rt.kind, &subject(rt, &name), &errs))?;
    }
    let mut admitted = admission::admit(rt, &name, obj, None, opts.strict)?;
    if let Some(user) = &opts.user {
        let change = owner_refs::Change {
            rt,
            subresource: "",
            namespace: ns,
            name: &name,
            old: None,
            new: &admitted,
        };
        owner_refs::validate(inner, user, &change)?;
    }
    if !prepared_fields {
        apply::record_update(&mut admitted, None, &opts.manager, rt, false);
    }
    if opts.dry_run {
        return Ok(admitted);
    }
    let stored = inner.store.put(&rt.key(), admitted);
    if is_crd {
        crd::register(inner, &stored);
    }
    wake_gc_for(inner, &stored);
    Ok(stored)
}

/// A write can only make garbage of the written object itself (created or re-pointed at an
/// owner that is gone), so the collector — a pass over every object — is woken only for objects
/// with owners; deletions always wake it.
fn wake_gc_for(inner: &Inner, stored: &Value) {
    if !meta::owner_uids(stored).is_empty() {
        inner.wake_gc();
    }
}

fn is_crd_type(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}

/// PUT: replace an object, with optimistic concurrency.
pub fn update(
    inner: &mut Inner,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    status: bool,
    mut obj: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    check_type(rt, &mut obj)?;
    let old = inner
        .store
        .get(&rt.key(), ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&subject(rt, name)))?;
    let body_name = meta::name(&obj);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    match meta::resource_version(&obj) {
        None => {
            return Err(field_invalid(
                rt,
                name,
                "metadata.resourceVersion",
                FieldErrorKind::Invalid,
                "Invalid value: 0x0: must be specified for an update".into(),
            ));
        }
        Some(rv) if Some(rv) != meta::resource_version(&old) => {
            return Err(ApiError::stale(&subject(rt, name)));
        }
        Some(_) => {}
    }
    commit(inner, rt, &old, obj, status, opts, false)
}

/// Store `new` as the next state of `old` (after update, patch or apply), applying the
/// main-resource or status strategy. `prepared_fields`: `new` carries the final managed
/// fields (server-side apply) instead of recording an Update by `opts.manager`.
pub fn commit(
    inner: &mut Inner,
    rt: &ResourceType,
    old: &Value,
    mut new: Value,
    status: bool,
    opts: &WriteOpts,
    prepared_fields: bool,
) -> ApiResult<Value> {
    let name = meta::name(old).to_string();
    check_type(rt, &mut new)?;
    if let Some(rv) = meta::resource_version(&new)
        && Some(rv) != meta::resource_version(old)
    {
        return Err(ApiError::stale(&subject(rt, &name)));
    }
    let body_uid = meta::str_field(&new, "uid").map(str::to_string);
    let old_meta = meta::meta(old).cloned().unwrap_or_default();
    let keep_managed = !prepared_fields
        || meta::meta(&new)
            .and_then(|m| m.get("managedFields"))
            .is_none();
    {
        let m = meta::meta_mut(&mut new);
        for fixed in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(fixed) {
                Some(v) => m.insert(fixed.into(), v.clone()),
                None => m.remove(fixed),
            };
        }
        let body_has_managed = m
            .get("managedFields")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if keep_managed && !body_has_managed {
            match old_meta.get("managedFields") {
                Some(v) => m.insert("managedFields".into(), v.clone()),
                None => m.remove("managedFields"),
            };
        }
    }
    if status {
        // The status strategy: only .status (and the managed fields) come from the request.
        let mut merged = old.clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        let managed = meta::meta(&new)
            .and_then(|m| m.get("managedFields"))
            .cloned();
        let mm = meta::meta_mut(&mut merged);
        match managed {
            Some(v) => mm.insert("managedFields".into(), v),
            None => mm.remove("managedFields"),
        };
        new = merged;
    } else if rt.status_subresource {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if meta::is_deleting(old) {
        let before = meta::finalizers(old);
        let added: Vec<String> = meta::finalizers(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            let list = added
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(field_invalid(
                rt,
                &name,
                "metadata.finalizers",
                FieldErrorKind::Forbidden,
                format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                ),
            ));
        }
    }
    // ValidateObjectMetaAccessorUpdate (and the Event update rules), before admission.
    let errors = validation::validate_update(rt, old, &new, body_uid.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::invalid(&rt.kind, &subject(rt, &name), &errors));
    }
    builtin::on_write(rt, &mut new);
    let is_crd = is_crd_type(rt);
    if is_crd {
        crd::prepare(&mut new, inner.kube_version)
            .map_err(|errs| ApiError::invalid(&rt.kind, &subject(rt, &name), &errs))?;
    }
    let mut new = admission::admit(rt, &name, &new, Some(old), opts.strict)?;
    if rt.group == super::rbac::GROUP && new.get("roleRef") != old.get("roleRef") {
        return Err(field_invalid(
            rt,
            &name,
            "roleRef",
            FieldErrorKind::Invalid,
            format!(
                "Invalid value: {}: cannot change roleRef",
                go_role_ref(new.get("roleRef"))
            ),
        ));
    }
    if let Some(user) = &opts.user {
        let change = owner_refs::Change {
            rt,
            subresource: if status { "status" } else { "" },
            namespace: meta::namespace(old),
            name: &name,
            old: Some(old),
            new: &new,
        };
        owner_refs::validate(inner, user, &change)?;
    }
    if rt.has_generation && spec_changed(old, &new, rt.status_subresource) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta::meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    if !prepared_fields {
        apply::record_update(&mut new, Some(old), &opts.manager, rt, status);
    }
    if same_object(old, &new) {
        return Ok(old.clone());
    }
    if opts.dry_run {
        return Ok(new);
    }
    if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
        return Ok(remove(inner, rt, &new));
    }
    let stored = inner.store.put(&rt.key(), new);
    if is_crd {
        crd::register(inner, &stored);
    }
    wake_gc_for(inner, &stored);
    Ok(stored)
}

/// A roleRef as kube-apiserver prints it (`%#v` of `rbac.RoleRef`).
fn go_role_ref(r: Option<&Value>) -> String {
    let f = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!(
        "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
        f("apiGroup"),
        f("kind"),
        f("name")
    )
}

/// Whether anything outside `metadata` (and `status`, with the subresource) differs.
fn spec_changed(old: &Value, new: &Value, ignore_status: bool) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            if ignore_status {
                o.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Equal apart from `resourceVersion` and managed-field timestamps: nothing to write.
fn same_object(old: &Value, new: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        let m = meta::meta_mut(&mut v);
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for e in entries.iter_mut() {
                if let Some(o) = e.as_object_mut() {
                    o.remove("time");
                }
            }
        }
        v
    };
    norm(old) == norm(new)
}

/// Remove an object from the store now, with the CRD and GC follow-ups.
pub(super) fn remove(inner: &mut Inner, rt: &ResourceType, obj: &Value) -> Value {
    let removed = inner
        .store
        .remove(&rt.key(), meta::namespace(obj), meta::name(obj))
        .unwrap_or_else(|| obj.clone());
    if is_crd_type(rt) {
        crd::unregister(inner, &removed);
    }
    inner.wake_gc();
    removed
}
