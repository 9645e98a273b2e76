//! CustomResourceDefinitions: turning a CRD object into served [`ResourceType`]s, refusing
//! non-structural schemas on install (as kube-apiserver does), keeping the CRD's status
//! (`Established`, `NamesAccepted`) and the registry in step with stored CRDs, and the
//! built-in external-dns `DNSEndpoint` CRD.

use email_operator::openapi::{FieldError, FieldErrorKind};
use serde_json::{Value, json};

use super::cel_compile;
use super::meta;
use super::resources::{PrinterColumn, ResourceType, TypeKey};
use super::state::Inner;
use super::validation::go_quote;
use super::version::KubeVersion;

/// Parse a multi-document YAML (or JSON) file into its documents, skipping empty ones.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(vec![v]);
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn invalid(path: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind: FieldErrorKind::Invalid,
        message: message.into(),
    }
}

fn required(path: &str) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind: FieldErrorKind::Required,
        message: "Required value".into(),
    }
}

/// The served types a CRD defines, or the reasons kube-apiserver would refuse it.
pub fn types_from_crd(crd: &Value) -> Result<Vec<ResourceType>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let group = s(&spec, "group");
    let names = spec.get("names").cloned().unwrap_or(Value::Null);
    let plural = s(&names, "plural");
    let kind = s(&names, "kind");
    if group.is_empty() {
        errors.push(required("spec.group"));
    }
    if plural.is_empty() {
        errors.push(required("spec.names.plural"));
    }
    if kind.is_empty() {
        errors.push(required("spec.names.kind"));
    }
    let name = meta::name(crd);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errors.push(invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            errors.push(FieldError {
                path: "spec.scope".into(),
                kind: FieldErrorKind::Unsupported,
                message: format!(
                    "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                    other.unwrap_or("")
                ),
            });
            true
        }
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errors.push(invalid(
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count()
        != 1
    {
        errors.push(invalid(
            "spec.versions",
            "Invalid value: \"versions\": must have exactly one version marked as storage version",
        ));
    }
    let mut types = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vpath = format!("spec.versions[{i}]");
        let version = s(v, "name");
        if version.is_empty() {
            errors.push(required(&format!("{vpath}.name")));
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        match &schema {
            None => errors.push(FieldError {
                path: format!("{vpath}.schema.openAPIV3Schema"),
                kind: FieldErrorKind::Required,
                message: "Required value: schemas are required".into(),
            }),
            Some(schema) => {
                if let Err(violations) = super::structural::check_structural(schema) {
                    for violation in violations {
                        errors.push(structural_error(
                            &format!("{vpath}.schema.openAPIV3Schema"),
                            &violation,
                        ));
                    }
                }
            }
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: s(c, "name"),
                        type_: s(c, "type"),
                        format: s(c, "format"),
                        description: s(c, "description"),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: s(c, "jsonPath"),
                    })
                    .collect()
            })
            .unwrap_or_else(|| {
                vec![PrinterColumn {
                    name: "Age".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 0,
                    json_path: ".metadata.creationTimestamp".into(),
                }]
            });
        let singular = Some(s(&names, "singular"))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| kind.to_lowercase());
        let list_kind = Some(s(&names, "listKind"))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| format!("{kind}List"));
        types.push(ResourceType {
            group: group.clone(),
            version,
            kind: kind.clone(),
            list_kind,
            plural: plural.clone(),
            singular,
            namespaced,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status_subresource: v.pointer("/subresources/status").is_some(),
            schema,
            columns,
            crd: Some(name.to_string()),
            has_generation: true,
            view_of: None,
        });
    }
    if errors.is_empty() {
        Ok(types)
    } else {
        Err(errors)
    }
}

/// `check_structural` reports `relative.path: message`; anchor it under the version's schema.
fn structural_error(prefix: &str, violation: &str) -> FieldError {
    let (rel, message) = match violation.split_once(": ") {
        Some((rel, message)) if !rel.contains(' ') => (rel, message),
        _ => ("", violation),
    };
    let path = if rel.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{rel}")
    };
    let kind = if message.starts_with("Required value") {
        FieldErrorKind::Required
    } else if message.starts_with("Forbidden") {
        FieldErrorKind::Forbidden
    } else {
        FieldErrorKind::Invalid
    };
    FieldError {
        path,
        kind,
        message: message.to_string(),
    }
}

/// Validate a CRD about to be stored and fill in its status like the apiextensions
/// controllers do (names accepted, established, stored versions). `version` is the
/// Kubernetes version claimed: its CEL environment decides which functions rules may call.
pub fn prepare(crd: &mut Value, version: KubeVersion) -> Result<(), Vec<FieldError>> {
    types_from_crd(crd)?;
    let rule_errors = cel_rule_errors(crd, version);
    if !rule_errors.is_empty() {
        return Err(rule_errors);
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = meta::now_timestamp();
    let condition = |type_: &str, reason: &str, message: &str| json!({ "type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message });
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    });
    Ok(())
}

/// Every `x-kubernetes-validations` rule and `messageExpression` of every version's schema,
/// compiled against the CEL environment kube-apiserver uses for new rules at `version`
/// ([`cel_compile::compile`]); a rule calling an undeclared function is refused as
/// apiextensions-apiserver's `ValidateCustomResourceDefinitionOpenAPISchema` refuses it.
fn cel_rule_errors(crd: &Value, version: KubeVersion) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, v) in versions.iter().enumerate() {
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            schema_rule_errors(schema, &path, version, &mut errors);
        }
    }
    errors
}

fn schema_rule_errors(node: &Value, path: &str, version: KubeVersion, out: &mut Vec<FieldError>) {
    let rules = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        let text = |k: &str| {
            rule.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        // apiextensions-apiserver pkg/apiserver/schema/cel/compilation.go: "compilation
        // failed: " + the cel-go issues; a blank rule is not compiled.
        let expr = text("rule");
        if !expr.trim().is_empty()
            && let Some(issues) = cel_compile::compile(&expr, version)
        {
            out.push(invalid(
                &format!("{at}.rule"),
                format!(
                    "Invalid value: {}: compilation failed: {issues}",
                    go_validation_rule(rule)
                ),
            ));
        }
        let message_expr = text("messageExpression");
        if !message_expr.trim().is_empty()
            && let Some(issues) = cel_compile::compile(&message_expr, version)
        {
            out.push(invalid(
                &format!("{at}.messageExpression"),
                format!(
                    "Invalid value: {}: messageExpression compilation failed: {issues}",
                    go_validation_rule(rule)
                ),
            ));
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            schema_rule_errors(child, &format!("{path}.properties[{k}]"), version, out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get(key).filter(|c| c.is_object()) {
            schema_rule_errors(child, &format!("{path}.{key}"), version, out);
        }
    }
}

/// `%#v` of an `apiextensions.ValidationRule` (1.29 fields; pointers shown by value).
fn go_validation_rule(rule: &Value) -> String {
    let q = |k: &str| go_quote(rule.get(k).and_then(Value::as_str).unwrap_or(""));
    let reason = match rule.get("reason").and_then(Value::as_str) {
        Some(r) => format!("(*apiextensions.FieldValueErrorReason)({})", go_quote(r)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".into(),
    };
    let optional = match rule.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        q("rule"),
        q("message"),
        q("messageExpression"),
        q("fieldPath")
    )
}

/// Serve the types of a stored CRD (replacing the ones it defined before).
pub fn register(inner: &mut Inner, crd: &Value) {
    let name = meta::name(crd).to_string();
    inner
        .types
        .retain(|t| t.crd.as_deref() != Some(name.as_str()));
    if let Ok(types) = types_from_crd(crd) {
        inner.types.extend(types);
    }
}

/// A CRD is gone: stop serving its types and drop their objects.
pub fn unregister(inner: &mut Inner, crd: &Value) {
    let name = meta::name(crd).to_string();
    let keys: Vec<TypeKey> = inner
        .types
        .iter()
        .filter(|t| t.crd.as_deref() == Some(name.as_str()))
        .map(|t| t.key())
        .collect();
    inner
        .types
        .retain(|t| t.crd.as_deref() != Some(name.as_str()));
    for key in keys {
        inner.store.remove_all(&key);
    }
}

/// external-dns' `DNSEndpoint` CRD (externaldns.k8s.io/v1alpha1), as its Helm chart ships it.
pub fn dns_endpoint_crd() -> Value {
    let endpoint = json!({
        "type": "object",
        "properties": {
            "dnsName": { "type": "string" },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "providerSpecific": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": { "name": { "type": "string" }, "value": { "type": "string" } }
                }
            },
            "recordTTL": { "type": "integer", "format": "int64" },
            "recordType": { "type": "string" },
            "setIdentifier": { "type": "string" },
            "targets": { "type": "array", "items": { "type": "string" } }
        }
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "dnsendpoints.externaldns.k8s.io",
            "annotations": { "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/external-dns/pull/2007" }
        },
        "spec": {
            "group": "externaldns.k8s.io",
            "names": { "kind": "DNSEndpoint", "listKind": "DNSEndpointList", "plural": "dnsendpoints", "singular": "dnsendpoint" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "description": "DNSEndpoint is a contract that a user-specified CRD must implement to be used as a source for external-dns.",
                    "type": "object",
                    "properties": {
                        "apiVersion": { "type": "string" },
                        "kind": { "type": "string" },
                        "metadata": { "type": "object" },
                        "spec": {
                            "type": "object",
                            "properties": {
                                "endpoints": {
                                    "type": "array",
                                    "items": endpoint,
                                }
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": { "observedGeneration": { "type": "integer", "format": "int64" } }
                        }
                    }
                }}
            }]
        }
    })
}
