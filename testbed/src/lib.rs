//! Test bed for email-operator: in-process stand-ins for the systems the operator talks to.
//!
//! * [`kube`] — a wire-level Kubernetes API server stand-in (CRDs, core resources, watch,
//!   server-side apply, status subresource, admission with OpenAPI schema + CEL, GC, Tables).
//! * [`dns`] — an authoritative DNS server serving a zone the test bed edits.
//! * [`ses`] — an SES v2 stand-in (restJson1) whose verification is driven by real DNS.
//! * [`sts`] — an STS stand-in (GetCallerIdentity, AssumeRole) for the AWS clients' accounts.
//! * [`control`] — the HTTP/JSON control API over DNS, clock and SES (see docs/testing/aws-stand-ins.md, "Control API").
//! * [`mail`] — SMTP servers and an OAuth 2.0 token endpoint for the hosts tenants name.
//! * [`demo`] — `testbed demo`: everything up, examples applied, the real operator run until
//!   every example is Ready.
//! * [`clock`] — the controllable clock behind SES's 72 h / 24 h lifecycle windows.
//!
//! Every server binds 127.0.0.1 (ephemeral port unless told otherwise) and is started both by
//! the integration tests and by the `testbed up` command. Nothing here is linked into the
//! operator binary.

pub mod kube;

pub mod baseline;
pub mod bench;
pub mod clock;
pub mod control;
pub mod demo;
pub mod dns;
pub mod mail;
pub mod ses;
pub mod sts;

/// `len` random ASCII letters and digits: tokens, passwords and keys the stand-ins and the demo
/// make up (never printed).
pub fn random_text(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let c = rng.random_range(0..62u8);
            (match c {
                0..=9 => b'0' + c,
                10..=35 => b'a' + c - 10,
                _ => b'A' + c - 36,
            }) as char
        })
        .collect()
}
