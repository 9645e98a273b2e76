//! Region handling: which region a request is for, and each region's DKIM hosted zone.
//!
//! SES identities are regional. The SDK signs every request with SigV4, whose credential scope
//! (`Credential=AKID/20261126/eu-west-1/ses/aws4_request`) names the region; the stand-in
//! accepts any signature and takes the region from there.
//!
//! Easy DKIM CNAMEs point at `<token>.<SigningHostedZone>`. In SES the zone varies by region
//! and even by cell (the SES guide's example is `a31d.dkim.us-west-2.amazonses.com`), so there
//! is no complete public table. The stand-in models it simply: the three oldest SES regions use
//! `dkim.amazonses.com`, every other region `dkim.<region>.amazonses.com` (as eu-central-1
//! identities do in practice). Operators must read `DkimAttributes.SigningHostedZone` rather
//! than hard-code a zone, and these per-region values make a hard-coded zone fail tests.

/// Region used when a request carries no SigV4 credential scope.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Regions whose Easy DKIM records live under the global `dkim.amazonses.com` zone.
const GLOBAL_ZONE_REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];

/// The `SigningHostedZone` SES reports for Easy DKIM identities in `region`.
pub fn signing_hosted_zone(region: &str) -> String {
    if GLOBAL_ZONE_REGIONS.contains(&region) {
        "dkim.amazonses.com".to_string()
    } else {
        format!("dkim.{region}.amazonses.com")
    }
}

/// The MX target a custom MAIL FROM domain must point at in `region`.
pub fn mail_from_mx(region: &str) -> String {
    format!("feedback-smtp.{region}.amazonses.com")
}

/// Extracts the region from a SigV4 `Authorization` header.
pub fn region_from_authorization(header: &str) -> Option<String> {
    let credential = header.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    // AKID/date/region/service/aws4_request
    let region = scope.split('/').nth(2)?;
    let valid = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    valid.then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_region_from_sigv4_scope() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-central-1/ses/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            region_from_authorization(header).as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(region_from_authorization("Bearer x"), None);
    }

    #[test]
    fn hosted_zone_per_region() {
        assert_eq!(signing_hosted_zone("us-east-1"), "dkim.amazonses.com");
        assert_eq!(
            signing_hosted_zone("eu-central-1"),
            "dkim.eu-central-1.amazonses.com"
        );
    }
}
