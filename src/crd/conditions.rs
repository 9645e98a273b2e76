//! Condition types and reasons: one place for every string a user can `kubectl wait` on,
//! alert on or read in an Event. Reasons are stable CamelCase identifiers; they also label
//! metrics, so they must never be formatted with data.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    /// The object is fully working: published (EmailSettings) or verified and usable (SenderIdentity).
    pub const READY: &str = "Ready";
    /// The connection test for the current generation passed.
    pub const CONNECTION_VERIFIED: &str = "ConnectionVerified";
    /// The `from` address is covered by a verified SenderIdentity (AdvancedSmtp).
    pub const SENDER_VERIFIED: &str = "SenderVerified";
    /// A verified domain identity covers the from domain, so mail carries a DKIM signature of
    /// the sender's own domain (AdvancedSmtp).
    pub const DMARC_ALIGNED: &str = "DmarcAligned";
    /// The SenderIdentity passed the policy and may exist in SES.
    pub const ACCEPTED: &str = "Accepted";
    /// SES reports the identity verified.
    pub const VERIFIED: &str = "Verified";
    /// SES reports Easy DKIM verified for the identity.
    pub const DKIM_VERIFIED: &str = "DkimVerified";
    /// SES found the custom MAIL FROM domain's MX record (only with `mailFromDomain`).
    pub const MAIL_FROM_VERIFIED: &str = "MailFromVerified";
    /// The SES account may send without restriction in the region (AdvancedSmtp): production
    /// access, healthy, sending enabled. False is a warning (the sandbox, a review) unless
    /// Ready says sending stopped.
    pub const SES_ACCOUNT_HEALTHY: &str = "SesAccountHealthy";
    /// SES generates the DKIM key length the spec asks for (only with `dkim.keyLength`).
    pub const DKIM_KEY_LENGTH_APPLIED: &str = "DkimKeyLengthApplied";
    /// The DNSEndpoint holding the records is written (only with `dns.provider: ExternalDNS`).
    pub const DNS_ENDPOINT_READY: &str = "DnsEndpointReady";
    /// kstatus: work is in progress and will finish without anyone acting (present only
    /// while true).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the object is stuck until someone changes something (present only while true).
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons, grouped by where they arise. Each has an entry — what it means, what to
/// do — in [`crate::crd::reason_catalog`]; `tests/docs.rs` fails when one lacks it.
pub mod reasons {
    // Admission and cross-object policy.
    /// The object does not satisfy its schema or CEL rules.
    pub const INVALID: &str = "Invalid";
    /// The object passed every rule.
    pub const ACCEPTED: &str = "Accepted";
    /// The identity's domain is not an active user's domain or a subdomain of one.
    pub const NOT_AN_ACTIVE_USER_DOMAIN: &str = "NotAnActiveUserDomain";
    /// The EmailSettings already has its one domain identity or three email identities.
    pub const LIMIT_EXCEEDED: &str = "LimitExceeded";
    /// A domain identity and an email identity would share a domain.
    pub const DOMAIN_CONFLICT: &str = "DomainConflict";
    /// Another SenderIdentity of the same EmailSettings already names this identity.
    pub const DUPLICATE_IDENTITY: &str = "DuplicateIdentity";
    /// The referenced EmailSettings does not exist.
    pub const EMAIL_SETTINGS_NOT_FOUND: &str = "EmailSettingsNotFound";
    /// The referenced EmailSettings has no `advancedSmtp` block, so there is no SES region.
    pub const SES_NOT_CONFIGURED: &str = "SesNotConfigured";
    // Tenancy: which namespace may claim which domain (SenderPolicy).
    /// A SenderPolicy names the domain, and none grants it to this namespace.
    pub const DOMAIN_NOT_GRANTED: &str = "DomainNotGranted";
    /// No SenderPolicy names the domain, and another namespace claimed it first.
    pub const DOMAIN_HELD_BY_ANOTHER_NAMESPACE: &str = "DomainHeldByAnotherNamespace";
    /// Another namespace claimed the same SES identity first, and no SenderPolicy lets the
    /// two share it.
    pub const IDENTITY_SHARING_NOT_ALLOWED: &str = "IdentitySharingNotAllowed";
    /// Neither `--default-relay-namespaces` nor a SenderPolicy lets the namespace use the
    /// default relay with this `from` domain.
    pub const DEFAULT_RELAY_NOT_ALLOWED: &str = "DefaultRelayNotAllowed";
    /// No SenderPolicy lets the namespace have the operator assume this IAM role.
    pub const ROLE_NOT_GRANTED: &str = "RoleNotGranted";
    /// The adopt annotation asks for an existing SES identity no SenderPolicy lets the
    /// namespace adopt.
    pub const ADOPTION_NOT_GRANTED: &str = "AdoptionNotGranted";
    /// `dns.provider: ExternalDNS`, and no SenderPolicy lets the namespace publish records for
    /// the domain.
    pub const DNS_PUBLISHING_NOT_GRANTED: &str = "DnsPublishingNotGranted";
    /// Another EmailSettings in the namespace publishes to the same Secret.
    pub const OUTPUT_SECRET_CONFLICT: &str = "OutputSecretConflict";
    /// The SES identity exists and is not tagged as ours.
    pub const IDENTITY_NOT_OWNED: &str = "IdentityNotOwned";
    /// The SES identity already carries the 50 tags SES allows, so no further SenderIdentity
    /// can record its claim on it.
    pub const SES_TAG_LIMIT_REACHED: &str = "SesTagLimitReached";
    /// `dns.provider: ExternalDNS` but the DNSEndpoint CRD is not installed.
    pub const DNS_ENDPOINT_CRD_NOT_INSTALLED: &str = "DnsEndpointCrdNotInstalled";
    /// `dns.provider: ExternalDNS` but the operator may not write DNSEndpoints (RBAC).
    pub const DNS_ENDPOINT_FORBIDDEN: &str = "DnsEndpointForbidden";
    /// The DNSEndpoint holds the records; SES uses the DKIM key length asked for.
    pub const APPLIED: &str = "Applied";
    /// SES cannot find the MAIL FROM domain's MX record, or it was removed: mail falls back to
    /// the amazonses.com MAIL FROM domain and loses SPF alignment.
    pub const MAIL_FROM_FAILED: &str = "MailFromFailed";
    /// SES allows the DKIM key length to change once a day: the change waits.
    pub const KEY_LENGTH_CHANGE_DEFERRED: &str = "KeyLengthChangeDeferred";
    /// The SES identity is being created (its location is recorded first, for cleanup).
    pub const CREATING: &str = "Creating";
    /// SES refused to create the identity: the account's identity quota in the region (10,000)
    /// is reached.
    pub const SES_QUOTA_EXCEEDED: &str = "SesQuotaExceeded";

    // Connection test (the source's error table, plus SenderRejected).
    /// The SMTP host name does not resolve.
    pub const UNKNOWN_HOST: &str = "UnknownHost";
    /// The TCP connection was refused, filtered or not answered in time.
    pub const CONNECT_FAILED: &str = "ConnectFailed";
    /// The host resolves only to addresses tenants' tests may not reach (egress rules).
    pub const HOST_NOT_ALLOWED: &str = "HostNotAllowed";
    /// The server refused the username and password (535).
    pub const BAD_CREDENTIALS: &str = "BadCredentials";
    /// Authentication failed otherwise, e.g. the OAuth 2.0 token was refused or unobtainable.
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// The server accepts mail only from authenticated clients (530).
    pub const AUTHENTICATION_REQUIRED: &str = "AuthenticationRequired";
    /// Connected, but the server did not answer in time.
    pub const READ_TIMEOUT: &str = "ReadTimeout";
    /// STARTTLS or the TLS handshake failed.
    pub const TLS_UPGRADE_FAILED: &str = "TlsUpgradeFailed";
    /// The server refused `MAIL FROM` (relay not enabled for the from address).
    pub const SENDER_REJECTED: &str = "SenderRejected";
    /// The server authenticates only after STARTTLS, and `startTls` is false.
    pub const START_TLS_REQUIRED: &str = "StartTlsRequired";
    /// `delivery: Default` but the operator was started without a default relay.
    pub const DEFAULT_RELAY_NOT_CONFIGURED: &str = "DefaultRelayNotConfigured";
    /// The default relay Secret is missing or lacks a key.
    pub const DEFAULT_RELAY_INVALID: &str = "DefaultRelayInvalid";
    /// A Secret (or key) the EmailSettings references does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// AdvancedSmtp without `smtpCredentialsSecretRef`: there are no SMTP credentials to publish.
    pub const SMTP_CREDENTIALS_NOT_CONFIGURED: &str = "SmtpCredentialsNotConfigured";

    // The life of a SenderIdentity in SES (Events, and the conditions that follow SES).
    /// SES reports the identity (or its DKIM, or its MAIL FROM) verified.
    pub const SUCCESS: &str = "Success";
    /// SES has not verified it yet.
    pub const PENDING: &str = "Pending";
    /// SES lost sight of the records for a while.
    pub const TEMPORARY_FAILURE: &str = "TemporaryFailure";
    /// SES gave up verifying (72 h for a domain's records, 24 h for an email's link); it stays
    /// failed until retried. Written from SES's own status (`VerificationStatus::shown`).
    pub const FAILED: &str = "Failed";
    /// SES has not started checking.
    pub const NOT_STARTED: &str = "NotStarted";
    /// DKIM of an email identity: signed with its domain's keys only when that is verified.
    pub const NOT_APPLICABLE: &str = "NotApplicable";
    /// Verified, but SES does not let it send (paused, or the account stopped).
    pub const NOT_VERIFIED_FOR_SENDING: &str = "NotVerifiedForSending";
    /// Verified and usable: mail may be sent from it.
    pub const READY: &str = "Ready";
    /// The operator created the SES identity.
    pub const IDENTITY_CREATED: &str = "IdentityCreated";
    /// This SenderIdentity now shares an SES identity another one created.
    pub const IDENTITY_SHARED: &str = "IdentityShared";
    /// An SES identity not created by the operator was adopted (annotation).
    pub const IDENTITY_ADOPTED: &str = "IdentityAdopted";
    /// The operator deleted the SES identity (its last owner, `deletionPolicy: Delete`).
    pub const IDENTITY_DELETED: &str = "IdentityDeleted";
    /// The SES identity stays (other owners, or `Retain`); only our claim was removed.
    pub const IDENTITY_RELEASED: &str = "IdentityReleased";
    /// A failed verification is retried as asked (annotation or spec change).
    pub const RETRY_REQUESTED: &str = "RetryRequested";
    /// A domain still pending after 72 h was created again with fresh DKIM tokens.
    pub const VERIFICATION_EXPIRED: &str = "VerificationExpired";
    /// An email identity's link expired: a new verification email was sent.
    pub const VERIFICATION_EMAIL_RESENT: &str = "VerificationEmailResent";
    /// The object cannot be read as its kind (written under an older schema?).
    pub const INVALID_OBJECT: &str = "InvalidObject";

    // Calls that failed (Events, metric labels; retried).
    /// The Kubernetes API refused or failed a request.
    pub const KUBERNETES_API_ERROR: &str = "KubernetesApiError";
    /// Adding or removing the finalizer failed.
    pub const FINALIZER_ERROR: &str = "FinalizerError";
    /// A namespaced object without a namespace (cannot happen through the API).
    pub const NO_NAMESPACE: &str = "NoNamespace";
    /// SES says the identity does not exist.
    pub const SES_NOT_FOUND: &str = "SesNotFound";
    /// SES says the identity exists already.
    pub const SES_ALREADY_EXISTS: &str = "SesAlreadyExists";
    /// SES throttled the request (its 1 request a second).
    pub const SES_THROTTLED: &str = "SesThrottled";
    /// SES could not be reached or failed (5xx, timeout).
    pub const SES_UNAVAILABLE: &str = "SesUnavailable";
    /// SES refused the request as invalid.
    pub const SES_REQUEST_REJECTED: &str = "SesRequestRejected";
    /// STS could not name the AWS account of the credentials.
    pub const STS_UNAVAILABLE: &str = "StsUnavailable";

    // Outcomes of an EmailSettings.
    /// The connection test passed.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The validated configuration of the current generation is in the output Secret.
    pub const PUBLISHED: &str = "Published";
    /// A Secret of the output name exists and was not published by this EmailSettings.
    pub const OUTPUT_SECRET_NOT_OWNED: &str = "OutputSecretNotOwned";
    /// The output Secret belongs to an earlier EmailSettings of the same name, deleted: it is
    /// waited for the garbage collector to delete, not taken over.
    pub const OUTPUT_SECRET_OF_PREDECESSOR: &str = "OutputSecretOfPredecessor";
    /// No verified SenderIdentity of the EmailSettings covers its `from` address.
    pub const SENDER_NOT_VERIFIED: &str = "SenderNotVerified";
    /// A verified SenderIdentity covers the `from` address.
    pub const SENDER_COVERED: &str = "SenderCovered";
    /// A verified domain identity covers the from domain: mail is DKIM-signed by it.
    pub const DOMAIN_IDENTITY_VERIFIED: &str = "DomainIdentityVerified";
    /// The connection is being tested.
    pub const TESTING: &str = "Testing";
    /// The validated configuration is being written to the output Secret.
    pub const PUBLISHING: &str = "Publishing";
    /// A Gmail or Microsoft 365 host: low sending limits for bulk notifications.
    pub const PROVIDER_LIMITS: &str = "ProviderLimits";
    /// No verified domain identity covers the from domain: mail is DKIM-signed by amazonses.com.
    pub const NO_VERIFIED_DOMAIN_IDENTITY: &str = "NoVerifiedDomainIdentity";

    // Test messages on request (annotation `email.ops.dev/send-test`).
    /// The server accepted the test message for delivery.
    pub const TEST_MESSAGE_ACCEPTED: &str = "TestMessageAccepted";
    /// The server refused the test message's recipient or the message itself.
    pub const TEST_MESSAGE_REFUSED: &str = "TestMessageRefused";
    /// The annotation's value is not an email address: nothing was sent.
    pub const INVALID_RECIPIENT: &str = "InvalidRecipient";
    /// The published Secret cannot be read as an application reads it: nothing was sent.
    pub const PUBLISHED_SECRET_UNREADABLE: &str = "PublishedSecretUnreadable";

    // The SES account's standing in the region (AdvancedSmtp, from GetAccount).
    /// Production access, enforcement HEALTHY, sending enabled.
    pub const SES_ACCOUNT_IN_GOOD_STANDING: &str = "SesAccountInGoodStanding";
    /// The region is in the SES sandbox: verified recipients and the mailbox simulator only,
    /// 200 messages a day, 1 a second.
    pub const SES_SANDBOX: &str = "SesSandbox";
    /// AWS is reviewing the account (`PROBATION`): it still sends.
    pub const SES_ACCOUNT_ON_PROBATION: &str = "SesAccountOnProbation";
    /// AWS stopped the account's sending (`SHUTDOWN`).
    pub const SES_ACCOUNT_SHUT_DOWN: &str = "SesAccountShutDown";
    /// Sending is paused for the account in the region (`SendingEnabled` false).
    pub const SES_SENDING_PAUSED: &str = "SesSendingPaused";
    /// GetAccount failed: the standing is unknown (the credentials may lack `ses:GetAccount`).
    pub const SES_ACCOUNT_UNREADABLE: &str = "SesAccountUnreadable";
}

/// Builds a condition stamped with `now` and the generation it describes.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

/// Where an object stands in kstatus terms (what Flux and `kstatus`-based tools read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Ready: neither Reconciling nor Stalled.
    Done,
    /// Not ready yet, but getting there on its own (a retry, a verification in progress).
    Reconciling,
    /// Not ready until someone acts (bad credentials, a policy rejection, a failed
    /// verification).
    Stalled,
}

/// Sets the kstatus abnormal-true conditions: `Reconciling` or `Stalled` with the reason and
/// message of the Ready condition, and removes whichever is not true.
pub fn set_progress(conditions: &mut Vec<Condition>, progress: Progress, ready: &Condition) {
    let keep = match progress {
        Progress::Done => None,
        Progress::Reconciling => Some(types::RECONCILING),
        Progress::Stalled => Some(types::STALLED),
    };
    conditions.retain(|c| {
        (c.type_ != types::RECONCILING && c.type_ != types::STALLED)
            || Some(c.type_.as_str()) == keep
    });
    if let Some(t) = keep {
        set_condition(
            conditions,
            Condition {
                type_: t.to_string(),
                status: "True".into(),
                ..ready.clone()
            },
        );
    }
}

/// Puts `new` into `conditions`, keeping the old `lastTransitionTime` when the status did not
/// change (so `kubectl describe` shows when the state really changed, not when it was last seen).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conds = vec![];
        set_condition(
            &mut conds,
            condition("Ready", false, "Pending", "a", Some(1), at(10)),
        );
        set_condition(
            &mut conds,
            condition("Ready", false, "Pending", "b", Some(2), at(20)),
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, at(10));
        assert_eq!(conds[0].message, "b");
        assert_eq!(conds[0].observed_generation, Some(2));
        set_condition(
            &mut conds,
            condition("Ready", true, "Verified", "c", Some(2), at(30)),
        );
        assert_eq!(conds[0].last_transition_time, at(30));
        set_condition(
            &mut conds,
            condition("Accepted", true, "Accepted", "", Some(2), at(40)),
        );
        assert_eq!(conds.len(), 2);
    }

    #[test]
    fn only_the_true_progress_condition_is_present() {
        let ready = condition("Ready", false, "BadCredentials", "m", Some(1), at(10));
        let mut conds = vec![ready.clone()];
        set_progress(&mut conds, Progress::Reconciling, &ready);
        assert_eq!(
            conds.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Ready", "Reconciling"]
        );
        set_progress(&mut conds, Progress::Stalled, &ready);
        let stalled = conds
            .iter()
            .find(|c| c.type_ == "Stalled")
            .expect("Stalled");
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "BadCredentials")
        );
        assert!(conds.iter().all(|c| c.type_ != "Reconciling"));
        set_progress(&mut conds, Progress::Done, &ready);
        assert_eq!(conds.len(), 1);
    }
}
