//! Every CEL rule in the CRDs, evaluated locally (kube's `cel` feature) with a passing and a
//! failing case each; the failing case asserts the rule's message. A last test proves that the
//! cases below cover every rule the CRDs carry, so a new rule cannot go untested.

use email_operator::crd::{EmailSettings, SenderIdentity, SenderPolicy};
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn schema_of<K: CustomResourceExt>() -> Value {
    let crd = email_operator::crd::definition::<K>();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("schema json")
}

/// The messages of the rules `object` breaks (transition rules only when `old` is given).
fn violations<K: CustomResourceExt>(object: Value, old: Option<Value>) -> Vec<String> {
    match Validator::new().validate(&schema_of::<K>(), &object, old.as_ref()) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn es(spec: Value) -> Value {
    json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "EmailSettings",
           "metadata": {"name": "n", "namespace": "billing"}, "spec": spec})
}

fn sid(spec: Value) -> Value {
    json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderIdentity",
           "metadata": {"name": "n", "namespace": "billing"}, "spec": spec})
}

fn spol(spec: Value) -> Value {
    json!({"apiVersion": "email.ops.dev/v1alpha1", "kind": "SenderPolicy",
           "metadata": {"name": "n", "namespace": "email-system"}, "spec": spec})
}

fn external(overrides: Value) -> Value {
    let mut smtp = json!({
        "host": "smtp.yourcompany.com", "port": 587, "authentication": "UsernamePassword",
        "startTls": true, "username": "notifications@yourcompany.com",
        "passwordSecretRef": {"name": "smtp", "key": "password"}
    });
    merge(&mut smtp, overrides);
    es(json!({"from": "billing@yourcompany.com", "delivery": "ExternalSmtp", "externalSmtp": smtp}))
}

fn advanced(overrides: Value) -> Value {
    let mut ses = json!({"region": "us-east-1"});
    merge(&mut ses, overrides);
    es(json!({"from": "billing@yourcompany.com", "delivery": "AdvancedSmtp", "advancedSmtp": ses}))
}

/// `value.pipe(f)`: edit a built object inline.
trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}
impl Pipe for Value {}

/// JSON merge patch (RFC 7386): null removes a key.
fn merge(target: &mut Value, patch: Value) {
    if let (Value::Object(t), Value::Object(p)) = (target, patch) {
        for (k, v) in p {
            if v.is_null() {
                t.remove(&k);
            } else if v.is_object() && t.get(&k).is_some_and(Value::is_object) {
                merge(t.get_mut(&k).unwrap(), v);
            } else {
                t.insert(k, v);
            }
        }
    }
}

struct Case {
    kind: &'static str,
    object: Value,
    old: Option<Value>,
    /// None: must pass. Some(message): must fail with exactly this one message.
    expect: Option<&'static str>,
}

fn pass(kind: &'static str, object: Value) -> Case {
    Case {
        kind,
        object,
        old: None,
        expect: None,
    }
}

fn fail(kind: &'static str, object: Value, message: &'static str) -> Case {
    Case {
        kind,
        object,
        old: None,
        expect: Some(message),
    }
}

fn cases() -> Vec<Case> {
    let oauth = json!({"authentication": "OAuth2", "passwordSecretRef": null,
        "oauth2": {"tokenUrl": "https://login.example.com/oauth2/token", "clientId": "abc",
                   "clientSecretRef": {"name": "smtp-oauth", "key": "clientSecret"}}});
    let ssl = |sf: Value| external(json!({"port": 25, "socketFactory": sf}));
    vec![
        // delivery → required block
        pass("es", external(json!({}))),
        fail(
            "es",
            es(json!({"from": "billing@yourcompany.com", "delivery": "ExternalSmtp"})),
            "externalSmtp is required when delivery is ExternalSmtp",
        ),
        pass("es", advanced(json!({}))),
        fail(
            "es",
            es(json!({"from": "billing@yourcompany.com", "delivery": "AdvancedSmtp"})),
            "advancedSmtp is required when delivery is AdvancedSmtp",
        ),
        pass(
            "es",
            es(json!({"from": "billing@yourcompany.com", "delivery": "Default"})),
        ),
        // … and only with it
        fail(
            "es",
            external(json!({})).pipe(|mut o| {
                o["spec"]["delivery"] = json!("Default");
                o
            }),
            "externalSmtp is only used when delivery is ExternalSmtp; remove it or set delivery: ExternalSmtp",
        ),
        fail(
            "es",
            advanced(json!({})).pipe(|mut o| {
                o["spec"]["delivery"] = json!("ExternalSmtp");
                o["spec"]["externalSmtp"] = external(json!({}))["spec"]["externalSmtp"].clone();
                o
            }),
            "advancedSmtp is only used when delivery is AdvancedSmtp; remove it or set delivery: AdvancedSmtp",
        ),
        // email syntax
        fail(
            "es",
            es(json!({"from": "billing.yourcompany.com", "delivery": "Default"})),
            "from must be an email address such as billing@yourcompany.com",
        ),
        fail(
            "es",
            es(json!({"from": "billing@yourcompаny.com", "delivery": "Default"})),
            "from must be an email address such as billing@yourcompany.com",
        ),
        pass(
            "es",
            es(json!({"from": "b@y.com", "delivery": "Default",
                               "activeUsers": ["employee@yourcompany.com", "ops@en.yourcompany.com"]})),
        ),
        fail(
            "es",
            es(json!({"from": "b@y.com", "delivery": "Default",
                               "activeUsers": ["employee@yourcompany.com", "not-an-address"]})),
            "every activeUsers entry must be an email address such as employee@yourcompany.com",
        ),
        fail(
            "es",
            external(json!({"username": "notifications"})),
            "username must be an email address such as billing@yourcompany.com",
        ),
        // host
        pass("es", external(json!({"host": "10.0.0.25"}))),
        pass("es", external(json!({"host": "2001:db8::25"}))),
        pass("es", external(json!({"host": "mailhog"}))),
        pass("es", external(json!({"host": "::1"}))),
        fail(
            "es",
            external(json!({"host": "2001:db8::25::1"})),
            "host must be a host name or IP address without scheme or port, e.g. smtp.yourcompany.com",
        ),
        fail(
            "es",
            external(json!({"host": "[2001:db8::25]"})),
            "host must be a host name or IP address without scheme or port, e.g. smtp.yourcompany.com",
        ),
        fail(
            "es",
            external(json!({"host": "smtp://smtp.yourcompany.com"})),
            "host must be a host name or IP address without scheme or port, e.g. smtp.yourcompany.com",
        ),
        fail(
            "es",
            external(json!({"host": "smtp.yourcompany.com:587"})),
            "host must be a host name or IP address without scheme or port, e.g. smtp.yourcompany.com",
        ),
        // ports
        pass("es", external(json!({"port": 65535}))),
        fail(
            "es",
            external(json!({"port": 0})),
            "port must be a TCP port between 1 and 65535",
        ),
        fail(
            "es",
            external(json!({"port": 70000})),
            "port must be a TCP port between 1 and 65535",
        ),
        // authentication iff
        fail(
            "es",
            external(json!({"passwordSecretRef": null})),
            "passwordSecretRef is required when authentication is UsernamePassword",
        ),
        pass("es", external(oauth.clone())),
        fail(
            "es",
            external(json!({"authentication": "OAuth2", "oauth2": oauth["oauth2"].clone()})),
            "passwordSecretRef is only allowed when authentication is UsernamePassword",
        ),
        fail(
            "es",
            external(json!({"authentication": "OAuth2", "passwordSecretRef": null})),
            "oauth2 is required when authentication is OAuth2",
        ),
        fail(
            "es",
            external(json!({"oauth2": oauth["oauth2"].clone()})),
            "oauth2 is only allowed when authentication is OAuth2",
        ),
        fail(
            "es",
            external(
                json!({"authentication": "OAuth2", "passwordSecretRef": null,
            "oauth2": {"tokenUrl": "login.example.com/token", "clientId": "abc",
                       "clientSecretRef": {"name": "s", "key": "k"}}}),
            ),
            "tokenUrl must be an absolute https:// URL (the client secret is sent there)",
        ),
        fail(
            "es",
            external(
                json!({"authentication": "OAuth2", "passwordSecretRef": null,
            "oauth2": {"tokenUrl": "http://login.example.com/token", "clientId": "abc",
                       "clientSecretRef": {"name": "s", "key": "k"}}}),
            ),
            "tokenUrl must be an absolute https:// URL (the client secret is sent there)",
        ),
        // socket factory
        pass(
            "es",
            ssl(json!({"class": "javax.net.ssl.SSLSocketFactory", "port": 465})),
        ),
        pass("es", ssl(json!({"fallback": false}))),
        fail(
            "es",
            ssl(json!({"class": "javax.net.ssl.SSLSocketFactory"})),
            "socketFactory.port is required when socketFactory.class is set",
        ),
        fail(
            "es",
            ssl(json!({"port": 465})),
            "socketFactory.port is only used together with socketFactory.class",
        ),
        fail(
            "es",
            ssl(json!({"class": "com.example.PlainFactory", "port": 465})),
            "socketFactory.class must be javax.net.ssl.SSLSocketFactory",
        ),
        fail(
            "es",
            ssl(json!({"class": "javax.net.ssl.SSLSocketFactory", "port": 99999})),
            "socketFactory.port must be a TCP port between 1 and 65535",
        ),
        // SES settings
        pass(
            "es",
            advanced(json!({"region": "eu-central-1",
            "roleArn": "arn:aws:iam::123456789012:role/ses-identities",
            "configurationSetName": "notifications"})),
        ),
        fail(
            "es",
            advanced(json!({"region": "Europe"})),
            "region must be an AWS region such as us-east-1",
        ),
        fail(
            "es",
            advanced(json!({"roleArn": "arn:aws:iam::123:user/bob"})),
            "roleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/ses-identities",
        ),
        fail(
            "es",
            advanced(json!({"configurationSetName": "no spaces"})),
            "configurationSetName may contain only letters, digits, '_' and '-'",
        ),
        // output secret and revalidation
        pass(
            "es",
            es(
                json!({"from": "b@y.com", "outputSecretName": "mail.smtp-1", "revalidateEvery": "1h30m"}),
            ),
        ),
        fail(
            "es",
            es(json!({"from": "b@y.com", "outputSecretName": "Mail_SMTP"})),
            "outputSecretName must be a lower-case DNS subdomain name, e.g. notifications-smtp",
        ),
        fail(
            "es",
            es(json!({"from": "b@y.com", "revalidateEvery": "daily"})),
            "revalidateEvery must be a duration between 1m and 8760h, such as 24h or 90m",
        ),
        fail(
            "es",
            es(json!({"from": "b@y.com", "revalidateEvery": "30s"})),
            "revalidateEvery must be a duration between 1m and 8760h, such as 24h or 90m",
        ),
        fail(
            "es",
            es(json!({"from": "b@y.com", "revalidateEvery": "99999999999999h"})),
            "revalidateEvery must be a duration between 1m and 8760h, such as 24h or 90m",
        ),
        fail(
            "es",
            es(json!({"from": "b@y.com", "revalidateEvery": "8761h"})),
            "revalidateEvery must be a duration between 1m and 8760h, such as 24h or 90m",
        ),
        // SenderIdentity
        pass(
            "sid",
            sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com",
                                "mailFromDomain": "bounce.yourcompany.com"}),
            ),
        ),
        pass(
            "sid",
            sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "noreply@en.yourcompany.com"}),
            ),
        ),
        fail(
            "sid",
            sid(json!({"emailSettingsRef": {"name": "n"}, "identity": "https://yourcompany.com"})),
            "identity must be a domain such as yourcompany.com or an email address such as noreply@yourcompany.com",
        ),
        fail(
            "sid",
            sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "noreply@yourcompany.com",
                                "mailFromDomain": "bounce.yourcompany.com"}),
            ),
            "mailFromDomain can only be set on a domain identity",
        ),
        fail(
            "sid",
            sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com",
                                "mailFromDomain": "bounce.othercompany.com"}),
            ),
            "mailFromDomain must be a subdomain of the identity, e.g. bounce.yourcompany.com for yourcompany.com",
        ),
        fail(
            "sid",
            sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com",
                                "mailFromDomain": "-bounce.yourcompany.com"}),
            ),
            "mailFromDomain must be a domain name such as bounce.yourcompany.com",
        ),
        Case {
            kind: "sid",
            object: sid(json!({"emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com"})),
            old: Some(sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com"}),
            )),
            expect: None,
        },
        Case {
            kind: "sid",
            object: sid(json!({"emailSettingsRef": {"name": "n"}, "identity": "othercompany.com"})),
            old: Some(sid(
                json!({"emailSettingsRef": {"name": "n"}, "identity": "yourcompany.com"}),
            )),
            expect: Some("identity is immutable; create a new SenderIdentity instead"),
        },
        // SenderPolicy
        pass(
            "spol",
            spol(
                json!({"namespaces": ["billing", "billing-sandbox"], "domains": ["yourcompany.com"],
                        "roleArns": ["arn:aws:iam::111122223333:role/ses-billing", "arn:aws:iam::444455556666:role/*"]}),
            ),
        ),
        pass(
            "spol",
            spol(json!({"namespaceSelector": {}, "domains": ["yourcompany.com"]})),
        ),
        fail(
            "spol",
            spol(json!({"domains": ["yourcompany.com"]})),
            "name the namespaces this policy grants (namespaces) or select them by label (namespaceSelector)",
        ),
        fail(
            "spol",
            spol(json!({"namespaces": ["Billing"], "domains": ["yourcompany.com"]})),
            "every namespaces entry must be a namespace name (lower-case letters, digits and -)",
        ),
        fail(
            "spol",
            spol(json!({"namespaces": ["billing"], "domains": ["yourcompany"]})),
            "every domains entry must be a domain such as yourcompany.com",
        ),
        fail(
            "spol",
            spol(
                json!({"namespaces": ["billing"], "domains": ["yourcompany.com"],
                        "roleArns": ["arn:aws:iam::111122223333:user/admin"]}),
            ),
            "every roleArns entry must be an IAM role ARN such as arn:aws:iam::111122223333:role/ses-billing, or arn:aws:iam::111122223333:role/* for every role of an account",
        ),
    ]
}

fn run(case: &Case) -> Vec<String> {
    match case.kind {
        "es" => violations::<EmailSettings>(case.object.clone(), case.old.clone()),
        "spol" => violations::<SenderPolicy>(case.object.clone(), case.old.clone()),
        _ => violations::<SenderIdentity>(case.object.clone(), case.old.clone()),
    }
}

#[test]
fn every_case_passes_or_fails_with_its_message() {
    let mut wrong = vec![];
    for (i, case) in cases().iter().enumerate() {
        let got = run(case);
        let want: Vec<String> = case.expect.iter().map(|m| m.to_string()).collect();
        if got != want {
            wrong.push(format!(
                "case {i} ({}): expected {want:?}, got {got:?}",
                case.object["spec"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn rule_messages(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rules)) = m.get("x-kubernetes-validations") {
                for r in rules {
                    out.insert(
                        r["message"]
                            .as_str()
                            .expect("every rule has a message")
                            .to_string(),
                    );
                }
            }
            m.values().for_each(|x| rule_messages(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| rule_messages(x, out)),
        _ => {}
    }
}

#[test]
fn the_cases_cover_every_rule_in_the_crds() {
    let mut all = BTreeSet::new();
    rule_messages(&schema_of::<EmailSettings>(), &mut all);
    rule_messages(&schema_of::<SenderIdentity>(), &mut all);
    rule_messages(&schema_of::<SenderPolicy>(), &mut all);
    let covered: BTreeSet<String> = cases()
        .iter()
        .filter_map(|c| c.expect.map(str::to_string))
        .collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "rules without a failing case: {missing:?}"
    );
    assert!(
        all.len() >= 20,
        "expected the CRDs to carry their rules, found {}",
        all.len()
    );
}

#[test]
fn typed_objects_validate_through_the_derived_methods() {
    // The derive's own entry points agree with the schema walk above.
    let ok: EmailSettings = serde_json::from_value(external(json!({}))).unwrap();
    assert!(ok.validate_cel().is_ok());
    let bad: EmailSettings = serde_json::from_value(external(json!({"port": 0}))).unwrap();
    let err = bad.validate_cel().unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].message,
        "port must be a TCP port between 1 and 65535"
    );

    let old: SenderIdentity = serde_json::from_value(sid(
        json!({"emailSettingsRef": {"name": "n"}, "identity": "a.com"}),
    ))
    .unwrap();
    let new: SenderIdentity = serde_json::from_value(sid(
        json!({"emailSettingsRef": {"name": "n"}, "identity": "b.com"}),
    ))
    .unwrap();
    assert!(new.validate_cel().is_ok());
    assert!(new.validate_cel_update(&old).is_err());
}
