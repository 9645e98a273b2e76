//! Authentication: who a request is, from its bearer token, as kube-apiserver's token
//! authenticators decide it.
//!
//! * The static token [`ADMIN_TOKEN`] (in every kubeconfig the stand-in writes for its admin)
//!   is [`ADMIN_USER`] in `system:masters`, which authorization never refuses.
//! * Service-account tokens are minted by TokenRequest (`POST
//!   /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`, what `kubectl create token`
//!   calls) or by `KubeServer::service_account_token`. Like bound tokens they name
//!   `system:serviceaccount:<ns>:<name>` in the groups `system:serviceaccounts`,
//!   `system:serviceaccounts:<ns>` and `system:authenticated`, expire, and stop working once
//!   their ServiceAccount is deleted (they are bound to its uid).
//! * Any other bearer token is refused: `401 Unauthorized`.
//! * A request with no bearer token is the admin (so tools and tests that send none keep
//!   working) unless [`Anonymous::Rbac`] makes it `system:anonymous`, as kube-apiserver's
//!   `--anonymous-auth` does.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::meta;
use super::resources::TypeKey;
use super::state::Inner;

/// The static token of the admin user.
pub const ADMIN_TOKEN: &str = "testbed";
/// The admin's user name (group `system:masters`).
pub const ADMIN_USER: &str = "testbed-admin";

/// Who a request without a bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// The admin: in-process tests and tools that send no credentials keep full access.
    #[default]
    Admin,
    /// `system:anonymous` in `system:unauthenticated`, authorized by RBAC like anyone else.
    Rbac,
}

/// An authenticated user, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn admin() -> Self {
        Self {
            name: ADMIN_USER.into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        Self {
            name: service_account_user(namespace, name),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Members of `system:masters` bypass RBAC, as with kube-apiserver's privileged-group
    /// authorizer.
    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// `system:serviceaccount:<namespace>:<name>`
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A minted service-account token.
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
    expires: DateTime<Utc>,
}

/// The service-account tokens issued so far.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, Issued>,
}

impl Tokens {
    /// A fresh token for the ServiceAccount `namespace/name` whose uid is `uid`.
    pub fn mint(
        &mut self,
        namespace: &str,
        name: &str,
        uid: &str,
        ttl: Duration,
    ) -> (String, DateTime<Utc>) {
        let token = format!(
            "testbed-sa.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let expires = Utc::now() + ttl;
        self.issued.insert(
            token.clone(),
            Issued {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.into(),
                expires,
            },
        );
        (token, expires)
    }
}

fn service_accounts() -> TypeKey {
    TypeKey {
        group: String::new(),
        plural: "serviceaccounts".into(),
    }
}

/// The user of a request given its `Authorization` header; None = 401 Unauthorized.
pub fn authenticate(inner: &Inner, authorization: &str) -> Option<UserInfo> {
    // As kube-apiserver's bearer-token authenticator splits it; other schemes (Basic …) are
    // not served, so such a request is anonymous.
    let mut parts = authorization.trim().splitn(3, ' ');
    let token = match (parts.next(), parts.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        _ => return Some(anonymous(inner)),
    };
    if token.is_empty() {
        return None;
    }
    if token == ADMIN_TOKEN {
        return Some(UserInfo::admin());
    }
    let issued = inner.tokens.issued.get(token)?;
    if issued.expires <= Utc::now() {
        return None;
    }
    // Bound to the ServiceAccount: gone (or re-created with another uid) = invalid.
    let sa = inner
        .store
        .get(&service_accounts(), &issued.namespace, &issued.name)?;
    if meta::uid(sa) != issued.uid || meta::is_deleting(sa) {
        return None;
    }
    Some(UserInfo::service_account(
        &issued.namespace,
        &issued.name,
        &issued.uid,
    ))
}

fn anonymous(inner: &Inner) -> UserInfo {
    match inner.anonymous {
        Anonymous::Admin => UserInfo::admin(),
        Anonymous::Rbac => UserInfo::anonymous(),
    }
}

/// The body kube-apiserver answers a request it cannot authenticate with.
pub fn unauthorized_status() -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    })
}
