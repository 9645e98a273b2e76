//! Shared setup for the Kubernetes stand-in tests: start a server on an ephemeral port,
//! a `kube::Client` for it, a test CRD (`Widget`, with schema rules, CEL, a status
//! subresource and printer columns), raw HTTP helpers and bounded polling.
#![allow(dead_code)]

use std::time::Duration;

use http_body_util::BodyExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::{Client, Config};
use serde_json::Value;
use testbed::kube::{KubeOptions, KubeServer};

pub const WIDGET_CRD: &str = include_str!("widget-crd.yaml");

pub fn widget_crd() -> Value {
    serde_saphyr::from_str(WIDGET_CRD).expect("fixture parses")
}

pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("testbed.example.com", "v1", "Widget"),
        "widgets",
    )
}

pub struct Bed {
    pub server: KubeServer,
    pub client: Client,
}

impl Bed {
    pub fn widgets(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &widget_resource())
    }

    /// A raw request; returns the HTTP status and the JSON body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = req
            .body(kube::client::Body::from(body))
            .expect("request builds");
        let resp = self.client.send(req).await.expect("request sent");
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("body read")
            .to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, json)
    }
}

pub fn client_for(server: &KubeServer) -> Client {
    let mut config = Config::new(server.url().parse().expect("url parses"));
    config.default_namespace = "default".into();
    Client::try_from(config).expect("client builds")
}

pub async fn start_with(opts: KubeOptions) -> Bed {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = KubeServer::start(opts).await.expect("server starts");
    server
        .install_crd(widget_crd())
        .expect("widget CRD installs");
    let client = client_for(&server);
    Bed { server, client }
}

pub async fn start() -> Bed {
    start_with(KubeOptions::default()).await
}

/// Poll `check` every 20 ms until it returns Some, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn widget(name: &str, spec: Value) -> DynamicObject {
    let mut obj = DynamicObject::new(name, &widget_resource());
    obj.data = serde_json::json!({ "spec": spec });
    obj
}

/// The `Status` of a failed kube call.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
