//! An AWS STS stand-in: the two actions the operator's AWS clients call, over the awsQuery
//! protocol aws-sdk-sts speaks (`POST /` with a form body `Action=…&Version=2011-06-15`, XML
//! answers; AWS STS API Reference, "GetCallerIdentity" and "AssumeRole").
//!
//! * `GetCallerIdentity` names the test bed's account ([`crate::ses::ACCOUNT_ID`]); the
//!   operator asks it for the account of identity ARNs when neither `--aws-account-id` nor a
//!   role ARN says.
//! * `AssumeRole` hands out temporary credentials for any role of that account, with the
//!   documented checks on its parameters (`RoleSessionName` 2–64 characters of `[\w+=,.@-]`,
//!   `DurationSeconds` 900–43200, `ExternalId` 2–1224 characters of `[\w+=,.@:/-]`, at most 50
//!   session `Tags`, each key 1–128 and value 0–256 characters of letters, digits, white space
//!   and `_ . : / = + - @`, keys unique ignoring case); a role of another account is
//!   `AccessDenied`, as a trust policy that does not name the caller would answer. Every call is
//!   recorded (`GET /sts/assumed` on the control API) with its external id and session tags.
//!
//! `testbed up` writes its URL to `DIR/env` as `AWS_ENDPOINT_URL_STS`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::ses::ACCOUNT_ID;

/// What the STS stand-in has been asked (for tests): `AssumeRole` calls by role ARN.
#[derive(Default)]
pub struct StsState {
    /// The answered ones.
    pub assumed: Mutex<Vec<AssumeRoleCall>>,
    /// Every `AssumeRole` request received, answered or refused.
    pub requests: std::sync::atomic::AtomicUsize,
}

/// One `AssumeRole` request as received.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleCall {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    /// Session tags (key, value), in order.
    pub tags: Vec<(String, String)>,
}

/// A running STS stand-in. Dropping it stops the server.
pub struct StsServer {
    addr: SocketAddr,
    state: Arc<StsState>,
    _stop: oneshot::Sender<()>,
}

impl StsServer {
    pub async fn start(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(StsState::default());
        let app = axum::Router::new()
            .fallback(dispatch)
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "sts stand-in stopped with an error");
            }
        });
        Ok(Self {
            addr,
            state,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `AWS_ENDPOINT_URL_STS`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> Arc<StsState> {
        self.state.clone()
    }
}

/// An STS error: HTTP status, `Code` and `Message` in the awsQuery error document.
#[derive(Debug)]
struct StsError(StatusCode, &'static str, String);

impl IntoResponse for StsError {
    fn into_response(self) -> Response {
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            self.1,
            xml_escape(&self.2),
            uuid::Uuid::new_v4()
        );
        (self.0, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn validation(message: String) -> StsError {
    StsError(StatusCode::BAD_REQUEST, "ValidationError", message)
}

async fn dispatch(State(state): State<Arc<StsState>>, body: Bytes) -> Response {
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let result = match params.get("Action").map(String::as_str) {
        Some("GetCallerIdentity") => Ok(get_caller_identity()),
        Some("AssumeRole") => {
            state
                .requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assume_role(&state, &params)
        }
        Some(other) => Err(StsError(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
        None => Err(StsError(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing Action".into(),
        )),
    };
    match result {
        Ok(xml) => ([(header::CONTENT_TYPE, "text/xml")], xml).into_response(),
        Err(e) => e.into_response(),
    }
}

fn respond(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        uuid::Uuid::new_v4()
    )
}

fn get_caller_identity() -> String {
    respond(
        "GetCallerIdentity",
        &format!(
            "<Arn>arn:aws:iam::{ACCOUNT_ID}:user/testbed</Arn><UserId>AIDATESTBED</UserId><Account>{ACCOUNT_ID}</Account>"
        ),
    )
}

/// `[\w+=,.@-]` and `[\w+=,.@:/-]` (AWS STS API Reference, AssumeRole: RoleSessionName,
/// ExternalId).
fn only(s: &str, extra: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
}

fn assume_role(state: &StsState, p: &HashMap<String, String>) -> Result<String, StsError> {
    let role_arn = p.get("RoleArn").cloned().unwrap_or_default();
    let session = p.get("RoleSessionName").cloned().unwrap_or_default();
    if role_arn.len() < 20 || role_arn.len() > 2048 {
        return Err(validation(format!(
            "1 validation error detected: Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"
        )));
    }
    if !(2..=64).contains(&session.len()) || !only(&session, "+=,.@-") {
        return Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        )));
    }
    if let Some(d) = p.get("DurationSeconds") {
        let ok = d.parse::<u32>().is_ok_and(|d| (900..=43_200).contains(&d));
        if !ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
            )));
        }
    }
    let external_id = p.get("ExternalId").cloned();
    if let Some(id) = &external_id
        && (!(2..=1224).contains(&id.len()) || !only(id, "+=,.@:/-"))
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{id}' at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]*"
        )));
    }
    let tags = session_tags(p)?;
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let role = role_arn.rsplit_once(":role/").map(|(_, r)| r);
    let (Some(role), true) = (role, account == ACCOUNT_ID) else {
        return Err(StsError(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: arn:aws:iam::{ACCOUNT_ID}:user/testbed is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ),
        ));
    };
    if let Ok(mut calls) = state.assumed.lock() {
        calls.push(AssumeRoleCall {
            role_arn: role_arn.clone(),
            session_name: session.clone(),
            external_id,
            tags,
        });
    }
    let expires = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Ok(respond(
        "AssumeRole",
        &format!(
            "<Credentials><AccessKeyId>ASIATESTBED</AccessKeyId><SecretAccessKey>testbed-assumed-secret</SecretAccessKey><SessionToken>testbed-session-token</SessionToken><Expiration>{expires}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROATESTBED:{session}</AssumedRoleId><Arn>arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}</Arn></AssumedRoleUser>"
        ),
    ))
}

/// `Tags.member.N.Key` / `.Value` (awsQuery), checked as the AssumeRole reference says: at most
/// 50, keys 1–128 and values 0–256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, no key twice
/// (case-insensitively).
fn session_tags(p: &HashMap<String, String>) -> Result<Vec<(String, String)>, StsError> {
    let mut tags = Vec::new();
    for n in 1.. {
        let Some(key) = p.get(&format!("Tags.member.{n}.Key")) else {
            break;
        };
        let value = p
            .get(&format!("Tags.member.{n}.Value"))
            .cloned()
            .unwrap_or_default();
        tags.push((key.clone(), value));
    }
    if tags.len() > 50 {
        return Err(validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50 (got {})",
            tags.len()
        )));
    }
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
    };
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &tags {
        let keys = key.chars().count();
        if !(1..=128).contains(&keys) || !allowed(key) {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at 'tags.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+"
            )));
        }
        if value.chars().count() > 256 || !allowed(value) {
            return Err(validation(format!(
                "1 validation error detected: Value '{value}' at 'tags.member.value' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*"
            )));
        }
        if !seen.insert(key.to_lowercase()) {
            return Err(StsError(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                format!(
                    "Duplicate tag keys found. Please note that Tag keys are case insensitive: {key}"
                ),
            ));
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(tags: &[(&str, &str)]) -> HashMap<String, String> {
        let mut p = HashMap::new();
        for (i, (k, v)) in tags.iter().enumerate() {
            p.insert(format!("Tags.member.{}.Key", i + 1), k.to_string());
            p.insert(format!("Tags.member.{}.Value", i + 1), v.to_string());
        }
        p
    }

    #[test]
    fn session_tags_at_their_limits_and_past_them() {
        let key = "k".repeat(128);
        let value = "v".repeat(256);
        assert_eq!(
            session_tags(&params(&[(&key, &value)]))
                .expect("at the limits")
                .len(),
            1
        );
        let long_key = "k".repeat(129);
        assert!(session_tags(&params(&[(&long_key, "v")])).is_err());
        let long_value = "v".repeat(257);
        assert!(session_tags(&params(&[("k", &long_value)])).is_err());
        assert!(session_tags(&params(&[("k;", "v")])).is_err(), "charset");
        assert!(session_tags(&params(&[("email-operator/namespace", "billing-sandbox")])).is_ok());
        assert!(
            session_tags(&params(&[("Team", "a"), ("team", "b")])).is_err(),
            "case-insensitive duplicate"
        );
        let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        let refs: Vec<(&str, &str)> = fifty
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(session_tags(&params(&refs)).is_ok());
        let mut fifty_one = refs.clone();
        fifty_one.push(("k50", "v"));
        assert!(session_tags(&params(&fifty_one)).is_err());
    }
}
