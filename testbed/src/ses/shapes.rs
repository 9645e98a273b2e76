//! Response bodies, field for field as aws-sdk-sesv2's restJson1 deserializers read them
//! (`protocol_serde/shape_get_email_identity.rs`, `shape_dkim_attributes.rs`, …). Timestamps
//! are epoch seconds, as the SDK expects for these shapes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::model::{Identity, IdentityType, Status, Store};

/// Epoch seconds with millisecond precision.
pub fn epoch(time: DateTime<Utc>) -> Value {
    json!(time.timestamp_millis() as f64 / 1000.0)
}

/// `DkimAttributes`.
pub fn dkim_attributes(identity: &Identity) -> Value {
    match &identity.dkim {
        Some(dkim) => json!({
            "SigningEnabled": true,
            "Status": identity.status.as_str(),
            "Tokens": dkim.tokens,
            "SigningHostedZone": dkim.signing_hosted_zone,
            "SigningAttributesOrigin": "AWS_SES",
            "NextSigningKeyLength": dkim.next_key_length,
            "CurrentSigningKeyLength": dkim.current_key_length,
            "LastKeyGenerationTimestamp": epoch(dkim.last_key_generation),
        }),
        // Email address identities have no Easy DKIM of their own.
        None => json!({
            "SigningEnabled": false,
            "Status": Status::NotStarted.as_str(),
            "Tokens": [],
            "SigningAttributesOrigin": "AWS_SES",
        }),
    }
}

/// `Tags` as a list of `{Key, Value}`.
pub fn tags(identity: &Identity) -> Value {
    Value::Array(
        identity
            .tags
            .iter()
            .map(|(key, value)| json!({ "Key": key, "Value": value }))
            .collect(),
    )
}

/// CreateEmailIdentity's response.
pub fn create_output(store: &Store, identity: &Identity) -> Value {
    json!({
        "IdentityType": identity.identity_type.as_str(),
        "VerifiedForSendingStatus": store.verified_for_sending(identity),
        "DkimAttributes": dkim_attributes(identity),
    })
}

/// GetEmailIdentity's response.
pub fn get_output(store: &Store, identity: &Identity) -> Value {
    let mut out = Map::new();
    out.insert(
        "IdentityType".into(),
        json!(identity.identity_type.as_str()),
    );
    out.insert("FeedbackForwardingStatus".into(), json!(true));
    out.insert(
        "VerifiedForSendingStatus".into(),
        json!(store.verified_for_sending(identity)),
    );
    out.insert("DkimAttributes".into(), dkim_attributes(identity));
    out.insert("Policies".into(), json!({}));
    out.insert("Tags".into(), tags(identity));
    out.insert("VerificationStatus".into(), json!(identity.status.as_str()));
    if let Some(name) = &identity.configuration_set_name {
        out.insert("ConfigurationSetName".into(), json!(name));
    }
    if let Some(mail_from) = &identity.mail_from {
        out.insert(
            "MailFromAttributes".into(),
            json!({
                "MailFromDomain": mail_from.domain,
                "MailFromDomainStatus": mail_from.status.as_str(),
                "BehaviorOnMxFailure": mail_from.behavior_on_mx_failure,
            }),
        );
    }
    let mut info = Map::new();
    if let Some(checked) = identity.last_checked {
        info.insert("LastCheckedTimestamp".into(), epoch(checked));
    }
    if let Some(success) = identity.last_success {
        info.insert("LastSuccessTimestamp".into(), epoch(success));
    }
    if identity.identity_type == IdentityType::Domain
        && !identity.status.is_verified()
        && let Some(error) = &identity.error_type
    {
        info.insert("ErrorType".into(), json!(error));
    }
    out.insert("VerificationInfo".into(), Value::Object(info));
    Value::Object(out)
}

/// One entry of ListEmailIdentities. `SendingEnabled` "indicates whether or not you can send
/// email from the identity" (SES v2 API Reference, `IdentityInfo`): verified for sending.
pub fn identity_info(store: &Store, identity: &Identity) -> Value {
    json!({
        "IdentityType": identity.identity_type.as_str(),
        "IdentityName": identity.name,
        "SendingEnabled": store.verified_for_sending(identity),
        "VerificationStatus": identity.status.as_str(),
    })
}
