//! Real test servers for the SMTP tests: aiosmtpd modes (`smtp_servers.py`) and
//! oauth2-mock-server (`oauth2_server.mjs`). Outside CI a missing Python package or Node module
//! skips a test with the reason printed; in CI (`CI` set) it fails.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub const USER: &str = "notifications@yourcompany.com";
pub const PASSWORD: &str = "s3cret-pa55word";

/// The workspace root (these helpers are shared by the root crate's and the test bed's tests).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("tests/support/smtp_servers.py").exists())
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

pub fn cert_dir() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
        .to_path_buf()
        .leak_static()
}

pub trait LeakStatic {
    fn leak_static(self) -> &'static PathBuf;
}
impl LeakStatic for PathBuf {
    fn leak_static(self) -> &'static PathBuf {
        Box::leak(Box::new(self))
    }
}

/// A second password the aiosmtpd servers accept (a rotation to a new, valid password).
pub const ROTATED_PASSWORD: &str = "r0tated-pa55word";

/// A server process; dropping it closes its stdin, which stops it.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn missing(reason: &str) -> Option<Server> {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason} (CI must install it: .ci/setup-smtp-tests.sh)"
    );
    eprintln!("SKIPPED: {reason}; run .ci/setup-smtp-tests.sh");
    None
}

pub fn spawn(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn test server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read READY line");
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("test server did not start: {line:?}"));
    Server { child, port }
}

pub fn smtp_server(mode: &str, extra: &[&str]) -> Option<Server> {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd, cryptography, jwt"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return missing("python3 with aiosmtpd, cryptography and PyJWT is not installed");
    }
    let mut cmd = Command::new("python3");
    // An https:// --jwks is the OAuth server's, whose certificate the test CA signs.
    cmd.env("SSL_CERT_FILE", cert_dir().join("ca.pem"));
    cmd.arg(root().join("tests/support/smtp_servers.py"))
        .arg(mode)
        .arg(cert_dir())
        .args(["--user", USER, "--password", PASSWORD])
        .args(extra);
    Some(spawn(cmd))
}

/// A certificate and key for `localhost` signed by the test CA (`cert_dir()/ca.pem`).
pub fn localhost_cert() -> (PathBuf, PathBuf) {
    let out = Command::new("python3")
        .arg(root().join("tests/support/smtp_servers.py"))
        .arg("cert")
        .arg(cert_dir())
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    assert_eq!(words.next(), Some("CERT"), "{text}");
    let cert = PathBuf::from(words.next().expect("cert path"));
    let key = PathBuf::from(words.next().expect("key path"));
    (cert, key)
}

/// oauth2-mock-server over HTTPS (a certificate for `localhost` from the test CA): the token
/// URL is `https://localhost:<port>/token`, the keys' `https://localhost:<port>/jwks`.
pub fn oauth_server(client_id: &str, secret: &str) -> Option<Server> {
    let module = root().join(".tools/node/node_modules/oauth2-mock-server");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node || !module.exists() {
        return missing("node and oauth2-mock-server@8 (in .tools/node) are not installed");
    }
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return missing("python3 with cryptography (for the test certificates) is not installed");
    }
    let (cert, key) = localhost_cert();
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/support/oauth2_server.mjs"))
        .args([client_id, secret])
        .arg(cert)
        .arg(key);
    Some(spawn(cmd))
}
