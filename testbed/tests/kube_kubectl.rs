//! Real `kubectl` against `testbed up`: server-side apply of CRDs and an example, strict
//! field validation, `get` with printer columns, `explain`, `get -o yaml`,
//! `wait --for=condition=…` once a status is patched, typed `create` (protobuf bodies),
//! `delete`, and a clean exit on SIGTERM.
//!
//! kubectl is found via `$KUBECTL`, else `<workspace>/.tools/bin/kubectl` (installed by
//! `.ci/setup-kubectl.sh`), else `PATH`; the test is skipped, with the reason printed,
//! only when none exists (and fails instead when `TESTBED_REQUIRE_KUBECTL` is set, as CI
//! does).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WIDGET_CRD: &str = include_str!("common/widget-crd.yaml");

const EXAMPLE: &str = "apiVersion: testbed.example.com/v1
kind: Widget
metadata:
  name: w1
spec:
  size: 3
  color: blue
";

const GADGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.testbed.example.com
spec:
  group: testbed.example.com
  scope: Cluster
  names: {kind: Gadget, plural: gadgets}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn find_kubectl() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return Some(k);
    }
    let tools = workspace_root().join(".tools/bin/kubectl");
    if tools.exists() {
        return Some(tools);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
    })
}

/// Kills the child on drop, so a failing assertion never leaks a process.
struct Guard(Option<Child>);

impl Guard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present until finished")
    }

    /// Wait for the child to end on its own and collect its output.
    fn finish(mut self) -> Output {
        self.0
            .take()
            .expect("child present")
            .wait_with_output()
            .expect("child finishes")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Kubectl {
    bin: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--request-timeout=20s")
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .env("KUBECACHEDIR", self.dir.join("cache"));
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().expect("kubectl runs");
        let out = String::from_utf8_lossy(&stdout).into_owned();
        let err = String::from_utf8_lossy(&stderr);
        assert!(
            status.success(),
            "kubectl {args:?} failed: {status}\nstdout: {out}\nstderr: {err}"
        );
        println!("$ kubectl {}\n{out}", args.join(" "));
        out
    }
}

#[test]
fn kubectl_drives_testbed_up() {
    let Some(bin) = find_kubectl() else {
        // CI installs kubectl and sets this, so a missing binary fails there instead.
        assert!(
            std::env::var_os("TESTBED_REQUIRE_KUBECTL").is_none(),
            "TESTBED_REQUIRE_KUBECTL is set but no kubectl was found; run .ci/setup-kubectl.sh"
        );
        println!(
            "SKIPPED kubectl_drives_testbed_up: no kubectl ($KUBECTL, .tools/bin/kubectl or PATH); run .ci/setup-kubectl.sh"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let crd_dir = dir.path().join("preloaded");
    std::fs::create_dir_all(&crd_dir).expect("mkdir");
    std::fs::write(crd_dir.join("gadget.yaml"), GADGET_CRD).expect("write");
    std::fs::write(dir.path().join("widget-crd.yaml"), WIDGET_CRD).expect("write");
    std::fs::write(dir.path().join("example.yaml"), EXAMPLE).expect("write");

    let child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["up", "--dir"])
        .arg(dir.path())
        .arg("--crds")
        .arg(&crd_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("testbed starts");
    let mut server = Guard(Some(child));
    let stdout = server.child().stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("testbed prints a line");
    assert_eq!(first.trim(), "ready");
    assert!(dir.path().join("kubeconfig").exists());

    let k = Kubectl {
        bin,
        dir: dir.path().to_path_buf(),
    };
    let crds = k.run(&["get", "crds"]);
    assert!(
        crds.contains("gadgets.testbed.example.com"),
        "--crds were loaded"
    );
    let widget_crd = dir.path().join("widget-crd.yaml");
    let out = k.run(&[
        "apply",
        "--server-side",
        "-f",
        &widget_crd.to_string_lossy(),
    ]);
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.testbed.example.com serverside-applied"), "{out}");
    k.run(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.testbed.example.com",
        "--timeout=20s",
    ]);
    // The operator's own CRDs, when they exist in the workspace.
    let operator_crds = workspace_root().join("crds");
    if operator_crds.join("emailsettings.yaml").exists() {
        let out = k.run(&[
            "apply",
            "--server-side",
            "-f",
            &operator_crds.to_string_lossy(),
        ]);
        assert!(out.contains("serverside-applied"), "{out}");
        explain_reads_cleanly(&k, &operator_crds);
    }
    let out = k.run(&[
        "apply",
        "--server-side",
        "-f",
        &dir.path().join("example.yaml").to_string_lossy(),
    ]);
    assert!(
        out.contains("widget.testbed.example.com/w1 serverside-applied"),
        "{out}"
    );

    // kubectl validates strictly by default: the server refuses unknown fields.
    let bogus = dir.path().join("bogus.yaml");
    std::fs::write(
        &bogus,
        EXAMPLE.replace("  color: blue\n", "  color: blue\n  bogus: 1\n"),
    )
    .expect("write");
    let refused = k
        .command(&["apply", "--server-side", "-f", &bogus.to_string_lossy()])
        .output()
        .expect("kubectl runs");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");

    let table = k.run(&["get", "widgets"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, vec!["NAME", "SIZE", "COLOR", "READY", "AGE"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], &["w1", "3", "blue"], "{table}");
    let short = k.run(&["get", "wd", "w1"]);
    assert!(short.contains("w1"));

    let explain = k.run(&["explain", "widgets.spec"]);
    assert!(
        explain.contains("size") && explain.contains("enum: red, green, blue"),
        "{explain}"
    );

    let yaml = k.run(&["get", "widget", "w1", "-o", "yaml"]);
    for needle in [
        "kind: Widget",
        "name: w1",
        "namespace: default",
        "size: 3",
        "generation: 1",
        "uid: ",
    ] {
        assert!(yaml.contains(needle), "{needle} missing in\n{yaml}");
    }

    let waiter = Guard(Some(
        k.command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait starts"),
    ));
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    k.run(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    let output = waiter.finish();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl wait: {said} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("condition met"), "{said}");
    let table = k.run(&["get", "widgets"]);
    assert!(
        table.lines().nth(1).unwrap_or("").contains("True"),
        "{table}"
    );

    // Typed generators send protobuf bodies.
    k.run(&["create", "namespace", "demo"]);
    k.run(&[
        "create",
        "secret",
        "generic",
        "smtp",
        "--from-literal=password=hunter2",
        "-n",
        "demo",
    ]);
    k.run(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=test",
        "-n",
        "demo",
    ]);
    let encoded = k.run(&[
        "get",
        "secret",
        "smtp",
        "-n",
        "demo",
        "-o",
        "jsonpath={.type} {.data.password}",
    ]);
    assert_eq!(encoded, "Opaque aHVudGVyMg==");
    let mode = k.run(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.mode}",
    ]);
    assert_eq!(mode, "test");
    k.run(&["delete", "namespace", "demo"]);

    let out = k.run(&["delete", "widget", "w1"]);
    assert!(out.contains("deleted"), "{out}");
    let out = k
        .command(&["get", "widgets"])
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .expect("kubectl get");
    assert!(out.contains("No resources found"), "{out}");

    // SIGTERM: clean exit.
    let pid = server.child().id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(code) = server.child().try_wait().expect("try_wait") {
            break code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "testbed did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "clean exit on SIGTERM: {code}");
}

/// Every object field of the operator's kinds through the real `kubectl explain`: no
/// description breaks mid-sentence. kubectl fills description lines to 80 columns; a line
/// that ends while the next line's first word would still have fitted was broken by the text
/// itself (a doc comment's wrapping copied into the CRD), unless a list item or a new sentence
/// starts there.
fn explain_reads_cleanly(k: &Kubectl, crd_dir: &std::path::Path) {
    const WIDTH: usize = 80;
    fn object_paths(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            out.push(path.to_string());
            for (name, sub) in props {
                object_paths(sub, &format!("{path}.{name}"), out);
            }
        }
        if schema["items"].is_object() {
            object_paths(&schema["items"], path, out);
        }
    }
    let mut checked = 0;
    for file in [
        "emailsettings.yaml",
        "senderidentities.yaml",
        "senderpolicies.yaml",
    ] {
        let text = std::fs::read_to_string(crd_dir.join(file)).expect("CRD");
        let crd: serde_json::Value = serde_saphyr::from_str(&text).expect("CRD YAML");
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .expect("plural")
            .to_string();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut paths = vec![];
        object_paths(schema, &plural, &mut paths);
        paths.dedup();
        for path in paths {
            let out = k.run(&["explain", &path]);
            let lines: Vec<&str> = out.lines().collect();
            for pair in lines.windows(2) {
                let (line, next) = (pair[0], pair[1]);
                let indent = |l: &str| l.len() - l.trim_start().len();
                let (a, b) = (line.trim(), next.trim());
                // Only description text: same indentation, no field or header lines.
                let prose = |l: &str| {
                    !l.is_empty()
                        && !l.contains('\t')
                        && !l.ends_with(':')
                        && !l.starts_with("enum:")
                        && !l.starts_with('<')
                };
                if indent(line) != indent(next) || !prose(a) || !prose(b) || indent(line) == 0 {
                    continue;
                }
                // A list item, or a sentence's end (kubectl also puts an array's item type's
                // description on a line of its own) may start a line.
                let item =
                    b.starts_with("* ") || b.starts_with("- ") || a.ends_with(['.', ':', '!', '?']);
                let first = b.split_whitespace().next().unwrap_or("");
                assert!(
                    item || line.trim_end().len() + 1 + first.len() > WIDTH,
                    "kubectl explain {path}: a break inside a sentence:\n{line}\n{next}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} wrapped description lines seen"
    );
}
