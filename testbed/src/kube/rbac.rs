//! Authorization by RBAC, evaluated like kube-apiserver's RBAC authorizer against the stored
//! `rbac.authorization.k8s.io/v1` ClusterRoles, ClusterRoleBindings, Roles and RoleBindings:
//!
//! * ClusterRoleBindings grant their ClusterRole everywhere; RoleBindings grant a Role (of
//!   their namespace) or a ClusterRole in their namespace only. Subjects are users, groups
//!   and ServiceAccounts (a RoleBinding's ServiceAccount subject without a namespace means
//!   its own).
//! * A rule matches on verbs, apiGroups, resources (`resource/subresource`, `*`,
//!   `*/subresource`), resourceNames (any name when empty) and, for non-resource requests,
//!   nonResourceURLs (exact, or a prefix ending in `*`). `*` matches any verb or group.
//! * `system:masters` is never refused. The default policy — `cluster-admin`,
//!   `system:discovery` (discovery and OpenAPI for every authenticated user),
//!   `system:public-info-viewer` (`/version`, `/healthz` … for everyone), and the user-facing
//!   `admin`, `edit` and `view` with the `system:aggregate-to-*` roles they aggregate — is
//!   stored at start.
//! * A ClusterRole with an `aggregationRule` has the rules of every ClusterRole its
//!   `clusterRoleSelectors` select (labels), as kube-controller-manager's ClusterRole
//!   aggregation controller writes them; here they are gathered at each check, so a new or
//!   relabelled ClusterRole counts at once (the controller takes a moment).
//! * A refusal is `403 Forbidden` worded like the real server, with
//!   `RBAC: clusterrole.rbac.authorization.k8s.io "x" not found` appended when a binding that
//!   applied names a missing role.

use serde_json::{Value, json};

use super::error::ApiError;
use super::request_info::Attributes;
use super::resources::TypeKey;
use super::state::Inner;

pub const GROUP: &str = "rbac.authorization.k8s.io";

fn key(plural: &str) -> TypeKey {
    TypeKey {
        group: GROUP.into(),
        plural: plural.into(),
    }
}

/// An authorizer's answer: allowed or not, and why not (RBAC's evaluation errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Whether RBAC (or membership of `system:masters`) allows the request.
pub fn authorize(inner: &Inner, a: &Attributes) -> Decision {
    if a.user.is_privileged() {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut errors: Vec<String> = Vec::new();
    for binding in inner.store.list(&key("clusterrolebindings"), None) {
        if !applies(a, binding, "") {
            continue;
        }
        match role_rules(inner, binding, "") {
            Ok(rules) if rules.iter().any(|r| rule_allows(a, r)) => return allow(),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if !a.namespace.is_empty() {
        for binding in inner.store.list(&key("rolebindings"), Some(&a.namespace)) {
            if !applies(a, binding, &a.namespace) {
                continue;
            }
            match role_rules(inner, binding, &a.namespace) {
                Ok(rules) if rules.iter().any(|r| rule_allows(a, r)) => return allow(),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    Decision {
        allowed: false,
        reason: if errors.is_empty() {
            String::new()
        } else {
            format!("RBAC: {}", aggregate(&errors))
        },
    }
}

fn allow() -> Decision {
    Decision {
        allowed: true,
        reason: String::new(),
    }
}

/// Go's `utilerrors.NewAggregate(..).Error()`: one message as is, several deduplicated in [].
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen[0].to_string()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// The 403 for a refused request, worded as kube-apiserver's `responsewriters.Forbidden`.
pub fn refusal(a: &Attributes, d: &Decision) -> ApiError {
    let why = if d.reason.is_empty() {
        forbidden_message(a)
    } else {
        format!("{}: {}", forbidden_message(a), d.reason)
    };
    forbidden(&a.api_group, &a.resource, &a.name, &why)
}

/// The create half of a server-side apply that creates the object: kube-apiserver authorizes
/// it as `create` too, and words a refusal with the authorizer's reason alone.
pub fn check_create_on_patch(inner: &Inner, a: &Attributes) -> Result<(), ApiError> {
    let create = a.with_verb("create");
    let d = authorize(inner, &create);
    if d.allowed {
        return Ok(());
    }
    Err(forbidden(&a.api_group, &a.resource, &a.name, &d.reason))
}

/// `User "u" cannot <verb> resource "r[/sub]" in API group "g" in the namespace "ns"` (or
/// `at the cluster scope`), or `User "u" cannot <verb> path "/p"`.
pub fn forbidden_message(a: &Attributes) -> String {
    let user = &a.user.name;
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    if a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.verb, a.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.verb, a.api_group, a.namespace
        )
    }
}

/// apimachinery's `errors.NewForbidden(groupResource, name, err)`.
pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if resource.is_empty() && group.is_empty() {
        format!("forbidden: {why}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {name:?} is forbidden: {why}")
    };
    let mut details = serde_json::Map::new();
    for (k, v) in [("name", name), ("group", group), ("kind", resource)] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(Value::Object(details)),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether one of the binding's subjects is the request's user.
fn applies(a: &Attributes, binding: &Value, binding_namespace: &str) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|s| {
        let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
        match field("kind") {
            "User" => a.user.name == field("name"),
            "Group" => a.user.groups.iter().any(|g| g == field("name")),
            "ServiceAccount" => {
                let ns = if field("namespace").is_empty() {
                    binding_namespace
                } else {
                    field("namespace")
                };
                !ns.is_empty()
                    && a.user.name == super::authn::service_account_user(ns, field("name"))
            }
            _ => false,
        }
    })
}

/// The rules of the role a binding refers to, or RBAC's error when it does not exist.
fn role_rules(
    inner: &Inner,
    binding: &Value,
    binding_namespace: &str,
) -> Result<Vec<Value>, String> {
    let kind = binding
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = binding
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let role = match kind {
        "ClusterRole" => {
            let role = inner
                .store
                .get(&key("clusterroles"), "", name)
                .ok_or_else(|| format!("clusterrole.{GROUP} {name:?} not found"))?;
            return Ok(cluster_role_rules(inner, role, 0));
        }
        "Role" => inner
            .store
            .get(&key("roles"), binding_namespace, name)
            .ok_or_else(|| format!("role.{GROUP} {name:?} not found"))?,
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    Ok(role
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// A ClusterRole's rules: its own, or for an aggregated one, those of the ClusterRoles it
/// selects (themselves aggregated in turn, as the controller converges to).
fn cluster_role_rules(inner: &Inner, role: &Value, depth: usize) -> Vec<Value> {
    let Some(selectors) = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    else {
        return role
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
    };
    if depth > 8 {
        return vec![];
    }
    let name = role.pointer("/metadata/name").and_then(Value::as_str);
    inner
        .store
        .list(&key("clusterroles"), None)
        .filter(|other| other.pointer("/metadata/name").and_then(Value::as_str) != name)
        .filter(|other| {
            let labels = other.pointer("/metadata/labels");
            selectors.iter().any(|s| selects(s, labels))
        })
        .flat_map(|other| cluster_role_rules(inner, other, depth + 1))
        .collect()
}

/// Whether a `metav1.LabelSelector` selects these labels: every `matchLabels` pair and every
/// `matchExpressions` requirement (In, NotIn, Exists, DoesNotExist) holds; an empty selector
/// selects everything.
fn selects(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let pairs = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|es| {
            es.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                let values = strings(e.get("values"));
                let value = label(key);
                match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                    "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                    "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
        });
    pairs && expressions
}

/// RBAC's `RuleAllows`.
pub fn rule_allows(a: &Attributes, rule: &Value) -> bool {
    let verbs = strings(rule.get("verbs"));
    if !verbs.iter().any(|v| v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strings(rule.get("nonResourceURLs")).iter().any(|u| {
            u == "*"
                || *u == a.path
                || (u.ends_with('*') && a.path.starts_with(u.trim_end_matches('*')))
        });
    }
    let groups = strings(rule.get("apiGroups"));
    if !groups.iter().any(|g| g == "*" || *g == a.api_group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strings(rule.get("resources")).iter().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty()
                && r.len() == a.subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(&a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule.get("resourceNames"));
    names.is_empty() || names.contains(&a.name)
}

/// The default policy kube-apiserver stores at start (the part that matters here).
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let meta = |name: &str| {
        json!({
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        })
    };
    let role = |name: &str, rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name), "rules": rules});
    let aggregate = |label: &str| format!("rbac.authorization.k8s.io/aggregate-to-{label}");
    // An aggregated role (its rules gathered from the roles labelled `aggregate-to-<to>`),
    // itself labelled to join `joins`.
    let aggregated = |name: &str, to: &str, joins: Option<&str>| {
        let mut m = meta(name);
        if let Some(j) = joins {
            m["labels"][aggregate(j)] = json!("true");
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": m,
               "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {aggregate(to): "true"}}]},
               "rules": []})
    };
    let part = |name: &str, to: &str, rules: Value| {
        let mut r = role(name, rules);
        r["metadata"]["labels"][aggregate(to)] = json!("true");
        r
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(name),
               "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects})
    };
    vec![
        (
            "clusterroles",
            role(
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                       {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:discovery",
                json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                            "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                        "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:public-info-viewer",
                json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                        "verbs": ["get"]}]),
            ),
        ),
        // The user-facing roles: admin ⊇ edit ⊇ view, each gathering the roles labelled to
        // join it (bootstrappolicy's ClusterRoles, with the core of their rules).
        ("clusterroles", aggregated("admin", "admin", None)),
        ("clusterroles", aggregated("edit", "edit", Some("admin"))),
        ("clusterroles", aggregated("view", "view", Some("edit"))),
        (
            "clusterroles",
            part(
                "system:aggregate-to-admin",
                "admin",
                json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"],
                        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
                       {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}]),
            ),
        ),
        (
            "clusterroles",
            part(
                "system:aggregate-to-edit",
                "edit",
                json!([{"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
                        "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                       {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                                                         "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                                                         "services/proxy", "endpoints"],
                        "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                       {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
                       {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                                                             "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"],
                        "verbs": ["create", "delete", "deletecollection", "patch", "update"]},
                       {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"],
                        "verbs": ["create", "delete", "deletecollection", "patch", "update"]}]),
            ),
        ),
        (
            "clusterroles",
            part(
                "system:aggregate-to-view",
                "view",
                json!([{"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods",
                                                         "replicationcontrollers", "serviceaccounts", "services",
                                                         "bindings", "events", "limitranges", "namespaces", "pods/log",
                                                         "pods/status", "resourcequotas"],
                        "verbs": ["get", "list", "watch"]},
                       {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"],
                        "verbs": ["get", "list", "watch"]},
                       {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": ["get", "list", "watch"]}]),
            ),
        ),
        (
            "clusterrolebindings",
            binding("cluster-admin", &["system:masters"]),
        ),
        (
            "clusterrolebindings",
            binding("system:discovery", &["system:authenticated"]),
        ),
        (
            "clusterrolebindings",
            binding(
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
        ),
    ]
}
