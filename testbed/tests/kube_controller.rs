//! A real `kube::runtime::Controller` against the stand-in: the CRD comes from kube-derive
//! (so its generated schema must pass the structural check), the controller reconciles an
//! object created after it started (seen through the watch) and patches status with
//! server-side apply; a second client sees that status, and a spec change is reconciled
//! again with the new generation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "controller.example.com",
    version = "v1",
    kind = "Sprocket",
    namespaced,
    status = "SprocketStatus"
)]
#[kube(printcolumn = r#"{"name":"Teeth", "type":"integer", "jsonPath":".spec.teeth"}"#)]
pub struct SprocketSpec {
    /// How many teeth.
    pub teeth: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SprocketStatus {
    pub observed_generation: Option<i64>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<Sprocket>, api: Arc<Api<Sprocket>>) -> Result<Action, ReconcileError> {
    let status = json!({
        "apiVersion": "controller.example.com/v1",
        "kind": "Sprocket",
        "status": { "observedGeneration": obj.metadata.generation, "message": format!("{} teeth", obj.spec.teeth) }
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply("sprocket-controller").force(),
        &Patch::Apply(&status),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<Sprocket>, _: &ReconcileError, _: Arc<Api<Sprocket>>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn controller_reconciles_through_the_watch() {
    let bed = start().await;
    let crd = serde_json::to_value(Sprocket::crd()).expect("crd serializes");
    bed.server
        .install_crd(crd)
        .expect("kube-derive CRD is structural and installs");

    let api: Api<Sprocket> = Api::namespaced(bed.client.clone(), "default");
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(api.clone()))
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    // A second, independent client observes the results.
    let observer: Api<Sprocket> = Api::namespaced(client_for(&bed.server), "default");
    let seen = |name: &'static str, generation: i64, message: &'static str| {
        let observer = observer.clone();
        async move {
            eventually(10, || {
                let observer = observer.clone();
                async move {
                    let s = observer.get(name).await.ok()?.status?;
                    (s.observed_generation == Some(generation) && s.message == message)
                        .then_some(())
                }
            })
            .await
        }
    };

    api.create(
        &PostParams::default(),
        &Sprocket::new("first", SprocketSpec { teeth: 3 }),
    )
    .await
    .expect("create first");
    assert!(
        seen("first", 1, "3 teeth").await.is_some(),
        "first object reconciled"
    );
    // The controller is past its initial list now: this one can only arrive by the watch.
    api.create(
        &PostParams::default(),
        &Sprocket::new("second", SprocketSpec { teeth: 12 }),
    )
    .await
    .expect("create second");
    assert!(
        seen("second", 1, "12 teeth").await.is_some(),
        "object created after start reconciled via the watch"
    );
    api.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"teeth": 13}})),
    )
    .await
    .expect("spec change");
    assert!(
        seen("second", 2, "13 teeth").await.is_some(),
        "spec change reconciled with the new generation"
    );
    running.abort();
}
