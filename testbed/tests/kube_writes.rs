//! Writes against the stand-in, as the real server does them: create metadata, optimistic
//! concurrency, generation rules, the status subresource in both directions, patch types,
//! and reads with selectors and paging.

mod common;

use common::*;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn create_assigns_metadata_and_increasing_resource_versions() {
    let bed = start().await;
    let api = bed.widgets("default");
    let a = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .expect("create a");
    let mut generated = widget("", json!({"size": 2}));
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let b = api
        .create(&PostParams::default(), &generated)
        .await
        .expect("create generated");
    assert!(a.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    let name = b.metadata.name.clone().expect("name generated");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let rv = |o: &kube::api::DynamicObject| {
        o.metadata
            .resource_version
            .clone()
            .expect("rv")
            .parse::<u64>()
            .expect("numeric rv")
    };
    assert!(rv(&b) > rv(&a));
    // Defaults from the schema are applied on create.
    assert_eq!(a.data["spec"]["color"], "green");
    let again = api
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await;
    let status = status_of(again);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    let missing_ns = bed
        .widgets("nowhere")
        .create(&PostParams::default(), &widget("x", json!({"size": 1})))
        .await;
    assert_eq!(status_of(missing_ns).code, 404);
}

#[tokio::test]
async fn stale_update_conflicts() {
    let bed = start().await;
    let api = bed.widgets("default");
    let created = api
        .create(&PostParams::default(), &widget("w", json!({"size": 1})))
        .await
        .expect("create");
    let mut first = created.clone();
    first.data["spec"]["size"] = json!(2);
    let updated = api
        .replace("w", &PostParams::default(), &first)
        .await
        .expect("first update");
    assert_eq!(updated.data["spec"]["size"], 2);
    let mut stale = created.clone();
    stale.data["spec"]["size"] = json!(3);
    let status = status_of(api.replace("w", &PostParams::default(), &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    // A merge patch carrying a stale resourceVersion is a precondition failure too.
    let rv = created.metadata.resource_version.clone().expect("rv");
    let patch = json!({"metadata": {"resourceVersion": rv}, "spec": {"size": 4}});
    let status = status_of(
        api.patch("w", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(status.code, 409);
}

#[tokio::test]
async fn generation_moves_only_for_changes_outside_metadata_and_status() {
    let bed = start().await;
    let api = bed.widgets("default");
    api.create(&PostParams::default(), &widget("g", json!({"size": 1})))
        .await
        .expect("create");
    let labels = json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}});
    let o = api
        .patch("g", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("label patch");
    assert_eq!(
        o.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let status = json!({"status": {"phase": "Busy"}});
    let o = api
        .patch_status("g", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    assert_eq!(
        o.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );
    let before_rv = o.metadata.resource_version.clone();
    let same = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"size": 1}})),
        )
        .await
        .expect("no-op");
    assert_eq!(
        same.metadata.resource_version, before_rv,
        "a no-op patch writes nothing"
    );
    let o = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"size": 5}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(o.metadata.generation, Some(2));
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status_writes() {
    let bed = start().await;
    let api = bed.widgets("default");
    let mut w = widget("s", json!({"size": 1}));
    w.data["status"] = json!({"phase": "Ignored"});
    let created = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create");
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    // Writes to the main resource ignore .status.
    let both = json!({"spec": {"size": 7}, "status": {"phase": "FromMain"}});
    let o = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&both))
        .await
        .expect("main patch");
    assert_eq!(o.data["spec"]["size"], 7);
    assert!(o.data.get("status").is_none());

    // Writes to /status ignore everything else.
    let both = json!({"metadata": {"labels": {"l": "v"}}, "spec": {"size": 9}, "status": {"phase": "FromStatus"}});
    let o = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&both))
        .await
        .expect("status patch");
    assert_eq!(o.data["status"]["phase"], "FromStatus");
    assert_eq!(o.data["spec"]["size"], 7);
    assert!(o.metadata.labels.is_none());

    // PUT on /status likewise.
    let mut put = o.clone();
    put.data["spec"]["size"] = json!(50);
    put.data["status"]["phase"] = json!("Put");
    let o = api
        .replace_status("s", &PostParams::default(), &put)
        .await
        .expect("status put");
    assert_eq!(
        (
            o.data["spec"]["size"].clone(),
            o.data["status"]["phase"].clone()
        ),
        (json!(7), json!("Put"))
    );
}

#[tokio::test]
async fn json_patch_strategic_merge_and_list_selectors_with_paging() {
    let bed = start().await;
    let api = bed.widgets("default");
    for (i, tier) in ["front", "back", "front", "back", "front"]
        .iter()
        .enumerate()
    {
        let mut w = widget(&format!("w{i}"), json!({"size": i + 1}));
        w.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        api.create(&PostParams::default(), &w)
            .await
            .expect("create");
    }
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/size", "value": 1},
        {"op": "replace", "path": "/spec/size", "value": 11}
    ]))
    .expect("patch parses");
    let o = api
        .patch(
            "w0",
            &PatchParams::default(),
            &Patch::<()>::Json(ops.clone()),
        )
        .await
        .expect("json patch");
    assert_eq!(o.data["spec"]["size"], 11);
    assert_eq!(
        status_of(
            api.patch("w0", &PatchParams::default(), &Patch::<()>::Json(ops))
                .await
        )
        .code,
        422,
        "failed test op"
    );
    let o = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"color": "blue"}})),
        )
        .await
        .expect("strategic");
    assert_eq!(o.data["spec"]["color"], "blue");

    let front = api
        .list(&ListParams::default().labels("tier=front"))
        .await
        .expect("list");
    assert_eq!(front.items.len(), 3);
    let not_front = api
        .list(&ListParams::default().labels("tier notin (front)"))
        .await
        .expect("list");
    assert_eq!(not_front.items.len(), 2);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=w3"))
        .await
        .expect("list");
    assert_eq!(by_name.items.len(), 1);
    let bad = api.list(&ListParams::default().fields("spec.size=3")).await;
    assert_eq!(status_of(bad).code, 400);

    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(2);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        names.extend(page.items.iter().filter_map(|o| o.metadata.name.clone()));
        token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, vec!["w0", "w1", "w2", "w3", "w4"]);
    // Cluster-wide list across namespaces.
    let all: kube::Api<kube::api::DynamicObject> =
        kube::Api::all_with(bed.client.clone(), &widget_resource());
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("all")
            .items
            .len(),
        5
    );
}

#[tokio::test]
async fn dry_run_preconditions_and_expired_continue_tokens() {
    let bed = start_with(testbed::kube::KubeOptions {
        history: 5,
        ..Default::default()
    })
    .await;
    let api = bed.widgets("default");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let o = api
        .create(&dry, &widget("dry", json!({"size": 1})))
        .await
        .expect("dry-run create");
    assert_eq!(
        o.data["spec"]["color"], "green",
        "a dry run is admitted and defaulted"
    );
    assert!(
        api.get_opt("dry").await.expect("get").is_none(),
        "but not stored"
    );

    let created = api
        .create(&PostParams::default(), &widget("p", json!({"size": 1})))
        .await
        .expect("create");
    let wrong_uid = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let status = status_of(api.delete("p", &wrong_uid).await);
    assert_eq!(status.code, 409);
    assert!(
        status
            .message
            .contains("Precondition failed: UID in precondition: not-the-uid"),
        "{}",
        status.message
    );
    let right = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    api.delete("p", &right)
        .await
        .expect("delete with matching preconditions");

    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &widget(&format!("c{i}"), json!({"size": 1})),
        )
        .await
        .expect("create");
    }
    let page = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("page");
    let token = page.metadata.continue_.clone().expect("more pages");
    for size in 2..10 {
        api.patch(
            "c0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": size}})),
        )
        .await
        .expect("patch");
    }
    let status = status_of(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
}
