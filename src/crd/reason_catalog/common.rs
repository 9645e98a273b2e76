//! Reasons of both kinds: admission and the sender policy, tenancy, and failed calls.

use super::{Object, Reason, Section, Severity};
use crate::crd::conditions::reasons;

/// Schema, CEL and the rules among one EmailSettings' SenderIdentities.
pub const ADMISSION: Section = Section {
    title: "Admission and the sender policy",
    about: "Decided before anything reaches SES or a Secret is written: the schema and CEL \
            rules (by the API server at admission, and by `email-operator plan`), and the rules \
            among the SenderIdentities of one EmailSettings — active users' domains, 1 domain \
            and 3 email identities, no domain twice. Conflicts go to the oldest object \
            (`creationTimestamp`, then name), so re-applying the same manifests admits the same \
            objects and deleting a holder admits the next. See \
            [SenderIdentity](../sender-identity.md#the-sender-policy).",
    reasons: &[
        Reason {
            name: reasons::INVALID,
            object: Object::Both,
            seen_in: "`email-operator plan`; SenderIdentity `Accepted` and `Ready` False; \
                      EmailSettings `ConnectionVerified` and `Ready` False",
            severity: Severity::ActionNeeded,
            meaning: "The object breaks a rule of its schema or of its CEL validation. The API \
                      server refuses such an object at admission (422, or 400 for an unknown \
                      field), so `plan` reports it for manifests, and the operator meets it \
                      only in objects written before the rule existed: a SenderIdentity whose \
                      `identity` is neither a domain nor an email address, an EmailSettings \
                      without the block its `delivery` needs (`externalSmtp` or \
                      `advancedSmtp`).",
            action: "Fix the field the message names. The [API reference](../reference/api.md) \
                     (or `kubectl explain emailsettings.spec`) lists every rule.",
        },
        Reason {
            name: reasons::ACCEPTED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` True; `email-operator plan`",
            severity: Severity::Ok,
            meaning: "The SenderIdentity passed the sender policy and the tenancy rules: it may \
                      exist in SES. In `plan`, the object would be accepted.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::NOT_AN_ACTIVE_USER_DOMAIN,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The identity's domain is neither the email domain of one of the \
                      EmailSettings' `activeUsers` nor a subdomain of one \
                      (`employee@yourcompany.com` admits `yourcompany.com`, \
                      `en.yourcompany.com`, `contact@yourcompany.com` and \
                      `noreply@en.yourcompany.com`). Nothing is sent to SES.",
            action: "Add an active user of that domain to the EmailSettings' `activeUsers`, or \
                     verify an identity in an active user's domain.",
        },
        Reason {
            name: reasons::LIMIT_EXCEEDED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The EmailSettings already has its 1 domain identity or its 3 email \
                      identities; the message names the SenderIdentities holding the slots \
                      (the oldest). Nothing is sent to SES.",
            action: "Delete a SenderIdentity that holds a slot (the next one by age is then \
                     admitted on its own), or use another EmailSettings.",
        },
        Reason {
            name: reasons::DOMAIN_CONFLICT,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "A domain identity and an email identity of the same EmailSettings would \
                      have the same domain; the older one holds it.",
            action: "Keep the domain identity (it covers every address of the domain) or the \
                     email identity, not both.",
        },
        Reason {
            name: reasons::DUPLICATE_IDENTITY,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "Another SenderIdentity of the same EmailSettings names the same identity; \
                      the older one holds it.",
            action: "Delete the duplicate.",
        },
        Reason {
            name: reasons::EMAIL_SETTINGS_NOT_FOUND,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "`spec.emailSettingsRef` names no EmailSettings in the namespace.",
            action: "Create the EmailSettings, or correct `spec.emailSettingsRef.name`; the \
                     SenderIdentity is judged again as soon as the EmailSettings exists.",
        },
        Reason {
            name: reasons::SES_NOT_CONFIGURED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The referenced EmailSettings has no `advancedSmtp` block, so there is no \
                      SES region to verify identities in.",
            action: "Point `emailSettingsRef` at an EmailSettings with `delivery: \
                     AdvancedSmtp` and `advancedSmtp.region`, or change this one to it.",
        },
        Reason {
            name: reasons::OUTPUT_SECRET_CONFLICT,
            object: Object::EmailSettings,
            seen_in: "`Ready` False (Stalled), a Warning Event; `email-operator plan`",
            severity: Severity::ActionNeeded,
            meaning: "Another EmailSettings of the namespace publishes to the same Secret \
                      (`outputSecretName`, by default `<name>-smtp`); the older one keeps it \
                      and this one publishes nothing.",
            action: "Set a different `spec.outputSecretName`.",
        },
    ],
};

/// SenderPolicy grants: who may claim which domain.
pub const TENANCY: Section = Section {
    title: "Tenancy: SenderPolicy grants",
    about: "One operator serves many namespaces, and SenderPolicies in the operator's own \
            namespace (`--policy-namespace`) say which namespace may send as which domain. A \
            refused claim reaches neither SES nor a Secret: the holder's identity, tags and \
            Secret stay as they were. A claim admitted before and refused after a policy change \
            keeps its SES identity and its published Secret, and is admitted again when the \
            policy allows it. See [Tenancy](../tenancy.md).",
    reasons: &[
        Reason {
            name: reasons::DOMAIN_NOT_GRANTED,
            object: Object::Both,
            seen_in: "SenderIdentity `Accepted` and `Ready` False; EmailSettings \
                      `ConnectionVerified` and `Ready` False; a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "A SenderPolicy names the domain — of the identity, or of the `from` \
                      address of an EmailSettings sending through SES or the default relay — \
                      and no policy grants it to this namespace. The message names the \
                      governing policies.",
            action: "Ask the platform team to grant the domain to the namespace in a \
                     SenderPolicy (`namespaces` or `namespaceSelector`).",
        },
        Reason {
            name: reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE,
            object: Object::Both,
            seen_in: "SenderIdentity `Accepted` and `Ready` False; EmailSettings \
                      `ConnectionVerified` and `Ready` False; a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "No SenderPolicy names the domain, and another namespace claimed it (or a \
                      parent or a subdomain of it) first; the message names that namespace. A \
                      domain no policy names belongs to the first namespace that claims it.",
            action: "Ask the platform team for a SenderPolicy granting the domain to both \
                     namespaces (with `shareIdentities: true` to share one SES identity), or \
                     have the holder delete its claims (the next claim is then admitted).",
        },
        Reason {
            name: reasons::IDENTITY_SHARING_NOT_ALLOWED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "Another namespace already claims the same SES identity (same identity, \
                      account and region), and no SenderPolicy granting the domain to both lets \
                      them share it.",
            action: "Ask the platform team to set `shareIdentities: true` on a SenderPolicy \
                     granting the domain to both namespaces.",
        },
        Reason {
            name: reasons::DEFAULT_RELAY_NOT_ALLOWED,
            object: Object::EmailSettings,
            seen_in: "`ConnectionVerified` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "`delivery: Default`, but the namespace is not among the operator's \
                      `--default-relay-namespaces` (chart value `defaultRelay.namespaces`) and \
                      no SenderPolicy grants it `defaultRelay` for the `from` domain. Nothing \
                      is tested or published.",
            action: "Ask the platform team for the grant, or use `delivery: ExternalSmtp` or \
                     `AdvancedSmtp`.",
        },
        Reason {
            name: reasons::ROLE_NOT_GRANTED,
            object: Object::Both,
            seen_in: "SenderIdentity `Accepted` and `Ready` False; EmailSettings \
                      `ConnectionVerified` and `Ready` False; a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "`advancedSmtp.roleArn` names an IAM role no SenderPolicy grants the \
                      namespace (`roleArns`). The role is not assumed: the check comes before \
                      any AssumeRole.",
            action: "Remove `advancedSmtp.roleArn` to use the operator's own credentials, or \
                     ask the platform team to grant the role.",
        },
        Reason {
            name: reasons::ADOPTION_NOT_GRANTED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The SenderIdentity asks to adopt (`email.ops.dev/adopt: \"true\"`) an SES \
                      identity that exists outside the operator, and no SenderPolicy lets the \
                      namespace adopt identities of that domain (`adoptExisting`). The identity \
                      is left untouched.",
            action: "Ask the platform team for `adoptExisting: true` on a SenderPolicy granting \
                     the domain, or remove the annotation.",
        },
        Reason {
            name: reasons::DNS_PUBLISHING_NOT_GRANTED,
            object: Object::SenderIdentity,
            seen_in: "`DnsEndpointReady` False (and `Ready` False while the identity is not \
                      verified)",
            severity: Severity::ActionNeeded,
            meaning: "`dns.provider: ExternalDNS`, but no SenderPolicy lets the namespace \
                      publish records for the domain through external-dns \
                      (`publishRecords`): no DNSEndpoint is written. The SES identity is still \
                      created and its records are in `status.dnsRecords`.",
            action: "Publish the records yourself (`email-operator records`) and set \
                     `dns.provider: None`, or ask the platform team for `publishRecords: true`.",
        },
    ],
};

/// Calls that failed: metric labels and log lines, retried.
pub const FAILED_CALLS: Section = Section {
    title: "Failed calls",
    about: "A call to the Kubernetes API, SES or STS failed. These reasons label \
            `email_operator_reconcile_errors_total` (and, for every SES attempt, the `outcome` \
            of `email_operator_ses_requests_total`) and the operator's `reconcile failed` log \
            line, not the status. The reconcile is tried again: after 15 seconds when the \
            failure passes by itself (throttling, 5xx, timeouts; SES calls are also retried \
            with jitter, up to 6 attempts), after 5 minutes when SES refused the request. \
            See [Monitoring](monitoring.md).",
    reasons: &[
        Reason {
            name: reasons::KUBERNETES_API_ERROR,
            object: Object::Both,
            seen_in: "metric label, log",
            severity: Severity::Retried,
            meaning: "The Kubernetes API refused or failed a request: a conflict, a timeout, or \
                      a 403 when the operator's RBAC lacks a verb.",
            action: "Transient errors pass on their own. If it persists, the log names the \
                     request and the status; a 403 means the operator runs without a rule the \
                     chart grants (compare its ClusterRole and Roles).",
        },
        Reason {
            name: reasons::FINALIZER_ERROR,
            object: Object::SenderIdentity,
            seen_in: "metric label, log",
            severity: Severity::Retried,
            meaning: "Adding or removing the SenderIdentity's finalizer failed.",
            action: "If it persists, check that the operator may `patch` senderidentities.",
        },
        Reason {
            name: reasons::NO_NAMESPACE,
            object: Object::Both,
            seen_in: "metric label, log",
            severity: Severity::Retried,
            meaning: "A namespaced object arrived without a namespace, which the API server \
                      never sends.",
            action: "Report it as a bug, with the log line.",
        },
        Reason {
            name: reasons::SES_NOT_FOUND,
            object: Object::SenderIdentity,
            seen_in: "`outcome` of `email_operator_ses_requests_total`",
            severity: Severity::Retried,
            meaning: "SES answered that the identity does not exist — expected when it was \
                      deleted behind the operator's back or is already gone on deletion: the \
                      operator then creates it again, or counts the deletion as done.",
            action: "Nothing; if identities keep vanishing, find who deletes them in SES \
                     (CloudTrail).",
        },
        Reason {
            name: reasons::SES_ALREADY_EXISTS,
            object: Object::SenderIdentity,
            seen_in: "`outcome` of `email_operator_ses_requests_total`",
            severity: Severity::Retried,
            meaning: "SES answered that the identity exists already when the operator created \
                      it: the operator creates first and reads the identity's tags only then, \
                      to decide whether it is ours, shared, or not ours (`IdentityNotOwned`).",
            action: "Nothing.",
        },
        Reason {
            name: reasons::SES_THROTTLED,
            object: Object::SenderIdentity,
            seen_in: "`outcome` of `email_operator_ses_requests_total`, metric label, log; the \
                      alert `EmailOperatorSesThrottled`",
            severity: Severity::Retried,
            meaning: "SES throttled the request: every SES action but sending is limited to 1 \
                      request a second per account and region. The operator halves its rate \
                      and recovers as calls succeed.",
            action: "If it persists, another client shares the account and region's budget, \
                     or `--ses-max-rps` is above SES's limit: leave it at 1 against real SES.",
        },
        Reason {
            name: reasons::SES_UNAVAILABLE,
            object: Object::SenderIdentity,
            seen_in: "`outcome` of `email_operator_ses_requests_total`, metric label, log",
            severity: Severity::Retried,
            meaning: "SES could not be reached or failed (5xx, a timeout).",
            action: "Passes on its own; if it persists, check the operator's egress to \
                     `email.<region>.amazonaws.com` (or `AWS_ENDPOINT_URL_SESV2`) and the AWS \
                     Health Dashboard.",
        },
        Reason {
            name: reasons::SES_REQUEST_REJECTED,
            object: Object::SenderIdentity,
            seen_in: "`outcome` of `email_operator_ses_requests_total`, metric label, log",
            severity: Severity::Retried,
            meaning: "SES refused the request as invalid or not allowed — most often access \
                      denied: the operator's credentials (or the assumed role) lack an `ses:` \
                      action. Tried again after 5 minutes.",
            action: "Read the log line for SES's error code and message, and grant the missing \
                     action (see [Getting started](../getting-started.md#aws-credentials-irsa-or-eks-pod-identity)).",
        },
        Reason {
            name: reasons::STS_UNAVAILABLE,
            object: Object::SenderIdentity,
            seen_in: "metric label, log",
            severity: Severity::Retried,
            meaning: "STS could not name the AWS account of the operator's credentials \
                      (`GetCallerIdentity`). The account id goes into an identity's ARN, which \
                      tagging needs (sharing, adopting, releasing an identity); it is read from \
                      `advancedSmtp.roleArn`, else `--aws-account-id`, else STS. It is not an \
                      SES error.",
            action: "Check the operator's egress to STS (or `AWS_ENDPOINT_URL_STS`), or give \
                     the account id with `--aws-account-id` (chart value `awsAccountId`).",
        },
    ],
};
