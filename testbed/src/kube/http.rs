//! HTTP serving and routing: authenticates the request ([`super::authn`]), authorizes it by
//! RBAC ([`super::rbac`]) on its [`super::request_info`] attributes, parses kube-apiserver URL
//! paths into discovery documents or resource requests
//! (`/api/v1/namespaces/{ns}/{plural}/{name}/status`, …), dispatches by verb, renders results
//! and [`ApiError`]s as JSON responses, and writes the audit log when one is kept.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio::task::JoinSet;

use super::audit::Outcome;
use super::error::{ApiError, ApiResult};
use super::patch::{self, PatchKind};
use super::read::{self, ReadParams};
use super::request_info::{self, Attributes};
use super::resources::ResourceType;
use super::selector::Selector;
use super::state::State;
use super::table::View;
use super::write::{self, WriteOpts};
use super::{authn, delete, discovery, openapi_doc, protobuf, rbac, token, watch};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Accept connections until `stop` flips, then close every open connection.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut stop: signal::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        let stop = stop.clone();
                        async move { Ok::<_, Infallible>(handle(state, req, stop).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(body.to_string());
    let mut resp = Response::new(Full::new(bytes).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

/// A request for a resource (collection or object, maybe a subresource).
#[derive(Debug)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    Version,
    Health,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Resource(ResourcePath),
    OpenApiIndex,
    OpenApiGroupVersion(String, String),
}

/// The percent-decoded, non-empty segments of a URL path.
fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

fn route(segs: &[String]) -> Option<Route> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (group, version, rest) = match s.as_slice() {
        ["version"] => return Some(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => return Some(Route::Health),
        ["api"] => return Some(Route::CoreVersions),
        ["openapi", "v3"] => return Some(Route::OpenApiIndex),
        ["openapi", "v3", "api", v] => {
            return Some(Route::OpenApiGroupVersion(String::new(), v.to_string()));
        }
        ["openapi", "v3", "apis", g, v] => {
            return Some(Route::OpenApiGroupVersion(g.to_string(), v.to_string()));
        }
        ["apis"] => return Some(Route::GroupList),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v] => return Some(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Route::ResourceList(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        // /namespaces/{ns} and /namespaces/{ns}/status address the namespace itself.
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && *plural == "status" && tail.is_empty()) =>
        {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural.to_string(), None, None),
        [plural, name] => (plural.to_string(), Some(name.to_string()), None),
        [plural, name, sub] => (
            plural.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        ),
        _ => return None,
    };
    Some(Route::Resource(ResourcePath {
        group,
        version,
        namespace,
        plural,
        name,
        subresource,
    }))
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What the audit log records about a request besides its response code.
#[derive(Default)]
struct Note {
    attributes: Option<Attributes>,
    decision: &'static str,
    reason: String,
    message: String,
    streaming: bool,
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    stop: signal::Receiver<bool>,
) -> Response<Body> {
    let uri = req.uri().to_string();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (resp, note) = serve_request(state.clone(), req, stop).await;
    if let Some(log) = &state.audit {
        log.record(
            &uri,
            &user_agent,
            note.attributes.as_ref(),
            &Outcome {
                code: resp.status().as_u16(),
                decision: note.decision,
                reason: &note.reason,
                message: &note.message,
                streaming: note.streaming,
            },
        );
    }
    resp
}

/// Authenticate, authorize, then serve; the [`Note`] is for the audit log.
async fn serve_request(
    state: Arc<State>,
    req: Request<Incoming>,
    stop: signal::Receiver<bool>,
) -> (Response<Body>, Note) {
    let mut note = Note::default();
    let failed = |e: ApiError, mut note: Note| {
        note.message = e.message.clone();
        (error_response(&e), note)
    };
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let accept = header_str(header::ACCEPT);
    let content_type = header_str(header::CONTENT_TYPE);
    let user_agent = header_str(header::USER_AGENT);
    let authorization = header_str(header::AUTHORIZATION);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs = segments(&path);

    let Some(user) = authn::authenticate(&state.lock(), &authorization) else {
        note.message = "Unauthorized".into();
        return (json_response(401, &authn::unauthorized_status()), note);
    };
    let attributes = request_info::parse(&method, &segs, &path, &query, user);
    let decision = rbac::authorize(&state.lock(), &attributes);
    note.attributes = Some(attributes.clone());
    note.decision = if decision.allowed { "allow" } else { "forbid" };
    note.reason = decision.reason.clone();
    if !decision.allowed {
        return failed(rbac::refusal(&attributes, &decision), note);
    }

    let Some(route) = route(&segs) else {
        return failed(ApiError::no_route(), note);
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return failed(
                ApiError::bad_request(format!("reading the request body: {e}")),
                note,
            );
        }
    };
    // Bodies are JSON (or YAML for apply). Typed clients (`kubectl create secret …`) send
    // protobuf: decoded for the kinds they create; anything else is told it is unsupported.
    let base_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = if body.is_empty() {
        body
    } else if base_type == "application/vnd.kubernetes.protobuf" && method == Method::POST {
        match protobuf::decode(&body) {
            Ok(v) => Bytes::from(v.to_string()),
            Err(e) => {
                return failed(
                    ApiError::unsupported_media_type(&format!("{content_type}: {e}")),
                    note,
                );
            }
        }
    } else if base_type.contains("protobuf") || base_type.contains("cbor") {
        return failed(ApiError::unsupported_media_type(&content_type), note);
    } else {
        body
    };
    // Fault injection: a slow LIST of this resource.
    if attributes.verb == "list"
        && let Some((_, delay)) = state
            .slow_lists
            .iter()
            .find(|(plural, _)| *plural == attributes.resource)
    {
        tokio::time::sleep(*delay).await;
    }
    let ctx = Ctx {
        state,
        query,
        accept,
        content_type,
        user_agent,
        method,
        body,
        stop,
        attributes,
    };
    match dispatch(&ctx, route) {
        Ok(Reply::Json(code, v)) => (json_response(code, &v), note),
        Ok(Reply::Stream(rx)) => {
            note.streaming = true;
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp.headers_mut().insert(
                header::TRANSFER_ENCODING,
                header::HeaderValue::from_static("chunked"),
            );
            (resp, note)
        }
        Err(e) => failed(e, note),
    }
}

struct Ctx {
    state: Arc<State>,
    query: HashMap<String, String>,
    accept: String,
    content_type: String,
    user_agent: String,
    method: Method,
    body: Bytes,
    stop: signal::Receiver<bool>,
    /// The request as authorized (user, verb, resource …).
    attributes: Attributes,
}

enum Reply {
    Json(u16, Value),
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

impl Ctx {
    fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    fn write_opts(&self) -> WriteOpts {
        // Like the real server: an explicit fieldManager, else the user agent's program name.
        let manager = self
            .q("fieldManager")
            .map(str::to_string)
            .unwrap_or_else(|| {
                let agent = self.user_agent.split('/').next().unwrap_or("").trim();
                if self.method == Method::PATCH
                    && matches!(
                        PatchKind::from_content_type(&self.content_type),
                        Ok(PatchKind::Apply)
                    )
                {
                    String::new()
                } else if agent.is_empty() {
                    "unknown".into()
                } else {
                    agent.to_string()
                }
            });
        WriteOpts {
            manager,
            dry_run: self.q("dryRun").is_some_and(|d| !d.is_empty()),
            strict: self.q("fieldValidation") == Some("Strict"),
            user: Some(self.attributes.user.clone()),
        }
    }

    fn view(&self) -> View {
        View::from_accept(&self.accept, self.q("includeObject"))
    }
}

fn dispatch(ctx: &Ctx, route: Route) -> ApiResult<Reply> {
    let inner_doc = |v: Option<Value>| {
        v.map(|v| Reply::Json(200, v))
            .ok_or_else(ApiError::no_route)
    };
    match route {
        Route::Version => Ok(Reply::Json(
            200,
            discovery::version(ctx.state.lock().kube_version),
        )),
        Route::Health => Ok(Reply::Json(200, Value::String("ok".into()))),
        Route::CoreVersions => Ok(Reply::Json(200, discovery::core_versions())),
        Route::GroupList => Ok(Reply::Json(200, discovery::group_list(&ctx.state.lock()))),
        Route::Group(g) => inner_doc(discovery::group(&ctx.state.lock(), &g)),
        Route::ResourceList(g, v) => inner_doc(discovery::resource_list(&ctx.state.lock(), &g, &v)),
        Route::Resource(p) => resource(ctx, p),
        Route::OpenApiIndex => Ok(Reply::Json(200, openapi_doc::index(&ctx.state.lock()))),
        Route::OpenApiGroupVersion(g, v) => {
            inner_doc(openapi_doc::group_version(&ctx.state.lock(), &g, &v))
        }
    }
}

fn resource(ctx: &Ctx, p: ResourcePath) -> ApiResult<Reply> {
    let rt: ResourceType = ctx
        .state
        .lock()
        .find(&p.group, &p.version, &p.plural)
        .ok_or_else(ApiError::no_route)?;
    // Namespaced types may be listed/watched across namespaces; nothing else crosses scope.
    if (!rt.namespaced && p.namespace.is_some())
        || (rt.namespaced
            && p.namespace.is_none()
            && (p.name.is_some() || ctx.method != Method::GET))
    {
        return Err(ApiError::no_route());
    }
    let status = match p.subresource.as_deref() {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some("token") if rt.serves_token() && ctx.method == Method::POST => {
            let body = patch::parse_body(&ctx.body, false)?;
            let name = p.name.as_deref().unwrap_or_default();
            let ns = p.namespace.as_deref().unwrap_or_default();
            let answer = token::request(&mut ctx.state.lock(), ns, name, &body)?;
            return Ok(Reply::Json(201, answer));
        }
        Some(_) => return Err(ApiError::no_route()),
    };
    let ns = p.namespace.clone().unwrap_or_default();
    let opts = ctx.write_opts();
    let m = &ctx.method;
    if rt.view_of.is_some() && !matches!(*m, Method::GET | Method::DELETE) {
        // A simplification (docs/testing/kubernetes-stand-in.md): the core/v1 view of events.k8s.io/v1 Events is read (and
        // deleted) here; writes go through events.k8s.io/v1, as the operator's do.
        return Err(ApiError::method_not_allowed(format!(
            "the test bed serves {} {} read-only; write them through events.k8s.io/v1",
            rt.api_version(),
            rt.plural
        )));
    }
    match (m, p.name.as_deref()) {
        (&Method::GET, Some(name)) => Ok(Reply::Json(
            200,
            read::get(&ctx.state.lock(), &rt, &ns, name, &ctx.view())?,
        )),
        (&Method::GET, None) if ctx.flag("watch") => {
            let params = watch::WatchParams {
                namespace: p.namespace.clone(),
                selector: Selector::parse_for(
                    rt.field_labels(),
                    ctx.q("labelSelector"),
                    ctx.q("fieldSelector"),
                )?,
                resource_version: ctx.q("resourceVersion").map(str::to_string),
                bookmarks: ctx.flag("allowWatchBookmarks"),
                send_initial_events: ctx.flag("sendInitialEvents"),
                view: ctx.view(),
                timeout: ctx
                    .q("timeoutSeconds")
                    .and_then(|t| t.parse().ok())
                    .map(Duration::from_secs),
            };
            Ok(Reply::Stream(watch::start(
                &ctx.state,
                &rt,
                params,
                ctx.stop.clone(),
            )?))
        }
        (&Method::GET, None) => {
            let params = ReadParams {
                label_selector: ctx.q("labelSelector"),
                field_selector: ctx.q("fieldSelector"),
                limit: ctx.q("limit").and_then(|l| l.parse().ok()),
                continue_token: ctx.q("continue"),
                view: ctx.view(),
            };
            Ok(Reply::Json(
                200,
                read::list(&ctx.state.lock(), &rt, p.namespace.as_deref(), &params)?,
            ))
        }
        (&Method::POST, None) => {
            let body = patch::parse_body(&ctx.body, true)?;
            let created = write::create(&mut ctx.state.lock(), &rt, &ns, body, &opts)?;
            Ok(Reply::Json(201, created))
        }
        (&Method::PUT, Some(name)) => {
            let body = patch::parse_body(&ctx.body, true)?;
            Ok(Reply::Json(
                200,
                write::update(&mut ctx.state.lock(), &rt, &ns, name, status, body, &opts)?,
            ))
        }
        (&Method::PATCH, Some(name)) => {
            let kind = PatchKind::from_content_type(&ctx.content_type)?;
            let mut inner = ctx.state.lock();
            // A server-side apply that creates the object is authorized as a create too.
            if kind == PatchKind::Apply
                && !status
                && inner.store.get(&rt.key(), &ns, name).is_none()
            {
                rbac::check_create_on_patch(&inner, &ctx.attributes)?;
            }
            let (code, obj) = patch::patch(
                &mut inner,
                &rt,
                &ns,
                name,
                status,
                kind,
                &ctx.body,
                ctx.flag("force"),
                &opts,
            )?;
            Ok(Reply::Json(code, obj))
        }
        (&Method::DELETE, Some(name)) => {
            let options = if ctx.body.is_empty() {
                Value::Object(Default::default())
            } else {
                patch::parse_body(&ctx.body, false)?
            };
            let mut options = options;
            if let Some(policy) = ctx.q("propagationPolicy") {
                options["propagationPolicy"] = Value::String(policy.to_string());
            }
            Ok(Reply::Json(
                200,
                delete::delete(&mut ctx.state.lock(), &rt, &ns, name, &options, &opts)?,
            ))
        }
        (&Method::DELETE, None) => {
            let selector = Selector::parse_for(
                rt.field_labels(),
                ctx.q("labelSelector"),
                ctx.q("fieldSelector"),
            )?;
            let mut inner = ctx.state.lock();
            let names: Vec<String> = inner
                .store
                .list(&rt.key(), p.namespace.as_deref())
                .filter(|o| selector.matches(o))
                .map(|o| super::meta::name(o).to_string())
                .collect();
            for name in names {
                delete::delete(
                    &mut inner,
                    &rt,
                    &ns,
                    &name,
                    &Value::Object(Default::default()),
                    &opts,
                )?;
            }
            Ok(Reply::Json(
                200,
                serde_json::json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" }),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}
