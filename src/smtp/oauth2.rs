//! OAuth 2.0 client-credentials tokens for XOAUTH2, cached until shortly before they expire.
//!
//! Errors name the endpoint, the HTTP status and the OAuth `error` code only: the client
//! secret and the token never appear in a message. The token URL must be `https://`; a
//! tenant's goes only where [`Egress`] lets tenants' connections go (checked on the resolved
//! address, which is the one connected to), and the answer is read up to [`MAX_BODY`].

use super::egress::Egress;
use super::{Failure, Secret};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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

/// The largest token response read: a token answer is a few kilobytes; a server streaming
/// without end is cut off here instead of filling the operator's memory.
pub const MAX_BODY: usize = 64 * 1024;

/// Fetches and caches tokens.
pub struct TokenSource {
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
    timeout: Duration,
    /// Where a tenant's token URL may go.
    egress: Egress,
    /// The web PKI roots, and the platform's own (`--oauth2-ca-file`).
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source whose requests are bounded by `timeout`, trusting the web PKI and
    /// `extra_roots` (PEM).
    pub fn new(
        timeout: Duration,
        egress: Egress,
        extra_roots: Option<&[u8]>,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_roots {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the token endpoints' CA file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the token endpoints' CA file: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup for the token endpoints failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cache: Mutex::new(HashMap::new()),
            timeout,
            egress,
            tls: Arc::new(tls),
        })
    }

    /// A valid access token: from the cache, or fetched. `restricted`: the token URL is the
    /// tenant's, and goes only where tenants' connections may ([`Egress`]).
    pub async fn token(
        &self,
        creds: &ClientCredentials,
        restricted: bool,
    ) -> Result<Secret, Failure> {
        let key = creds.key();
        if let Some((token, until)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned())
            && Instant::now() < until
        {
            return Ok(token);
        }
        let failed = |detail: String| {
            Failure::AuthenticationFailed(format!(
                "no OAuth 2.0 token from {}: {detail}",
                creds.token_url
            ))
        };
        let (token, lifetime) = tokio::time::timeout(self.timeout, self.fetch(creds, restricted))
            .await
            .map_err(|_| failed(format!("no answer within {}s", self.timeout.as_secs())))??;
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (token.clone(), until));
        }
        Ok(token)
    }

    async fn fetch(
        &self,
        creds: &ClientCredentials,
        restricted: bool,
    ) -> Result<(Secret, Duration), Failure> {
        let url = &creds.token_url;
        let failed = |detail: String| {
            Failure::AuthenticationFailed(format!("no OAuth 2.0 token from {url}: {detail}"))
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| failed("tokenUrl is not a valid URL".into()))?;
        if uri.scheme_str() != Some("https") {
            return Err(failed("tokenUrl must be an https:// URL".into()));
        }
        let host = uri
            .host()
            .ok_or_else(|| failed("tokenUrl has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        // Routed by `--connect-to`; the TLS name and the Host header stay the URL's.
        let addrs = self
            .egress
            .connect_addresses(&host, port, restricted, self.timeout)
            .await
            .map_err(|e| match e {
                Failure::UnknownHost(_) => failed(format!("{host} cannot be resolved")),
                other => other,
            })?;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(t) => {
                    tcp = Some(t);
                    break;
                }
                Err(e) => {
                    tracing::info!(host, port, %addr, error = %e, "token endpoint: connect failed")
                }
            }
        }
        let tcp = tcp.ok_or_else(|| failed("could not connect".into()))?;
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.clone())
                .map_err(|_| failed("tokenUrl's host is not a valid TLS server name".into()))?,
        };
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| failed(format!("TLS: {}", super::describe_tls_error(&e))))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed(format!("request failed: {}", error_chain(&e))))?;
        let driver = tokio::spawn(conn);
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
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let request = hyper::Request::post(path)
            .header("host", authority)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| failed("tokenUrl is not a valid URL".into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(format!("request failed: {}", error_chain(&e))));
        let result = match response {
            Ok(response) => read(response, &failed).await,
            Err(e) => Err(e),
        };
        driver.abort();
        result
    }
}

/// The token in a response, read with [`MAX_BODY`] as the bound.
async fn read(
    response: hyper::Response<hyper::body::Incoming>,
    failed: &impl Fn(String) -> Failure,
) -> Result<(Secret, Duration), Failure> {
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            failed(format!(
                "the response is not a token answer of at most {} KiB",
                MAX_BODY / 1024
            ))
        })?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let code = json
            .get("error")
            .and_then(|e| e.as_str())
            .filter(|c| {
                c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            })
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
