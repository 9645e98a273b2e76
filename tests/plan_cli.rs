//! `email-operator plan` as a GitOps pipeline runs it: over `examples/` (everything accepted,
//! exit 0), over `tests/fixtures/invalid/` (each file's expected rejection, exit 1), and over
//! unreadable or malformed input (exit 2, naming the file).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The corpus's company-wide SenderPolicy: every fixture namespace may send as its domains, so
/// each fixture shows only its own rejection.
const COMPANY_WIDE: &str = "tests/fixtures/tenancy/company-wide.yaml";
/// The default relay for the namespace `default` (objects that name no namespace).
const RELAY_FOR_DEFAULT: &str = "--default-relay-namespaces=default";

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .current_dir(root())
        .arg("plan")
        .args(args)
        .output()
        .expect("run email-operator plan")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan -o json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn examples_are_all_accepted() {
    let out = plan(&["-o", "json", "examples/"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = json(&out);
    let objects = report["objects"].as_array().expect("objects");
    assert!(
        objects.len() >= 8,
        "expected every example object, got {}",
        objects.len()
    );
    for o in objects {
        assert_eq!(o["accepted"], true, "{o}");
        assert_eq!(o["reason"], "Accepted");
        assert!(!o["actions"].as_array().expect("actions").is_empty(), "{o}");
    }
    // The SES example: the domain identity's knowable records, the email identities' link.
    let domain = objects
        .iter()
        .find(|o| o["name"] == "yourcompany-com")
        .expect("domain identity");
    let records: Vec<(&str, &str, &str)> = domain["dnsRecords"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["purpose"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [
            ("yourcompany.com", "TXT", "SPF"),
            ("bounce.yourcompany.com", "MX", "MailFromMX"),
            ("bounce.yourcompany.com", "TXT", "MailFromSPF")
        ]
    );
    assert_eq!(
        domain["dnsRecords"][1]["value"],
        "10 feedback-smtp.eu-west-1.amazonses.com"
    );
    // Kinds it does not manage are listed, not judged.
    let ignored = report["ignored"].as_array().expect("ignored");
    assert!(
        ignored
            .iter()
            .any(|i| i["kind"] == "Namespace" && i.get("namespace").is_none())
    );
    assert!(
        ignored
            .iter()
            .any(|i| i["kind"] == "Secret" && i["namespace"] == "billing")
    );
}

#[test]
fn the_table_names_every_object_and_ends_with_a_summary() {
    let out = plan(&["examples/ses"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.starts_with("KIND"), "{text}");
    for name in ["yourcompany-com", "noreply-en", "alerts-yourcompany-net"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(
        text.contains("4 object(s): 4 accepted, 0 rejected, 1 ignored"),
        "{text}"
    );
}

/// `# expect: Reason: message fragment` on each fixture's first line.
fn expectation(file: &Path) -> (String, String) {
    let text = std::fs::read_to_string(file).expect("read fixture");
    let line = text.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} has no expect line", file.display()));
    let (reason, fragment) = rest.split_once(": ").unwrap_or((rest, ""));
    (reason.to_string(), fragment.to_string())
}

#[test]
fn each_invalid_fixture_is_rejected_with_its_reason_and_message() {
    let dir = root().join("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "fixtures missing");
    let mut seen_reasons = std::collections::BTreeSet::new();
    for file in files {
        let rel = file
            .strip_prefix(root())
            .expect("relative")
            .to_string_lossy()
            .to_string();
        let (reason, fragment) = expectation(&file);
        let out = plan(&["-o", "json", &rel, COMPANY_WIDE]);
        assert_eq!(out.status.code(), Some(1), "{rel} should exit 1");
        let report = json(&out);
        let hit = report["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .any(|o| {
                o["accepted"] == false
                    && o["reason"] == reason.as_str()
                    && o["message"].as_str().is_some_and(|m| m.contains(&fragment))
            });
        assert!(
            hit,
            "{rel}: expected {reason} with {fragment:?}, got {}",
            report["objects"]
        );
        seen_reasons.insert(reason);
    }
    for r in [
        "Invalid",
        "LimitExceeded",
        "DomainConflict",
        "NotAnActiveUserDomain",
        "EmailSettingsNotFound",
    ] {
        assert!(seen_reasons.contains(r), "no fixture shows {r}");
    }
}

/// The convention `testbed/tests/e2e_bad_input.rs` relies on to apply the corpus to a cluster:
/// in each fixture the last object is the rejected one and the objects before it are accepted
/// context. Planned all at once (each file has its own namespace), every file still shows its
/// expected rejection.
#[test]
fn each_invalid_fixture_rejects_only_its_last_object() {
    let out = plan(&["-o", "json", "tests/fixtures/invalid", COMPANY_WIDE]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let mut by_file: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
    for o in report["objects"].as_array().expect("objects") {
        let source = o["source"].as_str().expect("source");
        let file = source.rsplit_once('#').map_or(source, |(f, _)| f);
        if file == COMPANY_WIDE {
            continue;
        }
        by_file.entry(file.to_string()).or_default().push(o);
    }
    assert!(by_file.len() >= 45, "only {} fixtures", by_file.len());
    for (file, objects) in &by_file {
        let (last, context) = objects.split_last().expect("objects");
        for o in context {
            assert_eq!(o["accepted"], true, "{file}: context {o}");
        }
        let (reason, fragment) = expectation(&root().join(file));
        assert_eq!(last["accepted"], false, "{file}: {last}");
        assert_eq!(last["reason"], reason.as_str(), "{file}: {last}");
        assert!(
            last["message"]
                .as_str()
                .is_some_and(|m| m.contains(&fragment)),
            "{file}: {last}"
        );
    }
}

#[test]
fn the_whole_invalid_directory_exits_1_and_names_each_reason() {
    let out = plan(&["tests/fixtures/invalid", COMPANY_WIDE]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for r in [
        "LimitExceeded",
        "DomainConflict",
        "NotAnActiveUserDomain",
        "EmailSettingsNotFound",
        "Invalid",
    ] {
        assert!(text.contains(r), "table lacks {r}");
    }
}

#[test]
fn accepted_neighbours_of_rejected_objects_stay_accepted() {
    let out = plan(&[
        "-o",
        "json",
        "tests/fixtures/invalid/limit-exceeded-domain.yaml",
        COMPANY_WIDE,
    ]);
    let report = json(&out);
    let by_name = |n: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == n)
            .cloned()
            .expect(n)
    };
    assert_eq!(by_name("first")["accepted"], true);
    assert_eq!(by_name("second")["accepted"], false);
    assert_eq!(by_name("notifications")["accepted"], true);
}

#[test]
fn malformed_yaml_exits_2_naming_the_file_and_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\nspec: [unclosed\n",
    )
    .unwrap();
    let out = plan(&[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.yaml, document 2: malformed YAML"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_input_and_bad_usage_exit_2() {
    let out = plan(&["does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.yaml: cannot read"));
    assert_eq!(plan(&[]).status.code(), Some(2));
    assert_eq!(plan(&["-o", "xml", "examples"]).status.code(), Some(2));
}

#[test]
fn namespace_defaults_and_yaml_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("es.yaml");
    std::fs::write(
        &file,
        "apiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {name: notifications}\nspec: {from: a@yourcompany.com}\n",
    )
    .unwrap();
    let out = plan(&["-o", "json", RELAY_FOR_DEFAULT, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    let o = &report["objects"][0];
    assert_eq!(o["namespace"], "default");
    assert_eq!(o["kind"], "EmailSettings");
    for key in [
        "name",
        "accepted",
        "reason",
        "message",
        "actions",
        "dnsRecords",
    ] {
        assert!(o.get(key).is_some(), "JSON lacks {key}");
    }
    let out = plan(&["-o", "yaml", RELAY_FOR_DEFAULT, file.to_str().unwrap()]);
    let back: Value =
        serde_saphyr::from_str(std::str::from_utf8(&out.stdout).unwrap()).expect("yaml parses");
    assert_eq!(back["objects"][0]["name"], "notifications");
}

#[test]
fn wrong_version_and_duplicates_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("x.yaml");
    std::fs::write(
        &file,
        "apiVersion: email.ops.dev/v1beta1\nkind: EmailSettings\nmetadata: {name: old}\nspec: {from: a@yourcompany.com}\n---\napiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {name: mail}\nspec: {from: a@yourcompany.com}\n---\napiVersion: email.ops.dev/v1alpha1\nkind: EmailSettings\nmetadata: {name: mail}\nspec: {from: b@yourcompany.com}\n",
    )
    .unwrap();
    let out = plan(&["-o", "json", RELAY_FOR_DEFAULT, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let objects = json(&out)["objects"].as_array().unwrap().clone();
    assert_eq!(objects[0]["reason"], "Invalid");
    assert!(
        objects[0]["message"]
            .as_str()
            .unwrap()
            .contains("email.ops.dev/v1beta1 is not served")
    );
    assert_eq!(objects[1]["accepted"], true);
    assert_eq!(objects[2]["reason"], "DuplicateObject");
    assert!(objects[2]["message"].as_str().unwrap().contains("x.yaml#2"));
}
