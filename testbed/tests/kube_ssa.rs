//! Server-side apply: create-and-update by one manager, conflicts between managers and
//! `force`, removal of fields a manager stops applying, and the single-manager status
//! apply kube-rs controllers use.

mod common;

use common::*;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

fn applied(spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
}

#[tokio::test]
async fn apply_creates_then_updates_and_removes_dropped_fields() {
    let bed = start().await;
    let api = bed.widgets("default");
    let pp = PatchParams::apply("team-a");
    let o = api
        .patch(
            "w",
            &pp,
            &Patch::Apply(applied(
                json!({"size": 3, "owner": "a@example.com", "tags": ["x"]}),
            )),
        )
        .await
        .expect("apply create");
    assert_eq!(o.metadata.generation, Some(1));
    assert_eq!(o.data["spec"]["owner"], "a@example.com");
    let managed = o.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("team-a"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

    // Re-applying without `owner` removes it (team-a owned it alone); `color` stays: it was defaulted.
    let o = api
        .patch(
            "w",
            &pp,
            &Patch::Apply(applied(json!({"size": 4, "tags": ["x", "y"]}))),
        )
        .await
        .expect("apply update");
    assert_eq!(o.data["spec"]["size"], 4);
    assert!(o.data["spec"].get("owner").is_none(), "{:?}", o.data);
    assert_eq!(o.data["spec"]["tags"], json!(["x", "y"]));
    assert_eq!(o.metadata.generation, Some(2));

    // Identical re-apply is a no-op.
    let again = api
        .patch(
            "w",
            &pp,
            &Patch::Apply(applied(json!({"size": 4, "tags": ["x", "y"]}))),
        )
        .await
        .expect("same");
    assert_eq!(again.metadata.resource_version, o.metadata.resource_version);
}

#[tokio::test]
async fn conflicting_managers_need_force() {
    let bed = start().await;
    let api = bed.widgets("default");
    api.patch(
        "w",
        &PatchParams::apply("team-a"),
        &Patch::Apply(applied(json!({"size": 3}))),
    )
    .await
    .expect("a applies");
    // Same value: shared ownership, no conflict.
    api.patch(
        "w",
        &PatchParams::apply("team-b"),
        &Patch::Apply(applied(json!({"size": 3, "color": "blue"}))),
    )
    .await
    .expect("b shares size");
    let status = status_of(
        api.patch(
            "w",
            &PatchParams::apply("team-b"),
            &Patch::Apply(applied(json!({"size": 5}))),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("conflict with \"team-a\""),
        "{}",
        status.message
    );
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|c| c.reason == "FieldManagerConflict" && c.field == ".spec.size"),
        "{causes:?}"
    );
    let o = api
        .patch(
            "w",
            &PatchParams::apply("team-b").force(),
            &Patch::Apply(applied(json!({"size": 5}))),
        )
        .await
        .expect("forced");
    assert_eq!(o.data["spec"]["size"], 5);
    assert!(
        o.data["spec"].get("color").is_some(),
        "dropped by b but still defaulted/owned"
    );
    // team-a lost .spec.size: its next apply of another value conflicts with team-b.
    let status = status_of(
        api.patch(
            "w",
            &PatchParams::apply("team-a"),
            &Patch::Apply(applied(json!({"size": 6}))),
        )
        .await,
    );
    assert!(status.message.contains("team-b"), "{}", status.message);
}

#[tokio::test]
async fn single_manager_status_apply_is_exact() {
    let bed = start().await;
    let api = bed.widgets("default");
    api.create(&PostParams::default(), &widget("w", json!({"size": 1})))
        .await
        .expect("create");
    let pp = PatchParams::apply("widget-controller").force();
    let status = |s: serde_json::Value| {
        Patch::Apply(json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget", "status": s}))
    };
    let first = json!({"observedGeneration": 1, "phase": "Ready", "conditions": [
        {"type": "Ready", "status": "True", "reason": "Done", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Degraded", "status": "False", "reason": "Fine", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    ]});
    let o = api
        .patch_status("w", &pp, &status(first.clone()))
        .await
        .expect("status apply");
    assert_eq!(o.data["status"], first);
    assert_eq!(o.metadata.generation, Some(1));
    // The next apply replaces the status exactly: dropped fields and list items go.
    let second = json!({"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "False", "reason": "Broken", "message": "no", "lastTransitionTime": "2026-01-02T00:00:00Z"}
    ]});
    let o = api
        .patch_status("w", &pp, &status(second.clone()))
        .await
        .expect("status apply");
    assert_eq!(o.data["status"], second);
    assert_eq!(o.data["spec"]["size"], 1, "spec untouched");
    let entry = o
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("widget-controller"))
        .expect("entry");
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    // Apply to /status of a missing object is 404, not a create.
    assert_eq!(
        status_of(api.patch_status("missing", &pp, &status(second)).await).code,
        404
    );
}
