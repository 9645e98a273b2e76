//! End-to-end harness: `testbed up` (Kubernetes, SES and DNS stand-ins) in a subprocess, the real
//! `email-operator run` binary against it, a kube client and the control API for the test.

#![allow(dead_code)] // each e2e test file uses a different part of the harness

pub mod chart;
pub mod tenants;

use email_operator::crd::SenderIdentity;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A running test bed.
pub struct Bed {
    pub dir: tempfile::TempDir,
    child: Child,
    pub env: HashMap<String, String>,
    pub client: Client,
    http: reqwest::Client,
    operators: Vec<Child>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        for op in &mut self.operators {
            let _ = op.kill();
            let _ = op.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SES request rate the suites run at: the stand-in allows this many a second and the
/// operator is started with it (SES's real limit, 1 a second, and the operator's default,
/// would make every suite wait on the rate; the suites that measure the rate set it
/// themselves, and `Bed::up_as_shipped` keeps every default).
pub const E2E_SES_RPS: &str = "5";

/// Where the operators the harness starts read SenderPolicies (`--policy-namespace`, or the
/// namespace they run in as a ServiceAccount).
pub const POLICY_NAMESPACE: &str = "email-system";

/// The suites' platform: every namespace may send as the domains the suites use, share their
/// SES identities, use the default relay and publish records through external-dns — so a suite
/// about something else can put tenants of one company in several namespaces. The tenancy and
/// security suites start without it ([`Bed::up_without_policy`]).
pub fn company_wide_policy() -> Value {
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
        "metadata": {"name": "company-wide", "namespace": POLICY_NAMESPACE},
        "spec": {"namespaceSelector": {}, "domains": ["yourcompany.com", "yourcompany.co", "sharedcorp.com", "othercompany.com"],
                 "shareIdentities": true, "defaultRelay": true, "publishRecords": true}
    })
}

impl Bed {
    pub async fn up() -> Bed {
        Self::up_with(&[]).await
    }

    /// Like [`Bed::up`], with more `testbed up` flags, e.g. `--audit-log audit.log` (a relative
    /// path is inside the bed's directory; read it with [`Bed::audit`]). The SES stand-in's
    /// rate limit is raised (see [`E2E_SES_RPS`]), and [`company_wide_policy`] applied.
    pub async fn up_with(extra: &[&str]) -> Bed {
        let bed = Self::up_without_policy(extra).await;
        bed.namespace(POLICY_NAMESPACE).await;
        bed.apply::<email_operator::crd::SenderPolicy>(POLICY_NAMESPACE, company_wide_policy())
            .await;
        bed
    }

    /// Like [`Bed::up_with`], without the company-wide SenderPolicy: tenancy as it is by
    /// default (a domain belongs to the first namespace that claims it).
    pub async fn up_without_policy(extra: &[&str]) -> Bed {
        let bed = Self::start(extra).await;
        bed.put(
            "/ses/limits",
            json!({"requestsPerSecond": 1000.0, "maxIdentitiesPerRegion": 10_000}),
        )
        .await;
        bed
    }

    /// `testbed up` exactly as shipped: SES's real rate (1 request a second per account and
    /// region) and quotas, the chart's minimum Kubernetes version, every admission check.
    pub async fn up_as_shipped(extra: &[&str]) -> Bed {
        Self::start(extra).await
    }

    async fn start(extra: &[&str]) -> Bed {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(binary("testbed"))
            .args(["up", "--dir"])
            .arg(dir.path())
            .arg("--crds")
            .arg(workspace().join("crds"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start testbed up");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "ready", "testbed up did not start");
        let env = std::fs::read_to_string(dir.path().join("env"))
            .expect("env file")
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(dir.path().join("kubeconfig")).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        let client = Client::try_from(config).expect("client");
        Bed {
            dir,
            child,
            env,
            client,
            http: reqwest::Client::new(),
            operators: vec![],
        }
    }

    /// Starts `email-operator run` against the bed; its log goes to `DIR/operator-N.log`.
    pub fn start_operator(&mut self, extra: &[&str]) -> PathBuf {
        self.spawn_operator(extra, &[])
    }

    /// [`Bed::start_operator`] with more environment, e.g. `RUST_LOG`.
    pub fn start_operator_with(&mut self, extra: &[&str], env: &[(&str, &str)]) -> PathBuf {
        self.spawn_operator(extra, env)
    }

    /// Starts `email-operator run` as the user of `kubeconfig` (e.g. from
    /// [`Bed::service_account_kubeconfig`]), with `POD_NAMESPACE=namespace` and
    /// `POD_NAME=email-operator-N` as the chart's Deployment sets them (the Lease namespace
    /// and holder identity, the Events' reporting instance). Log in `DIR/operator-N.log`.
    pub fn start_operator_as(
        &mut self,
        kubeconfig: &std::path::Path,
        namespace: &str,
        extra: &[&str],
    ) -> PathBuf {
        self.start_operator_as_with(kubeconfig, namespace, extra, &[])
    }

    /// [`Bed::start_operator_as`] with more environment, e.g. `RUST_LOG`.
    pub fn start_operator_as_with(
        &mut self,
        kubeconfig: &std::path::Path,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> PathBuf {
        let pod = format!("email-operator-{}", self.operators.len());
        let kubeconfig = kubeconfig.display().to_string();
        let mut all = vec![
            ("KUBECONFIG", kubeconfig.as_str()),
            ("POD_NAMESPACE", namespace),
            ("POD_NAME", pod.as_str()),
        ];
        all.extend(env);
        self.spawn_operator(extra, &all)
    }

    /// The process id of the `i`-th operator started.
    pub fn operator_pid(&self, i: usize) -> u32 {
        self.operators[i].id()
    }

    fn spawn_operator(&mut self, extra: &[&str], env: &[(&str, &str)]) -> PathBuf {
        let mut args: Vec<&str> = vec![
            "--dns-server",
            &self.env["TESTBED_DNS"],
            "--aws-account-id",
            "123456789012",
            "--cluster-id",
            "e2e",
            "--metrics-addr",
            "127.0.0.1:0",
        ];
        if !extra.contains(&"--ses-max-rps") {
            args.extend(["--ses-max-rps", E2E_SES_RPS]);
        }
        if !extra.contains(&"--policy-namespace") {
            args.extend(["--policy-namespace", POLICY_NAMESPACE]);
        }
        // The suites' SMTP and token servers run on loopback, which tenants' connection tests
        // may not reach unless the platform allows it (the egress suites set their own).
        if !extra.contains(&"--egress-allow") {
            args.extend(["--egress-allow", "127.0.0.0/8"]);
        }
        args.extend(extra);
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        self.spawn_operator_args(&args, env)
    }

    /// Starts `email-operator run` with nothing but the bed's environment (`DIR/env`) and
    /// `extra`: as a user would after `source DIR/env`. Log in `DIR/operator-N.log`.
    pub fn start_operator_plain(&mut self, extra: &[&str]) -> PathBuf {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        self.spawn_operator_args(&args, &[])
    }

    fn spawn_operator_args(&mut self, args: &[String], env: &[(&str, &str)]) -> PathBuf {
        let log = self
            .dir
            .path()
            .join(format!("operator-{}.log", self.operators.len()));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary("email-operator"))
            .arg("run")
            .args(args)
            .envs(&self.env)
            .env("RUST_LOG", "info,email_operator=debug")
            .envs(env.iter().copied())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("start email-operator run");
        self.operators.push(child);
        log
    }

    /// A kubeconfig for a fresh token of the ServiceAccount `namespace/name` (a TokenRequest
    /// by the admin; the ServiceAccount must exist), written to `DIR/kubeconfig-NS-NAME`.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;
        let request: TokenRequest =
            serde_json::from_value(json!({"spec": {"audiences": []}})).expect("TokenRequest");
        let token = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .expect("token request")
            .status
            .and_then(|s| s.token)
            .expect("a token");
        let admin = kube::config::Kubeconfig::read_from(self.dir.path().join("kubeconfig"))
            .expect("kubeconfig");
        let server = admin.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone())
            .expect("server");
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\nusers:\n- name: {user:?}\n  user:\n    token: {token:?}\ncontexts:\n- name: testbed\n  context:\n    cluster: testbed\n    user: {user:?}\n    namespace: {namespace:?}\ncurrent-context: testbed\n"
            ),
        )
        .expect("write kubeconfig");
        path
    }

    /// The Kubernetes audit log's entries (`audit.k8s.io/v1` Events), when the bed was started
    /// with `--audit-log audit.log`.
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .expect("audit log (start the bed with --audit-log audit.log)")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends `signal` (e.g. "KILL", "TERM") to the `i`-th operator started, and waits for it to
    /// exit; returns its exit code (None when killed by a signal).
    pub fn signal_operator(&mut self, i: usize, signal: &str) -> Option<i32> {
        let child = &mut self.operators[i];
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
        child.wait().expect("wait").code()
    }

    /// The address the operator logged for its metrics endpoint.
    pub async fn metrics_addr(log: &std::path::Path) -> String {
        eventually(
            "the operator's start line",
            Duration::from_secs(20),
            || async { std::fs::read_to_string(log).unwrap_or_default() },
            |t| t.contains("metrics_addr"),
        )
        .await
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["fields"]["metrics_addr"].as_str().map(str::to_string))
        .expect("metrics_addr in the log")
    }

    pub async fn http_get(&self, url: &str) -> (u16, String) {
        let r = self.http.get(url).send().await.expect("GET");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    pub fn control(&self, path: &str) -> String {
        format!("{}{path}", self.env["TESTBED_CONTROL"])
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.control(path))
            .send()
            .await
            .expect("control GET")
            .json()
            .await
            .expect("json")
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.control(path))
            .json(&body)
            .send()
            .await
            .expect("control POST");
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn put(&self, path: &str, body: Value) {
        let r = self
            .http
            .put(self.control(path))
            .json(&body)
            .send()
            .await
            .expect("control PUT");
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    }

    pub async fn delete(&self, path: &str, body: Value) {
        let r = self
            .http
            .delete(self.control(path))
            .json(&body)
            .send()
            .await
            .expect("control DELETE");
        assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
    }

    /// The test bed's SES SMTP interface stand-in, STARTTLS endpoint as `localhost:PORT`
    /// (`TESTBED_SES_SMTP_ENDPOINT` in DIR/env).
    pub fn ses_smtp_endpoint(&self) -> String {
        self.env["TESTBED_SES_SMTP_ENDPOINT"].clone()
    }

    /// The SES SMTP stand-in's port.
    pub fn ses_smtp_port(&self) -> u16 {
        let endpoint = self.ses_smtp_endpoint();
        let (_, port) = endpoint.rsplit_once(':').expect("HOST:PORT");
        port.parse().expect("port")
    }

    /// The PEM file of the CA that signs the SES SMTP stand-in's certificate
    /// (`TESTBED_SES_SMTP_CA`).
    pub fn ses_smtp_ca(&self) -> PathBuf {
        PathBuf::from(&self.env["TESTBED_SES_SMTP_CA"])
    }

    /// Lets the SES SMTP stand-in accept logins with this IAM key pair (user name the key id,
    /// password the SES SMTP password derived from the secret for the session's region).
    pub async fn register_ses_smtp_key(&self, access_key_id: &str, secret_access_key: &str) {
        self.post(
            "/ses/smtp-credentials",
            json!({"accessKeyId": access_key_id, "secretAccessKey": secret_access_key}),
        )
        .await;
    }

    /// Puts the SES account in the sandbox in `region` (production access withdrawn).
    pub async fn sandbox(&self, region: &str) {
        self.put(
            "/ses/account",
            json!({"region": region, "productionAccessEnabled": false}),
        )
        .await;
    }

    /// SES calls by operation (all outcomes).
    pub async fn ses_calls(&self, operation: &str) -> u64 {
        let calls = self.get("/ses/calls").await;
        calls["calls"][operation]
            .as_object()
            .map_or(0, |o| o.values().filter_map(Value::as_u64).sum())
    }

    /// Calls of `operation` that SES answered with `outcome` ("Success", or an error code).
    pub async fn ses_calls_answered(&self, operation: &str, outcome: &str) -> u64 {
        let calls = self.get("/ses/calls").await;
        calls["calls"][operation][outcome].as_u64().unwrap_or(0)
    }

    pub async fn apply<K>(&self, ns: &str, obj: Value) -> K
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .expect("apply")
    }

    pub async fn namespace(&self, ns: &str) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
        let _ = api.create(&PostParams::default(), &obj).await;
    }

    pub async fn delete_object<K>(&self, ns: &str, name: &str)
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
}

/// Polls `get` until `done` holds or `timeout` passes (then panics with the last value).
pub async fn eventually<T: std::fmt::Debug, F, Fut>(
    what: &str,
    timeout: Duration,
    mut get: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let v = get().await;
        if done(&v) {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; last value: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Shared scenario helpers.

pub const FAST: &[&str] = &[
    "--pending-recheck-min",
    "1s",
    "--pending-recheck-max",
    "2s",
    "--verified-recheck-interval",
    "2s",
];
pub const WAIT: Duration = Duration::from_secs(30);

/// [`FAST`], with AdvancedSmtp connection tests sent to aiosmtpd on `port` (whose certificate
/// `ca` signs) instead of SES's SMTP endpoint.
pub fn fast_with_ses_smtp(port: u16, ca: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = FAST.iter().map(|a| a.to_string()).collect();
    args.extend([
        "--ses-smtp-endpoint".to_string(),
        format!("localhost:{port}"),
        "--ses-smtp-ca-file".to_string(),
        ca.display().to_string(),
    ]);
    args
}

/// [`FAST`], with AdvancedSmtp connection tests sent to the bed's own SES SMTP stand-in
/// (register the key with [`Bed::register_ses_smtp_key`] first).
pub fn fast_with_bed_ses_smtp(bed: &Bed) -> Vec<String> {
    fast_with_ses_smtp(bed.ses_smtp_port(), &bed.ses_smtp_ca())
}

pub fn settings(ns: &str, users: &[&str]) -> Value {
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
        "metadata": {"name": "notifications", "namespace": ns},
        "spec": {"from": "billing@yourcompany.com", "delivery": "AdvancedSmtp", "activeUsers": users,
                 "advancedSmtp": {"region": "us-east-1"}}
    })
}

pub fn identity(ns: &str, name: &str, identity: &str) -> Value {
    json!({
        "apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"emailSettingsRef": {"name": "notifications"}, "identity": identity}
    })
}

pub async fn sid(bed: &Bed, ns: &str, name: &str) -> Option<SenderIdentity> {
    Api::<SenderIdentity>::namespaced(bed.client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get")
}

/// `(status, reason)` of a condition of either kind.
pub fn condition<K: HasConditions>(obj: &Option<K>, t: &str) -> Option<(String, String)> {
    condition_of(obj.as_ref(), t).map(|(s, r, _)| (s, r))
}

/// Our kinds, whose status carries conditions.
pub trait HasConditions {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition];
}

impl HasConditions for SenderIdentity {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasConditions for email_operator::crd::EmailSettings {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

/// `(status, reason, message)` of the condition `t` of an object.
pub fn condition_of<K: HasConditions>(
    obj: Option<&K>,
    t: &str,
) -> Option<(String, String, String)> {
    let c = obj?.conditions().iter().find(|c| c.type_ == t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// An EmailSettings, if it exists.
pub async fn get_es(bed: &Bed, ns: &str, name: &str) -> Option<email_operator::crd::EmailSettings> {
    Api::<email_operator::crd::EmailSettings>::namespaced(bed.client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get")
}

/// Plays the DNS administrator and the mailbox owner for what SES holds so far: publishes
/// every domain's DKIM CNAMEs and confirms every email identity, once each (`done`).
pub async fn play_the_admin(bed: &Bed, done: &mut std::collections::BTreeSet<String>) {
    let identities = bed.get("/ses/identities").await["identities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for i in identities {
        let name = i["name"].as_str().unwrap_or_default().to_string();
        if !done.insert(name.clone()) {
            continue;
        }
        if name.contains('@') {
            bed.post(
                "/ses/confirm-email",
                json!({"identity": name, "region": i["region"]}),
            )
            .await;
        } else {
            let zone = i["dkim"]["signingHostedZone"].as_str().unwrap_or_default();
            for t in i["dkim"]["tokens"].as_array().into_iter().flatten() {
                let t = t.as_str().unwrap_or_default();
                bed.post(
                    "/dns/records",
                    json!({"name": format!("{t}._domainkey.{name}"), "type": "CNAME", "value": format!("{t}.{zone}")}),
                )
                .await;
            }
        }
    }
}

pub async fn wait_condition(
    bed: &Bed,
    ns: &str,
    name: &str,
    t: &str,
    status: &str,
    reason: Option<&str>,
) -> SenderIdentity {
    wait_condition_within(bed, ns, name, t, status, reason, WAIT).await
}

/// [`wait_condition`], waiting up to `timeout`.
pub async fn wait_condition_within(
    bed: &Bed,
    ns: &str,
    name: &str,
    t: &str,
    status: &str,
    reason: Option<&str>,
    timeout: Duration,
) -> SenderIdentity {
    let si = eventually(
        &format!("{ns}/{name} {t}={status} {reason:?}"),
        timeout,
        || sid(bed, ns, name),
        |si| {
            condition(si, t)
                .is_some_and(|(s, r)| s == status && reason.is_none_or(|want| r == want))
        },
    )
    .await;
    si.expect("exists")
}

/// Every SES identity as the operator could have changed it — name, region, tags, status,
/// DKIM, MAIL FROM, configuration set — without what the stand-in's own DNS check found.
pub async fn ses_state(bed: &Bed) -> Vec<Value> {
    let mut identities = bed.get("/ses/identities").await["identities"]
        .as_array()
        .expect("identities")
        .clone();
    for i in &mut identities {
        let o = i.as_object_mut().expect("identity");
        // What the stand-in's own DNS check last found: when, and what failed.
        o.remove("lastChecked");
        o.remove("lastSuccess");
        o.remove("errorType");
    }
    identities
}

/// An AWS SDK client for the SES stand-in, as someone working in the console would use it.
pub fn ses_sdk(bed: &Bed) -> aws_sdk_sesv2::Client {
    let conf = aws_sdk_sesv2::Config::builder()
        .http_client(email_operator::ses::aws::https())
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .endpoint_url(&bed.env["AWS_ENDPOINT_URL_SESV2"])
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .build();
    aws_sdk_sesv2::Client::from_conf(conf)
}

pub async fn ses_identities(bed: &Bed) -> Vec<String> {
    let v = bed.get("/ses/identities").await;
    let list = v.get("identities").cloned().unwrap_or(v);
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    i.get("name")
                        .or(i.get("identity"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn publish_dkim(bed: &Bed, si: &SenderIdentity) -> usize {
    let records: Vec<_> = si
        .status
        .as_ref()
        .expect("status")
        .dns_records
        .iter()
        .filter(|r| r.type_ == "CNAME")
        .cloned()
        .collect();
    for r in &records {
        bed.post(
            "/dns/records",
            json!({"name": r.name, "type": "CNAME", "value": r.value}),
        )
        .await;
    }
    records.len()
}

/// A namespace with the EmailSettings `notifications` (AdvancedSmtp, us-east-1) for `users`.
pub async fn tenant(bed: &Bed, ns: &str, users: &[&str]) {
    bed.namespace(ns).await;
    bed.apply::<email_operator::crd::EmailSettings>(ns, settings(ns, users))
        .await;
}

/// The DKIM CNAME values in a SenderIdentity's status.
pub fn cname_values(si: &SenderIdentity) -> Vec<String> {
    si.status
        .as_ref()
        .map(|s| {
            s.dns_records
                .iter()
                .filter(|r| r.type_ == "CNAME")
                .map(|r| r.value.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The message of a condition of a SenderIdentity.
pub fn condition_message(si: &SenderIdentity, t: &str) -> String {
    si.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == t))
        .map(|c| c.message.clone())
        .unwrap_or_else(|| panic!("no {t} condition"))
}

/// Waits until the SenderIdentity's status lists its three DKIM CNAMEs.
pub async fn wait_records(bed: &Bed, ns: &str, name: &str, timeout: Duration) -> SenderIdentity {
    eventually(
        &format!("{ns}/{name} has its records"),
        timeout,
        || sid(bed, ns, name),
        |si| si.as_ref().map(cname_values).is_some_and(|v| v.len() == 3),
    )
    .await
    .expect("exists")
}

/// Deletes a SenderIdentity and waits until it is gone and SES holds no identity any more.
pub async fn delete_and_wait_until_ses_is_empty(bed: &Bed, ns: &str, name: &str) {
    bed.delete_object::<SenderIdentity>(ns, name).await;
    eventually(
        "the SenderIdentity gone and its SES identity deleted",
        WAIT,
        || async {
            (
                sid(bed, ns, name).await.is_none(),
                ses_identities(bed).await,
            )
        },
        |(gone, in_ses)| *gone && in_ses.is_empty(),
    )
    .await;
}

/// The SES stand-in's call counts, by operation and outcome.
pub async fn calls(bed: &Bed) -> Value {
    bed.get("/ses/calls").await["calls"].clone()
}

/// Calls of `op` (with `outcome`, or all).
pub fn count(calls: &Value, op: &str, outcome: Option<&str>) -> u64 {
    match outcome {
        Some(o) => calls[op][o].as_u64().unwrap_or(0),
        None => calls[op]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum()),
    }
}
