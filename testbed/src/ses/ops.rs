//! The SES v2 operations the stand-in serves: request bodies in, response bodies out.
//!
//! Request shapes follow aws-sdk-sesv2's serializers (`protocol_serde/shape_*_input.rs`).
//! Every operation runs under the store lock without awaiting, so each call is atomic.

use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::SesState;
use super::errors::SesError;
use super::faults::lock;
use super::model::{self, CreateRequest, IdentityType, MailFrom, Status};
use super::outbox::{self, MessageKind, OutboxMessage};
use super::regions::signing_hosted_zone;
use super::shapes;
use super::simulator;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagBody {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DkimSigningBody {
    domain_signing_private_key: Option<String>,
    next_signing_key_length: Option<String>,
    domain_signing_attributes_origin: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    email_identity: Option<String>,
    tags: Option<Vec<TagBody>>,
    dkim_signing_attributes: Option<DkimSigningBody>,
    configuration_set_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ListBody {
    page_size: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct TagResourceBody {
    resource_arn: Option<String>,
    tags: Option<Vec<TagBody>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct MailFromBody {
    mail_from_domain: Option<String>,
    behavior_on_mx_failure: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PutDkimSigningBody {
    signing_attributes_origin: Option<String>,
    signing_attributes: Option<DkimSigningBody>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DestinationBody {
    #[serde(default)]
    to_addresses: Vec<String>,
    #[serde(default)]
    cc_addresses: Vec<String>,
    #[serde(default)]
    bcc_addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataBody {
    data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SimpleBody {
    subject: Option<DataBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContentBody {
    simple: Option<SimpleBody>,
    raw: Option<DataBody>,
    template: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SendBody {
    from_email_address: Option<String>,
    destination: Option<DestinationBody>,
    content: Option<ContentBody>,
}

/// Parses a JSON request body; an empty body is an empty object.
pub fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, SesError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|error| SesError::BadRequest(format!("Invalid request body: {error}")))
}

fn required(value: Option<String>, field: &str) -> Result<String, SesError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SesError::BadRequest(format!("{field} is required.")))
}

fn tag_pairs(tags: Option<Vec<TagBody>>) -> Vec<(String, String)> {
    tags.unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect()
}

pub fn create_email_identity(
    state: &SesState,
    region: &str,
    body: &[u8],
) -> Result<Value, SesError> {
    let body: CreateBody = parse(body)?;
    let name = required(body.email_identity, "EmailIdentity")?;
    let signing = body.dkim_signing_attributes.unwrap_or_default();
    if signing.domain_signing_private_key.is_some()
        || signing
            .domain_signing_attributes_origin
            .as_deref()
            .is_some_and(|origin| origin != "AWS_SES")
    {
        return Err(SesError::BadRequest(
            "The test bed models Easy DKIM only (no BYODKIM or DEED replicas).".into(),
        ));
    }
    let request = CreateRequest {
        name,
        tags: tag_pairs(body.tags),
        key_length: signing.next_signing_key_length,
        configuration_set_name: body.configuration_set_name,
    };
    let now = state.clock.now();
    let mut store = lock(&state.store);
    let identity = store.create(
        region,
        request,
        signing_hosted_zone(region),
        now,
        state.limits.max_identities(),
    )?;
    if identity.identity_type == IdentityType::EmailAddress {
        let message = outbox::verification_message(
            region,
            &state.account_id,
            &identity.name,
            now,
            now + super::lifecycle::email_link_window(),
        );
        lock(&state.outbox).push(message);
    }
    let identity = identity.clone();
    state.recheck.notify_one();
    Ok(shapes::create_output(&store, &identity))
}

pub fn get_email_identity(state: &SesState, region: &str, name: &str) -> Result<Value, SesError> {
    let store = lock(&state.store);
    let identity = store.get(region, name)?;
    Ok(shapes::get_output(&store, identity))
}

pub fn list_email_identities(
    state: &SesState,
    region: &str,
    page_size: Option<i64>,
    next_token: Option<String>,
) -> Result<Value, SesError> {
    let store = lock(&state.store);
    let (page, next) = store.list(region, page_size, next_token.as_deref())?;
    let mut out = json!({ "EmailIdentities": page.into_iter().map(|i| shapes::identity_info(&store, i)).collect::<Vec<_>>() });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

/// ListEmailIdentities as the current SDK sends it (`POST /v2/email/list-identities`).
pub fn list_email_identities_post(
    state: &SesState,
    region: &str,
    body: &[u8],
) -> Result<Value, SesError> {
    let body: ListBody = parse(body)?;
    list_email_identities(state, region, body.page_size, body.next_token)
}

pub fn delete_email_identity(
    state: &SesState,
    region: &str,
    name: &str,
) -> Result<Value, SesError> {
    lock(&state.store).delete(region, name)?;
    Ok(json!({}))
}

/// `arn:aws:ses:<region>:<account>:identity/<name>` → (region, name).
fn parse_arn(state: &SesState, arn: &str) -> Result<(String, String), SesError> {
    let invalid = || SesError::BadRequest(format!("Invalid ResourceArn: {arn}"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [partition_prefix, _, service, region, account, resource] = parts.as_slice() else {
        return Err(invalid());
    };
    if *partition_prefix != "arn" || *service != "ses" {
        return Err(invalid());
    }
    let name = resource.strip_prefix("identity/").ok_or_else(invalid)?;
    if *account != state.account_id {
        return Err(SesError::NotFound(format!(
            "Resource {arn} does not exist."
        )));
    }
    Ok((region.to_string(), name.to_string()))
}

pub fn tag_resource(state: &SesState, body: &[u8]) -> Result<Value, SesError> {
    let body: TagResourceBody = parse(body)?;
    let arn = required(body.resource_arn, "ResourceArn")?;
    let (region, name) = parse_arn(state, &arn)?;
    let mut store = lock(&state.store);
    let identity = store.get_mut(&region, &name)?;
    super::tags::merge(&mut identity.tags, tag_pairs(body.tags))?;
    Ok(json!({}))
}

pub fn untag_resource(
    state: &SesState,
    arn: Option<String>,
    keys: Vec<String>,
) -> Result<Value, SesError> {
    let arn = required(arn, "ResourceArn")?;
    if keys.is_empty() {
        return Err(SesError::BadRequest("TagKeys is required.".into()));
    }
    super::tags::check_untag(&keys)?;
    let (region, name) = parse_arn(state, &arn)?;
    let mut store = lock(&state.store);
    let identity = store.get_mut(&region, &name)?;
    for key in keys {
        identity.tags.remove(&key);
    }
    Ok(json!({}))
}

pub fn list_tags_for_resource(state: &SesState, arn: Option<String>) -> Result<Value, SesError> {
    let arn = required(arn, "ResourceArn")?;
    let (region, name) = parse_arn(state, &arn)?;
    let store = lock(&state.store);
    Ok(json!({ "Tags": shapes::tags(store.get(&region, &name)?) }))
}

pub fn put_mail_from(
    state: &SesState,
    region: &str,
    name: &str,
    body: &[u8],
) -> Result<Value, SesError> {
    let body: MailFromBody = parse(body)?;
    let behavior = body
        .behavior_on_mx_failure
        .unwrap_or_else(|| "USE_DEFAULT_VALUE".into());
    if !matches!(behavior.as_str(), "USE_DEFAULT_VALUE" | "REJECT_MESSAGE") {
        return Err(SesError::BadRequest(format!(
            "Invalid BehaviorOnMxFailure {behavior:?}."
        )));
    }
    let now = state.clock.now();
    let mut store = lock(&state.store);
    let identity = store.get_mut(region, name)?;
    match body.mail_from_domain.filter(|d| !d.is_empty()) {
        None => identity.mail_from = None,
        Some(domain) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let parent = model::email_domain(&identity.name).to_ascii_lowercase();
            if !domain.ends_with(&format!(".{parent}")) {
                return Err(SesError::BadRequest(format!(
                    "MAIL FROM domain {domain} must be a subdomain of {parent}."
                )));
            }
            identity.mail_from = Some(MailFrom {
                domain,
                behavior_on_mx_failure: behavior,
                status: Status::Pending,
                status_since: now,
            });
            identity.next_check = None;
        }
    }
    state.recheck.notify_one();
    Ok(json!({}))
}

pub fn put_dkim_signing(
    state: &SesState,
    region: &str,
    name: &str,
    body: &[u8],
) -> Result<Value, SesError> {
    let body: PutDkimSigningBody = parse(body)?;
    let origin = required(body.signing_attributes_origin, "SigningAttributesOrigin")?;
    if origin != "AWS_SES" {
        return Err(SesError::BadRequest(
            "The test bed models Easy DKIM only (SigningAttributesOrigin AWS_SES).".into(),
        ));
    }
    let now = state.clock.now();
    let mut store = lock(&state.store);
    let identity = store.get_mut(region, name)?;
    let status = identity.status.as_str();
    let Some(dkim) = identity.dkim.as_mut() else {
        return Err(SesError::BadRequest(format!(
            "{name} is an email address identity; DKIM signing attributes apply to domains."
        )));
    };
    if let Some(length) = body
        .signing_attributes
        .and_then(|s| s.next_signing_key_length)
    {
        let length = model::validate_key_length(&length)?;
        if length != dkim.next_key_length {
            // "This can be changed at most once per day" (SES v2 API Reference,
            // DkimSigningAttributes.NextSigningKeyLength).
            if let Some(changed) = dkim.next_key_length_changed
                && now - changed < chrono::TimeDelta::hours(24)
            {
                return Err(SesError::BadRequest(format!(
                    "NextSigningKeyLength can be changed at most once per day; it was last changed at {}.",
                    changed.format("%Y-%m-%dT%H:%M:%SZ")
                )));
            }
            dkim.next_key_length = length;
            dkim.next_key_length_changed = Some(now);
        }
    }
    Ok(json!({
        "DkimStatus": status,
        "DkimTokens": dkim.tokens,
        "SigningHostedZone": dkim.signing_hosted_zone,
    }))
}

pub fn get_account(state: &SesState, region: &str) -> Result<Value, SesError> {
    let standing = state.account.standing(region);
    Ok(json!({
        "DedicatedIpAutoWarmupEnabled": false,
        "EnforcementStatus": standing.enforcement_status.as_str(),
        "ProductionAccessEnabled": standing.production_access_enabled,
        "SendingEnabled": standing.sending_enabled,
        "SendQuota": {
            "Max24HourSend": standing.max_24_hour_send,
            "MaxSendRate": standing.max_send_rate,
            "SentLast24Hours": sent_last_24_hours(state, region) as f64,
        },
        "SuppressionAttributes": { "SuppressedReasons": [] },
    }))
}

/// What was sent in `region` in the last 24 hours against the quota, which SES counts in
/// recipients ("Service quotas in Amazon SES": a message to three recipients counts three);
/// mailbox simulator recipients do not count (SES Developer Guide, "Using the mailbox
/// simulator").
pub fn sent_last_24_hours(state: &SesState, region: &str) -> usize {
    counted_last_24_hours(&lock(&state.outbox), region, state)
}

/// [`sent_last_24_hours`] of an outbox the caller holds.
pub fn counted_last_24_hours(outbox: &[OutboxMessage], region: &str, state: &SesState) -> usize {
    let since = state.clock.now() - chrono::TimeDelta::hours(24);
    outbox
        .iter()
        .filter(|m| m.kind == MessageKind::Sent && m.region == region && m.sent_at >= since)
        .map(|m| m.to.len().saturating_sub(m.simulated.len()))
        .sum()
}

/// The recipients SES refuses in a sandboxed region: every one that is neither a verified
/// identity nor a mailbox simulator address (SES Developer Guide, "Request production
/// access": in the sandbox "you can only send mail to verified email addresses and domains, or
/// to the Amazon SES mailbox simulator").
pub fn sandbox_refused(state: &SesState, region: &str, recipients: &[String]) -> Vec<String> {
    if state.account.standing(region).production_access_enabled {
        return Vec::new();
    }
    let store = lock(&state.store);
    recipients
        .iter()
        .filter(|r| simulator::outcome(r).is_none() && !store.sender_verified(region, r))
        .cloned()
        .collect()
}

/// SES's refusal of unverified identities (sender or, in the sandbox, recipients), in the
/// text of its SendEmail and SMTP answers.
pub fn not_verified(region: &str, identities: &[String]) -> String {
    format!(
        "Email address is not verified. The following identities failed the check in region {}: {}",
        region.to_ascii_uppercase(),
        identities.join(", ")
    )
}

pub fn send_email(state: &SesState, region: &str, body: &[u8]) -> Result<Value, SesError> {
    let body: SendBody = parse(body)?;
    let content = body
        .content
        .ok_or_else(|| SesError::BadRequest("Content is required.".into()))?;
    let destination = body.destination.unwrap_or_default();
    let mut to: Vec<String> = destination
        .to_addresses
        .into_iter()
        .chain(destination.cc_addresses)
        .chain(destination.bcc_addresses)
        .collect();
    let (content_type, subject, header_from) = if let Some(simple) = content.simple {
        let subject = simple.subject.map(|s| s.data).unwrap_or_default();
        ("Simple", subject, None)
    } else if let Some(raw) = content.raw {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.data.trim())
            .map_err(|_| SesError::BadRequest("Raw.Data is not valid base64.".into()))?;
        let message = String::from_utf8_lossy(&bytes);
        if to.is_empty() {
            for header in ["To", "Cc"] {
                if let Some(value) = outbox::raw_header(&message, header) {
                    to.extend(
                        value
                            .split(',')
                            .map(outbox::address_of)
                            .filter(|a| !a.is_empty()),
                    );
                }
            }
        }
        let subject = outbox::raw_header(&message, "Subject").unwrap_or_default();
        ("Raw", subject, outbox::raw_header(&message, "From"))
    } else if content.template.is_some() {
        return Err(SesError::NotFound(
            "Template does not exist (the test bed stores no templates).".into(),
        ));
    } else {
        return Err(SesError::BadRequest(
            "Content must contain Simple, Raw or Template.".into(),
        ));
    };
    let from = body
        .from_email_address
        .or(header_from)
        .map(|f| outbox::address_of(&f))
        .filter(|f| !f.is_empty())
        .ok_or_else(|| SesError::BadRequest("FromEmailAddress is required.".into()))?;
    if to.is_empty() {
        return Err(SesError::BadRequest(
            "At least one recipient is required.".into(),
        ));
    }
    if let Some(refusal) = state.account.standing(region).refusal() {
        return Err(refusal);
    }
    if !lock(&state.store).sender_verified(region, &from) {
        return Err(SesError::MessageRejected(not_verified(
            region,
            std::slice::from_ref(&from),
        )));
    }
    let refused = sandbox_refused(state, region, &to);
    if !refused.is_empty() {
        return Err(SesError::MessageRejected(not_verified(region, &refused)));
    }
    let message_id = outbox::message_id();
    let simulated = simulator::simulate(&to);
    lock(&state.outbox).push(OutboxMessage {
        message_id: message_id.clone(),
        kind: MessageKind::Sent,
        region: region.to_string(),
        from,
        to,
        subject,
        identity: None,
        link: None,
        expires: None,
        content_type: Some(content_type.into()),
        simulated,
        raw: None,
        sent_at: state.clock.now(),
    });
    Ok(json!({ "MessageId": message_id }))
}
