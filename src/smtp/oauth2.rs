//! OAuth 2.0 client-credentials tokens for XOAUTH2, cached until shortly before they expire.
//!
//! Errors name the endpoint, the HTTP status and the OAuth `error` code only: the client
//! secret and the token never appear in a message.

use super::{Failure, Secret};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refresh this long before the provider's expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// A client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
}

impl ClientCredentials {
    /// Cache key: everything that selects a token; the secret only as a digest.
    fn key(&self) -> String {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            self.client_secret.expose().as_bytes(),
        );
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}\n{}\n{}\n{hex}",
            self.token_url,
            self.client_id,
            self.scopes.join(" ")
        )
    }
}

/// Fetches and caches tokens.
pub struct TokenSource {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
    timeout: Duration,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source whose requests are bounded by `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("TLS setup for the token endpoint failed: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            cache: Mutex::new(HashMap::new()),
            timeout,
        })
    }

    /// A valid access token: from the cache, or fetched.
    pub async fn token(&self, creds: &ClientCredentials) -> Result<Secret, Failure> {
        let key = creds.key();
        if let Some((token, until)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned())
            && Instant::now() < until
        {
            return Ok(token);
        }
        let (token, lifetime) = self.fetch(creds).await?;
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (token.clone(), until));
        }
        Ok(token)
    }

    async fn fetch(&self, creds: &ClientCredentials) -> Result<(Secret, Duration), Failure> {
        let url = &creds.token_url;
        let failed = |detail: String| {
            Failure::AuthenticationFailed(format!("no OAuth 2.0 token from {url}: {detail}"))
        };
        // Built in a block: the serializer is not Send and must not live across an await.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &creds.client_id)
                .append_pair("client_secret", creds.client_secret.expose());
            if !creds.scopes.is_empty() {
                form.append_pair("scope", &creds.scopes.join(" "));
            }
            form.finish()
        };
        let request = hyper::Request::post(url.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| failed("tokenUrl is not a valid URL".into()))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| failed(format!("no answer within {}s", self.timeout.as_secs())))?
            .map_err(|e| failed(format!("request failed: {}", error_chain(&e))))?;
        let status = response.status();
        let body = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| failed("the response body did not arrive in time".into()))?
            .map_err(|_| failed("the response body could not be read".into()))?
            .to_bytes();
        let json: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let code = json
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no error code");
            return Err(failed(format!("HTTP {} ({code})", status.as_u16())));
        }
        let token = json
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed("the response has no access_token".into()))?;
        let lifetime = json
            .get("expires_in")
            .and_then(|e| {
                e.as_u64()
                    .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
            })
            .map_or(Duration::from_secs(300), Duration::from_secs);
        Ok((Secret::new(token), lifetime))
    }
}

/// An error and its causes in one line (connection errors hide the useful part in sources).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}
