//! Structural OpenAPI v3 schemas, as kube-apiserver applies them to custom resources.
//!
//! [`admit`] is the admission a CRD's `openAPIV3Schema` gets on every write: prune unknown
//! fields, apply defaults, validate (types, enum, pattern, format, bounds, required,
//! nullable, list-type uniqueness) and evaluate the `x-kubernetes-validations` CEL rules
//! (transition rules only on updates). Errors carry the apiserver's field paths
//! (`spec.externalSmtp.port`, `spec.activeUsers[0]`, `spec.labels[key]`), cause types and
//! message wording. (The structural check a CRD's schema gets on install is the test bed's.)
//!
//! Pure: no I/O, no cluster. The API-server stand-in and the offline `plan` command share it.

mod format;
mod prune;
mod validate;

use kube::core::cel::{ErrorKind, Validator};
use serde_json::Value;

use validate::Path;

/// One invalid field, as a `Status` cause: `field`, `reason`, `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path like kube-apiserver's: `spec.externalSmtp.port`, `spec.activeUsers[0]`.
    pub path: String,
    pub kind: FieldErrorKind,
    /// The apiserver's detail text, e.g. `Required value` or
    /// `Invalid value: 70000: spec.port in body should be less than or equal to 65535`.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The cause types kube-apiserver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    /// A value outside an `enum`.
    Unsupported,
    TypeInvalid,
    TooLong,
    TooMany,
    Forbidden,
}

impl FieldErrorKind {
    /// The `reason` of a `Status` cause.
    pub fn reason(&self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Unsupported => "FieldValueNotSupported",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
        }
    }
}

/// Prune unknown fields, apply schema defaults, validate (types, enum, pattern, format,
/// minimum/maximum, minLength/maxLength, minItems/maxItems, required, nullable,
/// x-kubernetes-list-type map/set uniqueness) and then evaluate the x-kubernetes-validations
/// CEL rules (creation rules always; transition rules with oldSelf only when `old` is Some)
/// — returns the pruned+defaulted object or all errors.
///
/// As in kube-apiserver, the CEL rules are skipped when a *blocking* schema error was
/// found (unsupported enum value, required, too long, too many, wrong type); one more
/// error at path `<nil>` then says that some rules were not checked. Other schema errors
/// (pattern, format, bounds) are reported together with the CEL failures.
pub fn admit(
    schema: &Value,
    object: &Value,
    old: Option<&Value>,
) -> Result<Value, Vec<FieldError>> {
    let mut obj = object.clone();
    prune::prune(schema, &mut obj, true);
    prune::apply_defaults(schema, &mut obj);
    let mut errors = Vec::new();
    validate::validate(schema, &obj, &Path::root(), true, &mut errors);
    let blocking = errors.iter().any(|e| {
        matches!(
            e.kind,
            FieldErrorKind::Unsupported
                | FieldErrorKind::Required
                | FieldErrorKind::TooLong
                | FieldErrorKind::TooMany
                | FieldErrorKind::TypeInvalid
        )
    });
    if blocking {
        errors.push(FieldError {
            path: "<nil>".into(),
            kind: FieldErrorKind::Invalid,
            message: "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
        });
    } else if let Err(failures) = Validator::new().validate(schema, &obj, old) {
        for f in failures.iter() {
            errors.push(cel_error(
                schema,
                &f.field_path,
                &f.message,
                f.reason.as_deref(),
                &f.kind,
            ));
        }
    }
    if errors.is_empty() {
        Ok(obj)
    } else {
        Err(errors)
    }
}

fn cel_error(
    schema: &Value,
    path: &str,
    message: &str,
    reason: Option<&str>,
    kind: &ErrorKind,
) -> FieldError {
    let type_name = schema_at(schema, path)
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("object");
    let (kind, message) = match (reason, kind) {
        (Some("FieldValueForbidden"), _) => {
            (FieldErrorKind::Forbidden, format!("Forbidden: {message}"))
        }
        (Some("FieldValueRequired"), _) => (
            FieldErrorKind::Required,
            format!("Required value: {message}"),
        ),
        (_, ErrorKind::ValidationFailure) => (
            FieldErrorKind::Invalid,
            format!("Invalid value: \"{type_name}\": {message}"),
        ),
        _ => (
            FieldErrorKind::Invalid,
            format!("Invalid value: \"{type_name}\": {message}"),
        ),
    };
    FieldError {
        path: path.to_string(),
        kind,
        message,
    }
}

/// The schema node a dotted/indexed path leads to.
fn schema_at<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = schema;
    if path.is_empty() {
        return Some(node);
    }
    for part in path.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            node = node
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        }
        for _ in rest.matches('[') {
            node = node
                .get("items")
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["from", "port"],
                    "properties": {
                        "from": { "type": "string", "format": "email", "maxLength": 20 },
                        "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                        "delivery": { "type": "string", "enum": ["Default", "ExternalSmtp"], "default": "Default" },
                        "host": { "type": "string", "pattern": "^[a-z0-9.-]+$", "nullable": true },
                        "users": { "type": "array", "maxItems": 2, "items": { "type": "string" }, "x-kubernetes-list-type": "set" },
                        "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                        "identity": { "type": "string", "x-kubernetes-validations": [{ "rule": "self == oldSelf", "message": "identity is immutable" }] }
                    },
                    "x-kubernetes-validations": [{ "rule": "self.delivery != 'ExternalSmtp' || has(self.host)", "message": "host is required for ExternalSmtp" }]
                },
                "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
            }
        })
    }

    fn paths(errors: &[FieldError]) -> Vec<(&str, FieldErrorKind)> {
        errors.iter().map(|e| (e.path.as_str(), e.kind)).collect()
    }

    #[test]
    fn prunes_unknown_fields_and_applies_defaults() {
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"from": "a@b.com", "port": 25, "bogus": 1, "labels": {"k": "v"}}, "extra": true, "status": {"anything": {"goes": 1}}});
        let out = admit(&schema(), &obj, None).expect("valid");
        assert!(out["spec"].get("bogus").is_none());
        assert!(out.get("extra").is_none());
        assert_eq!(out["spec"]["delivery"], "Default");
        assert_eq!(out["metadata"]["labels"]["x"], "y");
        assert_eq!(out["status"]["anything"]["goes"], 1);
        assert_eq!(out["spec"]["labels"]["k"], "v");
    }

    #[test]
    fn reports_each_violation_with_the_apiserver_path_and_wording() {
        let obj = json!({"spec": {"from": "not-an-email", "port": 70000, "delivery": "Carrier", "users": ["a", "a", "b"], "labels": {"k": 1}}});
        let errs = admit(&schema(), &obj, None).expect_err("invalid");
        let got = paths(&errs);
        assert!(
            got.contains(&("spec.from", FieldErrorKind::Invalid)),
            "{errs:?}"
        );
        assert!(got.contains(&("spec.port", FieldErrorKind::Invalid)));
        assert!(got.contains(&("spec.delivery", FieldErrorKind::Unsupported)));
        assert!(got.contains(&("spec.users", FieldErrorKind::TooMany)));
        assert!(got.contains(&("spec.users[1]", FieldErrorKind::Invalid)));
        assert!(got.contains(&("spec.labels[k]", FieldErrorKind::TypeInvalid)));
        let port = errs
            .iter()
            .find(|e| e.path == "spec.port")
            .map(|e| e.message.clone())
            .unwrap_or_default();
        assert_eq!(
            port,
            "Invalid value: 70000: spec.port in body should be less than or equal to 65535"
        );
        let delivery = errs
            .iter()
            .find(|e| e.path == "spec.delivery")
            .map(|e| e.message.clone())
            .unwrap_or_default();
        assert_eq!(
            delivery,
            "Unsupported value: \"Carrier\": supported values: \"Default\", \"ExternalSmtp\""
        );
        assert_eq!(
            FieldErrorKind::Unsupported.reason(),
            "FieldValueNotSupported"
        );
    }

    #[test]
    fn required_type_length_pattern_and_nullable() {
        let errs = admit(&schema(), &json!({"spec": {"port": "25", "from": "averyveryverylong@example.com", "host": "UPPER"}}), None).expect_err("invalid");
        let got = paths(&errs);
        assert!(
            got.contains(&("spec.port", FieldErrorKind::TypeInvalid)),
            "{errs:?}"
        );
        assert!(got.contains(&("spec.from", FieldErrorKind::TooLong)));
        assert!(got.contains(&("spec.host", FieldErrorKind::Invalid)));
        let errs = admit(&schema(), &json!({"spec": {}}), None).expect_err("invalid");
        assert_eq!(
            paths(&errs),
            vec![
                ("spec.from", FieldErrorKind::Required),
                ("spec.port", FieldErrorKind::Required),
                ("<nil>", FieldErrorKind::Invalid)
            ]
        );
        assert!(
            admit(
                &schema(),
                &json!({"spec": {"from": "a@b.c", "port": 1, "host": null}}),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn cel_rules_and_transition_rules() {
        let errs = admit(
            &schema(),
            &json!({"spec": {"from": "a@b.c", "port": 1, "delivery": "ExternalSmtp"}}),
            None,
        )
        .expect_err("cel");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "spec");
        assert_eq!(
            errs[0].message,
            "Invalid value: \"object\": host is required for ExternalSmtp"
        );
        let old = json!({"spec": {"from": "a@b.c", "port": 1, "identity": "a.com"}});
        let new = json!({"spec": {"from": "a@b.c", "port": 1, "identity": "b.com"}});
        assert!(
            admit(&schema(), &new, None).is_ok(),
            "transition rules skip on create"
        );
        let errs = admit(&schema(), &new, Some(&old)).expect_err("immutable");
        assert_eq!(errs[0].path, "spec.identity");
        assert_eq!(
            errs[0].message,
            "Invalid value: \"string\": identity is immutable"
        );
        assert!(admit(&schema(), &old, Some(&old)).is_ok());
    }

    #[test]
    fn cel_runs_beside_non_blocking_errors_only() {
        // Pattern and bounds violations do not block CEL: both kinds are reported.
        let obj = json!({"spec": {"from": "a@b.c", "port": 1, "delivery": "ExternalSmtp", "host": "UPPER"}});
        let errs = admit(&schema(), &obj, None).expect_err("invalid");
        assert_eq!(
            paths(&errs),
            vec![("spec.host", FieldErrorKind::Invalid)],
            "host is set, so the CEL rule passes"
        );
        let obj = json!({"spec": {"from": "a@b.c", "port": 0, "delivery": "ExternalSmtp"}});
        let errs = admit(&schema(), &obj, None).expect_err("invalid");
        assert_eq!(
            paths(&errs),
            vec![
                ("spec.port", FieldErrorKind::Invalid),
                ("spec", FieldErrorKind::Invalid)
            ]
        );
        // A blocking error (enum) skips CEL and says so.
        let obj = json!({"spec": {"from": "a@b.c", "port": 1, "delivery": "Pigeon"}});
        let errs = admit(&schema(), &obj, None).expect_err("invalid");
        assert_eq!(
            paths(&errs),
            vec![
                ("spec.delivery", FieldErrorKind::Unsupported),
                ("<nil>", FieldErrorKind::Invalid)
            ]
        );
        assert!(
            errs[1]
                .message
                .contains("some validation rules were not checked")
        );
    }
}
