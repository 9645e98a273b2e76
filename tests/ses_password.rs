//! The SES SMTP password derivation against AWS's published algorithm, run independently in
//! Python (the language of AWS's own script), and the `smtp-password` subcommand.

use email_operator::smtp::ses_password::smtp_password;
use std::io::Write;
use std::process::{Command, Stdio};

const AWS_SCRIPT: &str = r#"
import base64, hashlib, hmac, sys
def sign(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()
secret, region = sys.argv[1], sys.argv[2]
sig = sign(("AWS4" + secret).encode("utf-8"), "11111111")
for part in (region, "ses", "aws4_request", "SendRawEmail"):
    sig = sign(sig, part)
print(base64.b64encode(bytes([0x04]) + sig).decode("utf-8"))
"#;

#[test]
fn rust_and_the_published_python_algorithm_agree() {
    let cases = [
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ap-southeast-2"),
        ("nzW10krHBW2Wdj9Qk+VoGe8HrLVdIU8IDUyeqDxE", "eu-central-1"),
    ];
    for (secret, region) in cases {
        let out = Command::new("python3")
            .args(["-c", AWS_SCRIPT, secret, region])
            .output()
            .expect("python3");
        assert!(out.status.success());
        let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(smtp_password(secret, region), python, "{region}");
    }
}

#[test]
fn the_subcommand_reads_the_key_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .args(["smtp-password", "--region", "us-east-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9\n"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_email-operator"))
        .args(["smtp-password", "--region", "Europe"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
