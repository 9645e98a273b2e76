//! The kubeconfig `testbed up` writes: one cluster at the stand-in's plain-HTTP URL, a user
//! with a static token (the stand-in does not authenticate), context `testbed`.

pub fn render(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: {server_url}
users:
- name: testbed
  user:
    token: testbed
contexts:
- name: testbed
  context:
    cluster: testbed
    user: testbed
    namespace: default
current-context: testbed
preferences: {{}}
"
    )
}
