//! Admission like kube-apiserver's for custom resources: OpenAPI schema checks and CEL
//! rules answer 422 Invalid with per-field causes, unknown fields are pruned, and a CRD
//! whose schema is not structural is refused on install.

mod common;

use common::*;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn causes(body: &Value) -> Vec<(String, String, String)> {
    body.pointer("/details/causes")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (s("field"), s("reason"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}

const WIDGETS: &str = "/apis/testbed.example.com/v1/namespaces/default/widgets";

#[tokio::test]
async fn schema_violations_are_422_with_field_causes() {
    let bed = start().await;
    let bad = json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
        "spec": {"size": 500, "color": "purple", "serial": "nope", "owner": "not-an-email", "tags": ["a", "b", "c", "d"]}});
    let (code, body) = bed
        .raw(
            "POST",
            WIDGETS,
            &[("content-type", "application/json")],
            Some(bad),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["name"], "bad");
    assert_eq!(body["details"]["group"], "testbed.example.com");
    assert_eq!(body["details"]["kind"], "Widget");
    let got = causes(&body);
    let has = |field: &str, reason: &str| got.iter().any(|(f, r, _)| f == field && r == reason);
    assert!(has("spec.size", "FieldValueInvalid"), "{got:?}");
    assert!(has("spec.color", "FieldValueNotSupported"), "{got:?}");
    assert!(has("spec.serial", "FieldValueInvalid"), "{got:?}");
    assert!(has("spec.owner", "FieldValueInvalid"), "{got:?}");
    assert!(has("spec.tags", "FieldValueTooMany"), "{got:?}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Widget.testbed.example.com \"bad\" is invalid: ["),
        "{message}"
    );
    assert!(
        message.contains(
            "spec.size: Invalid value: 500: spec.size in body should be less than or equal to 100"
        ),
        "{message}"
    );

    let missing = json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget", "metadata": {"name": "m"}, "spec": {}});
    let (code, body) = bed
        .raw(
            "POST",
            WIDGETS,
            &[("content-type", "application/json")],
            Some(missing),
        )
        .await;
    assert_eq!(code, 422);
    let got = causes(&body);
    assert_eq!(
        got[0],
        (
            "spec.size".to_string(),
            "FieldValueRequired".to_string(),
            "Required value".to_string()
        )
    );
    // Like kube-apiserver, a blocking schema error skips the CEL rules and says so.
    assert_eq!(got[1].0, "<nil>");
    assert!(
        got[1].2.contains("some validation rules were not checked"),
        "{got:?}"
    );
    let wrong_type = json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget", "metadata": {"name": "t"}, "spec": {"size": "big"}});
    let (_, body) = bed
        .raw(
            "POST",
            WIDGETS,
            &[("content-type", "application/json")],
            Some(wrong_type),
        )
        .await;
    assert_eq!(causes(&body)[0].1, "FieldValueTypeInvalid");
}

#[tokio::test]
async fn cel_rules_and_transition_rules_answer_with_the_rule_message() {
    let bed = start().await;
    let api = bed.widgets("default");
    let status = status_of(
        api.create(
            &PostParams::default(),
            &widget("r", json!({"size": 20, "color": "red"})),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let causes = status.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec");
    assert_eq!(
        causes[0].message,
        "Invalid value: \"object\": red widgets must not be larger than 10"
    );
    assert!(
        status
            .message
            .contains("red widgets must not be larger than 10")
    );

    api.create(
        &PostParams::default(),
        &widget("s", json!({"size": 2, "serial": "AB-1"})),
    )
    .await
    .expect("create");
    let status = status_of(
        api.patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serial": "AB-2"}})),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec.serial: Invalid value: \"string\": serial is immutable"),
        "{}",
        status.message
    );
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 3}})),
    )
    .await
    .expect("other changes pass");
}

#[tokio::test]
async fn unknown_fields_are_pruned_on_create_and_update() {
    let bed = start().await;
    let api = bed.widgets("default");
    let mut w = widget("p", json!({"size": 1, "bogus": {"deep": true}}));
    w.data["topLevel"] = json!("x");
    let o = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create");
    assert!(o.data["spec"].get("bogus").is_none());
    assert!(o.data.get("topLevel").is_none());
    let o = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"extra": 1, "size": 2}})),
        )
        .await
        .expect("patch");
    assert!(o.data["spec"].get("extra").is_none());
    assert_eq!(o.data["spec"]["size"], 2);

    // fieldValidation=Strict refuses them instead, as kubectl's default validation asks.
    let obj = json!({"apiVersion": "testbed.example.com/v1", "kind": "Widget", "metadata": {"name": "strict"}, "spec": {"size": 1, "bogus": 2}});
    let (code, body) = bed
        .raw(
            "POST",
            &format!("{WIDGETS}?fieldValidation=Strict"),
            &[("content-type", "application/json")],
            Some(obj),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("strict decoding error: unknown field \"spec.bogus\""),
        "{body}"
    );
}

#[tokio::test]
async fn crds_install_over_the_api_and_non_structural_ones_are_refused() {
    let bed = start().await;
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let mut gadget = widget_crd();
    gadget["metadata"]["name"] = json!("gadgets.testbed.example.com");
    gadget["spec"]["names"] = json!({"kind": "Gadget", "plural": "gadgets", "singular": "gadget"});
    let (code, body) = bed
        .raw(
            "POST",
            crds,
            &[("content-type", "application/json")],
            Some(gadget.clone()),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let established = body["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    });
    assert!(established);
    let obj = json!({"apiVersion": "testbed.example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 1}});
    let (code, _) = bed
        .raw(
            "POST",
            "/apis/testbed.example.com/v1/namespaces/default/gadgets",
            &[("content-type", "application/json")],
            Some(obj),
        )
        .await;
    assert_eq!(code, 201, "the new type is served at once");

    let mut bad = gadget.clone();
    bad["metadata"]["name"] = json!("things.testbed.example.com");
    bad["spec"]["names"] = json!({"kind": "Thing", "plural": "things"});
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"properties": {"x": {"type": "string"}}});
    let (code, body) = bed
        .raw(
            "POST",
            crds,
            &[("content-type", "application/json")],
            Some(bad.clone()),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(
        message.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{message}"
    );
    assert!(bed.server.install_crd(bad).is_err());
    let (code, _) = bed
        .raw(
            "GET",
            "/apis/testbed.example.com/v1/namespaces/default/things",
            &[],
            None,
        )
        .await;
    assert_eq!(code, 404, "a refused CRD serves nothing");

    let (code, _) = bed
        .raw(
            "DELETE",
            &format!("{crds}/gadgets.testbed.example.com"),
            &[],
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = bed
        .raw(
            "GET",
            "/apis/testbed.example.com/v1/namespaces/default/gadgets",
            &[],
            None,
        )
        .await;
    assert_eq!(code, 404, "a deleted CRD's type is gone");
}
