//! The stand-in refuses what kube-apiserver refuses: object metadata of every kind (names,
//! generateName, labels, annotations, finalizers, owner references) on create and update,
//! `events.k8s.io/v1` Events, and CRD CEL rules calling functions the claimed Kubernetes
//! version does not declare for new rules; and the options that pick the version, the
//! DNSEndpoint CRD and the admission plugins. Each rule is tested at its limit (accepted) and
//! past it (422 Invalid with the cause's field and message).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};
use testbed::kube::{AdmissionPlugin, DEFAULT_KUBE_VERSION, KubeOptions, KubeServer, KubeVersion};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const NAMESPACES: &str = "/api/v1/namespaces";
const CLUSTERROLES: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
const WIDGETS: &str = "/apis/testbed.example.com/v1/namespaces/default/widgets";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const MERGE: &[(&str, &str)] = &[("content-type", "application/merge-patch+json")];

async fn post(bed: &Bed, path: &str, body: Value) -> (u16, Value) {
    bed.raw("POST", path, JSON, Some(body)).await
}

fn cm(meta: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta })
}

fn widget(meta: Value) -> Value {
    json!({ "apiVersion": "testbed.example.com/v1", "kind": "Widget", "metadata": meta,
        "spec": { "size": 1, "color": "blue", "serial": "SN-1", "owner": "a@example.com" } })
}

/// The cause for `field`, as `reason: message`.
fn cause(body: &Value, field: &str) -> Option<String> {
    body.pointer("/details/causes")?
        .as_array()?
        .iter()
        .find(|c| c["field"] == field)
        .map(|c| {
            format!(
                "{}: {}",
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
}

/// Asserts a 422 Invalid whose cause for `field` contains `message`.
fn refused(code: u16, body: &Value, field: &str, message: &str) {
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid", "{body}");
    let got = cause(body, field).unwrap_or_else(|| panic!("no cause for {field}: {body}"));
    assert!(got.contains(message), "{field}: {got}");
    println!("refused {field}: {got}");
}

fn accepted(code: u16, body: &Value) {
    assert!(code == 200 || code == 201, "{code} {body}");
}

#[test]
fn default_version_is_the_charts_floor() {
    let chart = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/email-operator/Chart.yaml"
    ))
    .expect("Chart.yaml");
    let floor = chart
        .lines()
        .find_map(|l| l.strip_prefix("kubeVersion:"))
        .expect("kubeVersion in Chart.yaml")
        .trim()
        .trim_matches('"')
        .trim_start_matches(">=")
        .trim_end_matches("-0");
    let floor: KubeVersion = floor.parse().expect("kubeVersion floor parses");
    println!("chart floor {floor}, default {DEFAULT_KUBE_VERSION}");
    assert_eq!(floor, DEFAULT_KUBE_VERSION);
    let defaults = KubeOptions::default();
    assert_eq!(defaults.kube_version, DEFAULT_KUBE_VERSION);
    assert!(defaults.dns_endpoint_crd);
    assert_eq!(
        defaults.admission_plugins,
        vec![AdmissionPlugin::OwnerReferencesPermissionEnforcement]
    );
}

#[tokio::test]
async fn version_endpoint_reports_the_claimed_version() {
    let bed = start().await;
    let v = bed.client.apiserver_version().await.expect("version");
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "29"));
    assert_eq!(v.git_version, "v1.29.0-testbed");
    let bed = start_with(KubeOptions {
        kube_version: KubeVersion::new(1, 33),
        ..KubeOptions::default()
    })
    .await;
    let v = bed.client.apiserver_version().await.expect("version");
    assert_eq!(
        (v.minor.as_str(), v.git_version.as_str()),
        ("33", "v1.33.0-testbed")
    );
}

#[tokio::test]
async fn names_follow_the_rule_of_their_kind() {
    let bed = start().await;
    // DNS-1123 subdomain, at most 253 (ConfigMaps, custom resources, …).
    let (code, body) = post(&bed, CONFIGMAPS, cm(json!({"name": "a".repeat(253)}))).await;
    accepted(code, &body);
    let (code, body) = post(&bed, CONFIGMAPS, cm(json!({"name": "a".repeat(254)}))).await;
    refused(
        code,
        &body,
        "metadata.name",
        "must be no more than 253 characters",
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("ConfigMap \""),
        "{body}"
    );
    let (code, body) = post(&bed, WIDGETS, widget(json!({"name": "Upper"}))).await;
    refused(
        code,
        &body,
        "metadata.name",
        "a lowercase RFC 1123 subdomain must consist of",
    );
    // Namespaces: DNS-1123 labels, at most 63.
    let ns =
        |name: String| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let (code, body) = post(&bed, NAMESPACES, ns("n".repeat(63))).await;
    accepted(code, &body);
    let (code, body) = post(&bed, NAMESPACES, ns("n".repeat(64))).await;
    refused(
        code,
        &body,
        "metadata.name",
        "must be no more than 63 characters",
    );
    let (code, body) = post(&bed, NAMESPACES, ns("a.b".into())).await;
    refused(code, &body, "metadata.name", "must not contain dots");
    // RBAC: path segments.
    let role = |name: &str| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": []});
    let (code, body) = post(&bed, CLUSTERROLES, role("system:Mixed_Case")).await;
    accepted(code, &body);
    let (code, body) = post(&bed, CLUSTERROLES, role("50%")).await;
    refused(code, &body, "metadata.name", "may not contain '%'");
}

#[tokio::test]
async fn generate_name_is_a_name_prefix() {
    let bed = start().await;
    // The trailing '-' is masked; the prefix may be a whole 253-character subdomain and the
    // generated name is cut to 58 + 5 characters.
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"generateName": "a".repeat(252) + "-"})),
    )
    .await;
    accepted(code, &body);
    assert_eq!(
        body["metadata"]["name"].as_str().map(str::len),
        Some(63),
        "{body}"
    );
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"generateName": "a".repeat(254)})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.generateName",
        "must be no more than 253 characters",
    );
    let (code, body) = post(&bed, WIDGETS, widget(json!({"generateName": "Bad-"}))).await;
    refused(
        code,
        &body,
        "metadata.generateName",
        "a lowercase RFC 1123 subdomain",
    );
}

#[tokio::test]
async fn labels_are_qualified_names_and_short_values() {
    let bed = start().await;
    let key = format!("{}/{}", "p".repeat(253), "K".repeat(63));
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "ok", "labels": {key: "v".repeat(63), "empty": ""}})),
    )
    .await;
    accepted(code, &body);
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "k", "labels": {"k".repeat(64): "v"}})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.labels",
        "name part must be no more than 63 characters",
    );
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "p", "labels": {format!("{}/k", "p".repeat(254)): "v"}})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.labels",
        "prefix part must be no more than 253 characters",
    );
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "v", "labels": {"k": "v".repeat(64)}})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.labels",
        "must be no more than 63 characters",
    );
    // On update too, for custom resources as well.
    let (code, body) = post(&bed, WIDGETS, widget(json!({"name": "w"}))).await;
    accepted(code, &body);
    let (code, body) = bed
        .raw(
            "PATCH",
            &format!("{WIDGETS}/w"),
            MERGE,
            Some(json!({"metadata": {"labels": {"a": "-bad"}}})),
        )
        .await;
    refused(
        code,
        &body,
        "metadata.labels",
        "a valid label must be an empty string",
    );
}

#[tokio::test]
async fn annotations_total_at_most_256_kib() {
    let bed = start().await;
    // Keys are checked lower-cased; the total is len(key) + len(value) over all entries.
    let limit = 256 * 1024;
    let at_limit =
        json!({"name": "full", "annotations": {"Upper.Example.COM/Key": "x".repeat(limit - 21)}});
    let (code, body) = post(&bed, CONFIGMAPS, cm(at_limit)).await;
    accepted(code, &body);
    let past =
        json!({"name": "over", "annotations": {"Upper.Example.COM/Key": "x".repeat(limit - 20)}});
    let (code, body) = post(&bed, CONFIGMAPS, cm(past)).await;
    refused(
        code,
        &body,
        "metadata.annotations",
        "FieldValueTooLong: Too long: must have at most 262144 bytes",
    );
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "k", "annotations": {"a b": ""}})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.annotations",
        "Invalid value: \"a b\": name part must consist of",
    );
}

#[tokio::test]
async fn finalizers_are_qualified_names() {
    let bed = start().await;
    let (code, body) = post(
        &bed,
        WIDGETS,
        widget(json!({"name": "f", "finalizers": ["example.com/cleanup", "plain"]})),
    )
    .await;
    accepted(code, &body);
    let (code, body) = post(
        &bed,
        WIDGETS,
        widget(json!({"name": "g", "finalizers": ["not valid"]})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.finalizers",
        "name part must consist of alphanumeric characters",
    );
    let (code, body) = post(
        &bed,
        WIDGETS,
        widget(json!({"name": "h", "finalizers": ["orphan", "foregroundDeletion"]})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.finalizers",
        "finalizer orphan and foregroundDeletion cannot be both set",
    );
    // Core types: a finalizer without '/' must be a standard one.
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "f", "finalizers": ["orphan", "example.com/x"]})),
    )
    .await;
    accepted(code, &body);
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "g", "finalizers": ["plain"]})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.finalizers[0]",
        "name is neither a standard finalizer name nor is it fully qualified",
    );
}

#[tokio::test]
async fn owner_references_are_complete_with_one_controller() {
    let bed = start().await;
    let owner = |name: &str, controller: bool| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": format!("uid-{name}"), "controller": controller});
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "one", "ownerReferences": [owner("a", true), owner("b", false)]})),
    )
    .await;
    accepted(code, &body);
    let (code, body) = post(
        &bed,
        CONFIGMAPS,
        cm(json!({"name": "two", "ownerReferences": [owner("a", true), owner("b", true)]})),
    )
    .await;
    refused(
        code,
        &body,
        "metadata.ownerReferences",
        "Only one reference can have Controller set to true. Found \"true\" in references for ConfigMap/a and ConfigMap/b",
    );
    let (code, body) = post(&bed, CONFIGMAPS, cm(json!({"name": "nouid", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "a"}]}))).await;
    refused(
        code,
        &body,
        "metadata.ownerReferences.uid",
        "uid must not be empty",
    );
    let (code, body) = post(&bed, CONFIGMAPS, cm(json!({"name": "event", "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}]}))).await;
    refused(
        code,
        &body,
        "metadata.ownerReferences",
        "/v1, Kind=Event is disallowed from being an owner",
    );
    // A uid in an update body must be the object's. (The ConfigMaps above are garbage once
    // the collector finds their owners missing; this one has none.)
    let (code, current) = post(&bed, CONFIGMAPS, cm(json!({"name": "plain"}))).await;
    accepted(code, &current);
    let mut changed = current.clone();
    changed["metadata"]["uid"] = json!("another-uid");
    let (code, body) = bed
        .raw("PUT", &format!("{CONFIGMAPS}/plain"), JSON, Some(changed))
        .await;
    refused(
        code,
        &body,
        "metadata.uid",
        "Invalid value: \"another-uid\": field is immutable",
    );
}

fn event(name: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "namespace": "default"},
        "reason": "Reconciled", "action": "Reconcile", "note": "done", "type": "Normal",
        "reportingController": "email.ops.dev/email-operator", "reportingInstance": "pod-1",
    })
}

#[tokio::test]
async fn events_follow_the_events_k8s_io_v1_rules() {
    let bed = start().await;
    let mut e = event("at-limits");
    e["note"] = json!("é".repeat(512)); // 1024 bytes
    e["reason"] = json!("R".repeat(128));
    e["action"] = json!("A".repeat(128));
    e["reportingInstance"] = json!("i".repeat(128));
    let (code, body) = post(&bed, EVENTS, e).await;
    accepted(code, &body);
    for (field, value, path, message) in [
        (
            "note",
            json!(format!("{}x", "é".repeat(512))),
            "message",
            "can have at most 1024 characters",
        ),
        (
            "reason",
            json!("R".repeat(129)),
            "reason",
            "can have at most 128 characters",
        ),
        ("action", json!(""), "action", "Required value"),
        (
            "reportingInstance",
            json!("i".repeat(129)),
            "reportingInstance",
            "can have at most 128 characters",
        ),
        (
            "reportingController",
            json!("not/a/qualified-name"),
            "reportingController",
            "a qualified name must consist of",
        ),
        ("type", json!("Info"), "type", "has invalid value: Info"),
        ("eventTime", Value::Null, "eventTime", "Required value"),
        ("deprecatedCount", json!(3), "count", "needs to be unset"),
    ] {
        let mut e = event(&format!("bad-{}", field.to_lowercase()));
        e[field] = value;
        let (code, body) = post(&bed, EVENTS, e).await;
        refused(code, &body, path, message);
    }
    // kube-runtime names an Event `<object name>.<hex nanoseconds>`: past 253 it is refused.
    let long = format!("{}.{:x}", "o".repeat(253), 1_767_225_600_000_000_000u64);
    let (code, body) = post(&bed, EVENTS, event(&long)).await;
    refused(
        code,
        &body,
        "metadata.name",
        "must be no more than 253 characters",
    );
    // Updates may not change what the Event reports.
    let (code, body) = bed
        .raw(
            "PATCH",
            &format!("{EVENTS}/at-limits"),
            MERGE,
            Some(json!({"note": "changed"})),
        )
        .await;
    refused(
        code,
        &body,
        "message",
        "Invalid value: \"changed\": field is immutable",
    );
}

#[tokio::test]
async fn kube_runtime_recorder_events_are_accepted() {
    let bed = start().await;
    let recorder = Recorder::new(
        bed.client.clone(),
        Reporter {
            controller: "email-operator".into(),
            instance: Some("email-operator-0".into()),
        },
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("settings".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("n".repeat(1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    // The first publish creates, the second patches in a series.
    recorder
        .publish(&ev, &reference)
        .await
        .expect("event created");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("event series patched");
    let events: Api<DynamicObject> = Api::namespaced_with(
        bed.client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
            "events",
        ),
    );
    let list = events.list(&Default::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].data["series"]["count"], 2);
}

fn crd_with_rule(rule: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "hosts.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Host", "plural": "hosts"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "host": {"type": "string", "x-kubernetes-validations": [{"rule": rule}]}}}}}}}]}
    })
}

const RULE_PATH: &str = "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[host].x-kubernetes-validations[0].rule";

async fn install_at(minor: u32, crd: Value) -> (u16, Value) {
    let bed = start_with(KubeOptions {
        kube_version: KubeVersion::new(1, minor),
        ..KubeOptions::default()
    })
    .await;
    post(&bed, CRDS, crd).await
}

#[tokio::test]
async fn cel_rules_compile_against_the_claimed_version() {
    // isIP: the IP library is in the base environment from 1.30, so new rules may use it
    // from 1.31 (kube-apiserver compiles new rules with the previous minor's environment).
    for minor in [29, 30] {
        let (code, body) = install_at(minor, crd_with_rule("isIP(self)")).await;
        refused(
            code,
            &body,
            RULE_PATH,
            "compilation failed: ERROR: <input>:1:5: undeclared reference to 'isIP' (in container '')",
        );
        assert!(
            body["message"].as_str().unwrap_or("").starts_with(
                "CustomResourceDefinition.apiextensions.k8s.io \"hosts.example.com\" is invalid"
            ),
            "{body}"
        );
    }
    let (code, body) = install_at(31, crd_with_rule("isIP(self)")).await;
    accepted(code, &body);
    // format.named: the Format library is there from 1.31, usable from 1.32.
    let rule = "!format.named('dns1123Label').value().validate(self).hasValue()";
    let (code, body) = install_at(31, crd_with_rule(rule)).await;
    refused(
        code,
        &body,
        RULE_PATH,
        "undeclared reference to 'format' (in container '')",
    );
    let (code, body) = install_at(32, crd_with_rule(rule)).await;
    accepted(code, &body);
    // The standard library is always there; unknown functions never are.
    let (code, body) = install_at(29, crd_with_rule("self.matches('^a$') && size(self) < 5")).await;
    accepted(code, &body);
    let (code, body) = install_at(40, crd_with_rule("isHostname(self)")).await;
    refused(
        code,
        &body,
        RULE_PATH,
        "undeclared reference to 'isHostname'",
    );
    // messageExpression is compiled too.
    let mut crd = crd_with_rule("size(self) < 5");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["host"]
        ["x-kubernetes-validations"][0]["messageExpression"] = json!("strings.quote(self)");
    let (code, body) = install_at(29, crd).await;
    refused(
        code,
        &body,
        &RULE_PATH.replace(".rule", ".messageExpression"),
        "messageExpression compilation failed: ERROR: <input>:1:1: undeclared reference to 'strings'",
    );
}

#[tokio::test]
async fn the_project_crds_install_at_the_default_version() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = KubeServer::start(KubeOptions {
        crd_dirs: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/../crds").into()],
        ..KubeOptions::default()
    })
    .await;
    match server {
        Ok(_) => println!("crds/*.yaml install at {DEFAULT_KUBE_VERSION}"),
        Err(e) => panic!("crds/*.yaml refused at {DEFAULT_KUBE_VERSION}: {e}"),
    }
}

#[tokio::test]
async fn dnsendpoint_crd_can_be_left_out() {
    let path = "/apis/externaldns.k8s.io/v1alpha1/namespaces/default/dnsendpoints";
    let bed = start().await;
    let (code, _) = bed.raw("GET", path, &[], None).await;
    assert_eq!(code, 200);
    let bed = start_with(KubeOptions {
        dns_endpoint_crd: false,
        ..KubeOptions::default()
    })
    .await;
    let (code, body) = bed.raw("GET", path, &[], None).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(
        body["message"],
        "the server could not find the requested resource"
    );
}

#[test]
fn up_takes_version_crd_and_admission_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["up", "--dir"])
        .arg(dir.path())
        .args([
            "--kube-version",
            "1.31",
            "--without-dnsendpoint-crd",
            "--disable-admission-plugins",
            "OwnerReferencesPermissionEnforcement",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("testbed starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    assert_eq!(line, "ready\n");
    let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).expect("kubeconfig");
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server in kubeconfig")
        .trim_start_matches("http://")
        .to_string();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&server).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).ok();
        out
    };
    let version = get("/version");
    let endpoints = get("/apis/externaldns.k8s.io/v1alpha1/namespaces/default/dnsendpoints");
    let _ = child.kill();
    let _ = child.wait();
    assert!(version.contains("\"minor\":\"31\""), "{version}");
    assert!(endpoints.starts_with("HTTP/1.1 404"), "{endpoints}");
}

/// One storage, two APIs: an events.k8s.io/v1 Event is also a core/v1 Event, with the API
/// server's field mapping, and core/v1's field selectors (what `kubectl describe` asks).
#[tokio::test]
async fn events_are_served_as_core_v1_events_too() {
    const CORE_EVENTS: &str = "/api/v1/namespaces/default/events";
    let bed = start().await;
    let (code, body) = post(&bed, EVENTS, event("seen-twice")).await;
    accepted(code, &body);
    let mut other = event("about-another");
    other["regarding"]["name"] = json!("other-cm");
    let (code, body) = post(&bed, EVENTS, other).await;
    accepted(code, &body);

    let (code, core) = bed
        .raw("GET", &format!("{CORE_EVENTS}/seen-twice"), &[], None)
        .await;
    assert_eq!(code, 200, "{core}");
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["kind"], "Event");
    assert_eq!(core["involvedObject"]["name"], "cm");
    assert_eq!(core["involvedObject"]["kind"], "ConfigMap");
    assert_eq!(core["message"], "done");
    assert_eq!(core["reportingComponent"], "email.ops.dev/email-operator");
    assert_eq!(core["reportingInstance"], "pod-1");
    assert_eq!(core["eventTime"], "2026-01-01T00:00:00.000000Z");
    assert!(
        core.get("note").is_none() && core.get("regarding").is_none(),
        "{core}"
    );

    let selected = format!(
        "{CORE_EVENTS}?fieldSelector=involvedObject.name%3Dcm,involvedObject.namespace%3Ddefault,involvedObject.kind%3DConfigMap"
    );
    let (code, list) = bed.raw("GET", &selected, &[], None).await;
    assert_eq!(code, 200, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["seen-twice"]);
    assert_eq!(list["kind"], "EventList");
    // Not a field label of either API: refused as kube-apiserver does.
    let (code, body) = bed
        .raw(
            "GET",
            &format!("{CORE_EVENTS}?fieldSelector=note%3Ddone"),
            &[],
            None,
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = bed
        .raw(
            "GET",
            &format!("{EVENTS}?fieldSelector=involvedObject.name%3Dcm"),
            &[],
            None,
        )
        .await;
    assert_eq!(code, 400, "involvedObject is core/v1's field");

    // The same object: deleted through one API, gone from the other.
    let (code, _) = bed
        .raw("DELETE", &format!("{CORE_EVENTS}/seen-twice"), &[], None)
        .await;
    assert_eq!(code, 200);
    let (code, _) = bed
        .raw("GET", &format!("{EVENTS}/seen-twice"), &[], None)
        .await;
    assert_eq!(code, 404);
}
