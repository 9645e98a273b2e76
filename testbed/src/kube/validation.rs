//! Object metadata validation for every kind, as kube-apiserver's registry strategies run it
//! on create and on every update (PUT, patch, apply), worded as Kubernetes 1.29 words it
//! (apimachinery v0.29: `MaxLenError` says "must be no more than N characters").
//!
//! * create: apimachinery pkg/api/validation/objectmeta.go `ValidateObjectMetaAccessor`:
//!   `generateName` (as a name prefix: `maskTrailingDash`) and `name` by the kind's name
//!   rule, `namespace` a DNS-1123 label, labels, annotations, owner references, finalizers;
//! * update: `ValidateObjectMetaAccessorUpdate`: immutable `uid`, labels, annotations,
//!   owner references (finalizer names are not re-checked for custom resources);
//! * kubernetes pkg/apis/core/validation/validation.go `ValidateObjectMeta(Update)`: for the
//!   core types and Events, a finalizer without `/` must be a standard one;
//! * kubernetes pkg/apis/{core,rbac}/validation `Validate<Kind>Update` re-run the create
//!   validation for ConfigMaps, Secrets, ServiceAccounts and RBAC objects, so their finalizer
//!   names are checked on update too;
//! * `events.k8s.io/v1` Events: see [`super::event_validation`].

use email_operator::openapi::{FieldError, FieldErrorKind};
use serde_json::Value;

use super::formats::path_segment_name;
pub use super::formats::{dns1123_label, dns1123_subdomain, label_value, qualified_name};
use super::resources::ResourceType;
use super::{event_validation, meta};

/// apimachinery pkg/api/validation/objectmeta.go `TotalAnnotationSizeLimitB`.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * (1 << 10);

/// apimachinery pkg/api/validation/generic.go `maskTrailingDash` (which, as upstream, drops
/// the last two characters before appending `a`).
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        format!("{}a", &name[..name.len() - 2])
    } else {
        name.to_string()
    }
}

/// The `ValidateNameFunc` of a kind: RBAC objects take path-segment names
/// (kubernetes pkg/apis/rbac/validation `minimalNameRequirements`), namespaces DNS-1123
/// labels (`ValidateNamespaceName`), everything else DNS-1123 subdomains
/// (`NameIsDNSSubdomain`). `prefix`: validating a `generateName`.
pub fn name_problems(rt: &ResourceType, name: &str, prefix: bool) -> Vec<String> {
    if rt.group == super::rbac::GROUP {
        return path_segment_name(name);
    }
    let name = if prefix {
        mask_trailing_dash(name)
    } else {
        name.to_string()
    };
    if is_core(rt, "namespaces") {
        dns1123_label(&name)
    } else {
        dns1123_subdomain(&name)
    }
}

fn is_core(rt: &ResourceType, plural: &str) -> bool {
    rt.group.is_empty() && rt.crd.is_none() && rt.plural == plural
}

/// Types validated with kubernetes pkg/apis/core/validation `ValidateObjectMeta`, which adds
/// the standard-finalizer rule: the core group and Events.
fn core_meta(rt: &ResourceType) -> bool {
    (rt.group.is_empty() && rt.crd.is_none()) || event_validation::is_event(rt)
}

/// Go `%q` of a string.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `field.Invalid(path, value, detail)` with a value already rendered as Go prints it.
pub fn invalid(path: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        path: path.into(),
        kind: FieldErrorKind::Invalid,
        message: format!("Invalid value: {value}: {detail}"),
    }
}

/// `field.Invalid` of a string value.
pub fn invalid_str(path: &str, value: &str, detail: &str) -> FieldError {
    invalid(path, &go_quote(value), detail)
}

/// `field.Required(path, detail)`.
pub fn required(path: &str, detail: &str) -> FieldError {
    FieldError {
        path: path.into(),
        kind: FieldErrorKind::Required,
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
    }
}

fn string_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

fn meta_field<'a>(obj: &'a Value, k: &str) -> Option<&'a Value> {
    meta::meta(obj).and_then(|m| m.get(k))
}

fn map_entries(obj: &Value, k: &str) -> Vec<(String, String)> {
    meta_field(obj, k)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), string_of(Some(v))))
                .collect()
        })
        .unwrap_or_default()
}

/// Metadata checks of a create, after name generation (`ValidateObjectMetaAccessor`).
pub fn validate_create(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate = string_of(meta_field(obj, "generateName"));
    if !generate.is_empty() {
        for m in name_problems(rt, &generate, true) {
            errs.push(invalid_str("metadata.generateName", &generate, &m));
        }
    }
    let name = meta::name(obj);
    if name.is_empty() {
        errs.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in name_problems(rt, name, false) {
            errs.push(invalid_str("metadata.name", name, &m));
        }
    }
    if rt.namespaced {
        let ns = meta::namespace(obj);
        if ns.is_empty() {
            errs.push(required("metadata.namespace", ""));
        }
        for m in dns1123_label(ns).into_iter().filter(|_| !ns.is_empty()) {
            errs.push(invalid_str("metadata.namespace", ns, &m));
        }
    }
    errs.extend(common(obj));
    errs.extend(finalizers(rt, obj));
    if event_validation::is_event(rt) {
        return event_validation::validate_create(obj, errs);
    }
    errs
}

/// Metadata checks of an update (`ValidateObjectMetaAccessorUpdate`), on the object about to
/// be stored; `body_uid` is the `metadata.uid` the client sent, if any.
pub fn validate_update(
    rt: &ResourceType,
    old: &Value,
    new: &Value,
    body_uid: Option<&str>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(uid) = body_uid.filter(|u| !u.is_empty())
        && uid != meta::uid(old)
    {
        errs.push(invalid_str("metadata.uid", uid, "field is immutable"));
    }
    errs.extend(common(new));
    let revalidated = is_core(rt, "configmaps")
        || is_core(rt, "secrets")
        || is_core(rt, "serviceaccounts")
        || rt.group == super::rbac::GROUP;
    if revalidated {
        errs.extend(finalizers(rt, new));
    } else if core_meta(rt) {
        errs.extend(kube_finalizers(new));
    }
    if event_validation::is_event(rt) {
        return event_validation::validate_update(old, new, errs);
    }
    errs
}

/// Labels, annotations and owner references: checked on create and update alike.
fn common(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // apimachinery pkg/apis/meta/v1/validation/validation.go ValidateLabels.
    for (k, v) in map_entries(obj, "labels") {
        for m in qualified_name(&k) {
            errs.push(invalid_str("metadata.labels", &k, &m));
        }
        for m in label_value(&v) {
            errs.push(invalid_str("metadata.labels", &v, &m));
        }
    }
    // objectmeta.go ValidateAnnotations: keys are qualified names, compared lower-cased;
    // keys and values together at most TotalAnnotationSizeLimitB bytes.
    let annotations = map_entries(obj, "annotations");
    for (k, _) in &annotations {
        for m in qualified_name(&k.to_lowercase()) {
            errs.push(invalid_str("metadata.annotations", k, &m));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError {
            path: "metadata.annotations".into(),
            kind: FieldErrorKind::TooLong,
            message: format!("Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
    errs.extend(owner_references(obj));
    errs
}

/// objectmeta.go (v0.29.0) `ValidateOwnerReferences`: apiVersion (with a version), kind,
/// name and uid set; a core/v1 Event is no owner (`BannedOwners`); one controller at most.
fn owner_references(obj: &Value) -> Vec<FieldError> {
    let refs = meta_field(obj, "ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let path = "metadata.ownerReferences";
    let mut errs = Vec::new();
    let mut first_controller = String::new();
    for r in &refs {
        let s = |k: &str| string_of(r.get(k));
        let api_version = s("apiVersion");
        let parts: Vec<&str> = api_version.split('/').collect();
        let (group, version) = match parts.as_slice() {
            [""] => ("", ""),
            [v] => ("", *v),
            [g, v] => (*g, *v),
            _ => ("", ""),
        };
        if version.is_empty() {
            errs.push(invalid_str(
                &format!("{path}.apiVersion"),
                &api_version,
                "version must not be empty",
            ));
        }
        for (field, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            let v = s(field);
            if v.is_empty() {
                errs.push(invalid_str(
                    &format!("{path}.{field}"),
                    &v,
                    &format!("{what} must not be empty"),
                ));
            }
        }
        if group.is_empty() && version == "v1" && s("kind") == "Event" {
            errs.push(invalid(
                path,
                &go_owner_ref(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", s("kind"), s("name"));
            if first_controller.is_empty() {
                first_controller = current;
            } else {
                let all: Vec<String> = refs.iter().map(go_owner_ref).collect();
                errs.push(invalid(
                    path,
                    &format!("[]v1.OwnerReference{{{}}}", all.join(", ")),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {current}"
                    ),
                ));
            }
        }
    }
    errs
}

/// `%#v` of a `metav1.OwnerReference` (pointers shown by value: addresses are not stable).
fn go_owner_ref(r: &Value) -> String {
    let s = |k: &str| go_quote(&string_of(r.get(k)));
    let b = |k: &str| match r.get(k).and_then(Value::as_bool) {
        Some(v) => format!("(*bool)({v})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        s("apiVersion"),
        s("kind"),
        s("name"),
        s("uid"),
        b("controller"),
        b("blockOwnerDeletion")
    )
}

/// objectmeta.go `ValidateFinalizers` (qualified names; `orphan` and `foregroundDeletion`
/// exclusive), plus the core types' standard-finalizer rule.
fn finalizers(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
    let list = meta::finalizers(obj);
    let mut errs = Vec::new();
    for f in &list {
        for m in qualified_name(f) {
            errs.push(invalid_str("metadata.finalizers", f, &m));
        }
    }
    if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
        let quoted: Vec<String> = list.iter().map(|f| go_quote(f)).collect();
        errs.push(invalid(
            "metadata.finalizers",
            &format!("[]string{{{}}}", quoted.join(", ")),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    if core_meta(rt) {
        errs.extend(kube_finalizers(obj));
    }
    errs
}

/// kubernetes pkg/apis/core/validation `validateKubeFinalizerName`: a finalizer without a
/// `/` must be `kubernetes`, `orphan` or `foregroundDeletion`.
fn kube_finalizers(obj: &Value) -> Vec<FieldError> {
    meta::finalizers(obj)
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            !f.contains('/')
                && !matches!(f.as_str(), "kubernetes" | "orphan" | "foregroundDeletion")
        })
        .map(|(i, f)| {
            invalid_str(
                &format!("metadata.finalizers[{i}]"),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            )
        })
        .collect()
}
