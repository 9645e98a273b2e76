//! Authentication and RBAC in the Kubernetes stand-in, through kube-rs clients with
//! ServiceAccount tokens: each HTTP request maps to the verb kube-apiserver authorizes,
//! subresources and resourceNames, Roles and ClusterRoles bound by RoleBindings and
//! ClusterRoleBindings, wildcards, the create check of a creating server-side apply,
//! `OwnerReferencesPermissionEnforcement`, discovery for every authenticated user, 401 for
//! unknown tokens, the real 403 wording, TokenRequest, and the admin token's full access.

mod common;

use common::*;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use testbed::kube::{AdmissionPlugin, Anonymous, KubeOptions};

const ROBOT: &str = "system:serviceaccount:default:robot";

async fn client_from(kubeconfig: &str) -> Client {
    let kc = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A client for the ServiceAccount `default/robot`.
async fn robot(bed: &Bed) -> Client {
    client_from(
        &bed.server
            .service_account_kubeconfig("default", "robot")
            .expect("token"),
    )
    .await
}

fn rbac(kind: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind),
        &plural,
    )
}

/// Server-side apply of `obj` by the admin.
async fn put(bed: &Bed, kind: &str, obj: Value) {
    let ar = rbac(kind);
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(bed.client.clone(), ns, &ar),
        None => Api::all_with(bed.client.clone(), &ar),
    };
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
}

fn robot_subject() -> Value {
    json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}])
}

/// Grant `rules` to robot: a ClusterRole `name`, bound in `namespace` by a RoleBinding, or
/// everywhere by a ClusterRoleBinding when `namespace` is None.
async fn grant(bed: &Bed, name: &str, namespace: Option<&str>, rules: Value) {
    put(
        bed,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name}, "rules": rules}),
    )
    .await;
    let role_ref =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name});
    match namespace {
        Some(ns) => {
            put(
                bed,
                "RoleBinding",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": name, "namespace": ns},
                       "roleRef": role_ref, "subjects": robot_subject()}),
            )
            .await
        }
        None => {
            put(
                bed,
                "ClusterRoleBinding",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": name},
                       "roleRef": role_ref, "subjects": robot_subject()}),
            )
            .await
        }
    }
}

fn widget_rule(verbs: &[&str]) -> Value {
    json!([{"apiGroups": ["testbed.example.com"], "resources": ["widgets"], "verbs": verbs}])
}

/// The message kube-apiserver gives a refused widget request in `ns`.
fn refused(verb: &str, resource: &str, name: Option<&str>, ns: Option<&str>) -> String {
    let subject = match name {
        Some(n) => format!("widgets.testbed.example.com {n:?}"),
        None => "widgets.testbed.example.com".into(),
    };
    let scope = match ns {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    format!(
        "{subject} is forbidden: User {ROBOT:?} cannot {verb} resource {resource:?} in API group \"testbed.example.com\" {scope}"
    )
}

fn assert_forbidden<T>(result: Result<T, kube::Error>, message: &str) {
    let status = match result {
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected 403 {message:?}, got {other}"),
        Ok(_) => panic!("expected 403 {message:?}, the request succeeded"),
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (403, "Forbidden"),
        "{status:?}"
    );
    assert_eq!(status.message, message);
}

async fn seed_widget(bed: &Bed, ns: &str, name: &str, labels: Value) {
    let mut w = widget(name, json!({"size": 1}));
    w.metadata.labels = serde_json::from_value(labels).ok();
    bed.widgets(ns)
        .create(&PostParams::default(), &w)
        .await
        .expect("admin creates");
}

/// One widget request of each verb's kind; `n` keeps names fresh across rounds.
async fn attempt(bed: &Bed, client: &Client, op: &str, n: usize) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    match op {
        "get" => api.get("w1").await.map(|_| ()),
        "list" => api.list(&ListParams::default()).await.map(|_| ()),
        "watch" => api
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .map(|_| ()),
        "create" => api
            .create(
                &PostParams::default(),
                &widget(&format!("new-{n}"), json!({"size": 2})),
            )
            .await
            .map(|_| ()),
        "update" => {
            let mut current = bed.widgets("default").get("w1").await.expect("admin get");
            current.data["spec"]["size"] = json!(n + 10);
            api.replace("w1", &PostParams::default(), &current)
                .await
                .map(|_| ())
        }
        "patch" => api
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": n + 20}})),
            )
            .await
            .map(|_| ()),
        "apply" => api
            .patch(
                "w1",
                &PatchParams::apply("robot").force(),
                &Patch::Apply(
                    json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget",
                                     "metadata": {"name": "w1"}, "spec": {"size": n + 30}}),
                ),
            )
            .await
            .map(|_| ()),
        "delete" => {
            let name = format!("doomed-{n}");
            seed_widget(bed, "default", &name, json!({})).await;
            api.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ())
        }
        "deletecollection" => {
            seed_widget(
                bed,
                "default",
                &format!("batch-{n}"),
                json!({"batch": n.to_string()}),
            )
            .await;
            api.delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&format!("batch={n}")),
            )
            .await
            .map(|_| ())
        }
        other => panic!("no operation {other}"),
    }
}

/// The verb kube-apiserver authorizes each operation as, and the name it names.
const OPERATIONS: &[(&str, &str, Option<&str>)] = &[
    ("get", "get", Some("w1")),
    ("list", "list", None),
    ("watch", "watch", None),
    ("create", "create", None),
    ("update", "update", Some("w1")),
    ("patch", "patch", Some("w1")),
    ("apply", "patch", Some("w1")),
    ("delete", "delete", Some("doomed")),
    ("deletecollection", "deletecollection", None),
];

#[tokio::test]
async fn each_request_is_authorized_as_the_verb_kube_apiserver_uses() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let client = robot(&bed).await;
    let mut n = 0;
    for granted in [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ] {
        grant(
            &bed,
            "widget-verb",
            Some("default"),
            widget_rule(&[granted]),
        )
        .await;
        for (op, verb, name) in OPERATIONS {
            n += 1;
            let result = attempt(&bed, &client, op, n).await;
            if *verb == granted {
                result.unwrap_or_else(|e| panic!("{op} with {granted} granted: {e}"));
            } else {
                let name = name.map(|x| {
                    if x == "doomed" {
                        format!("doomed-{n}")
                    } else {
                        x.to_string()
                    }
                });
                assert_forbidden(
                    result,
                    &refused(verb, "widgets", name.as_deref(), Some("default")),
                );
            }
        }
    }
}

#[tokio::test]
async fn watch_and_list_across_namespaces_need_a_cluster_wide_grant() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let client = robot(&bed).await;
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &widget_resource());
    grant(
        &bed,
        "widget-reader",
        Some("default"),
        widget_rule(&["list", "watch"]),
    )
    .await;
    assert_forbidden(
        all.list(&ListParams::default()).await,
        &refused("list", "widgets", None, None),
    );
    assert_forbidden(
        all.watch(&WatchParams::default(), "0").await,
        &refused("watch", "widgets", None, None),
    );
    // The namespaced watch streams events.
    use futures::{StreamExt, TryStreamExt};
    let ns: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    let stream = ns
        .watch(&WatchParams::default().timeout(2), "0")
        .await
        .expect("namespaced watch allowed");
    let events: Vec<_> = stream.boxed().take(1).try_collect().await.expect("events");
    assert_eq!(events.len(), 1);

    grant(
        &bed,
        "widget-reader-everywhere",
        None,
        widget_rule(&["list", "watch"]),
    )
    .await;
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let _stream = all
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("cluster-wide watch allowed");
}

#[tokio::test]
async fn subresources_are_authorized_by_their_own_name() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let client = robot(&bed).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    let status_patch = || {
        let api = api.clone();
        async move {
            let patch = json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget",
                               "status": {"phase": "Ready"}});
            api.patch_status(
                "w1",
                &PatchParams::apply("robot").force(),
                &Patch::Apply(patch),
            )
            .await
        }
    };
    // Every verb on the main resource says nothing about /status.
    grant(&bed, "widgets-all", Some("default"), widget_rule(&["*"])).await;
    assert_forbidden(
        status_patch().await,
        &refused("patch", "widgets/status", Some("w1"), Some("default")),
    );
    grant(
        &bed,
        "widget-status",
        Some("default"),
        json!([{"apiGroups": ["testbed.example.com"], "resources": ["widgets/status"], "verbs": ["patch"]}]),
    )
    .await;
    status_patch().await.expect("status patch allowed");

    // `finalizers` is authorized as `update widgets/finalizers` before anything else; the
    // stand-in (like kube-apiserver for custom resources) serves no such path.
    let path = "/apis/testbed.example.com/v1/namespaces/default/widgets/w1/finalizers";
    let (code, body) = raw_body_as(&client, "PUT", path, Some(json!({}))).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        refused("update", "widgets/finalizers", Some("w1"), Some("default"))
    );
    // `*/finalizers` covers it; then the path itself is unknown, as it is to the admin.
    grant(
        &bed,
        "any-finalizers",
        Some("default"),
        json!([{"apiGroups": ["*"], "resources": ["*/finalizers"], "verbs": ["update"]}]),
    )
    .await;
    let (code, _) = raw_body_as(&client, "PUT", path, Some(json!({}))).await;
    assert_eq!(code, 404);
    assert_eq!(bed.raw("PUT", path, &[], Some(json!({}))).await.0, 404);
}

#[tokio::test]
async fn resource_names_limit_a_rule_to_named_objects() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    seed_widget(&bed, "default", "w2", json!({})).await;
    let client = robot(&bed).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    grant(
        &bed,
        "only-w1",
        Some("default"),
        json!([{"apiGroups": ["testbed.example.com"], "resources": ["widgets"],
                "resourceNames": ["w1"], "verbs": ["get", "list", "watch", "create"]}]),
    )
    .await;
    api.get("w1").await.expect("w1 allowed");
    assert_forbidden(
        api.get("w2").await,
        &refused("get", "widgets", Some("w2"), Some("default")),
    );
    // A list is for no name, unless its field selector pins one.
    assert_forbidden(
        api.list(&ListParams::default()).await,
        &refused("list", "widgets", None, Some("default")),
    );
    let pinned = api
        .list(&ListParams::default().fields("metadata.name=w1"))
        .await
        .expect("name-pinned list allowed");
    assert_eq!(pinned.items.len(), 1);
    let _stream = api
        .watch(
            &WatchParams::default().fields("metadata.name=w1").timeout(1),
            "0",
        )
        .await
        .expect("name-pinned watch allowed");
    assert_forbidden(
        api.list(&ListParams::default().fields("metadata.name=w2"))
            .await,
        &refused("list", "widgets", Some("w2"), Some("default")),
    );
    // A create names no object in its URL: a resourceNames rule cannot allow it.
    assert_forbidden(
        api.create(
            &PostParams::default(),
            &widget("w1-again", json!({"size": 1})),
        )
        .await,
        &refused("create", "widgets", None, Some("default")),
    );
}

#[tokio::test]
async fn roles_and_cluster_roles_bound_in_a_namespace_grant_only_there() {
    let bed = start().await;
    for ns in ["team-a", "team-b"] {
        let nsapi: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(bed.client.clone());
        nsapi
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
            )
            .await
            .expect("namespace");
        seed_widget(&bed, ns, "w1", json!({})).await;
    }
    let client = robot(&bed).await;
    let a: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team-a", &widget_resource());
    let b: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team-b", &widget_resource());

    // A Role in team-a, bound there.
    put(
        &bed,
        "Role",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "reader", "namespace": "team-a"}, "rules": widget_rule(&["get"])}),
    )
    .await;
    put(
        &bed,
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "reader", "namespace": "team-a"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": robot_subject()}),
    )
    .await;
    a.get("w1").await.expect("get in team-a");
    assert_forbidden(
        b.get("w1").await,
        &refused("get", "widgets", Some("w1"), Some("team-b")),
    );
    // A Role of team-a cannot be bound from team-b: the binding names a missing Role there.
    put(
        &bed,
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "reader", "namespace": "team-b"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": robot_subject()}),
    )
    .await;
    assert_forbidden(
        b.get("w1").await,
        &format!(
            "{}: RBAC: role.rbac.authorization.k8s.io \"reader\" not found",
            refused("get", "widgets", Some("w1"), Some("team-b"))
        ),
    );

    // A ClusterRole bound by a RoleBinding grants in that namespace only.
    grant(&bed, "patcher", Some("team-b"), widget_rule(&["patch"])).await;
    let merge = Patch::Merge(json!({"spec": {"size": 5}}));
    b.patch("w1", &PatchParams::default(), &merge)
        .await
        .expect("patch in team-b");
    assert_forbidden(
        a.patch("w1", &PatchParams::default(), &merge).await,
        &refused("patch", "widgets", Some("w1"), Some("team-a")),
    );
    // Bound by a ClusterRoleBinding, everywhere.
    grant(&bed, "patcher-everywhere", None, widget_rule(&["patch"])).await;
    a.patch("w1", &PatchParams::default(), &merge)
        .await
        .expect("patch in team-a");
}

#[tokio::test]
async fn wildcards_match_any_group_resource_and_verb() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let client = robot(&bed).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    assert_forbidden(
        secrets.list(&ListParams::default()).await,
        &format!(
            "secrets is forbidden: User {ROBOT:?} cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        ),
    );
    // verbs: ["*"] on one resource.
    grant(&bed, "all-verbs", Some("default"), widget_rule(&["*"])).await;
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete allowed by *");
    assert!(secrets.list(&ListParams::default()).await.is_err());
    // apiGroups and resources "*": anything namespaced in default, but not the cluster scope.
    grant(
        &bed,
        "everything-here",
        Some("default"),
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}]),
    )
    .await;
    secrets
        .list(&ListParams::default())
        .await
        .expect("list secrets allowed");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    configmaps
        .list(&ListParams::default())
        .await
        .expect("list configmaps allowed");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    assert_forbidden(
        crds.list(&ListParams::default()).await,
        &format!(
            "customresourcedefinitions.apiextensions.k8s.io is forbidden: User {ROBOT:?} cannot list resource \"customresourcedefinitions\" in API group \"apiextensions.k8s.io\" at the cluster scope"
        ),
    );
}

#[tokio::test]
async fn a_server_side_apply_that_creates_is_also_a_create() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let client = robot(&bed).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    let apply = |name: &str| {
        let obj = json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget",
                         "metadata": {"name": name}, "spec": {"size": 3}});
        let api = api.clone();
        let name = name.to_string();
        async move {
            api.patch(
                &name,
                &PatchParams::apply("robot").force(),
                &Patch::Apply(obj),
            )
            .await
        }
    };
    grant(&bed, "patch-only", Some("default"), widget_rule(&["patch"])).await;
    apply("w1")
        .await
        .expect("apply to an existing widget is a patch");
    // Creating through apply needs create as well; kube-apiserver words that refusal with
    // the authorizer's reason alone, which RBAC leaves empty.
    assert_forbidden(
        apply("w9").await,
        "widgets.testbed.example.com \"w9\" is forbidden: ",
    );
    assert!(
        bed.widgets("default")
            .get_opt("w9")
            .await
            .expect("get")
            .is_none()
    );
    grant(
        &bed,
        "create-too",
        Some("default"),
        widget_rule(&["create"]),
    )
    .await;
    apply("w9").await.expect("apply creates");
    // Without patch, create alone does not allow apply.
    grant(&bed, "patch-only", Some("default"), widget_rule(&["get"])).await;
    assert_forbidden(
        apply("w10").await,
        &refused("patch", "widgets", Some("w10"), Some("default")),
    );
}

#[tokio::test]
async fn unknown_tokens_are_401_and_the_admin_token_can_do_anything() {
    let bed = start().await;
    let unauthorized = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    for token in ["Bearer not-a-token", "Bearer testbed-sa.forged"] {
        let (code, body) = bed
            .raw(
                "GET",
                "/api/v1/namespaces/default/secrets",
                &[("authorization", token)],
                None,
            )
            .await;
        assert_eq!((code, &body), (401, &unauthorized), "{token}");
    }
    // Through kube-rs: a kubeconfig with a wrong token.
    let wrong = testbed_kubeconfig(&bed.server.url(), "nope");
    let status = status_of(
        Api::<Secret>::namespaced(client_from(&wrong).await, "default")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));

    // The admin's token (the kubeconfig the stand-in writes): every verb, every scope,
    // RBAC objects included, discovery.
    let admin = client_from(&bed.server.kubeconfig()).await;
    let secrets: Api<Secret> = Api::all(admin.clone());
    secrets
        .list(&ListParams::default())
        .await
        .expect("list all secrets");
    put(
        &bed,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "nothing"}, "rules": []}),
    )
    .await;
    let roles: Api<DynamicObject> = Api::all_with(admin.clone(), &rbac("ClusterRole"));
    let names: Vec<String> = roles
        .list(&ListParams::default())
        .await
        .expect("list clusterroles")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    for default in [
        "cluster-admin",
        "system:discovery",
        "system:public-info-viewer",
        "nothing",
    ] {
        assert!(names.iter().any(|n| n == default), "{default} in {names:?}");
    }
    kube::discovery::Discovery::new(admin)
        .run()
        .await
        .expect("admin discovery");

    // A token stops working when its ServiceAccount is deleted.
    let client = robot(&bed).await;
    let (code, _) = raw_as(&client, "GET", "/version").await;
    assert_eq!(code, 200);
    Api::<ServiceAccount>::namespaced(bed.client.clone(), "default")
        .delete("robot", &DeleteParams::default())
        .await
        .expect("delete robot");
    let (code, body) = raw_as(&client, "GET", "/version").await;
    assert_eq!((code, body), (401, unauthorized));
}

fn testbed_kubeconfig(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    )
}

/// A raw request as `client`'s user; the HTTP status and the JSON body.
async fn raw_as(client: &Client, method: &str, path: &str) -> (u16, Value) {
    raw_body_as(client, method, path, None).await
}

async fn raw_body_as(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    use http_body_util::BodyExt;
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body))
        .expect("request builds");
    let resp = client.send(req).await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json)
}

#[tokio::test]
async fn every_authenticated_user_reads_discovery_and_nothing_else_by_default() {
    let bed = start().await;
    let client = robot(&bed).await;
    for path in [
        "/version",
        "/healthz",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/rbac.authorization.k8s.io",
        "/apis/testbed.example.com/v1",
        "/openapi/v3",
        "/openapi/v3/apis/testbed.example.com/v1",
    ] {
        let (code, body) = raw_as(&client, "GET", path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    // kube's discovery (what kubectl and dynamic clients run) works with those rights alone,
    // and sees the RBAC kinds and the TokenRequest subresource.
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(discovery.has_group("rbac.authorization.k8s.io"));
    let (_, core) = raw_as(&client, "GET", "/api/v1").await;
    assert!(
        core["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .any(|r| r["name"] == "serviceaccounts/token" && r["kind"] == "TokenRequest"),
        "{core}"
    );
    // A path outside discovery, and any resource, is refused with the real wording.
    let (code, body) = raw_as(&client, "GET", "/metrics").await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        format!("forbidden: User {ROBOT:?} cannot get path \"/metrics\"")
    );
    assert_eq!(body["details"], json!({}));
    let (code, body) = raw_as(&client, "GET", "/api/v1/namespaces/default/secrets/s1").await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("secrets \"s1\" is forbidden: User {ROBOT:?} cannot get resource \"secrets\" in API group \"\" in the namespace \"default\""),
               "reason": "Forbidden", "details": {"name": "s1", "kind": "secrets"}, "code": 403})
    );
    // A namespace is its own namespace, for authorization.
    let (_, body) = raw_as(&client, "GET", "/api/v1/namespaces/default").await;
    assert_eq!(
        body["message"],
        format!(
            "namespaces \"default\" is forbidden: User {ROBOT:?} cannot get resource \"namespaces\" in API group \"\" in the namespace \"default\""
        )
    );
    // Forbidden comes before not found: an unknown resource is refused too.
    let (code, _) = raw_as(&client, "GET", "/apis/nothing.example.com/v1/things").await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn anonymous_requests_can_be_held_to_rbac() {
    let bed = start_with(KubeOptions {
        anonymous: Anonymous::Rbac,
        ..KubeOptions::default()
    })
    .await;
    let (code, _) = bed.raw("GET", "/version", &[], None).await;
    assert_eq!(code, 200, "public info for everyone");
    let (code, body) = bed.raw("GET", "/apis", &[], None).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/apis\""
    );
    let (code, body) = bed.raw("GET", "/api/v1/secrets", &[], None).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "secrets is forbidden: User \"system:anonymous\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
    );
    // The admin token still works.
    let (code, _) = bed
        .raw(
            "GET",
            "/api/v1/secrets",
            &[("authorization", "Bearer testbed")],
            None,
        )
        .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn token_requests_mint_tokens_for_service_accounts() {
    let bed = start().await;
    let sas: Api<ServiceAccount> = Api::namespaced(bed.client.clone(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "builder"}})).expect("sa"),
    )
    .await
    .expect("create sa");
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": ["api"]}})).expect("tr");
    let minted = sas
        .create_token_request("builder", &PostParams::default(), &request)
        .await
        .expect("token request");
    let status = minted.status.expect("status");
    assert_eq!(minted.spec.and_then(|s| s.expiration_seconds), Some(3600));
    let token = status.token.expect("token");
    let client = client_from(&testbed_kubeconfig(&bed.server.url(), &token)).await;
    let builder = "system:serviceaccount:default:builder";
    assert_forbidden(
        Api::<Secret>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await,
        &format!(
            "secrets is forbidden: User {builder:?} cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        ),
    );
    // Asking for a token is itself authorized: create serviceaccounts/token.
    assert_forbidden(
        Api::<ServiceAccount>::namespaced(client.clone(), "default")
            .create_token_request("builder", &PostParams::default(), &request)
            .await,
        &format!(
            "serviceaccounts \"builder\" is forbidden: User {builder:?} cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"default\""
        ),
    );
    // Too short, or for a missing ServiceAccount.
    let short: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 60}}))
            .expect("tr");
    let status = status_of(
        sas.create_token_request("builder", &PostParams::default(), &short)
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        status.message
    );
    let status = status_of(
        sas.create_token_request("ghost", &PostParams::default(), &request)
            .await,
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "serviceaccounts \"ghost\" not found")
    );
}

#[tokio::test]
async fn bindings_to_missing_roles_say_so_and_role_refs_are_immutable() {
    let bed = start().await;
    let client = robot(&bed).await;
    put(
        &bed,
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "dangling", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "not-yet"},
               "subjects": robot_subject()}),
    )
    .await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    assert_forbidden(
        api.list(&ListParams::default()).await,
        &format!(
            "{}: RBAC: clusterrole.rbac.authorization.k8s.io \"not-yet\" not found",
            refused("list", "widgets", None, Some("default"))
        ),
    );
    // Creating the role makes the binding work at once.
    put(
        &bed,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "not-yet"}, "rules": widget_rule(&["list"])}),
    )
    .await;
    api.list(&ListParams::default()).await.expect("now allowed");
    // roleRef cannot change.
    let bindings: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), "default", &rbac("RoleBinding"));
    let status = status_of(
        bindings
            .patch(
                "dangling",
                &PatchParams::default(),
                &Patch::Merge(json!({"roleRef": {"name": "cluster-admin"}})),
            )
            .await,
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "RoleBinding.rbac.authorization.k8s.io \"dangling\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"cluster-admin\"}: cannot change roleRef"
    );
}

#[tokio::test]
async fn owner_references_permission_enforcement_guards_block_owner_deletion() {
    let bed = start_with(KubeOptions {
        admission_plugins: vec![AdmissionPlugin::OwnerReferencesPermissionEnforcement],
        ..KubeOptions::default()
    })
    .await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let owner = bed.widgets("default").get("w1").await.expect("w1");
    let uid = owner.metadata.uid.clone().expect("uid");
    let client = robot(&bed).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owned = |name: &str, block: bool| {
        serde_json::from_value::<ConfigMap>(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "testbed.example.com/v1", "kind": "Widget", "name": "w1", "uid": uid,
                "controller": true, "blockOwnerDeletion": block}]},
            "data": {"k": "v"}}))
        .expect("configmap")
    };
    put(
        &bed,
        "Role",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "cm-writer", "namespace": "default"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update", "patch", "get"]}]}),
    )
    .await;
    put(
        &bed,
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "cm-writer", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-writer"},
               "subjects": robot_subject()}),
    )
    .await;
    configmaps
        .create(&PostParams::default(), &owned("plain", false))
        .await
        .expect("an owner reference that does not block needs nothing more");
    assert_forbidden(
        configmaps
            .create(&PostParams::default(), &owned("blocking", true))
            .await,
        "configmaps \"blocking\" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>",
    );
    // Changing the owner references of an existing object needs delete on it.
    assert_forbidden(
        configmaps
            .patch(
                "plain",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
            )
            .await,
        "configmaps \"plain\" is forbidden: cannot set an ownerRef on a resource you can't delete: , <nil>",
    );
    grant(
        &bed,
        "widget-finalizers",
        Some("default"),
        json!([{"apiGroups": ["testbed.example.com"], "resources": ["widgets/finalizers"],
                "resourceNames": ["w1"], "verbs": ["update"]}]),
    )
    .await;
    configmaps
        .create(&PostParams::default(), &owned("blocking", true))
        .await
        .expect("allowed with update on widgets/finalizers");

    // Without the plugin (as kube-apiserver ships; the stand-in turns it on by default)
    // nothing of this is checked.
    let plain = start_with(KubeOptions {
        admission_plugins: Vec::new(),
        ..KubeOptions::default()
    })
    .await;
    seed_widget(&plain, "default", "w1", json!({})).await;
    let owner_uid = plain
        .widgets("default")
        .get("w1")
        .await
        .expect("w1")
        .metadata
        .uid;
    put(
        &plain,
        "Role",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "cm-writer", "namespace": "default"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}),
    )
    .await;
    put(
        &plain,
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "cm-writer", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-writer"},
               "subjects": robot_subject()}),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(robot(&plain).await, "default");
    let mut cm = owned("blocking", true);
    cm.metadata.owner_references.as_mut().expect("refs")[0].uid = owner_uid.expect("uid");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("no enforcement without the plugin");
}

#[tokio::test]
async fn the_audit_log_records_user_verb_object_and_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let bed = start_with(KubeOptions {
        audit_log: Some(path.clone()),
        ..KubeOptions::default()
    })
    .await;
    let client = robot(&bed).await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let _ = secrets.get_opt("s1").await;
    let entries: Vec<Value> = std::fs::read_to_string(&path)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let refused = entries
        .iter()
        .find(|e| e["user"]["username"] == ROBOT)
        .expect("robot's request audited");
    assert_eq!(refused["verb"], "get");
    assert_eq!(
        refused["objectRef"],
        json!({"resource": "secrets", "namespace": "default", "name": "s1", "apiVersion": "v1"})
    );
    assert_eq!(refused["responseStatus"]["code"], 403);
    assert_eq!(
        refused["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(
        refused["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    // A request without a token is the admin's (the default `Anonymous::Admin`).
    let _ = Api::<Secret>::namespaced(bed.client.clone(), "default")
        .get_opt("s1")
        .await;
    let last: Value = std::fs::read_to_string(&path)
        .expect("audit log")
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).expect("json"))
        .expect("a line");
    assert_eq!(last["user"]["username"], "testbed-admin");
    assert_eq!(last["responseStatus"]["code"], 404);
    assert_eq!(
        last["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
}

#[tokio::test]
async fn testbed_up_writes_service_account_kubeconfigs_and_an_audit_log() {
    use std::io::{BufRead, BufReader};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["up", "--dir"])
        .arg(dir.path())
        .args(["--crds", concat!(env!("CARGO_MANIFEST_DIR"), "/../crds")])
        .args(["--service-account", "email-system/email-operator"])
        .args(["--audit-log", "audit.log"])
        .args([
            "--enable-admission-plugins",
            "OwnerReferencesPermissionEnforcement",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("testbed up");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    if line.trim() != "ready" {
        let _ = child.kill();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
        panic!("testbed up: {line:?} {err}");
    }
    let kubeconfig =
        std::fs::read_to_string(dir.path().join("kubeconfig-email-system-email-operator"))
            .expect("the ServiceAccount's kubeconfig");
    let client = client_from(&kubeconfig).await;
    let (code, _) = raw_as(&client, "GET", "/version").await;
    assert_eq!(code, 200);
    let user = "system:serviceaccount:email-system:email-operator";
    assert_forbidden(
        Api::<Secret>::all(client)
            .list(&ListParams::default())
            .await,
        &format!(
            "secrets is forbidden: User {user:?} cannot list resource \"secrets\" in API group \"\" at the cluster scope"
        ),
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit.log");
    assert!(
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["user"]["username"] == user && e["responseStatus"]["code"] == 403),
        "{audit}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A RoleBinding to `edit` in `ns` for robot.
async fn bind_edit(bed: &Bed, ns: &str) {
    put(
        bed,
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "robot-edit", "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": robot_subject()}),
    )
    .await;
}

#[tokio::test]
async fn aggregated_roles_gather_the_cluster_roles_their_selectors_select() {
    let bed = start().await;
    seed_widget(&bed, "default", "w1", json!({})).await;
    let client = robot(&bed).await;
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &widget_resource());
    bind_edit(&bed, "default").await;

    // The built-in edit role grants what system:aggregate-to-edit does (Secrets, ConfigMaps …),
    // and view's rules (edit aggregates view), but no widgets yet.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .list(&ListParams::default())
        .await
        .expect("edit lists Secrets");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    config_maps
        .list(&ListParams::default())
        .await
        .expect("edit lists ConfigMaps (through view)");
    assert_forbidden(
        widgets.get("w1").await,
        &refused("get", "widgets", Some("w1"), Some("default")),
    );

    // A ClusterRole labelled to aggregate into edit: its rules count at once.
    put(
        &bed,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "widgets-edit",
                            "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
               "rules": widget_rule(&["get", "list"])}),
    )
    .await;
    widgets.get("w1").await.expect("get through edit");
    // Labelled for view only: edit aggregates view, so it counts for edit too …
    put(
        &bed,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "widgets-patch",
                            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
               "rules": widget_rule(&["patch"])}),
    )
    .await;
    let merge = Patch::Merge(json!({"spec": {"size": 3}}));
    widgets
        .patch("w1", &PatchParams::default(), &merge)
        .await
        .expect("patch through view, aggregated into edit");
    // … while a label for admin only does not reach edit.
    put(
        &bed,
        "ClusterRole",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "widgets-delete",
                            "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
               "rules": widget_rule(&["delete"])}),
    )
    .await;
    assert_forbidden(
        widgets.delete("w1", &DeleteParams::default()).await,
        &refused("delete", "widgets", Some("w1"), Some("default")),
    );
    // Relabelled away from edit: the grant goes.
    let roles: Api<DynamicObject> = Api::all_with(bed.client.clone(), &rbac("ClusterRole"));
    roles
        .patch(
            "widgets-edit",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-edit": null}}})),
        )
        .await
        .expect("relabel");
    assert_forbidden(
        widgets.list(&ListParams::default()).await,
        &refused("list", "widgets", None, Some("default")),
    );
}
