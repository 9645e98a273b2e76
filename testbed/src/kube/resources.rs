//! The resource types the stand-in serves: built-in core/v1 (namespaces, secrets, configmaps,
//! serviceaccounts), events, leases, RBAC, the CRD type itself, and every version of every
//! installed CustomResourceDefinition.
//!
//! A [`ResourceType`] carries what routing, discovery, admission and Table output need:
//! group/version/kind, plural and short names, scope, status subresource, the
//! `openAPIV3Schema` (custom resources only) and the printer columns.

use serde_json::Value;

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `subresources.status` is enabled.
    pub status_subresource: bool,
    /// `openAPIV3Schema` for custom resources; `None` = accept any content.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` (custom resources) or the built-in columns.
    pub columns: Vec<PrinterColumn>,
    /// The CRD that defines this type (`plural.group`), if any.
    pub crd: Option<String>,
    /// Whether objects get `metadata.generation` (custom resources, CRDs, namespaces do not).
    pub has_generation: bool,
    /// Served from another type's storage and shown in this type's shape: core/v1 Events are
    /// events.k8s.io/v1 Events (one storage, two APIs, as in kube-apiserver). Read-only here.
    pub view_of: Option<TypeKey>,
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// Identifies the storage of one type: objects are shared by all versions of a group/resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeKey {
    pub group: String,
    pub plural: String,
}

impl ResourceType {
    pub fn key(&self) -> TypeKey {
        self.view_of.clone().unwrap_or_else(|| TypeKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        })
    }

    /// A stored object as this type serves it: in its version, and for the core/v1 view of
    /// events.k8s.io/v1 Events with the API server's field mapping.
    pub fn present(&self, mut stored: Value) -> Value {
        stored["apiVersion"] = Value::String(self.api_version());
        if self.view_of.is_some() && self.group.is_empty() && self.plural == "events" {
            return core_event(stored);
        }
        stored
    }

    /// The field selectors this type answers (kube-apiserver's field label sets: every type
    /// has `metadata.name` and `metadata.namespace`; core/v1 Events add `involvedObject.*`,
    /// `reason`, `reportingComponent`, `source` and `type`).
    pub fn field_labels(&self) -> &'static [&'static str] {
        if self.view_of.is_some() && self.plural == "events" {
            &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ]
        } else {
            &["metadata.name", "metadata.namespace"]
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the type is a custom resource (schema admission, CR strategy).
    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// ServiceAccounts serve the `token` subresource (TokenRequest).
    pub fn serves_token(&self) -> bool {
        self.group.is_empty() && self.plural == "serviceaccounts" && self.crd.is_none()
    }

    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            status_subresource: false,
            schema: None,
            columns: Vec::new(),
            crd: None,
            has_generation: false,
            view_of: None,
        }
    }
}

/// An events.k8s.io/v1 Event as core/v1 shows it (kubernetes `pkg/apis/events/v1`
/// conversion: regarding → involvedObject, note → message, reportingController →
/// reportingComponent, deprecatedSource/FirstTimestamp/LastTimestamp/Count → source,
/// firstTimestamp, lastTimestamp, count; the rest as it is).
fn core_event(e: Value) -> Value {
    let mut core = serde_json::Map::new();
    let Value::Object(fields) = e else {
        return Value::Null;
    };
    for (k, v) in fields {
        let name = match k.as_str() {
            "regarding" => "involvedObject",
            "note" => "message",
            "reportingController" => "reportingComponent",
            "deprecatedSource" => "source",
            "deprecatedFirstTimestamp" => "firstTimestamp",
            "deprecatedLastTimestamp" => "lastTimestamp",
            "deprecatedCount" => "count",
            other => other,
        };
        core.insert(name.to_string(), v);
    }
    core.entry("involvedObject")
        .or_insert_with(|| Value::Object(Default::default()));
    core.entry("source")
        .or_insert_with(|| Value::Object(Default::default()));
    Value::Object(core)
}

fn column(name: &str, type_: &str, json_path: &str, priority: i64) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority,
        json_path: json_path.into(),
    }
}

/// The built-in types served without any CRD.
pub fn builtins() -> Vec<ResourceType> {
    let mut ns = ResourceType::builtin("", "v1", "Namespace", "namespaces", false, &["ns"]);
    ns.status_subresource = true;
    ns.columns = vec![
        column("Status", "string", ".status.phase", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    let mut secret = ResourceType::builtin("", "v1", "Secret", "secrets", true, &[]);
    secret.columns = vec![
        column("Type", "string", ".type", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    let mut cm = ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"]);
    cm.columns = vec![column("Age", "date", ".metadata.creationTimestamp", 0)];
    let mut core_event = ResourceType::builtin("", "v1", "Event", "events", true, &["ev"]);
    core_event.view_of = Some(TypeKey {
        group: "events.k8s.io".into(),
        plural: "events".into(),
    });
    core_event.columns = vec![
        column("Type", "string", ".type", 0),
        column("Reason", "string", ".reason", 0),
        column("Object", "string", ".involvedObject.name", 0),
        column("Message", "string", ".message", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    let mut event = ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true, &["ev"]);
    event.columns = vec![
        column("Reason", "string", ".reason", 0),
        column("Object", "string", ".regarding.name", 0),
        column("Note", "string", ".note", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    let mut lease =
        ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, &[]);
    lease.columns = vec![
        column("Holder", "string", ".spec.holderIdentity", 0),
        column("Age", "date", ".metadata.creationTimestamp", 0),
    ];
    let mut crd = ResourceType::builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
    );
    crd.status_subresource = true;
    crd.has_generation = true;
    // Printed as the timestamp itself, as kube-apiserver does for CRDs.
    crd.columns = vec![column(
        "Created At",
        "string",
        ".metadata.creationTimestamp",
        0,
    )];
    let mut sa =
        ResourceType::builtin("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]);
    sa.columns = vec![column("Age", "date", ".metadata.creationTimestamp", 0)];
    let rbac = |kind: &str, plural: &str, namespaced: bool| {
        let mut t = ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            kind,
            plural,
            namespaced,
            &[],
        );
        t.columns = vec![column(
            "Created At",
            "string",
            ".metadata.creationTimestamp",
            0,
        )];
        t
    };
    vec![
        ns,
        secret,
        cm,
        sa,
        event,
        core_event,
        lease,
        crd,
        rbac("ClusterRole", "clusterroles", false),
        rbac("ClusterRoleBinding", "clusterrolebindings", false),
        rbac("Role", "roles", true),
        rbac("RoleBinding", "rolebindings", true),
    ]
}
