//! Control API handlers: edit DNS, move the clock, set SES faults, read SES state.
//!
//! Every endpoint takes and returns JSON; errors are `{"error": "..."}` with a 4xx status.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ControlState;
use crate::ses::ConfirmError;
use crate::ses::account::{Standing, StandingChange};
use crate::ses::faults::FaultConfig;
use crate::ses::limits::LimitConfig;

/// A control API error: status plus message.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(message: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.to_string())
}

type Result<T> = std::result::Result<T, ApiError>;
type Shared = State<Arc<ControlState>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRecord {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    value: String,
    ttl: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRecord {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    identity: String,
    region: Option<String>,
}

/// `GET /healthz`.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `POST /dns/records` `{"name","type","value","ttl"?}` → the record as stored.
pub async fn add_record(State(state): Shared, Json(body): Json<AddRecord>) -> Result<Response> {
    let record = state
        .zone
        .add(&body.name, &body.record_type, &body.value, body.ttl)
        .await
        .map_err(bad_request)?;
    state.ses.recheck_now();
    Ok((StatusCode::CREATED, Json(json!(record))).into_response())
}

/// `DELETE /dns/records` `{"name","type","value"?}` → how many records were removed.
pub async fn remove_record(
    State(state): Shared,
    Json(body): Json<RemoveRecord>,
) -> Result<Json<Value>> {
    let removed = state
        .zone
        .remove(&body.name, &body.record_type, body.value.as_deref())
        .await
        .map_err(bad_request)?;
    if removed == 0 {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no {} record for {}",
                body.record_type.to_ascii_uppercase(),
                body.name
            ),
        ));
    }
    state.ses.recheck_now();
    Ok(Json(json!({ "removed": removed })))
}

/// `GET /dns/records` → every record in the zone.
pub async fn list_records(State(state): Shared) -> Json<Value> {
    Json(json!({ "records": state.zone.list().await }))
}

fn clock_body(state: &ControlState) -> Value {
    json!({
        "now": state.clock.now().to_rfc3339(),
        "offsetSeconds": state.clock.offset().num_milliseconds() as f64 / 1000.0,
    })
}

/// `GET /clock` → stand-in time and its offset from real time.
pub async fn get_clock(State(state): Shared) -> Json<Value> {
    Json(clock_body(&state))
}

/// `POST /clock/advance` `{"seconds"}` → the new stand-in time.
pub async fn advance_clock(State(state): Shared, Json(body): Json<Advance>) -> Result<Json<Value>> {
    if body.seconds < 0 {
        return Err(bad_request(
            "seconds must not be negative: the clock only moves forward",
        ));
    }
    let by =
        TimeDelta::try_seconds(body.seconds).ok_or_else(|| bad_request("seconds is too large"))?;
    state.clock.advance(by);
    state.ses.recheck_now();
    Ok(Json(clock_body(&state)))
}

/// `GET /ses/limits` → the request rate and identity quota in force.
pub async fn get_limits(State(state): Shared) -> Json<LimitConfig> {
    Json(state.ses.limits.get())
}

/// `PUT /ses/limits` `{"requestsPerSecond": n|null, "maxIdentitiesPerRegion": n}` → the new
/// limits.
pub async fn put_limits(
    State(state): Shared,
    Json(body): Json<LimitConfig>,
) -> Result<Json<LimitConfig>> {
    state.ses.limits.set(body).map(Json).map_err(bad_request)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionQuery {
    region: String,
}

/// `GET /ses/account?region=R` → the account's standing in that region.
pub async fn get_account(
    State(state): Shared,
    axum::extract::Query(query): axum::extract::Query<RegionQuery>,
) -> Json<Standing> {
    Json(state.ses.account.standing(&query.region))
}

/// `PUT /ses/account` `{"region", "productionAccessEnabled"?, "sendingEnabled"?,
/// "enforcementStatus"? (HEALTHY | PROBATION | SHUTDOWN), "max24HourSend"?, "maxSendRate"?}` →
/// the region's new standing. Granting or withdrawing production access also sets that mode's
/// quota unless one is given.
pub async fn put_account(
    State(state): Shared,
    Json(body): Json<StandingChange>,
) -> Result<Json<Standing>> {
    state
        .ses
        .account
        .change(body)
        .map(Json)
        .map_err(bad_request)
}

/// `GET /ses/faults` → the current fault settings.
pub async fn get_faults(State(state): Shared) -> Json<FaultConfig> {
    Json(state.ses.faults.get())
}

/// `PUT /ses/faults` `{"throttleRate","errorRate","latencyMs","seed"?}` → the new settings.
pub async fn put_faults(
    State(state): Shared,
    Json(body): Json<FaultConfig>,
) -> Result<Json<FaultConfig>> {
    state.ses.faults.set(body).map(Json).map_err(bad_request)
}

/// `GET /ses/calls` → `{"calls": {operation: {outcome: count}}, "total": n}`.
pub async fn get_calls(State(state): Shared) -> Json<Value> {
    let calls: BTreeMap<String, BTreeMap<String, u64>> = state.ses.calls.snapshot();
    let total: u64 = calls.values().flat_map(|outcomes| outcomes.values()).sum();
    Json(json!({ "calls": calls, "total": total }))
}

/// `DELETE /ses/calls` → resets the counters.
pub async fn reset_calls(State(state): Shared) -> StatusCode {
    state.ses.calls.reset();
    StatusCode::NO_CONTENT
}

/// `GET /ses/identities` → every identity in every region with its full state.
pub async fn list_identities(State(state): Shared) -> Json<Value> {
    let identities: Vec<Value> = state
        .ses
        .identities()
        .into_iter()
        .map(|(identity, verified_for_sending)| {
            let mut value = json!(identity);
            value["verifiedForSending"] = json!(verified_for_sending);
            value["arn"] = json!(format!(
                "arn:aws:ses:{}:{}:identity/{}",
                identity.region, state.ses.account_id, identity.name
            ));
            value
        })
        .collect();
    Json(json!({ "identities": identities }))
}

/// `GET /ses/outbox` → verification and sent messages, oldest first.
pub async fn outbox(State(state): Shared) -> Json<Value> {
    Json(json!({ "messages": state.ses.outbox() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpKey {
    access_key_id: String,
    secret_access_key: String,
}

/// `POST /ses/smtp-credentials` `{"accessKeyId","secretAccessKey"}` → `{"accessKeyId"}`: the
/// SES SMTP stand-in now accepts this key id with the SMTP password derived from the secret
/// for any region (the session's region is the one it was derived for). The secret is never
/// echoed.
pub async fn add_smtp_credentials(
    State(state): Shared,
    Json(body): Json<SmtpKey>,
) -> Result<Json<Value>> {
    state
        .ses
        .smtp_credentials
        .register(&body.access_key_id, &body.secret_access_key)
        .map_err(bad_request)?;
    Ok(Json(json!({ "accessKeyId": body.access_key_id })))
}

/// `POST /ses/confirm-email` `{"identity","region"?}` → the identity, now verified.
pub async fn confirm_email(State(state): Shared, Json(body): Json<Confirm>) -> Result<Json<Value>> {
    match state
        .ses
        .confirm_email(&body.identity, body.region.as_deref())
    {
        Ok(identity) => Ok(Json(json!(identity))),
        Err(error @ ConfirmError::NotFound(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(error @ ConfirmError::Expired(..)) => {
            Err(ApiError(StatusCode::CONFLICT, error.to_string()))
        }
        Err(error) => Err(bad_request(error)),
    }
}

/// `GET /sts/assumed` → how many `AssumeRole` requests arrived (`requests`, answered or not)
/// and every answered one, oldest first: role, session name, external id and session tags.
pub async fn assumed_roles(State(state): Shared) -> Json<Value> {
    let calls = state
        .sts
        .assumed
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let requests = state.sts.requests.load(std::sync::atomic::Ordering::SeqCst);
    Json(json!({ "requests": requests, "assumed": calls }))
}
