//! Deletion as the real server and controller-manager do it: finalizers hold an object in
//! `deletionTimestamp` until the last one is removed, none may be added while deleting,
//! owned objects are garbage-collected with their owner, and namespaces empty themselves.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

#[tokio::test]
async fn finalizers_hold_deletion_until_the_last_is_removed() {
    let bed = start().await;
    let api = bed.widgets("default");
    let mut w = widget("f", json!({"size": 1}));
    w.metadata.finalizers = Some(vec!["a.example.com/one".into(), "a.example.com/two".into()]);
    api.create(&PostParams::default(), &w)
        .await
        .expect("create");

    let deleted = api
        .delete("f", &DeleteParams::default())
        .await
        .expect("delete");
    let pending = deleted.left().expect("still there while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let o = api.get("f").await.expect("still readable");
    assert!(o.metadata.deletion_timestamp.is_some());

    // No new finalizers once deleting.
    let add = json!({"metadata": {"finalizers": ["a.example.com/one", "a.example.com/two", "a.example.com/three"]}});
    let status = status_of(
        api.patch("f", &PatchParams::default(), &Patch::Merge(&add))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        status.message
    );

    let drop_one = json!({"metadata": {"finalizers": ["a.example.com/two"]}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&drop_one))
        .await
        .expect("remove one");
    assert!(api.get_opt("f").await.expect("get").is_some());
    let drop_all = json!({"metadata": {"finalizers": null}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&drop_all))
        .await
        .expect("remove last");
    assert!(
        api.get_opt("f").await.expect("get").is_none(),
        "gone with the last finalizer"
    );

    // Without finalizers an object goes at once.
    api.create(&PostParams::default(), &widget("plain", json!({"size": 1})))
        .await
        .expect("create");
    let gone = api
        .delete("plain", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        gone.is_right(),
        "immediate deletion answers a Success status"
    );
    assert!(api.get_opt("plain").await.expect("get").is_none());
}

#[tokio::test]
async fn owned_secrets_and_dns_endpoints_are_collected_with_their_owner() {
    let bed = start().await;
    let api = bed.widgets("default");
    let owner = api
        .create(&PostParams::default(), &widget("owner", json!({"size": 1})))
        .await
        .expect("create");
    let owner_ref = json!([{
        "apiVersion": "testbed.example.com/v1", "kind": "Widget", "name": "owner",
        "uid": owner.metadata.uid.clone().expect("uid"), "controller": true, "blockOwnerDeletion": true
    }]);
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "owned", "ownerReferences": owner_ref}, "stringData": {"k": "v"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret create");
    let unowned: Secret =
        serde_json::from_value(json!({"metadata": {"name": "unowned"}})).expect("secret");
    secrets
        .create(&PostParams::default(), &unowned)
        .await
        .expect("secret create");
    let dns_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("externaldns.k8s.io", "v1alpha1", "DNSEndpoint"),
        "dnsendpoints",
    );
    let endpoints: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), "default", &dns_ar);
    let mut ep = DynamicObject::new("owned-records", &dns_ar);
    ep.metadata.owner_references = serde_json::from_value(owner_ref.clone()).ok();
    ep.data = json!({"spec": {"endpoints": [{"dnsName": "x.example.com", "recordType": "TXT", "targets": ["v=spf1 -all"], "recordTTL": 300}]}});
    endpoints
        .create(&PostParams::default(), &ep)
        .await
        .expect("endpoint create");

    api.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    let collected = eventually(5, || async {
        let s = secrets.get_opt("owned").await.ok()?;
        let e = endpoints.get_opt("owned-records").await.ok()?;
        (s.is_none() && e.is_none()).then_some(())
    })
    .await;
    assert!(
        collected.is_some(),
        "owned Secret and DNSEndpoint collected"
    );
    assert!(
        secrets.get_opt("unowned").await.expect("get").is_some(),
        "unowned objects stay"
    );
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents_and_namespace_deletion_empties_it() {
    let bed = start().await;
    let namespaces: Api<Namespace> = Api::all(bed.client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "tenant"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("ns create");
    let api = bed.widgets("tenant");
    let owner = api
        .create(&PostParams::default(), &widget("owner", json!({"size": 1})))
        .await
        .expect("create");
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), "tenant");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "kept", "ownerReferences": [{
        "apiVersion": "testbed.example.com/v1", "kind": "Widget", "name": "owner", "uid": owner.metadata.uid.clone().expect("uid")
    }]}}))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    api.delete("owner", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    let kept = secrets.get("kept").await.expect("orphaned secret stays");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    let mut finalized = widget("held", json!({"size": 1}));
    finalized.metadata.finalizers = Some(vec!["x.example.com/hold".into()]);
    api.create(&PostParams::default(), &finalized)
        .await
        .expect("create");
    namespaces
        .delete("tenant", &DeleteParams::default())
        .await
        .expect("ns delete");
    let terminating = namespaces.get("tenant").await.expect("ns still there");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let refused = bed
        .widgets("tenant")
        .create(&PostParams::default(), &widget("late", json!({"size": 1})))
        .await;
    assert_eq!(status_of(refused).code, 403);
    let emptied = eventually(5, || async {
        secrets.get_opt("kept").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(emptied.is_some());
    assert!(
        api.get("held")
            .await
            .expect("held by finalizer")
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    let gone = eventually(5, || async {
        namespaces
            .get_opt("tenant")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "namespace goes once empty");
}
