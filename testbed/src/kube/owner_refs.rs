//! The `OwnerReferencesPermissionEnforcement` admission plugin (on by default in the
//! stand-in, as on OpenShift and many hardened clusters, so an operator's RBAC is tested
//! against the stricter setting; kube-apiserver itself ships it off — remove it from
//! `KubeOptions::admission_plugins`, or `testbed up --disable-admission-plugins`, for that):
//!
//! * changing an existing object's `ownerReferences` needs `delete` on that object;
//! * setting `blockOwnerDeletion: true` on a reference (new, or newly blocking) needs
//!   `update` on the owner's `finalizers` subresource, for the owner's name — which is why
//!   controllers that create owned objects with `controller_owner_ref` need
//!   `<kind>/finalizers: update`.
//!
//! Refusals are worded like the plugin's, `…: <reason>, <nil>` included.

use serde_json::Value;

use super::authn::UserInfo;
use super::error::ApiError;
use super::rbac;
use super::request_info::Attributes;
use super::resources::ResourceType;
use super::state::Inner;

/// The admission plugins that can be turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionPlugin {
    OwnerReferencesPermissionEnforcement,
}

impl std::str::FromStr for AdmissionPlugin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "OwnerReferencesPermissionEnforcement" => {
                Ok(Self::OwnerReferencesPermissionEnforcement)
            }
            other => Err(format!(
                "unknown admission plugin {other:?} (served: OwnerReferencesPermissionEnforcement)"
            )),
        }
    }
}

fn refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn blocking(r: &Value) -> bool {
    r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
}

fn field<'a>(r: &'a Value, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A write being admitted: a create (`old` None) or an update of `name` in `namespace`.
pub struct Change<'a> {
    pub rt: &'a ResourceType,
    /// `status` for writes to the status subresource, else empty.
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub new: &'a Value,
}

/// Admit `change` by `user`, or refuse it as the plugin does.
pub fn validate(inner: &Inner, user: &UserInfo, change: &Change) -> Result<(), ApiError> {
    let Change {
        rt,
        subresource,
        namespace: ns,
        name,
        old,
        new,
    } = *change;
    if !inner.owner_references_enforced {
        return Ok(());
    }
    let new_refs = refs(new);
    let old_refs = old.map(refs);
    let changing = match &old_refs {
        None => !new_refs.is_empty(),
        Some(o) => *o != new_refs,
    };
    if !changing {
        return Ok(());
    }
    let refuse = |why: String| rbac::forbidden(&rt.group, &rt.plural, name, &why);
    let attributes =
        |verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str| Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource_request: true,
            path: String::new(),
            api_group: group.into(),
            api_version: String::new(),
            namespace: ns.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        };
    if old.is_some() {
        let d = rbac::authorize(
            inner,
            &attributes("delete", &rt.group, &rt.plural, subresource, ns, name),
        );
        if !d.allowed {
            return Err(refuse(format!(
                "cannot set an ownerRef on a resource you can't delete: {}, <nil>",
                d.reason
            )));
        }
    }
    let newly_blocking = new_refs.iter().filter(|r| {
        blocking(r)
            && old_refs.as_ref().is_none_or(|o| {
                !o.iter()
                    .any(|before| field(before, "uid") == field(r, "uid") && blocking(before))
            })
    });
    for r in newly_blocking {
        let api_version = field(r, "apiVersion");
        let kind = field(r, "kind");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let owners: Vec<&ResourceType> = inner
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version && t.kind == kind)
            .collect();
        if owners.is_empty() {
            return Err(refuse(format!(
                "cannot set blockOwnerDeletion in this case because cannot find RESTMapping for APIVersion {api_version} Kind {kind}: no matches for kind {kind:?} in version {api_version:?}"
            )));
        }
        for owner in owners {
            let owner_ns = if owner.namespaced { ns } else { "" };
            let d = rbac::authorize(
                inner,
                &attributes(
                    "update",
                    &owner.group,
                    &owner.plural,
                    "finalizers",
                    owner_ns,
                    field(r, "name"),
                ),
            );
            if !d.allowed {
                return Err(refuse(format!(
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: {}, <nil>",
                    d.reason
                )));
            }
        }
    }
    Ok(())
}
