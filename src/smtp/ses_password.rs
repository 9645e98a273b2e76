//! The SES SMTP password: derived from an IAM secret access key with SES's SigV4-based
//! algorithm, for one region (a password derived for us-east-1 does not work in eu-west-1).
//!
//! HMAC-SHA256 chained over the fixed date `11111111`, the region, `ses`, `aws4_request` and
//! `SendRawEmail`, prefixed with the version byte 0x04 and base64-encoded.

use base64::Engine as _;
use ring::hmac;

const DATE: &str = "11111111";
const SERVICE: &str = "ses";
const TERMINAL: &str = "aws4_request";
const MESSAGE: &str = "SendRawEmail";
const VERSION: u8 = 0x04;

fn sign(key: &[u8], msg: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, msg.as_bytes()).as_ref().to_vec()
}

/// The SMTP password for `secret_access_key` in `region`.
pub fn smtp_password(secret_access_key: &str, region: &str) -> String {
    let mut signature = sign(format!("AWS4{secret_access_key}").as_bytes(), DATE);
    for part in [region, SERVICE, TERMINAL, MESSAGE] {
        signature = sign(&signature, part);
    }
    let mut versioned = Vec::with_capacity(signature.len() + 1);
    versioned.push(VERSION);
    versioned.extend_from_slice(&signature);
    base64::engine::general_purpose::STANDARD.encode(versioned)
}

/// The SES SMTP endpoint of a region.
pub fn smtp_endpoint(region: &str) -> String {
    format!("email-smtp.{region}.amazonaws.com")
}

/// The region whose SES SMTP endpoint `host` is ([`smtp_endpoint`] read backwards), if it is one.
pub fn smtp_endpoint_region(host: &str) -> Option<&str> {
    host.strip_prefix("email-smtp.")?
        .strip_suffix(".amazonaws.com")
        .filter(|region| !region.is_empty() && !region.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_names_its_region_and_nothing_else_does() {
        assert_eq!(
            smtp_endpoint_region(&smtp_endpoint("eu-west-1")),
            Some("eu-west-1")
        );
        for host in [
            "smtp.yourcompany.com",
            "email-smtp..amazonaws.com",
            "email-smtp.a.b.amazonaws.com",
            "email-smtp.eu-west-1.amazonaws.com.evil.example",
        ] {
            assert_eq!(smtp_endpoint_region(host), None, "{host}");
        }
    }

    /// AWS documents the derivation with the example secret key below; the expected values
    /// were computed with AWS's published Python script (`tests/ses_password.rs` re-runs that
    /// script's algorithm in Python on every test run).
    #[test]
    fn derivation_matches_the_published_algorithm_for_the_documented_example_key() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            smtp_password(key, "us-east-1"),
            "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9"
        );
        assert_eq!(
            smtp_password(key, "eu-west-1"),
            "BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk"
        );
    }

    #[test]
    fn passwords_are_versioned_and_region_specific() {
        let p = smtp_password("k", "us-east-1");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&p)
            .unwrap();
        assert_eq!(raw.len(), 33);
        assert_eq!(raw[0], 0x04);
        assert_ne!(p, smtp_password("k", "us-west-2"));
        assert_eq!(
            smtp_endpoint("eu-central-1"),
            "email-smtp.eu-central-1.amazonaws.com"
        );
    }
}
