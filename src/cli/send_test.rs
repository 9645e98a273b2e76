//! `email-operator send-test`: one test message, as the annotation `email.ops.dev/send-test`
//! sends it, from the command line — through a published Secret (read through the kubeconfig,
//! or from a file) or through what an EmailSettings manifest and its Secret manifests would
//! publish. Prints the outcome; exit 0 only when the server accepted the message.

use super::args::{EgressArgs, SesSmtpArgs, SmtpTimeoutArgs, parse_namespaced};
use email_operator::controller::email_settings::test_message::{self, Origin, Via};
use email_operator::crd::EmailSettings;
use email_operator::crd::email_settings::{Delivery, TestMessage};
use email_operator::plan;
use email_operator::smtp::target::{self, Prepared};
use email_operator::smtp::{ConnectionTest, Tester};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `email-operator send-test`.
#[derive(clap::Args)]
pub struct SendTestArgs {
    /// The recipient (try `success@simulator.amazonses.com`, or `bounce@…`, with SES).
    #[arg(long)]
    to: String,
    /// Send through this published Secret, read through the kubeconfig: NAMESPACE/NAME.
    #[arg(long, value_parser = parse_namespaced, conflicts_with_all = ["secret_file", "paths"])]
    secret: Option<(String, String)>,
    /// Send through the Secret in this manifest file (YAML or JSON; `data` or `stringData`),
    /// with a published Secret's keys.
    #[arg(long, conflicts_with = "paths")]
    secret_file: Option<PathBuf>,
    /// Kubeconfig for --secret (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// PEM CA certificates to trust for the server (a published Secret holds none: give the
    /// EmailSettings' caBundleSecretRef here for a private relay).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// With manifests: which EmailSettings, as [NAMESPACE/]NAME (needed when there are several).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    timeout: SmtpTimeoutArgs,
    #[command(flatten)]
    ses_smtp: SesSmtpArgs,
    #[command(flatten)]
    egress: EgressArgs,
    /// An EmailSettings manifest and its Secrets' manifests (files or directories), as for
    /// `plan --check-smtp`: sends through what the operator would publish.
    paths: Vec<PathBuf>,
}

/// What to send through, and who it is for (namespace, EmailSettings name, Secret name).
struct Route {
    prepared: Prepared,
    /// How the EmailSettings' mail leaves, for the advice on a failure: known from manifests;
    /// for a published Secret, SES when it names an SES SMTP endpoint, else the external
    /// server's advice (whoever runs this on a Secret can check what it names).
    delivery: Delivery,
    data: BTreeMap<String, String>,
    generation: Option<i64>,
    namespace: String,
    settings: String,
    secret: String,
}

/// Runs `send-test`: 0 accepted, 1 refused or failed, 2 bad usage or input.
pub fn run(args: SendTestArgs) -> ExitCode {
    let runtime = match super::args::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let sent = runtime.block_on(async {
        let route = route(&args).await?;
        let timeouts = args.timeout.timeouts();
        let roots = args
            .egress
            .roots()
            .map_err(|(path, e)| format!("cannot read {path}: {e}"))?;
        let tester = Tester::new(timeouts, args.egress.egress(), &roots)?;
        Ok::<_, String>(send(&args.to, &route, &tester).await)
    });
    match sent {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Ok(outcome) => {
            print!("{}", render(&outcome));
            if outcome.accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn send(to: &str, route: &Route, tester: &Tester) -> TestMessage {
    let now = Timestamp::now();
    let via = Via {
        secret: &route.secret,
        generation: route.generation,
        data: &route.data,
    };
    if email_operator::names::EmailAddress::parse(to).is_err() {
        return test_message::not_sent(
            to,
            now,
            &via,
            email_operator::crd::conditions::reasons::INVALID_RECIPIENT,
            format!("{to} is not an email address"),
        );
    }
    let origin = Origin {
        namespace: &route.namespace,
        name: &route.settings,
        asked_by: "email-operator send-test for",
    };
    let nonce = format!("{}-cli", now.as_millisecond());
    let letter = test_message::letter(&origin, &via, to, now, &nonce);
    let result = tester.send(&route.prepared, &letter).await;
    test_message::outcome(route.delivery, to, now, &via, &result)
}

fn render(t: &TestMessage) -> String {
    let verdict = if t.accepted {
        "accepted"
    } else if t.code.is_some() {
        "refused"
    } else {
        "not sent"
    };
    let mut out = format!(
        "test message to {}: {verdict}\nreason:     {}\n",
        t.recipient, t.reason
    );
    if let Some(code) = t.code {
        out += &format!("reply:      {code} {}\n", t.reply);
    } else if !t.reply.is_empty() {
        out += &format!("detail:     {}\n", t.reply);
    }
    if let Some(id) = &t.message_id {
        out += &format!("message id: {id}\n");
    }
    out += &format!("via:        Secret {}\n{}\n", t.secret, t.message);
    out
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Where the message goes through, from the flags.
async fn route(args: &SendTestArgs) -> Result<Route, String> {
    let ca = args.ca_file.as_ref().map(read_file).transpose()?;
    if let Some((namespace, name)) = &args.secret {
        let secret = read_secret(args.kubeconfig.as_ref(), namespace, name).await?;
        return published_route(&secret, ca);
    }
    if let Some(path) = &args.secret_file {
        let docs = plan::load(std::slice::from_ref(path)).map_err(|e| e.to_string())?;
        let doc = docs
            .iter()
            .find(|d| d.object["kind"] == "Secret")
            .ok_or_else(|| format!("{} holds no Secret", path.display()))?;
        let mut secret: Secret = serde_json::from_value(doc.object.clone())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // stringData wins over data, as on the API server.
        let written = secret.string_data.take().unwrap_or_default();
        secret.data.get_or_insert_default().extend(
            written
                .into_iter()
                .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_bytes()))),
        );
        return published_route(&secret, ca);
    }
    if args.paths.is_empty() {
        return Err(
            "say what to send through: --secret NAMESPACE/NAME, --secret-file FILE, or manifests"
                .into(),
        );
    }
    manifest_route(args, ca)
}

async fn read_secret(
    kubeconfig: Option<&PathBuf>,
    namespace: &str,
    name: &str,
) -> Result<Secret, String> {
    let (client, _) = super::args::kube_client(kubeconfig).await?;
    kube::Api::<Secret>::namespaced(client, namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read Secret {namespace}/{name}: {e}"))?
        .ok_or_else(|| format!("Secret {namespace}/{name} does not exist"))
}

/// Through a published Secret: its keys as an application reads them.
fn published_route(secret: &Secret, ca: Option<Vec<u8>>) -> Result<Route, String> {
    use email_operator::controller::email_settings::publish::{Published, SETTINGS_LABEL};
    let namespace = secret
        .metadata
        .namespace
        .clone()
        .unwrap_or("default".into());
    let name = secret.metadata.name.clone().unwrap_or_default();
    // Read as the operator reads what it published: the data and the validated generation.
    let published = Published::of(secret);
    let prepared = target::published(&published.data, ca, false)
        .map_err(|why| format!("Secret {namespace}/{name} {why}"))?;
    let ses_host = email_operator::smtp::ses_password::smtp_endpoint_region(&prepared.target.host);
    Ok(Route {
        delivery: if ses_host.is_some() {
            Delivery::AdvancedSmtp
        } else {
            Delivery::ExternalSmtp
        },
        prepared,
        generation: published.generation,
        settings: secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SETTINGS_LABEL))
            .cloned()
            .unwrap_or_else(|| name.clone()),
        data: published.data,
        namespace,
        secret: name,
    })
}

/// Through what an EmailSettings manifest would publish.
fn manifest_route(args: &SendTestArgs, ca: Option<Vec<u8>>) -> Result<Route, String> {
    let docs = plan::load(&args.paths).map_err(|e| e.to_string())?;
    let namespace_of = |d: &plan::Document| {
        d.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    };
    let wanted = args.name.as_deref().map(|n| match n.split_once('/') {
        Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
        None => (None, n.to_string()),
    });
    let candidates: Vec<&plan::Document> = docs
        .iter()
        .filter(|d| d.object["kind"] == "EmailSettings")
        .filter(|d| match &wanted {
            None => true,
            Some((ns, name)) => {
                d.object["metadata"]["name"] == name.as_str()
                    && ns.as_ref().is_none_or(|ns| *ns == namespace_of(d))
            }
        })
        .collect();
    let doc =
        match candidates.as_slice() {
            [one] => *one,
            [] => return Err("no EmailSettings among the manifests matches".into()),
            _ => return Err(
                "several EmailSettings among the manifests: pick one with --name [NAMESPACE/]NAME"
                    .into(),
            ),
        };
    let namespace = namespace_of(doc);
    let mut object = doc.object.clone();
    object["metadata"]["namespace"] = serde_json::Value::String(namespace.clone());
    let es: EmailSettings =
        serde_json::from_value(object).map_err(|e| format!("EmailSettings: {e}"))?;
    if es.spec.delivery == Delivery::Default {
        return Err("delivery Default uses the operator's relay, whose Secret only the operator reads: use --secret with the published Secret".into());
    }
    let endpoint = args
        .ses_smtp
        .endpoint()
        .map_err(|(path, e)| format!("cannot read {path}: {e}"))?;
    let mut prepared = plan::check_smtp::manifest_target(&docs, &es, &namespace, &endpoint)
        .map_err(|u| format!("{} ({})", u.message, u.reason))?
        .ok_or("nothing to send through")?;
    if ca.is_some() {
        prepared.target.ca_bundle_pem = ca;
    }
    prepared.target.restricted = false;
    let t = &prepared.target;
    let tls = match (t.implicit_tls, t.start_tls) {
        (Some(_), _) => "implicit",
        (None, true) => "starttls",
        (None, false) => "none",
    };
    let port = t.implicit_tls.map_or(t.port, |i| i.port);
    let mut data = BTreeMap::from([
        ("host".to_string(), t.host.clone()),
        ("port".to_string(), port.to_string()),
        ("tls".to_string(), tls.to_string()),
        ("from".to_string(), t.from.clone()),
    ]);
    if let Some(set) = es
        .spec
        .advanced_smtp
        .as_ref()
        .and_then(|a| a.configuration_set_name.clone())
    {
        data.insert("configurationSet".into(), set);
    }
    Ok(Route {
        delivery: es.spec.delivery,
        prepared,
        generation: es.metadata.generation,
        data,
        namespace,
        settings: es.metadata.name.clone().unwrap_or_default(),
        secret: es.output_secret_name(),
    })
}
