//! Discovery (what `kubectl` and `kube::Discovery` read) and server-side Table output built
//! from `additionalPrinterColumns`.

mod common;

use common::*;
use kube::api::{Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

#[tokio::test]
async fn kube_discovery_finds_builtin_and_custom_types() {
    let bed = start().await;
    let discovery = Discovery::new(bed.client.clone())
        .run()
        .await
        .expect("discovery runs");
    let find = |group: &str, kind: &str| {
        discovery
            .groups()
            .find(|g| g.name() == group)
            .and_then(|g| {
                g.recommended_resources()
                    .into_iter()
                    .find(|(ar, _)| ar.kind == kind)
            })
    };
    let (widget, caps) = find("testbed.example.com", "Widget").expect("Widget discovered");
    assert_eq!(widget.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"),
        "{:?}",
        caps.subresources
    );
    for (group, kind) in [
        ("", "Secret"),
        ("", "ConfigMap"),
        ("", "Namespace"),
        ("events.k8s.io", "Event"),
        ("coordination.k8s.io", "Lease"),
        ("externaldns.k8s.io", "DNSEndpoint"),
    ] {
        assert!(find(group, kind).is_some(), "{group}/{kind} discovered");
    }
    let version = bed.client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");
    let (_, list) = bed
        .raw("GET", "/apis/testbed.example.com/v1", &[], None)
        .await;
    let widgets = list["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "widgets").cloned())
        .unwrap_or(Value::Null);
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(widgets["categories"], json!(["testbed"]));
}

#[tokio::test]
async fn table_output_uses_the_printer_columns() {
    let bed = start().await;
    let api = bed.widgets("default");
    api.create(
        &PostParams::default(),
        &widget("t", json!({"size": 5, "color": "blue"})),
    )
    .await
    .expect("create");
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    api.patch_status("t", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    api.create(&PostParams::default(), &widget("u", json!({"size": 6})))
        .await
        .expect("create");
    let accept = [(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    )];
    let (code, table) = bed
        .raw(
            "GET",
            "/apis/testbed.example.com/v1/namespaces/default/widgets",
            &accept,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .map(|c| c.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["Name", "Size", "Color", "Ready", "Age"]);
    let rows = table["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2);
    let cells = rows[0]["cells"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        &cells[..4],
        &[json!("t"), json!(5), json!("blue"), json!("True")]
    );
    assert!(
        cells[4].as_str().is_some_and(|age| age.ends_with('s')),
        "{cells:?}"
    );
    assert_eq!(rows[1]["cells"][3], Value::Null, "no Ready condition yet");
    assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
    let (_, one) = bed
        .raw(
            "GET",
            "/apis/testbed.example.com/v1/namespaces/default/widgets/u",
            &accept,
            None,
        )
        .await;
    assert_eq!(one["rows"][0]["cells"][2], "green");
}

#[tokio::test]
async fn metadata_api_and_metadata_watcher() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams};
    use kube::runtime::watcher::{self, Event};
    let bed = start().await;
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), "default");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "smtp"}, "stringData": {"password": "p"}}),
    )
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    let list = secrets
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("smtp"));
    let (_, raw) = bed
        .raw(
            "GET",
            "/api/v1/namespaces/default/secrets/smtp",
            &[(
                "accept",
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            )],
            None,
        )
        .await;
    assert_eq!(raw["kind"], "PartialObjectMetadata");
    assert!(
        raw.get("data").is_none(),
        "no secret data in the metadata view"
    );

    let metadata: Api<kube::core::PartialObjectMeta<Secret>> =
        Api::namespaced(bed.client.clone(), "default");
    let mut stream = watcher::watcher(metadata, watcher::Config::default()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("in time")
        {
            Some(Ok(Event::InitApply(m))) => initial.push(m.metadata.name.unwrap_or_default()),
            Some(Ok(Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(initial, vec!["smtp"]);
    secrets
        .patch(
            "smtp",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "rotated"}})),
        )
        .await
        .expect("rotate");
    let seen = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("in time")
        {
            Some(Ok(Event::Apply(m))) => break m,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(seen.metadata.name.as_deref(), Some("smtp"));
    // stringData is folded into data, as the real server does.
    let stored = secrets.get("smtp").await.expect("get");
    assert!(stored.string_data.is_none());
    let password = stored
        .data
        .and_then(|d| d.get("password").cloned())
        .expect("data.password");
    assert_eq!(password.0, b"rotated".to_vec());
}
