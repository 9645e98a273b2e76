//! The IAM access keys the SES SMTP stand-in knows, and SMTP login against them.
//!
//! Source: SES Developer Guide, "Obtaining Amazon SES SMTP credentials": the SMTP user name is
//! the IAM access key id; the password is derived from the secret access key *for one region*
//! ("the credentials … are unique to each AWS Region") with the SigV4-based algorithm the
//! operator implements in `email_operator::smtp::ses_password` (reused here, so the stand-in
//! and the operator cannot drift apart on it while the operator's own test pins it to AWS's
//! published example). Credentials derived from *temporary* keys are not supported by the SMTP
//! interface; temporary access key ids start with `ASIA` (IAM User Guide, "Unique
//! identifiers"), so they never log in.

use std::collections::HashMap;
use std::sync::Mutex;

use email_operator::smtp::ses_password::{smtp_endpoint, smtp_password};

use crate::ses::faults::lock;

/// Regions whose SMTP endpoint the stand-in plays (SES's SMTP endpoints, AWS General
/// Reference, "Amazon Simple Email Service endpoints and quotas").
pub const SMTP_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ca-central-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// Registered access key id → secret access key.
#[derive(Default)]
pub struct SmtpCredentials {
    keys: Mutex<HashMap<String, String>>,
}

impl SmtpCredentials {
    /// Registers (or replaces) an IAM key pair. Access key ids are 16–128 word characters
    /// (IAM API Reference, `AccessKey.AccessKeyId`).
    pub fn register(&self, access_key_id: &str, secret_access_key: &str) -> Result<(), String> {
        let id_ok = (16..=128).contains(&access_key_id.len())
            && access_key_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !id_ok {
            return Err("accessKeyId must be 16-128 letters, digits or underscores".into());
        }
        if secret_access_key.is_empty() {
            return Err("secretAccessKey is required".into());
        }
        lock(&self.keys).insert(access_key_id.to_string(), secret_access_key.to_string());
        Ok(())
    }

    /// The region a login is for, or None when SES would answer 535.
    ///
    /// The real endpoints are per region, so the region of a session is the region whose
    /// password derivation the password matches. When the client named a regional endpoint in
    /// TLS SNI (`email-smtp.<region>.amazonaws.com`), only that region's password is accepted,
    /// as at the real endpoint; a client that connected as `localhost` (one listener playing
    /// every endpoint) gets the region its password was derived for.
    pub fn authenticate(
        &self,
        username: &str,
        password: &str,
        sni_region: Option<&str>,
    ) -> Option<String> {
        if username.starts_with("ASIA") {
            return None;
        }
        let secret = lock(&self.keys).get(username).cloned()?;
        match sni_region {
            Some(region) => {
                (smtp_password(&secret, region) == password).then(|| region.to_string())
            }
            None => SMTP_REGIONS
                .iter()
                .find(|region| smtp_password(&secret, region) == password)
                .map(|region| region.to_string()),
        }
    }
}

/// The region a TLS server name designates (`email-smtp.<region>.amazonaws.com`), if any.
pub fn region_of_server_name(name: &str) -> Option<&'static str> {
    SMTP_REGIONS
        .iter()
        .find(|r| smtp_endpoint(r).eq_ignore_ascii_case(name))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIAEXAMPLEKEY000001";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn the_region_is_the_one_the_password_was_derived_for() {
        let creds = SmtpCredentials::default();
        creds.register(ID, SECRET).unwrap();
        // AWS's documented example key and its published us-east-1 / eu-west-1 passwords.
        let east = "BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9";
        let west = "BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk";
        assert_eq!(
            creds.authenticate(ID, east, None).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            creds.authenticate(ID, west, None).as_deref(),
            Some("eu-west-1")
        );
        // At a named regional endpoint another region's password is refused.
        assert_eq!(creds.authenticate(ID, west, Some("us-east-1")), None);
        assert_eq!(
            creds.authenticate(ID, east, Some("us-east-1")).as_deref(),
            Some("us-east-1")
        );
        // The secret itself is not the password; unknown ids fail.
        assert_eq!(creds.authenticate(ID, SECRET, None), None);
        assert_eq!(creds.authenticate("AKIAUNKNOWN000000001", east, None), None);
    }

    #[test]
    fn temporary_keys_never_log_in_and_bad_ids_are_refused() {
        let creds = SmtpCredentials::default();
        creds.register("ASIAEXAMPLEKEY000001", SECRET).unwrap();
        let password = smtp_password(SECRET, "us-east-1");
        assert_eq!(
            creds.authenticate("ASIAEXAMPLEKEY000001", &password, None),
            None
        );
        assert!(creds.register("short", SECRET).is_err());
        assert!(creds.register("AKIA EXAMPLE KEY 0001", SECRET).is_err());
        assert!(creds.register(ID, "").is_err());
        assert_eq!(
            region_of_server_name("EMAIL-SMTP.eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(region_of_server_name("localhost"), None);
    }
}
