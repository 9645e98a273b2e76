//! The Helm chart `charts/email-operator`: its CRDs are the generated ones, `helm lint --strict`
//! is clean, `helm template` renders what the operator needs (flags, downward-API env, a
//! hardened pod, least-privilege RBAC) with default values and with every optional feature on,
//! and the rendered manifests pass `kubernetes-validate --strict`.
//!
//! helm comes from `.ci/setup-kubectl.sh` (`.tools/bin/helm`), kubernetes-validate from
//! `.ci/setup-chart.sh`. Outside CI (`CI` unset) a missing tool skips a test with the reason
//! printed; in CI it fails.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMESPACE: &str = "email-system";
const RELEASE: &str = "mail";
const FULLNAME: &str = "mail-email-operator";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/email-operator")
}

fn missing(reason: &str, setup: &str) -> Option<PathBuf> {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason} (CI must install it: {setup})"
    );
    eprintln!("SKIPPED: {reason}; run {setup}");
    None
}

/// The first of `candidates` that runs with `probe_arg`.
fn find_tool(candidates: Vec<PathBuf>, probe_arg: &str) -> Option<PathBuf> {
    candidates.into_iter().find(|tool| {
        Command::new(tool)
            .arg(probe_arg)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn helm() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("HELM")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend([root().join(".tools/bin/helm"), PathBuf::from("helm")]);
    find_tool(candidates, "version")
        .or_else(|| missing("helm is not installed", ".ci/setup-kubectl.sh"))
}

fn promtool() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend([
        root().join(".tools/bin/promtool"),
        PathBuf::from("promtool"),
    ]);
    find_tool(candidates, "--version")
        .or_else(|| missing("promtool is not installed", ".ci/setup-promtool.sh"))
}

fn kubernetes_validate() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let venv = std::env::var_os("CHART_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/email-operator/chart-venv"))
        });
    candidates.extend(venv.map(|v| v.join("bin/kubernetes-validate")));
    candidates.push(PathBuf::from("kubernetes-validate"));
    find_tool(candidates, "--version")
        .or_else(|| missing("kubernetes-validate is not installed", ".ci/setup-chart.sh"))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{stdout}{stderr}",
            out.status
        ))
    }
}

/// Every optional feature on: ServiceMonitor, NetworkPolicy, DNSEndpoints, a default relay
/// created from values, and the optional flags.
const ALL_FEATURES: &[&str] = &[
    "--set=metrics.serviceMonitor.enabled=true",
    "--set=grafana.dashboard.enabled=true",
    "--set=prometheusRule.enabled=true",
    "--set=prometheusRule.labels.release=kube-prometheus-stack",
    "--set=metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    "--set=networkPolicy.enabled=true",
    "--set=networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
    "--set=externalDns.enabled=true",
    "--set=defaultRelay.host=smtp.yourcompany.com",
    "--set=defaultRelay.port=465",
    "--set=defaultRelay.tls=implicit",
    "--set=defaultRelay.username=notifications@yourcompany.com",
    "--set=defaultRelay.password=s3cret-pa55word",
    "--set=dnsServer=10.0.0.10:53",
    "--set-string=awsAccountId=111122223333",
    "--set=clusterId=prod-eu",
    "--set-json=sesMaxRps=2.5",
    "--set=logLevel=info\\,email_operator=debug",
    "--set=extraArgs[0]=--kubeconfig=/etc/kube/config",
    "--set=serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/email-operator",
    "--set=podAnnotations.example\\.com/team=platform",
    "--set=priorityClassName=system-cluster-critical",
    "--set=egress.allow={10.20.0.15:25}",
];

/// `helm template` as text (with the CRDs when `crds`), or helm's error.
fn template_text(helm: &Path, crds: bool, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", RELEASE])
        .arg(chart())
        .args(["--namespace", NAMESPACE])
        .args(args);
    if crds {
        cmd.arg("--include-crds");
    }
    run(&mut cmd)
}

/// `helm template` parsed into its documents.
fn template(helm: &Path, args: &[&str]) -> Vec<Value> {
    let text = template_text(helm, false, args).unwrap_or_else(|e| panic!("{e}"));
    serde_saphyr::from_multiple(&text).expect("helm template renders YAML")
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

fn the<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    find(docs, kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The `kind` named `name` (in any namespace).
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn container(docs: &[Value]) -> &Value {
    &the(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<&str> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect()
}

/// What the operator may do where it watches (the ClusterRole's rules, or each watched
/// namespace's Role's).
fn watch_rules(external_dns: bool) -> Vec<Value> {
    let mut rules = vec![
        json!({"apiGroups": ["email.ops.dev"], "resources": ["emailsettings"],
               "verbs": ["list", "watch"]}),
        json!({"apiGroups": ["email.ops.dev"], "resources": ["senderidentities"],
               "verbs": ["list", "watch", "patch"]}),
        json!({"apiGroups": ["email.ops.dev"],
               "resources": ["emailsettings/status", "senderidentities/status"],
               "verbs": ["patch"]}),
        json!({"apiGroups": [""], "resources": ["secrets"],
               "verbs": ["get", "list", "watch", "create", "patch"]}),
        json!({"apiGroups": ["events.k8s.io"], "resources": ["events"],
               "verbs": ["create"]}),
    ];
    if external_dns {
        rules.push(
            json!({"apiGroups": ["externaldns.k8s.io"], "resources": ["dnsendpoints"],
                          "verbs": ["get", "list", "watch", "create", "patch", "delete"]}),
        );
    }
    rules
}

/// The cluster-wide install's ClusterRole: the watch rules, and namespaces' labels.
fn cluster_role_rules(external_dns: bool) -> Value {
    let mut rules = watch_rules(external_dns);
    rules.push(json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}));
    Value::Array(rules)
}

#[test]
fn chart_crds_are_byte_identical_to_crds() {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                entry
                    .expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let source = root().join("crds");
    let copy = chart().join("crds");
    let files = names(&source);
    assert!(!files.is_empty(), "crds/ is empty");
    assert_eq!(
        names(&copy),
        files,
        "charts/email-operator/crds/ must hold exactly the files of crds/; \
         copy them with `cp crds/*.yaml charts/email-operator/crds/`"
    );
    for file in &files {
        let a = std::fs::read(source.join(file)).expect("read crds/");
        let b = std::fs::read(copy.join(file)).expect("read chart crds/");
        assert!(
            a == b,
            "charts/email-operator/crds/{file} differs from crds/{file}; \
             copy it with `cp crds/*.yaml charts/email-operator/crds/`"
        );
    }
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&text).expect("Chart.yaml is YAML");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "email-operator");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn helm_lint_strict_passes() {
    let Some(helm) = helm() else { return };
    for values in [&[][..], ALL_FEATURES] {
        let out = run(Command::new(&helm)
            .args(["lint", "--strict"])
            .arg(chart())
            .args(["--namespace", NAMESPACE])
            .args(values))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn default_values_render_a_hardened_operator_with_least_privilege_rbac() {
    let Some(helm) = helm() else { return };
    let docs = template(&helm, &[]);
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );

    let deployment = the(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let c = container(&docs);
    assert_eq!(
        c["image"],
        format!("email-operator:{}", env!("CARGO_PKG_VERSION"))
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }
    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );

    assert_eq!(
        args(&docs),
        [
            "run",
            "--cluster-id=default",
            "--ses-max-rps=1",
            "--verified-recheck-interval=12h",
            "--ses-account-interval=12h",
            "--log-format=json",
            "--pending-recheck-min=30s",
            "--pending-recheck-max=15m",
            "--max-concurrent-reconciles=16",
            "--metrics-addr=0.0.0.0:8080",
        ]
    );
    let env = &c["env"];
    assert_eq!(
        env[0],
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
    assert_eq!(
        env[1],
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    );
    assert_eq!(env[2], json!({"name": "RUST_LOG", "value": "info"}));

    assert_eq!(
        named(&docs, "ClusterRole", FULLNAME)["rules"],
        cluster_role_rules(false)
    );
    let binding = the(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], FULLNAME);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );

    let role = named(&docs, "Role", &format!("{FULLNAME}-leader-election"));
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["email-operator"], "verbs": ["get", "update"]},
        ])
    );
    let policies = named(&docs, "Role", &format!("{FULLNAME}-policies"));
    assert_eq!(policies["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        policies["rules"],
        json!([{"apiGroups": ["email.ops.dev"], "resources": ["senderpolicies"], "verbs": ["list", "watch"]}])
    );
    for role in [role, policies] {
        let name = role["metadata"]["name"].as_str().expect("name");
        let role_binding = named(&docs, "RoleBinding", name);
        assert_eq!(role_binding["metadata"]["namespace"], NAMESPACE);
        assert_eq!(role_binding["roleRef"]["kind"], "Role");
        assert_eq!(role_binding["subjects"][0]["name"], FULLNAME);
    }

    // Tenants' roles, aggregated into admin/edit and view; SenderPolicies in neither.
    let edit = named(&docs, "ClusterRole", &format!("{FULLNAME}-edit"));
    let labels = &edit["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert_eq!(
        edit["rules"],
        json!([{"apiGroups": ["email.ops.dev"], "resources": ["emailsettings", "senderidentities"],
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}])
    );
    let view = named(&docs, "ClusterRole", &format!("{FULLNAME}-view"));
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert!(
        !serde_json::to_string(&view["rules"])
            .expect("json")
            .contains("senderpolicies")
    );

    let service = the(&docs, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let pdb = the(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(the(&docs, "ServiceAccount")["metadata"]["annotations"].is_null());
}

#[test]
fn every_optional_feature_renders() {
    let Some(helm) = helm() else { return };
    let docs = template(&helm, ALL_FEATURES);

    // The dashboard and the alerts, as their files hold them.
    let dashboard = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["name"] == format!("{FULLNAME}-dashboard")
        })
        .expect("the dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart().join("files/dashboard.json")).expect("dashboard.json"),
    )
    .expect("dashboard JSON");
    let rendered: serde_json::Value = serde_json::from_str(
        dashboard["data"]["email-operator.json"]
            .as_str()
            .expect("the dashboard"),
    )
    .expect("rendered dashboard JSON");
    assert_eq!(rendered, shipped);
    let rule = the(&docs, "PrometheusRule");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let alerts: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("files/alerts.yaml")).expect("alerts.yaml"),
    )
    .expect("alerts YAML");
    assert_eq!(rule["spec"], alerts);

    let relay = format!("{FULLNAME}-default-relay");
    assert_eq!(
        args(&docs),
        [
            "run",
            "--cluster-id=prod-eu",
            "--ses-max-rps=2.5",
            "--verified-recheck-interval=12h",
            "--ses-account-interval=12h",
            "--log-format=json",
            "--pending-recheck-min=30s",
            "--pending-recheck-max=15m",
            "--max-concurrent-reconciles=16",
            "--metrics-addr=0.0.0.0:8080",
            "--dns-server=10.0.0.10:53",
            "--aws-account-id=111122223333",
            &format!("--default-relay-secret={NAMESPACE}/{relay}"),
            "--egress-allow=10.20.0.15:25",
            "--kubeconfig=/etc/kube/config",
        ]
    );
    assert_eq!(
        container(&docs)["env"][2],
        json!({"name": "RUST_LOG", "value": "info,email_operator=debug"})
    );

    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == relay.as_str())
        .expect("the default-relay Secret");
    assert_eq!(secret["metadata"]["namespace"], NAMESPACE);
    let mut keys: Vec<&String> = secret["data"].as_object().expect("data").keys().collect();
    keys.sort();
    assert_eq!(keys, ["host", "password", "port", "tls", "username"]);
    assert_eq!(secret["data"]["port"], "NDY1"); // base64("465")
    let pod_annotations = &the(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert!(pod_annotations["checksum/default-relay"].is_string());
    assert_eq!(pod_annotations["example.com/team"], "platform");

    assert_eq!(
        named(&docs, "ClusterRole", FULLNAME)["rules"],
        cluster_role_rules(true)
    );
    assert_eq!(
        the(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/email-operator"
    );

    let monitor = the(&docs, "ServiceMonitor");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    let policy = &the(&docs, "NetworkPolicy")["spec"];
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["ingress"],
        json!([{
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }])
    );
    assert_eq!(
        policy["egress"],
        json!([{"to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}},
            {"ipBlock": {"cidr": "::/0", "except": ["fd00:ec2::254/128"]}},
        ]}]),
        "all egress but the cloud metadata service"
    );
    let open = template(
        &helm,
        &[
            "--set=networkPolicy.enabled=true",
            "--set=networkPolicy.blockMetadata=false",
        ],
    );
    assert_eq!(
        the(&open, "NetworkPolicy")["spec"]["egress"],
        json!([{}]),
        "all egress, for node credentials"
    );
}

#[test]
fn a_namespaced_install_renders_roles_in_each_watched_namespace_and_nothing_cluster_wide() {
    let Some(helm) = helm() else { return };
    let docs = template(
        &helm,
        &[
            "--set=watchNamespaces={billing,shop}",
            "--set=defaultRelay.existingSecret=relay",
            "--set=defaultRelay.existingSecretNamespace=mail-relays",
            "--set=defaultRelay.namespaces={billing}",
            "--set=tenantRoles.create=false",
        ],
    );
    assert!(
        find(&docs, "ClusterRole").is_none() && find(&docs, "ClusterRoleBinding").is_none(),
        "nothing cluster-wide"
    );
    let args = args(&docs);
    assert!(args.contains(&"--watch-namespace=billing,shop"), "{args:?}");
    assert!(
        args.contains(&"--default-relay-namespaces=billing"),
        "{args:?}"
    );
    for ns in ["billing", "shop"] {
        let role = docs
            .iter()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(role["rules"], Value::Array(watch_rules(false)), "{ns}");
        let binding = docs
            .iter()
            .find(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
        );
    }
    // The relay's Secret, outside the watched namespaces, by name only.
    let relay = named(&docs, "Role", &format!("{FULLNAME}-default-relay"));
    assert_eq!(relay["metadata"]["namespace"], "mail-relays");
    assert_eq!(
        relay["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["relay"],
                "verbs": ["get", "list", "watch"]}])
    );
    // A relay inside a watched namespace needs no Role of its own.
    let docs = template(
        &helm,
        &[
            "--set=watchNamespaces={billing}",
            "--set=defaultRelay.existingSecret=relay",
            "--set=defaultRelay.existingSecretNamespace=billing",
        ],
    );
    assert!(!docs.iter().any(|d| d["metadata"]["name"]
        == format!("{FULLNAME}-default-relay").as_str()
        && d["kind"] == "Role"));
}

#[test]
fn an_existing_relay_secret_is_referenced_not_created() {
    let Some(helm) = helm() else { return };
    let docs = template(
        &helm,
        &[
            "--set=defaultRelay.existingSecret=corporate-relay",
            "--set=defaultRelay.existingSecretNamespace=mail-infra",
        ],
    );
    assert!(args(&docs).contains(&"--default-relay-secret=mail-infra/corporate-relay"));
    assert!(find(&docs, "Secret").is_none());
}

#[test]
fn one_replica_has_no_disruption_budget() {
    let Some(helm) = helm() else { return };
    let docs = template(&helm, &["--set=replicas=1"]);
    assert_eq!(the(&docs, "Deployment")["spec"]["replicas"], 1);
    assert!(find(&docs, "PodDisruptionBudget").is_none());
}

#[test]
fn the_values_schema_rejects_mistakes() {
    let Some(helm) = helm() else { return };
    for (value, expected) in [
        (
            "--set=replica=2",
            "additional properties 'replica' not allowed",
        ),
        ("--set=defaultRelay.tls=ssl", "/defaultRelay/tls"),
        (
            "--set=verifiedRecheckInterval=12 hours",
            "/verifiedRecheckInterval",
        ),
        ("--set=sesMaxRps=0", "/sesMaxRps"),
        ("--set=awsAccountId=not-an-account", "/awsAccountId"),
        ("--set=dnsServer=dns.google", "/dnsServer"),
        ("--set=image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ] {
        let err = template_text(&helm, false, &[value]).expect_err(value);
        assert!(err.contains(expected), "{value}: {err}");
    }
    let err = template_text(
        &helm,
        false,
        &[
            "--set=defaultRelay.existingSecret=a",
            "--set=defaultRelay.host=smtp.example.com",
        ],
    )
    .expect_err("existingSecret and host together");
    assert!(err.contains("/defaultRelay/host"), "{err}");
}

/// `kubernetes-validate --strict` against the chart's minimum Kubernetes version and the
/// newest one it knows; CRD-based kinds it has no schema for (ServiceMonitor, PrometheusRule)
/// are reported as unknown, and only those may be.
#[test]
fn rendered_manifests_pass_kubernetes_validate() {
    let Some(helm) = helm() else { return };
    let Some(validate) = kubernetes_validate() else {
        return;
    };
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let chart_meta: Value = serde_saphyr::from_str(&chart_yaml).expect("Chart.yaml is YAML");
    let min_kube = chart_meta["kubeVersion"]
        .as_str()
        .and_then(|v| v.strip_prefix(">="))
        .map(|v| v.trim_end_matches("-0"))
        .expect("Chart.yaml kubeVersion >=X.Y.Z-0");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, values) in [("default", &[][..]), ("all-features", ALL_FEATURES)] {
        let text = template_text(&helm, true, values).unwrap_or_else(|e| panic!("{e}"));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &text).expect("write manifests");
        // Once against the oldest version Chart.yaml admits, once against the newest known.
        let mut out = String::new();
        for version in [Some(min_kube), None] {
            let mut cmd = Command::new(&validate);
            cmd.arg("--strict");
            if let Some(version) = version {
                cmd.args(["-k", version]);
            }
            out += &run(cmd.arg(&file)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for line in out.lines() {
            assert!(
                line.starts_with("INFO ") && line.contains(" passed for resource ")
                    || line.starts_with("WARN ")
                        && (line.contains("kind ServiceMonitor ")
                            || line.contains("kind PrometheusRule ")),
                "{name}: {line}\n{out}"
            );
        }
        let known = docs
            .iter()
            .filter(|d| d["kind"] != "ServiceMonitor" && d["kind"] != "PrometheusRule")
            .count();
        assert!(known >= 10, "{name}: only {known} documents rendered");
        assert_eq!(
            out.matches(" passed for resource ").count(),
            known * 2,
            "{name}: every known document validates against both versions\n{out}"
        );
    }
}

#[test]
fn the_alerts_pass_promtool_checks_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let out = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(chart().join("files/alerts.yaml")))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    let out = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(root().join("tests/alerts/alerts_test.yaml")))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_name_is_exported() {
    use email_operator::metrics::*;
    // A family is exposed once it holds a series: give each one.
    let m = &*METRICS;
    let ses = SesLabels {
        operation: "GetAccount",
        outcome: "Success",
    };
    m.ses_requests.get_or_create(&ses).inc();
    let kind = KindLabels {
        kind: "EmailSettings",
    };
    m.reconciles.get_or_create(&kind).inc();
    m.reconcile_duration.get_or_create(&kind).observe(0.01);
    let error = ErrorLabels {
        kind: "EmailSettings",
        reason: "KubernetesApiError",
    };
    m.reconcile_errors.get_or_create(&error).inc();
    let outcome = OutcomeLabels {
        outcome: "Succeeded",
    };
    m.smtp_tests.get_or_create(&outcome).inc();
    let status = VerificationLabels {
        status: "Success".into(),
    };
    m.identities.get_or_create(&status).set(1);
    let ready = ReadyLabels {
        ready: "True".into(),
        reason: "Published".into(),
    };
    m.email_settings.get_or_create(&ready).set(1);
    let text = m.encode();
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let re = regex::Regex::new(r"email_operator_[a-z0-9_]+").expect("regex");
    for file in ["files/dashboard.json", "files/alerts.yaml"] {
        let source = std::fs::read_to_string(chart().join(file)).expect("read");
        let named: std::collections::BTreeSet<&str> =
            re.find_iter(&source).map(|m| m.as_str()).collect();
        assert!(named.len() >= 5, "{file} names {named:?}");
        for name in named {
            let family = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| exported.contains(f)))
                .unwrap_or(name);
            assert!(
                exported.contains(family),
                "{file} names {name}, which the operator does not export: {exported:?}"
            );
        }
    }
}
