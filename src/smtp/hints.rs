//! Hints about well-known providers: not failures, but limits a platform team should know about
//! before it points bulk notification traffic at a personal or office mailbox service.

/// Whether `host` is `domain` or one of its subdomains.
fn within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Hints for an SMTP host: Gmail and Microsoft 365 have low sending limits for bulk
/// notifications, and Gmail needs an app password.
pub fn provider_hints(host: &str) -> Vec<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut hints = vec![];
    if ["gmail.com", "googlemail.com"]
        .iter()
        .any(|d| within(&host, d))
    {
        hints.push("Gmail limits how much mail an account may send per day; bulk notifications can hit those limits".to_string());
        hints.push(
            "Gmail needs an app password for SMTP when the account uses 2-step verification"
                .to_string(),
        );
    }
    if ["office365.com", "outlook.com"]
        .iter()
        .any(|d| within(&host, d))
    {
        hints.push("Microsoft 365 throttles messages per minute and recipients per day; bulk notifications can hit those limits".to_string());
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::provider_hints;

    #[test]
    fn known_providers_get_hints_and_look_alikes_do_not() {
        assert_eq!(provider_hints("smtp.gmail.com").len(), 2);
        assert_eq!(provider_hints("SMTP-RELAY.GMAIL.COM.").len(), 2);
        assert!(provider_hints("smtp.gmail.com")[1].contains("app password"));
        assert_eq!(provider_hints("smtp.office365.com").len(), 1);
        assert!(provider_hints("smtp.office365.com")[0].contains("Microsoft 365"));
        assert!(provider_hints("notgmail.com").is_empty());
        assert!(provider_hints("gmail.com.example.org").is_empty());
        assert!(provider_hints("smtp.yourcompany.com").is_empty());
    }
}
