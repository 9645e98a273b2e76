//! The SES v2 wire protocol (restJson1, as aws-sdk-sesv2 speaks it): routes each HTTP request
//! to an operation, applies injected faults, counts the call, and writes the response.
//!
//! Routes (from the SDK's `operation/*/` request serializers):
//! `POST /v2/email/identities` CreateEmailIdentity · `GET|DELETE /v2/email/identities/{id}`
//! Get/DeleteEmailIdentity · `POST /v2/email/list-identities` ListEmailIdentities (older SDKs
//! and other clients: `GET /v2/email/identities?PageSize=&NextToken=`) ·
//! `PUT /v2/email/identities/{id}/mail-from` · `PUT /v2/email/identities/{id}/dkim/signing`
//! (also under `/v1/`) · `POST|DELETE|GET /v2/email/tags` Tag/Untag/ListTagsForResource ·
//! `GET /v2/email/account` GetAccount · `POST /v2/email/outbound-emails` SendEmail.
//! Any SigV4 signature is accepted; the region comes from its credential scope.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::SesState;
use super::errors::SesError;
use super::ops;
use super::regions::{DEFAULT_REGION, region_from_authorization};

/// The operations the stand-in serves (names as in the SES API and the call counters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    CreateEmailIdentity,
    GetEmailIdentity(String),
    ListEmailIdentities,
    ListEmailIdentitiesQuery,
    DeleteEmailIdentity(String),
    PutEmailIdentityMailFromAttributes(String),
    PutEmailIdentityDkimSigningAttributes(String),
    TagResource,
    UntagResource,
    ListTagsForResource,
    GetAccount,
    SendEmail,
    Unknown,
}

impl Operation {
    /// The API name, used as the counter label.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateEmailIdentity => "CreateEmailIdentity",
            Self::GetEmailIdentity(_) => "GetEmailIdentity",
            Self::ListEmailIdentities | Self::ListEmailIdentitiesQuery => "ListEmailIdentities",
            Self::DeleteEmailIdentity(_) => "DeleteEmailIdentity",
            Self::PutEmailIdentityMailFromAttributes(_) => "PutEmailIdentityMailFromAttributes",
            Self::PutEmailIdentityDkimSigningAttributes(_) => {
                "PutEmailIdentityDkimSigningAttributes"
            }
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::ListTagsForResource => "ListTagsForResource",
            Self::GetAccount => "GetAccount",
            Self::SendEmail => "SendEmail",
            Self::Unknown => "Unknown",
        }
    }

    /// Whether SES's management-API rate applies: every action but sending (and requests that
    /// are no action at all).
    pub fn is_management(&self) -> bool {
        !matches!(self, Self::SendEmail | Self::Unknown)
    }

    /// Maps a method and path to an operation.
    pub fn route(method: &Method, path: &str) -> Self {
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let id = |s: &str| s.to_string();
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["v2", "email", "identities"]) => Self::CreateEmailIdentity,
            ("GET", ["v2", "email", "identities"]) => Self::ListEmailIdentitiesQuery,
            ("POST", ["v2", "email", "list-identities"]) => Self::ListEmailIdentities,
            ("GET", ["v2", "email", "identities", name]) => Self::GetEmailIdentity(id(name)),
            ("DELETE", ["v2", "email", "identities", name]) => Self::DeleteEmailIdentity(id(name)),
            ("PUT", ["v2", "email", "identities", name, "mail-from"]) => {
                Self::PutEmailIdentityMailFromAttributes(id(name))
            }
            ("PUT", ["v1" | "v2", "email", "identities", name, "dkim", "signing"]) => {
                Self::PutEmailIdentityDkimSigningAttributes(id(name))
            }
            ("POST", ["v2", "email", "tags"]) => Self::TagResource,
            ("DELETE", ["v2", "email", "tags"]) => Self::UntagResource,
            ("GET", ["v2", "email", "tags"]) => Self::ListTagsForResource,
            ("GET", ["v2", "email", "account"]) => Self::GetAccount,
            ("POST", ["v2", "email", "outbound-emails"]) => Self::SendEmail,
            _ => Self::Unknown,
        }
    }
}

/// The single axum handler behind every SES route.
pub async fn dispatch(
    State(state): State<Arc<SesState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = Operation::route(&method, uri.path());
    let region = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(region_from_authorization)
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let query = query_pairs(uri.query());

    // SES's management rate applies on arrival, to every action but sending.
    let throttled = operation.is_management()
        && !state
            .limits
            .admit(&state.account_id, &region, std::time::Instant::now());
    let result = if throttled {
        Err(SesError::TooManyRequests)
    } else {
        let (latency, fault) = state.faults.decide();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(error) => Err(error),
            None => handle(&state, &operation, &region, &query, &body),
        }
    };
    let outcome = match &result {
        Ok(_) => "Success",
        Err(error) => error.code(),
    };
    state.calls.record(operation.name(), outcome);
    tracing::debug!(operation = operation.name(), %region, outcome, "ses call");

    let mut response = match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(SesError::UnknownOperation(_)) => {
            SesError::UnknownOperation(format!("{method} {}", uri.path())).into_response()
        }
        Err(error) => error.into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    response
}

fn handle(
    state: &SesState,
    operation: &Operation,
    region: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Value, SesError> {
    let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    match operation {
        Operation::CreateEmailIdentity => ops::create_email_identity(state, region, body),
        Operation::GetEmailIdentity(name) => ops::get_email_identity(state, region, name),
        Operation::ListEmailIdentities => ops::list_email_identities_post(state, region, body),
        Operation::ListEmailIdentitiesQuery => {
            let page_size = match param("PageSize") {
                None => None,
                Some(size) => Some(size.parse::<i64>().map_err(|_| {
                    SesError::BadRequest(format!("PageSize {size:?} is not a number."))
                })?),
            };
            ops::list_email_identities(state, region, page_size, param("NextToken"))
        }
        Operation::DeleteEmailIdentity(name) => ops::delete_email_identity(state, region, name),
        Operation::PutEmailIdentityMailFromAttributes(name) => {
            ops::put_mail_from(state, region, name, body)
        }
        Operation::PutEmailIdentityDkimSigningAttributes(name) => {
            ops::put_dkim_signing(state, region, name, body)
        }
        Operation::TagResource => ops::tag_resource(state, body),
        Operation::UntagResource => {
            let keys = query
                .iter()
                .filter(|(k, _)| k == "TagKeys")
                .map(|(_, v)| v.clone())
                .collect();
            ops::untag_resource(state, param("ResourceArn"), keys)
        }
        Operation::ListTagsForResource => ops::list_tags_for_resource(state, param("ResourceArn")),
        Operation::GetAccount => ops::get_account(state, region),
        Operation::SendEmail => ops::send_email(state, region, body),
        Operation::Unknown => Err(SesError::UnknownOperation(String::new())),
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes `%XX` escapes in a path segment (`+` stays a plus: paths are not form-encoded).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = segment.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn request_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let hex: String = (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_sdk_paths() {
        assert_eq!(
            Operation::route(&Method::GET, "/v2/email/identities/a%2Bb%40example.com"),
            Operation::GetEmailIdentity("a+b@example.com".into())
        );
        assert_eq!(
            Operation::route(
                &Method::PUT,
                "/v1/email/identities/example.com/dkim/signing"
            ),
            Operation::PutEmailIdentityDkimSigningAttributes("example.com".into())
        );
        assert_eq!(
            Operation::route(&Method::POST, "/v2/email/list-identities"),
            Operation::ListEmailIdentities
        );
        assert_eq!(
            Operation::route(&Method::PATCH, "/v2/email/tags"),
            Operation::Unknown
        );
    }
}
