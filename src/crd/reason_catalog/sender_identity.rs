//! Reasons of a SenderIdentity's life in SES: its conditions and its Events.

use super::{Object, Reason, Section, Severity};
use crate::crd::conditions::reasons;

/// What SES reports about the identity, and what stops it.
pub const IN_SES: Section = Section {
    title: "A SenderIdentity in SES",
    about: "`Verified`, `DkimVerified` and `MailFromVerified` carry SES's own status \
            (`Success`, `Pending`, `TemporaryFailure`, `Failed`, `NotStarted`); `Ready` is True \
            once the identity is verified, allowed to send and, for a domain, DKIM-verified, \
            and otherwise carries the reason that holds it back. Each change of a condition is \
            an Event with its reason (a Warning when something needs a person). See \
            [SenderIdentity](../sender-identity.md).",
    reasons: &[
        Reason {
            name: reasons::CREATING,
            object: Object::SenderIdentity,
            seen_in: "`Ready` False (Reconciling)",
            severity: Severity::Progressing,
            meaning: "The SES identity is being created. Its location (account, region, role) \
                      is written to `status.ses` first, so that a deletion finds it whatever \
                      fails next.",
            action: "Wait: the records show after one SES call.",
        },
        Reason {
            name: reasons::PENDING,
            object: Object::SenderIdentity,
            seen_in: "`Verified`, `DkimVerified`, `MailFromVerified`, `DkimKeyLengthApplied` \
                      and `Ready` False (Reconciling)",
            severity: Severity::Progressing,
            meaning: "SES has not verified it yet: for a domain, SES has not seen the three \
                      DKIM CNAMEs in DNS (it looks for 72 hours); for an email address, the \
                      link SES mailed (valid 24 hours) has not been followed; for a custom MAIL \
                      FROM domain, SES has not found its MX record; for a DKIM key length, the \
                      change is on its way.",
            action: "Publish the records of `status.dnsRecords` (`email-operator records` prints \
                     them, `--check` looks them up), or follow the link. A domain still pending \
                     72 hours after `pendingSince` is created again with new tokens \
                     (`VerificationExpired`); an email identity gets a new link, at most 3 times \
                     (`VerificationEmailResent`).",
        },
        Reason {
            name: reasons::NOT_STARTED,
            object: Object::SenderIdentity,
            seen_in: "`Verified`, `DkimVerified` and `Ready` False (Reconciling)",
            severity: Severity::Progressing,
            meaning: "SES has not started checking yet (a status SES may add later is read the \
                      same way: nothing is concluded from it).",
            action: "Wait.",
        },
        Reason {
            name: reasons::SUCCESS,
            object: Object::SenderIdentity,
            seen_in: "`Verified`, `DkimVerified` and `MailFromVerified` True",
            severity: Severity::Ok,
            meaning: "SES verified the identity, its Easy DKIM, or its custom MAIL FROM domain. \
                      An email identity's `DkimVerified` is `Success` when its domain is a \
                      verified identity too.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::TEMPORARY_FAILURE,
            object: Object::SenderIdentity,
            seen_in: "`Verified`, `DkimVerified`, `MailFromVerified` and `Ready` False \
                      (Reconciling), a Warning Event",
            severity: Severity::Warning,
            meaning: "SES can no longer see records it verified — removed, or DNS not \
                      answering — or could not determine a MAIL FROM domain's state for now. \
                      SES keeps the identity verified for sending meanwhile and marks it \
                      `Failed` if the records are not back within 72 hours.",
            action: "Check that the records are still published: `email-operator records \
                     --all --check`.",
        },
        Reason {
            name: reasons::FAILED,
            object: Object::SenderIdentity,
            seen_in: "`Verified`, `DkimVerified` and `Ready` False (Stalled), a Warning Event; \
                      the alert `EmailOperatorSenderIdentityFailed`",
            severity: Severity::ActionNeeded,
            meaning: "SES gave up verifying: a domain's DKIM records were not found within 72 \
                      hours (or, once verified, not restored within 72 hours), or an email \
                      address's link was not followed in time. It waits for you: errors never \
                      re-create an identity.",
            action: "Publish the records (or be ready to follow the link), then set a new value \
                     on the annotation `email.ops.dev/retry` — `kubectl annotate sid NAME \
                     email.ops.dev/retry=\"$(date +%s)\" --overwrite` — or change the spec.",
        },
        Reason {
            name: reasons::NOT_APPLICABLE,
            object: Object::SenderIdentity,
            seen_in: "`DkimVerified` False on an email identity",
            severity: Severity::Ok,
            meaning: "An email identity is DKIM-signed with its domain's keys only when that \
                      domain is a verified identity too; until then SES signs with \
                      amazonses.com.",
            action: "Nothing; verify the domain as well to sign with your own domain (see the \
                     EmailSettings' `DmarcAligned`).",
        },
        Reason {
            name: reasons::NOT_VERIFIED_FOR_SENDING,
            object: Object::SenderIdentity,
            seen_in: "`Ready` False (Reconciling)",
            severity: Severity::ActionNeeded,
            meaning: "SES verified the identity but does not let it send: sending is paused for \
                      it, or the account is shut down or paused in the region.",
            action: "Look at the account's standing in its EmailSettings (`SesAccountHealthy`, \
                     `status.sesAccount`) and at the identity in the SES console.",
        },
        Reason {
            name: reasons::READY,
            object: Object::SenderIdentity,
            seen_in: "`Ready` True, an Event",
            severity: Severity::Ok,
            meaning: "Verified, allowed to send, and for a domain DKIM-verified: mail may be \
                      sent from it.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::IDENTITY_NOT_OWNED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The identity exists in SES without the operator's ownership tag \
                      (`email.ops.dev/managed-by`): made by hand or by another tool. The \
                      operator never modifies or deletes it.",
            action: "To use it, the platform team grants adoption (`adoptExisting` on a \
                     SenderPolicy granting the domain) and you set the annotation \
                     `email.ops.dev/adopt: \"true\"`. Otherwise choose another identity.",
        },
        Reason {
            name: reasons::SES_TAG_LIMIT_REACHED,
            object: Object::SenderIdentity,
            seen_in: "`Accepted` and `Ready` False, a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The SES identity already carries the 50 tags SES allows: one is the \
                      operator's, one each SenderIdentity sharing it, the rest were added by \
                      hand. So at most 49 SenderIdentities share one identity (fewer when it \
                      carries tags of its own). Refused before any call; judged again every 10 \
                      minutes.",
            action: "Delete a SenderIdentity that shares the identity, or remove tags added by \
                     hand.",
        },
        Reason {
            name: reasons::SES_QUOTA_EXCEEDED,
            object: Object::SenderIdentity,
            seen_in: "`Ready` False (Stalled), a Warning Event; metric label",
            severity: Severity::ActionNeeded,
            meaning: "SES refused to create the identity: the account's quota of identities in \
                      the region (10,000) is reached (`LimitExceededException`). A quota, not a \
                      rate: no retry and no slower pace.",
            action: "Delete identities the account no longer uses, or ask AWS for a higher \
                     quota; then change the SenderIdentity or set a new value on the annotation \
                     `email.ops.dev/retry`.",
        },
        Reason {
            name: reasons::MAIL_FROM_FAILED,
            object: Object::SenderIdentity,
            seen_in: "`MailFromVerified` False, a Warning Event",
            severity: Severity::Warning,
            meaning: "SES cannot find the custom MAIL FROM domain's MX record, or it was \
                      removed: mail leaves with `amazonses.com` as MAIL FROM and SPF no longer \
                      aligns with your domain. `Ready` is not affected: mail still leaves.",
            action: "Publish the MX record listed in `status.dnsRecords`, then set a new value \
                     on the annotation `email.ops.dev/retry` for SES to look again.",
        },
        Reason {
            name: reasons::KEY_LENGTH_CHANGE_DEFERRED,
            object: Object::SenderIdentity,
            seen_in: "`DkimKeyLengthApplied` False",
            severity: Severity::Progressing,
            meaning: "SES lets the DKIM key length change once a day: the change asked for \
                      waits, and the message says from when it is applied.",
            action: "Wait; it is applied then, without retries in between.",
        },
        Reason {
            name: reasons::APPLIED,
            object: Object::SenderIdentity,
            seen_in: "`DkimKeyLengthApplied` True, `DnsEndpointReady` True",
            severity: Severity::Ok,
            meaning: "SES generates the DKIM key length asked for; or the DNSEndpoint holds the \
                      records for external-dns to publish.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::DNS_ENDPOINT_CRD_NOT_INSTALLED,
            object: Object::SenderIdentity,
            seen_in: "`DnsEndpointReady` False (and `Ready` False while the identity is not \
                      verified)",
            severity: Severity::ActionNeeded,
            meaning: "`dns.provider: ExternalDNS`, but the cluster has no DNSEndpoint CRD \
                      (`externaldns.k8s.io/v1alpha1`). The SES identity is created anyway, its \
                      location recorded in status first, and cleaned up on deletion.",
            action: "Install external-dns with its CRD source, or publish the records yourself \
                     (`email-operator records`) and set `dns.provider: None`.",
        },
        Reason {
            name: reasons::DNS_ENDPOINT_FORBIDDEN,
            object: Object::SenderIdentity,
            seen_in: "`DnsEndpointReady` False (and `Ready` False while the identity is not \
                      verified)",
            severity: Severity::ActionNeeded,
            meaning: "`dns.provider: ExternalDNS`, but the operator may not write DNSEndpoints: \
                      the chart was installed without `externalDns.enabled`. The SES identity \
                      is created anyway and cleaned up on deletion.",
            action: "Ask the platform team to set `externalDns.enabled=true`, or publish the \
                     records yourself and set `dns.provider: None`.",
        },
    ],
};

/// Events of the identity's life, besides the conditions' transitions.
pub const EVENTS: Section = Section {
    title: "SenderIdentity Events",
    about: "Besides one Event per change of a condition (with the condition's reason), a \
            SenderIdentity gets these Events; `kubectl describe sid NAME` shows them. They are \
            not conditions.",
    reasons: &[
        Reason {
            name: reasons::IDENTITY_CREATED,
            object: Object::SenderIdentity,
            seen_in: "a Normal Event",
            severity: Severity::Progressing,
            meaning: "The operator created the SES identity; the note says what verifies it: \
                      the DKIM CNAMEs in `status.dnsRecords` (SES looks for 72 hours), or the \
                      link SES mailed to the address (valid 24 hours).",
            action: "Publish the records, or follow the link.",
        },
        Reason {
            name: reasons::IDENTITY_SHARED,
            object: Object::SenderIdentity,
            seen_in: "a Normal Event",
            severity: Severity::Ok,
            meaning: "The identity already existed in SES for another SenderIdentity (of this \
                      namespace, or of another that a SenderPolicy lets share it): this one now \
                      shares it, with an owner tag of its own.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::IDENTITY_ADOPTED,
            object: Object::SenderIdentity,
            seen_in: "a Normal Event",
            severity: Severity::Ok,
            meaning: "An SES identity made outside the operator was adopted (annotation \
                      `email.ops.dev/adopt`, granted by `adoptExisting`). It is tagged \
                      `email.ops.dev/adopted` and never deleted, re-created or reconfigured: \
                      only claimed and released.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::IDENTITY_DELETED,
            object: Object::SenderIdentity,
            seen_in: "a Normal Event",
            severity: Severity::Ok,
            meaning: "The SES identity was deleted: this SenderIdentity was deleted (or moved \
                      to another region or role) and was its last owner, with `deletionPolicy: \
                      Delete`.",
            action: "Nothing.",
        },
        Reason {
            name: reasons::IDENTITY_RELEASED,
            object: Object::SenderIdentity,
            seen_in: "a Normal Event",
            severity: Severity::Ok,
            meaning: "The SES identity stays — other SenderIdentities still use it, \
                      `deletionPolicy` is `Retain`, or it was adopted — and only this \
                      SenderIdentity's owner tag was removed.",
            action: "Nothing; delete the identity in SES yourself if nobody needs it.",
        },
        Reason {
            name: reasons::RETRY_REQUESTED,
            object: Object::SenderIdentity,
            seen_in: "a Warning Event",
            severity: Severity::Progressing,
            meaning: "A failed verification is retried as asked — the annotation \
                      `email.ops.dev/retry` has a new value, or the spec changed: the identity \
                      is created again in SES (a domain gets new DKIM tokens).",
            action: "Publish the new records of `status.dnsRecords`, or follow the new link.",
        },
        Reason {
            name: reasons::VERIFICATION_EXPIRED,
            object: Object::SenderIdentity,
            seen_in: "a Warning Event",
            severity: Severity::Progressing,
            meaning: "A domain still pending 72 hours after `pendingSince` was deleted and \
                      created again in SES, with new DKIM tokens.",
            action: "Publish the new CNAMEs of `status.dnsRecords`: the old ones no longer \
                     verify.",
        },
        Reason {
            name: reasons::VERIFICATION_EMAIL_RESENT,
            object: Object::SenderIdentity,
            seen_in: "a Warning Event",
            severity: Severity::Progressing,
            meaning: "An email identity's link expired unconfirmed after 24 hours: SES sent a \
                      new verification email (at most 3 times).",
            action: "Follow the link in the new email.",
        },
        Reason {
            name: reasons::INVALID_OBJECT,
            object: Object::SenderIdentity,
            seen_in: "a Warning Event",
            severity: Severity::ActionNeeded,
            meaning: "The object cannot be read as a SenderIdentity (written under an older \
                      schema?); the operator leaves it alone rather than stall on it.",
            action: "Apply it again against the installed CRD, or delete it.",
        },
    ],
};
