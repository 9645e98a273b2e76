//! What a request asks for in authorization's terms — kube-apiserver's `RequestInfoFactory`
//! plus the user, i.e. `authorizer.Attributes`:
//!
//! * `/api/v1/…` and `/apis/{group}/{version}/…` with a resource are resource requests;
//!   everything else (`/api`, `/apis/{group}`, `/version`, `/openapi/v3`, `/healthz`) is a
//!   non-resource request whose verb is the lower-case HTTP method.
//! * verbs: POST → create, GET/HEAD → get (list without a name, watch with `?watch=true`),
//!   PUT → update, PATCH → patch (server-side apply included), DELETE → delete
//!   (deletecollection without a name); `/watch/…` paths → watch.
//! * `/namespaces/{ns}` sets the namespace, also for the Namespace object itself; the third
//!   path segment after the resource is the subresource (`status`, `finalizers`, `token`).
//! * a list or watch whose `fieldSelector` pins `metadata.name` is authorized for that name,
//!   so `resourceNames` rules can allow it.

use std::collections::HashMap;

use http::Method;

use super::authn::UserInfo;

/// One request, as the authorizer sees it.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    /// The URL path (for non-resource requests).
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl Attributes {
    /// The same request with another verb (the create half of a server-side apply).
    pub fn with_verb(&self, verb: &str) -> Self {
        Self {
            verb: verb.into(),
            ..self.clone()
        }
    }
}

/// Path segments kube-apiserver does not treat as a resource after `/namespaces/{ns}`.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parse `method` + `path` (percent-decoded segments) + query into [`Attributes`].
pub fn parse(
    method: &Method,
    segments: &[String],
    path: &str,
    query: &HashMap<String, String>,
    user: UserInfo,
) -> Attributes {
    let mut a = Attributes {
        user,
        verb: method.as_str().to_ascii_lowercase(),
        resource_request: false,
        path: path.to_string(),
        api_group: String::new(),
        api_version: String::new(),
        namespace: String::new(),
        resource: String::new(),
        subresource: String::new(),
        name: String::new(),
    };
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    if s.len() < 3 {
        return a;
    }
    let mut parts: &[&str] = match s[0] {
        "api" => &s[1..],
        "apis" if s.len() >= 4 => {
            a.api_group = s[1].to_string();
            &s[2..]
        }
        _ => return a,
    };
    a.api_version = parts[0].to_string();
    parts = &parts[1..];
    let mut via_path = false;
    if matches!(parts[0], "watch" | "proxy") {
        if parts.len() < 2 {
            // kube-apiserver cannot parse it either; it gets no resource attributes.
            a.api_group.clear();
            a.api_version.clear();
            return a;
        }
        a.verb = parts[0].to_string();
        parts = &parts[1..];
        via_path = true;
    } else {
        a.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }
    a.resource_request = true;
    if parts[0] == "namespaces" && parts.len() > 1 {
        a.namespace = parts[1].to_string();
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts = &parts[2..];
        }
    }
    if parts.len() >= 3 && a.verb != "proxy" {
        a.subresource = parts[2].to_string();
    }
    if parts.len() >= 2 {
        a.name = parts[1].to_string();
    }
    a.resource = parts[0].to_string();
    if !via_path && a.name.is_empty() && a.verb == "get" {
        // The stand-in serves `watch=true|1` as a watch, and so authorizes it.
        a.verb = if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
            "watch"
        } else {
            "list"
        }
        .to_string();
        if let Some(name) = query
            .get("fieldSelector")
            .and_then(|f| exact_name(f))
            .filter(|n| valid_path_segment(n))
        {
            a.name = name;
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    a
}

/// The name a field selector requires (`metadata.name=x` or `==x` among its terms).
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        if term.contains("!=") {
            return None;
        }
        let (field, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        (field.trim() == "metadata.name").then(|| value.trim().to_string())
    })
}

fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}
