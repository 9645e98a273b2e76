//! `crds/` is generated from the Rust types: this test fails when the committed files drift.
//! Regenerate with `cargo run -- crds --out-dir crds`.

use email_operator::crd;
use std::path::Path;

#[test]
fn committed_crds_equal_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for (file, definition) in crd::all() {
        let committed =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("crds/{file}: {e}"));
        let generated = crd::crd_yaml(&definition).expect("render");
        assert!(
            committed == generated,
            "crds/{file} differs from `email-operator crds`; regenerate with `cargo run -- crds --out-dir crds`"
        );
    }
}

#[test]
fn the_crds_command_prints_both_files() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .arg("crds")
        .output()
        .expect("run email-operator crds");
    assert!(out.status.success());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let files: String = crd::all()
        .iter()
        .map(|(f, _)| std::fs::read_to_string(dir.join(f)).expect("read"))
        .collect();
    assert_eq!(String::from_utf8(out.stdout).expect("utf-8"), files);
}

/// The printer columns' names of a CRD's spec.
fn columns(spec: &serde_json::Value) -> Vec<&str> {
    spec["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

#[test]
fn the_crds_carry_names_columns_and_status_subresource() {
    let yaml = crd::crds_yaml().expect("render");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).expect("parse");
    assert_eq!(docs.len(), 3);
    let es = &docs[0]["spec"];
    assert_eq!(es["names"]["plural"], "emailsettings");
    assert_eq!(es["names"]["shortNames"][0], "emset");
    assert_eq!(es["names"]["categories"][0], "email");
    assert_eq!(es["scope"], "Namespaced");
    let cols = columns(es);
    assert_eq!(cols, ["Delivery", "From", "Connection", "Ready", "Age"]);
    let sid = &docs[1]["spec"];
    assert_eq!(sid["names"]["shortNames"][0], "sid");
    let cols = columns(sid);
    assert_eq!(
        cols,
        ["Identity", "Type", "Verification", "DKIM", "Ready", "Age"]
    );
    let spol = &docs[2]["spec"];
    assert_eq!(spol["names"]["shortNames"][0], "spol");
    assert_eq!(spol["scope"], "Namespaced");
    let cols = columns(spol);
    assert_eq!(
        cols,
        ["Domains", "Namespaces", "Share", "Default-Relay", "Age"]
    );
    // The policy has no status: nothing writes one.
    assert!(spol["versions"][0]["subresources"].is_null());
    for d in &docs[..2] {
        let v = &d["spec"]["versions"][0];
        assert!(v["subresources"]["status"].is_object());
        let conditions =
            &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
    }
}

/// Every field a user sees has a description (it is the `kubectl explain` text).
#[test]
fn every_field_is_documented() {
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, child) in props {
                let p = format!("{path}.{k}");
                let desc = child
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("");
                if desc.trim().is_empty() && k != "apiVersion" && k != "kind" && k != "metadata" {
                    missing.push(p.clone());
                }
                walk(child, &p, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let mut missing = vec![];
    for (file, definition) in crd::all() {
        let schema = serde_json::to_value(&definition.spec.versions[0].schema).expect("json");
        walk(&schema["openAPIV3Schema"], file, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

/// `kubectl explain` flows a description to the terminal's width; a line break kept from the
/// source's wrapping would cut a sentence. Breaks are allowed only between paragraphs, before a
/// list item, and inside fenced code.
#[test]
fn no_description_breaks_a_sentence() {
    fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map {
                    if k == "description"
                        && let Some(text) = x.as_str()
                    {
                        check(text, path, bad);
                    } else {
                        walk(x, &format!("{path}.{k}"), bad);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"), bad);
                }
            }
            _ => {}
        }
    }
    fn check(text: &str, path: &str, bad: &mut Vec<String>) {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut in_code = false;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            let Some(next) = lines.get(i + 1) else { break };
            let next = next.trim_start();
            let item = next.starts_with("* ")
                || next.starts_with("- ")
                || next
                    .split_once(". ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            let allowed = in_code
                || line.trim().is_empty()
                || next.is_empty()
                || item
                || next.starts_with("```");
            if !allowed {
                bad.push(format!("{path}: {line:?} / {next:?}"));
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut bad = vec![];
    for (file, _) in crd::all() {
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        let v: serde_json::Value = serde_saphyr::from_str(&text).expect("yaml");
        walk(&v, file, &mut bad);
    }
    assert!(
        bad.is_empty(),
        "line breaks inside sentences:\n{}",
        bad.join("\n")
    );
}

/// Short names of kinds most clusters already have: a CRD sharing one makes `kubectl get X`
/// ambiguous (kubectl picks one). From each project's CRDs or the API server's built-ins.
const TAKEN_SHORT_NAMES: &[(&str, &str)] = &[
    (
        "es",
        "Elastic ECK Elasticsearch; external-secrets ExternalSecret",
    ),
    ("ems", "Elastic ECK ElasticMapsServer"),
    ("kb", "Elastic ECK Kibana"),
    ("ent", "Elastic ECK EnterpriseSearch"),
    ("ss", "external-secrets SecretStore"),
    ("css", "external-secrets ClusterSecretStore"),
    ("cert", "cert-manager Certificate"),
    ("cr", "cert-manager CertificateRequest"),
    ("app", "Argo CD Application"),
    ("appproj", "Argo CD AppProject"),
    ("ks", "Flux Kustomization"),
    ("hr", "Flux HelmRelease"),
    ("smon", "Prometheus Operator ServiceMonitor"),
    ("pmon", "Prometheus Operator PodMonitor"),
    ("promrule", "Prometheus Operator PrometheusRule"),
    ("am", "Prometheus Operator Alertmanager"),
    ("vs", "Istio VirtualService"),
    ("se", "Istio ServiceEntry"),
    ("dr", "Istio DestinationRule"),
    ("gw", "Istio Gateway"),
    ("ksvc", "Knative Service"),
    ("sa", "Kubernetes ServiceAccount"),
    ("svc", "Kubernetes Service"),
    ("sts", "Kubernetes StatefulSet"),
    ("ds", "Kubernetes DaemonSet"),
    ("cs", "Kubernetes ComponentStatus"),
    ("cm", "Kubernetes ConfigMap"),
    ("ep", "Kubernetes Endpoints"),
    ("ev", "Kubernetes Event"),
    ("sc", "Kubernetes StorageClass"),
    ("pc", "Kubernetes PriorityClass"),
];

#[test]
fn no_short_name_collides_with_a_widely_installed_kind() {
    for (_, definition) in crd::all() {
        let names = &definition.spec.names;
        for short in names.short_names.iter().flatten() {
            if let Some((_, owner)) = TAKEN_SHORT_NAMES.iter().find(|(n, _)| n == short) {
                panic!("{}'s short name {short} is also {owner}'s", names.kind);
            }
        }
    }
}
