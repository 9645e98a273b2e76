//! `testbed up --dir DIR`: prints `ready` once serving, writes a kubeconfig that the kube
//! client can use as is (plain HTTP, token user), serves the CRDs from `--crds`, and exits
//! cleanly on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;

struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &std::path::Path, crds: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["up", "--dir"])
        .arg(dir)
        .arg("--crds")
        .arg(crds)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("testbed starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let server = Server(Some(child));
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a line within 20 s");
    assert_eq!(line, "ready\n");
    server
}

fn stop(mut server: Server, signal: &str) {
    let mut child = server.0.take().expect("child");
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "clean exit on {signal}: {status}");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no exit on {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn up_serves_with_the_written_kubeconfig_and_exits_on_signals() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let crds = dir.path().join("crds");
    std::fs::create_dir_all(&crds).expect("mkdir");
    std::fs::write(
        crds.join("gadgets.yaml"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gadgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Gadget, plural: gadgets}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object}}\n",
    )
    .expect("write");

    for signal in ["-TERM", "-INT"] {
        let server = start(dir.path(), &crds);
        let kubeconfig =
            Kubeconfig::read_from(dir.path().join("kubeconfig")).expect("kubeconfig parses");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("config");
        assert_eq!(config.default_namespace, "default");
        let client = kube::Client::try_from(config).expect("client");
        let gadgets: Api<DynamicObject> = Api::default_namespaced_with(
            client,
            &ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("example.com", "v1", "Gadget"),
                "gadgets",
            ),
        );
        let list = gadgets
            .list(&ListParams::default())
            .await
            .expect("the CRD from --crds is served");
        assert!(list.items.is_empty());
        stop(server, signal);
    }
}
