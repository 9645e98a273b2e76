//! TokenRequest — `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`, what
//! `kubectl create token` and kube's `Api::<ServiceAccount>::create_token_request` call — and
//! the same minting for the Rust API. Tokens are opaque (not JWTs); `spec.audiences` is echoed
//! but not checked; `expirationSeconds` defaults to 3600 and must be at least 600.

use chrono::Duration;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, Subject};
use super::meta;
use super::resources::TypeKey;
use super::state::Inner;
use super::write::{self, WriteOpts};

const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

fn service_accounts() -> TypeKey {
    TypeKey {
        group: String::new(),
        plural: "serviceaccounts".into(),
    }
}

/// Mint a token for an existing ServiceAccount; returns the token and its expiry (RFC 3339).
pub fn mint(
    inner: &mut Inner,
    namespace: &str,
    name: &str,
    ttl: Duration,
) -> ApiResult<(String, String)> {
    let uid = inner
        .store
        .get(&service_accounts(), namespace, name)
        .map(|sa| meta::uid(sa).to_string())
        .ok_or_else(|| ApiError::not_found(&Subject::new("", "serviceaccounts", name)))?;
    let (token, expires) = inner.tokens.mint(namespace, name, &uid, ttl);
    Ok((token, expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// Create the namespace and the ServiceAccount unless they exist.
pub fn ensure_service_account(inner: &mut Inner, namespace: &str, name: &str) -> ApiResult<()> {
    let opts = WriteOpts::system();
    if let Some(rt) = inner.builtin("", "namespaces")
        && inner.store.get(&rt.key(), "", namespace).is_none()
    {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        write::create(inner, &rt, "", ns, &opts)?;
    }
    if let Some(rt) = inner.builtin("", "serviceaccounts")
        && inner.store.get(&rt.key(), namespace, name).is_none()
    {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}});
        write::create(inner, &rt, namespace, sa, &opts)?;
    }
    Ok(())
}

/// Answer a TokenRequest: 201 with the token in `status`.
pub fn request(inner: &mut Inner, namespace: &str, name: &str, body: &Value) -> ApiResult<Value> {
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != "TokenRequest"
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind (TokenRequest)"
        )));
    }
    let seconds = match body.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if seconds < 600 {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: format!(
                "TokenRequest.authentication.k8s.io {name:?} is invalid: spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            ),
            details: Some(
                json!({"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
                "causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"), "field": "spec.expirationSeconds"}]}),
            ),
        });
    }
    let (token, expires) = mint(inner, namespace, name, Duration::seconds(seconds))?;
    let audiences = body
        .pointer("/spec/audiences")
        .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
        .unwrap_or_else(|| json!([DEFAULT_AUDIENCE]));
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": meta::now_timestamp()},
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": body.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null),
        },
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}
