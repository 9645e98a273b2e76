//! A stand-in for the Microsoft identity platform's token endpoint
//! (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`) for the OAuth 2.0 client
//! credentials grant, over HTTPS, issuing the tokens the XOAUTH2 [`super::smtp`] server accepts.
//!
//! What it enforces, and where it is written:
//! * The request (RFC 6749 §4.4.2, §2.3.1; Microsoft identity platform, "OAuth 2.0 client
//!   credentials flow", "access token request with a shared secret"): `POST` to
//!   `/{tenant}/oauth2/v2.0/token` of a known tenant, `Content-Type:
//!   application/x-www-form-urlencoded`, `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, and `scope` = a resource's identifier with `/.default` appended. No
//!   parameter may appear twice (RFC 6749 §3.1, §3.2). The body is read up to [`MAX_BODY`].
//! * The answers (RFC 6749 §5.1, §5.2; the AADSTS codes are Entra ID's): `200` with
//!   `token_type` `Bearer`, `expires_in`, `ext_expires_in` and `access_token`, and
//!   `Cache-Control: no-store`; `400 invalid_request` (unknown tenant AADSTS90002, malformed
//!   body AADSTS900144), `400 unsupported_grant_type` (AADSTS70003), `400 unauthorized_client`
//!   (an application the tenant does not have, AADSTS700016), `401 invalid_client` (a wrong
//!   secret, AADSTS7000215), `400 invalid_scope` (no `/.default` scope of a resource the
//!   application was granted, AADSTS1002012).
//!
//! Tokens are opaque random strings, valid for [`TokenServerOptions::lifetime`], remembered in
//! [`Tokens`] with the application and scope they were issued for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The largest request body read: a token request is a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// An application registered in a tenant, allowed the client credentials grant.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    /// The directory (tenant) id in the token URL.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The `/.default` scopes it may ask for (the resources it was granted permissions on).
    pub scopes: Vec<String>,
}

/// A token as issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The application it was issued to.
    pub client_id: String,
    /// The scope it was issued for.
    pub scope: String,
    /// When it stops being accepted.
    pub expires: Instant,
}

/// The tokens issued so far, shared with the servers that accept them.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
    refused: AtomicU64,
}

impl Tokens {
    /// Issues a fresh token.
    pub fn issue(&self, client_id: &str, scope: &str, lifetime: Duration) -> String {
        let token = crate::random_text(48);
        let issued = Issued {
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            expires: Instant::now() + lifetime,
        };
        if let Ok(mut all) = self.issued.lock() {
            all.insert(token.clone(), issued);
        }
        token
    }

    /// What `token` was issued for, while it has not expired.
    pub fn check(&self, token: &str) -> Option<Issued> {
        let all = self.issued.lock().ok()?;
        all.get(token)
            .filter(|issued| Instant::now() < issued.expires)
            .cloned()
    }

    /// How many tokens were issued.
    pub fn issued(&self) -> usize {
        self.issued.lock().map(|all| all.len()).unwrap_or_default()
    }

    /// How many token requests were refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// How to start a [`TokenServer`].
pub struct TokenServerOptions {
    /// Where to listen (port 0: ephemeral).
    pub addr: SocketAddr,
    /// The TLS configuration (a certificate for the endpoint's host name).
    pub tls: Arc<rustls::ServerConfig>,
    /// The applications it knows.
    pub clients: Vec<OAuthClient>,
    /// How long a token is valid (Entra ID: 3599 s).
    pub lifetime: Duration,
}

/// A running token endpoint. Dropping it stops accepting connections.
pub struct TokenServer {
    addr: SocketAddr,
    tokens: Arc<Tokens>,
    _stop: oneshot::Sender<()>,
}

struct Shared {
    clients: Vec<OAuthClient>,
    lifetime: Duration,
    tokens: Arc<Tokens>,
}

impl TokenServer {
    /// Binds and serves HTTPS until dropped.
    pub async fn start(options: TokenServerOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let tokens = Arc::new(Tokens::default());
        let shared = Arc::new(Shared {
            clients: options.clients,
            lifetime: options.lifetime,
            tokens: tokens.clone(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(options.tls);
        let (stop, mut stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(error) => {
                            tracing::warn!(%error, "token endpoint accept failed");
                            continue;
                        }
                    },
                };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    let Ok(Ok(tls)) = handshake else {
                        tracing::debug!("token endpoint: TLS handshake failed");
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&shared, request).await) }
                    });
                    let served = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                    if let Err(error) = served {
                        tracing::debug!(%error, "token endpoint connection ended");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            tokens,
            _stop: stop,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tokens it issued, for the servers that accept them.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens.clone()
    }
}

/// An OAuth error answer (RFC 6749 §5.2) with Entra ID's extra fields.
fn error(status: StatusCode, code: &str, aadsts: u32, description: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "error": code,
        "error_description": format!("AADSTS{aadsts}: {description}"),
        "error_codes": [aadsts],
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
    });
    respond(status, &body)
}

fn respond(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(
        http::header::PRAGMA,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

async fn answer(
    shared: &Shared,
    request: hyper::Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let response = decide(shared, request).await;
    if !response.status().is_success() {
        shared.tokens.refused.fetch_add(1, Ordering::Relaxed);
    }
    response
}

async fn decide(
    shared: &Shared,
    request: hyper::Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let tenant = request
        .uri()
        .path()
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .unwrap_or_default()
        .to_string();
    if !shared.clients.iter().any(|c| c.tenant == tenant) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if request.method() != Method::POST {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return response;
    }
    let form_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                900144,
                "The request body is too large.",
            );
        }
    };
    if !form_type {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    let mut form: HashMap<String, String> = HashMap::new();
    for (key, value) in form_urlencoded::parse(&body) {
        if form.insert(key.to_string(), value.to_string()).is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90014,
                &format!("The parameter '{key}' is included more than once."),
            );
        }
    }
    let param = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    match param("grant_type") {
        Some("client_credentials") => {}
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            );
        }
    }
    let Some(client_id) = param("client_id") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(client) = shared
        .clients
        .iter()
        .find(|c| c.tenant == tenant && c.client_id == client_id)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    if param("client_secret") != Some(client.client_secret.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        );
    }
    let scope = param("scope").unwrap_or_default();
    if !scope.ends_with("/.default") || !client.scopes.iter().any(|s| s == scope) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let token = shared.tokens.issue(client_id, scope, shared.lifetime);
    let seconds = shared.lifetime.as_secs();
    respond(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": token,
        }),
    )
}
