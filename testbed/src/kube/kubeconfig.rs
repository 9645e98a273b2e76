//! Kubeconfigs for the stand-in: one cluster at its plain-HTTP URL and one token user.
//! [`render`] is the admin's (the static token `testbed`, context `testbed`, namespace
//! `default`) that `testbed up` writes; [`render_token`] is any other token user's, such as a
//! ServiceAccount's.

use super::authn::ADMIN_TOKEN;

pub fn render(server_url: &str) -> String {
    render_token(server_url, "testbed", ADMIN_TOKEN, "default")
}

/// A kubeconfig whose user `user` authenticates with `token`; context `testbed`.
pub fn render_token(server_url: &str, user: &str, token: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: {server_url}
users:
- name: {user:?}
  user:
    token: {token:?}
contexts:
- name: testbed
  context:
    cluster: testbed
    user: {user:?}
    namespace: {namespace:?}
current-context: testbed
preferences: {{}}
"
    )
}
