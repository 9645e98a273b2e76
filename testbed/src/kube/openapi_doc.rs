//! Minimal `/openapi/v3` documents: the index of group-versions and, per group-version, one
//! PATCH operation per kind declaring the `fieldValidation` query parameter, plus the
//! custom resources' schemas.
//!
//! `kubectl apply`/`create` validate by default ("strict"): they first ask the server's
//! OpenAPI v3 document whether the PATCH operation of the kind supports `fieldValidation`,
//! and then leave validation to the server. Custom resources' schemas are published under
//! `components.schemas` with their group-version-kind, which is what `kubectl explain` reads.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::ResourceType;
use super::state::Inner;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: `{"paths": {"apis/g/v": {"serverRelativeURL": "/openapi/v3/apis/g/v?hash=…"}}}`.
pub fn index(inner: &Inner) -> Value {
    let mut paths = BTreeMap::new();
    for t in &inner.types {
        let p = gv_path(&t.group, &t.version);
        // The hash changes whenever the served types change, so clients refetch.
        let hash = format!("{:016X}", fingerprint(inner, &t.group, &t.version));
        paths.insert(
            p.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}") }),
        );
    }
    json!({ "paths": paths })
}

fn fingerprint(inner: &Inner, group: &str, version: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in inner
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        (&t.kind, &t.plural, t.namespaced).hash(&mut h);
    }
    h.finish()
}

/// `com.example.testbed.v1.Widget`, the name kube-apiserver gives a CRD's schema.
fn schema_name(t: &ResourceType) -> String {
    let reversed: Vec<&str> = t.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), t.version, t.kind)
}

fn patch_path(t: &ResourceType) -> String {
    let base = format!("/{}", gv_path(&t.group, &t.version));
    if t.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
    } else {
        format!("{base}/{}/{{name}}", t.plural)
    }
}

/// `/openapi/v3/{api/v1 | apis/g/v}`, or None for an unknown group-version.
pub fn group_version(inner: &Inner, group: &str, version: &str) -> Option<Value> {
    let types = inner.types_in(group, version);
    if types.is_empty() {
        return None;
    }
    let query = |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in types {
        if let Some(schema) = &t.schema {
            let mut schema = schema.clone();
            schema["x-kubernetes-group-version-kind"] =
                json!([{ "group": t.group, "version": t.version, "kind": t.kind }]);
            schemas.insert(schema_name(t), schema);
        }
        paths.insert(
            patch_path(t),
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": { "group": t.group, "version": t.version, "kind": t.kind },
                    "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                    "responses": { "200": { "description": "OK" } }
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.34.0-testbed" },
        "paths": paths,
        "components": { "schemas": schemas }
    }))
}
