//! API errors rendered the way kube-apiserver renders them: a `metav1.Status` body with
//! `reason`, `code`, `details` (name, group, kind, causes) and the matching HTTP status.
//!
//! Clients branch on these fields (kube-rs `ErrorResponse.reason`/`code`, kubectl's
//! `IsNotFound`/`IsConflict`), so the reasons and messages follow the real server's wording.

use email_operator::openapi::FieldError;
use serde_json::{Value, json};

/// A failed API request; becomes a `Status` object with `status: Failure`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// What an error is about: `group`, `kind` (the plural resource name, as the server says it),
/// `name` — the `details` of the Status.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub group: String,
    pub resource: String,
    pub name: String,
}

impl Subject {
    pub fn new(group: &str, resource: &str, name: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// `resource.group` (or `resource` for the core group), as in "secrets" or
    /// "emailsettings.email.ops.dev".
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({ "name": self.name, "kind": self.resource });
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(subject: &Subject) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", subject.qualified(), subject.name),
        );
        e.details = Some(subject.details());
        e
    }

    /// 404 for a path that names no known resource.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(subject: &Subject) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{}\" already exists",
                subject.qualified(),
                subject.name
            ),
        );
        e.details = Some(subject.details());
        e
    }

    pub fn conflict(subject: &Subject, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                subject.qualified(),
                subject.name
            ),
        );
        e.details = Some(subject.details());
        e
    }

    /// The optimistic-concurrency conflict for a stale `metadata.resourceVersion`.
    pub fn stale(subject: &Subject) -> Self {
        Self::conflict(
            subject,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 for a server-side apply that would take fields owned by other managers.
    pub fn apply_conflict(subject: &Subject, conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({ "reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}\""), "field": field })
            })
            .collect();
        let list: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        let summary = if list.len() == 1 {
            format!("Apply failed with 1 conflict: {}", list[0])
        } else {
            format!(
                "Apply failed with {} conflicts: {}",
                list.len(),
                list.join("\n")
            )
        };
        let mut details = subject.details();
        details["causes"] = Value::Array(causes);
        Self {
            code: 409,
            reason: "Conflict",
            message: summary,
            details: Some(details),
        }
    }

    /// 422 with one cause per field error, worded like kube-apiserver:
    /// `Kind.group "name" is invalid: path: message`.
    pub fn invalid(kind: &str, subject: &Subject, errors: &[FieldError]) -> Self {
        let qualified_kind = if subject.group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{}", subject.group)
        };
        let parts: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({ "reason": e.kind.reason(), "message": e.message, "field": e.path }))
            .collect();
        let mut details = json!({ "name": subject.name, "kind": kind, "causes": causes });
        if !subject.group.is_empty() {
            details["group"] = json!(subject.group);
        }
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} \"{}\" is invalid: {joined}", subject.name),
            details: Some(details),
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn forbidden(subject: &Subject, why: &str) -> Self {
        let mut e = Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: {why}",
                subject.qualified(),
                subject.name
            ),
        );
        e.details = Some(subject.details());
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
