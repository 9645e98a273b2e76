//! Reasons of an EmailSettings: the connection test, publishing, the SES account's standing
//! and test messages.

use super::{Object, Reason, Section, Severity};
use crate::crd::conditions::reasons;

/// Where a failing test shows, for the reasons that wait for someone.
const FAILING: &str = "`ConnectionVerified` and `Ready` False (Stalled), a Warning Event; \
                       `status.lastConnectionTest`; `email_operator_smtp_tests_total`";

/// Where a failing test shows, for the reasons that may pass on their own.
const FAILING_FOR_NOW: &str = "`ConnectionVerified` and `Ready` False (Reconciling), a Warning \
                               Event; `status.lastConnectionTest`; \
                               `email_operator_smtp_tests_total`";

/// Where a test that cannot run shows.
const CANNOT_TEST: &str = "`ConnectionVerified` and `Ready` False (Stalled), a Warning Event";

/// The connection test and what it needs.
pub const CONNECTION_TEST: Section = Section {
    title: "The connection test",
    about: "The test — TCP connect (or the implicit TLS socket), EHLO, STARTTLS, AUTH, \
            `MAIL FROM:<from>`, RSET, QUIT; nothing is sent — runs once per change of the \
            inputs (the spec or a referenced Secret), every `revalidateEvery`, and after a \
            failure with backoff: 15 s doubling to 5 min for refused connections and timeouts, \
            1 min doubling to 30 min otherwise. Its reason is `ConnectionVerified`'s and, while \
            it fails, `Ready`'s; `email-operator plan --check-smtp` reports the same reasons. A \
            failure takes nothing down: the last validated Secret stays exactly as it was. See \
            [EmailSettings](../email-settings.md).",
    reasons: &[
        Reason {
            name: reasons::TESTING,
            object: Object::EmailSettings,
            seen_in: "`ConnectionVerified` False (Reconciling)",
            severity: Severity::Progressing,
            meaning: "The connection test has not run yet for the current inputs.",
            action: "Wait.",
        },
        Reason {
            name: reasons::SUCCEEDED,
            object: Object::EmailSettings,
            seen_in: "`ConnectionVerified` True; `status.lastConnectionTest`; \
                      `email_operator_smtp_tests_total`",
            severity: Severity::Ok,
            meaning: "The connection test passed; the message says how (`starttls` or \
                      `implicit`, the port, how long it took).",
            action: "Nothing.",
        },
        Reason {
            name: reasons::UNKNOWN_HOST,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "The SMTP host name does not resolve (asked of `--dns-server` first when \
                      the operator has one, then of the system's resolvers).",
            action: "Correct `externalSmtp.host`. For AdvancedSmtp, the region's SES SMTP \
                     endpoint (`email-smtp.<region>.amazonaws.com`) must resolve from the \
                     operator's pod: check `advancedSmtp.region` and the cluster's DNS.",
        },
        Reason {
            name: reasons::CONNECT_FAILED,
            object: Object::EmailSettings,
            seen_in: FAILING_FOR_NOW,
            severity: Severity::Warning,
            meaning: "The TCP connection was refused, filtered, or not answered within \
                      `--smtp-timeout`. One reason for all three, in the same words, so that a \
                      tenant cannot map the network with it (the operator's log says which).",
            action: "Check `host` and `port` (and `socketFactory.port`). If they are right the \
                     server may have a temporary problem: the test is retried, 15 s doubling to \
                     5 min.",
        },
        Reason {
            name: reasons::HOST_NOT_ALLOWED,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "Every address the host resolves to is one a tenant's connection test may \
                      not reach: loopback, link-local (169.254.169.254), private, shared and \
                      reserved ranges, and the operator's `--egress-deny`. The addresses are not \
                      repeated to the tenant (the operator's log has them).",
            action: "Use the relay's public host name. An internal relay must be allowed by the \
                     platform team (`--egress-allow CIDR[:PORT]`, chart value `egress.allow`).",
        },
        Reason {
            name: reasons::BAD_CREDENTIALS,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "535: the server refused the username and password.",
            action: "Check `username` and the password in the referenced Secret (Gmail needs an \
                     app password). A changed Secret is tested at once.",
        },
        Reason {
            name: reasons::AUTHENTICATION_FAILED,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "Authentication failed otherwise: the OAuth 2.0 token could not be obtained \
                      from `tokenUrl`, or the server refused it.",
            action: "Check the username and password, or the OAuth 2.0 provider settings \
                     (`tokenUrl`, `clientId`, the client secret, `scopes`).",
        },
        Reason {
            name: reasons::AUTHENTICATION_REQUIRED,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "530: the server accepts mail only from authenticated clients.",
            action: "Check the authentication settings against what the server expects.",
        },
        Reason {
            name: reasons::READ_TIMEOUT,
            object: Object::EmailSettings,
            seen_in: FAILING_FOR_NOW,
            severity: Severity::Warning,
            meaning: "Connected, but the server never answered in time — typically a server \
                      expecting implicit TLS spoken to in plain text, or the reverse.",
            action: "Check `socketFactory` (`class`, `port`, `fallback`) and `startTls` against \
                     what the server speaks on that port. Retried, 15 s doubling to 5 min.",
        },
        Reason {
            name: reasons::TLS_UPGRADE_FAILED,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "STARTTLS or the TLS handshake failed; the message names the certificate \
                      problem (an untrusted issuer, a wrong host name, an expired certificate).",
            action: "For a relay with a private CA, add `externalSmtp.caBundleSecretRef`; \
                     otherwise check the host name, the server's certificate, and \
                     `socketFactory` and `startTls`.",
        },
        Reason {
            name: reasons::SENDER_REJECTED,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "The server refused `MAIL FROM:<from>`: relaying is not enabled for the \
                      `from` address.",
            action: "Enable relaying for the `from` address on the server, or use an address it \
                     accepts as sender.",
        },
        Reason {
            name: reasons::START_TLS_REQUIRED,
            object: Object::EmailSettings,
            seen_in: FAILING,
            severity: Severity::ActionNeeded,
            meaning: "`startTls` is false, and the server offers STARTTLS and authentication \
                      only after it.",
            action: "Set `externalSmtp.startTls: true`.",
        },
        Reason {
            name: reasons::SECRET_NOT_FOUND,
            object: Object::EmailSettings,
            seen_in: CANNOT_TEST,
            severity: Severity::ActionNeeded,
            meaning: "A Secret, or a key in it, that the EmailSettings references does not \
                      exist (`passwordSecretRef`, `oauth2.clientSecretRef`, \
                      `caBundleSecretRef`, `smtpCredentialsSecretRef`). Nothing is tested.",
            action: "Create the Secret or the key, or correct the reference. Secrets are \
                     watched: it is tested as soon as it exists.",
        },
        Reason {
            name: reasons::SMTP_CREDENTIALS_NOT_CONFIGURED,
            object: Object::EmailSettings,
            seen_in: CANNOT_TEST,
            severity: Severity::ActionNeeded,
            meaning: "AdvancedSmtp without `smtpCredentialsSecretRef`: there are no SMTP \
                      credentials to test or publish.",
            action: "Create a Secret with `accessKeyId` and `secretAccessKey` of an IAM user \
                     allowed `ses:SendRawEmail`, and name it in \
                     `advancedSmtp.smtpCredentialsSecretRef`.",
        },
        Reason {
            name: reasons::DEFAULT_RELAY_NOT_CONFIGURED,
            object: Object::EmailSettings,
            seen_in: CANNOT_TEST,
            severity: Severity::ActionNeeded,
            meaning: "`delivery: Default`, but the operator was started without a default \
                      relay (`--default-relay-secret`).",
            action: "Ask the platform team to configure one (chart values `defaultRelay.*`), or \
                     use `delivery: ExternalSmtp` or `AdvancedSmtp`.",
        },
        Reason {
            name: reasons::DEFAULT_RELAY_INVALID,
            object: Object::EmailSettings,
            seen_in: CANNOT_TEST,
            severity: Severity::ActionNeeded,
            meaning: "The default relay's Secret is missing or malformed (the message names the \
                      key), or the relay credentials Secret a SenderPolicy names for the \
                      namespace (`relayCredentialsSecretRef`) does not exist.",
            action: "Platform team: fix the Secret the message names (keys `host`, `port`, \
                     `tls`, `username`, `password`, …; see [Running the \
                     operator](running.md#the-default-relay)).",
        },
        Reason {
            name: reasons::PROVIDER_LIMITS,
            object: Object::EmailSettings,
            seen_in: "a Warning Event; a note in `ConnectionVerified`'s message",
            severity: Severity::Warning,
            meaning: "The host is Gmail's or Microsoft 365's: their sending limits are low for \
                      bulk notifications, and Gmail needs an app password. A hint, not a \
                      failure.",
            action: "For notification volume, prefer your own relay or Amazon SES.",
        },
    ],
};

/// The output Secret and the senders that cover `from`.
pub const PUBLISHING: Section = Section {
    title: "Publishing, and the sender of AdvancedSmtp",
    about: "Only a validated configuration is published: the output Secret (`<name>-smtp` \
            unless `outputSecretName`) is written once the test passes and, for AdvancedSmtp, \
            once a verified SenderIdentity covers the `from` address. `Ready` says whether the \
            current generation is published; whatever holds it back, the last validated \
            Secret stays as it was and the message says which generation it holds.",
    reasons: &[
        Reason {
            name: reasons::PUBLISHED,
            object: Object::EmailSettings,
            seen_in: "`Ready` True, a Normal Event",
            severity: Severity::Ok,
            meaning: "The validated configuration of the current generation is in the output \
                      Secret.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::PUBLISHING,
            object: Object::EmailSettings,
            seen_in: "`Ready` False (Reconciling)",
            severity: Severity::Progressing,
            meaning: "The test passed; the configuration is being written to the output Secret.",
            action: "Wait.",
        },
        Reason {
            name: reasons::OUTPUT_SECRET_NOT_OWNED,
            object: Object::EmailSettings,
            seen_in: "`Ready` False (Stalled), a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "A Secret of the output name exists and was not published by this \
                      EmailSettings: it is never overwritten.",
            action: "Delete that Secret, or set `spec.outputSecretName` to another name.",
        },
        Reason {
            name: reasons::OUTPUT_SECRET_OF_PREDECESSOR,
            object: Object::EmailSettings,
            seen_in: "`Ready` False (Reconciling)",
            severity: Severity::Progressing,
            meaning: "The output Secret belongs to an earlier EmailSettings of the same name, \
                      since deleted. The operator does not take it over (that would re-point its \
                      owner reference); the garbage collector deletes it with its owner, and \
                      then this EmailSettings publishes its own.",
            action: "Wait.",
        },
        Reason {
            name: reasons::SENDER_COVERED,
            object: Object::EmailSettings,
            seen_in: "`SenderVerified` True",
            severity: Severity::Ok,
            meaning: "A verified SenderIdentity of this EmailSettings covers the `from` address \
                      (the exact address, or a domain identity of its domain or a parent).",
            action: "Nothing.",
        },
        Reason {
            name: reasons::SENDER_NOT_VERIFIED,
            object: Object::EmailSettings,
            seen_in: "`SenderVerified` and `Ready` False (Reconciling), a Warning Event",
            severity: Severity::Progressing,
            meaning: "AdvancedSmtp: no verified SenderIdentity of this EmailSettings covers \
                      `from` yet. The message says whether one covers it but is not verified, \
                      or none does.",
            action: "Publish the covering SenderIdentity's records (`kubectl describe sid \
                     NAME`, `email-operator records`), or create a SenderIdentity for the \
                     address or its domain.",
        },
        Reason {
            name: reasons::DOMAIN_IDENTITY_VERIFIED,
            object: Object::EmailSettings,
            seen_in: "`DmarcAligned` True",
            severity: Severity::Ok,
            meaning: "A verified domain identity covers the `from` domain: mail is DKIM-signed \
                      with your own domain, aligned under DMARC.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::NO_VERIFIED_DOMAIN_IDENTITY,
            object: Object::EmailSettings,
            seen_in: "`DmarcAligned` False",
            severity: Severity::Warning,
            meaning: "No verified domain identity covers the `from` domain: SES signs with \
                      amazonses.com, which does not align with your domain under DMARC. Mail \
                      still leaves.",
            action: "Verify a domain identity for the `from` domain (or a parent).",
        },
    ],
};

/// The SES account's standing in the region.
pub const SES_ACCOUNT: Section = Section {
    title: "The SES account's standing",
    about: "An AdvancedSmtp EmailSettings shows the standing of the SES account in its region \
            in `status.sesAccount` and the condition `SesAccountHealthy`, from `GetAccount`: \
            read when the location is first used, then every `--ses-account-interval` (12 h), \
            once per account and region however many EmailSettings share it. Changes of \
            standing are Events (a Warning when it worsens).",
    reasons: &[
        Reason {
            name: reasons::SES_ACCOUNT_IN_GOOD_STANDING,
            object: Object::EmailSettings,
            seen_in: "`SesAccountHealthy` True",
            severity: Severity::Ok,
            meaning: "Production access, enforcement status HEALTHY, sending enabled; the \
                      message gives the 24-hour quota, what was sent, and the rate.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::SES_SANDBOX,
            object: Object::EmailSettings,
            seen_in: "`SesAccountHealthy` False, a Warning Event",
            severity: Severity::Warning,
            meaning: "The account is in the SES sandbox in the region: mail goes only to \
                      verified addresses and domains and to the mailbox simulator, at most 200 \
                      messages a day and 1 a second.",
            action: "Request production access for the region, as the message says (SES \
                     console, *Get set up*; or `aws sesv2 put-account-details \
                     --production-access-enabled`). Meanwhile, test with the mailbox simulator \
                     (`success@simulator.amazonses.com`).",
        },
        Reason {
            name: reasons::SES_ACCOUNT_ON_PROBATION,
            object: Object::EmailSettings,
            seen_in: "`SesAccountHealthy` False, a Warning Event",
            severity: Severity::Warning,
            meaning: "AWS is reviewing the account (enforcement status PROBATION), usually for \
                      high bounce or complaint rates: mail still leaves, but sending may be shut \
                      down.",
            action: "Look at the SES account dashboard and bring the bounce and complaint rates \
                     down.",
        },
        Reason {
            name: reasons::SES_ACCOUNT_SHUT_DOWN,
            object: Object::EmailSettings,
            seen_in: "`SesAccountHealthy` and `Ready` False (Stalled), a Warning Event; the \
                      alert `EmailOperatorSesAccountStopped`",
            severity: Severity::ActionNeeded,
            meaning: "AWS shut down the account's sending in the region (enforcement status \
                      SHUTDOWN): no mail leaves. The published Secret stays as it was.",
            action: "See the SES account dashboard and contact AWS Support.",
        },
        Reason {
            name: reasons::SES_SENDING_PAUSED,
            object: Object::EmailSettings,
            seen_in: "`SesAccountHealthy` and `Ready` False (Stalled), a Warning Event; the \
                      alert `EmailOperatorSesAccountStopped`",
            severity: Severity::ActionNeeded,
            meaning: "Sending is paused for the account in the region (`SendingEnabled` false): \
                      no mail leaves. The published Secret stays as it was.",
            action: "If it was paused on purpose, resume it (`aws sesv2 \
                     put-account-sending-attributes --sending-enabled --region REGION`); \
                     otherwise see the SES account dashboard.",
        },
        Reason {
            name: reasons::SES_ACCOUNT_UNREADABLE,
            object: Object::EmailSettings,
            seen_in: "`SesAccountHealthy` Unknown",
            severity: Severity::Warning,
            meaning: "`GetAccount` failed (the message gives SES's reason), e.g. the \
                      credentials lack `ses:GetAccount`; it is read again within 5 minutes. \
                      Nothing else is blocked.",
            action: "Grant `ses:GetAccount` to the operator's credentials (or to the assumed \
                     role).",
        },
    ],
};

/// Test messages sent on request.
pub const TEST_MESSAGES: Section = Section {
    title: "Test messages",
    about: "Set the annotation `email.ops.dev/send-test` to a recipient and the operator sends \
            one message through the published Secret; the outcome is in \
            `status.lastTestMessage` and an Event, and `email-operator send-test` reports the \
            same reasons. When no server took the message, the reason is the connection \
            test's (above). See [EmailSettings](../email-settings.md#test-messages).",
    reasons: &[
        Reason {
            name: reasons::TEST_MESSAGE_ACCEPTED,
            object: Object::EmailSettings,
            seen_in: "`status.lastTestMessage`, a Normal Event",
            severity: Severity::Ok,
            meaning: "The server accepted the test message for delivery (its message id is in \
                      status). Accepted is not delivered: SES reports bounces and complaints to \
                      the sender and to the configuration set's event destinations.",
            action: "Look in the recipient's mailbox.",
        },
        Reason {
            name: reasons::TEST_MESSAGE_REFUSED,
            object: Object::EmailSettings,
            seen_in: "`status.lastTestMessage`, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The server refused the recipient or the message: `code` and `reply` hold \
                      its answer, and `message` says which check refused it and what to do — \
                      e.g. an unverified recipient while the SES account is in the sandbox.",
            action: "Do what the message says, then set another value on the annotation (the \
                     same value is never sent twice; a `+label` reaches the same mailbox).",
        },
        Reason {
            name: reasons::INVALID_RECIPIENT,
            object: Object::EmailSettings,
            seen_in: "`status.lastTestMessage`, a Warning Event; `email-operator send-test`",
            severity: Severity::ActionNeeded,
            meaning: "The annotation's value is not an email address: nothing was sent.",
            action: "Set the annotation to an email address.",
        },
        Reason {
            name: reasons::PUBLISHED_SECRET_UNREADABLE,
            object: Object::EmailSettings,
            seen_in: "`status.lastTestMessage`, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The published Secret cannot be read as an application reads it (a key \
                      missing or malformed): nothing was sent.",
            action: "Look at the Secret the message names: it should hold the keys the operator \
                     publishes (see [EmailSettings](../email-settings.md#test-then-publish)).",
        },
    ],
};
