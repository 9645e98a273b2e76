use super::*;

/// A cluster as literal claims, policies and labels.
type Cluster = Snapshot;

fn cluster() -> Cluster {
    Snapshot {
        policy_namespace: "email-system".into(),
        ..Snapshot::default()
    }
}

trait Verdicts {
    fn verdict(&self, ns: &str, name: &str) -> Verdict;
    fn reason(&self, ns: &str, name: &str) -> Option<&'static str>;
    fn message(&self, ns: &str, name: &str) -> String;
}

impl Verdicts for Cluster {
    fn verdict(&self, ns: &str, name: &str) -> Verdict {
        let claim = self
            .claims
            .iter()
            .find(|c| c.namespace == ns && c.name == name)
            .expect("a claim of that name");
        Judge::new(self).judge(claim)
    }

    fn reason(&self, ns: &str, name: &str) -> Option<&'static str> {
        match self.verdict(ns, name) {
            Verdict::Admitted(_) => None,
            Verdict::Rejected { reason, .. } => Some(reason),
        }
    }

    fn message(&self, ns: &str, name: &str) -> String {
        match self.verdict(ns, name) {
            Verdict::Admitted(_) => panic!("{ns}/{name} is admitted"),
            Verdict::Rejected { message, .. } => message,
        }
    }
}

fn eu() -> SesScope {
    SesScope {
        region: "eu-west-1".into(),
        account: None,
    }
}

fn identity(ns: &str, name: &str, id: &str, created: i64) -> Claim {
    identity_in(ns, name, id, created, eu())
}

fn identity_in(ns: &str, name: &str, id: &str, created: i64, ses: SesScope) -> Claim {
    Claim {
        namespace: ns.into(),
        kind: "SenderIdentity",
        name: name.into(),
        created: Some(Timestamp::from_second(created).expect("time")),
        claimed: Claimed::Identity {
            id: IdentityName::parse(id).expect("identity"),
            ses,
        },
        role: None,
    }
}

fn from(ns: &str, address: &str, default_relay: bool, created: i64) -> Claim {
    Claim {
        namespace: ns.into(),
        kind: "EmailSettings",
        name: "notifications".into(),
        created: Some(Timestamp::from_second(created).expect("time")),
        claimed: Claimed::From {
            address: EmailAddress::parse(address).expect("address"),
            default_relay,
        },
        role: None,
    }
}

fn grant(policy: &str, namespaces: &[&str], domains: &[&str], share: bool) -> Grant {
    Grant {
        policy: policy.into(),
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        selector: None,
        domains: domains
            .iter()
            .map(|d| DomainName::parse(d).expect("domain"))
            .collect(),
        share,
        default_relay: false,
        relay_credentials: None,
        adopt: false,
        roles: vec![],
        publish_records: false,
    }
}

#[test]
fn a_domain_no_policy_names_is_held_by_the_first_namespace_that_claims_it() {
    let c = Cluster {
        claims: vec![
            identity("billing", "yourcompany-com", "yourcompany.com", 100),
            identity("shop", "yourcompany-com", "yourcompany.com", 200),
            identity("shop", "en", "en.yourcompany.com", 201),
            identity("shop", "noreply", "noreply@yourcompany.com", 202),
            identity("billing", "second", "contact@yourcompany.com", 300),
        ],
        ..cluster()
    };
    assert_eq!(c.reason("billing", "yourcompany-com"), None);
    assert_eq!(
        c.reason("billing", "second"),
        None,
        "the holder's own namespace"
    );
    for name in ["yourcompany-com", "en", "noreply"] {
        assert_eq!(
            c.reason("shop", name),
            Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE),
            "{name}: the domain, a subdomain, an address in it"
        );
    }
    let message = c.message("shop", "yourcompany-com");
    assert!(message.contains("held by namespace billing"), "{message}");
    assert!(
        message.contains("SenderPolicy in namespace email-system"),
        "{message}"
    );
}

#[test]
fn a_parent_domain_is_refused_where_a_subdomain_is_held_and_siblings_do_not_conflict() {
    let c = Cluster {
        claims: vec![
            identity("billing", "en", "en.yourcompany.com", 100),
            identity("shop", "de", "de.yourcompany.com", 200),
            identity("shop", "parent", "yourcompany.com", 300),
        ],
        ..cluster()
    };
    assert_eq!(c.reason("shop", "de"), None, "a sibling subdomain");
    assert_eq!(
        c.reason("shop", "parent"),
        Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE)
    );
}

#[test]
fn a_refused_claim_holds_nothing_and_removing_a_holder_promotes_the_next() {
    // x.a.com (first) refuses a.com in another namespace; a.com then holds nothing, so
    // y.a.com — which does not overlap x.a.com — is admitted.
    let mut c = Cluster {
        claims: vec![
            identity("first", "x", "x.yourcompany.com", 100),
            identity("second", "parent", "yourcompany.com", 200),
            identity("third", "y", "y.yourcompany.com", 300),
        ],
        ..cluster()
    };
    assert_eq!(
        c.reason("second", "parent"),
        Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE)
    );
    assert_eq!(c.reason("third", "y"), None);

    // The first holder goes: the parent is admitted, and now holds y's domain.
    c.claims.remove(0);
    assert_eq!(c.reason("second", "parent"), None);
    assert_eq!(
        c.reason("third", "y"),
        Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE)
    );
}

#[test]
fn a_from_address_claims_its_domain_like_an_identity() {
    let c = Cluster {
        claims: vec![
            from("internal-tools", "tools@yourcompany.com", false, 100),
            identity("shop", "yourcompany-com", "yourcompany.com", 200),
            from("shop", "orders@yourcompany.com", false, 201),
        ],
        ..cluster()
    };
    assert_eq!(
        c.reason("shop", "yourcompany-com"),
        Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE)
    );
    assert!(
        c.message("shop", "yourcompany-com").contains(
            "EmailSettings internal-tools/notifications sends from tools@yourcompany.com"
        )
    );
    assert_eq!(
        c.reason("shop", "notifications"),
        Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE)
    );
}

#[test]
fn a_governed_domain_is_claimed_only_by_granted_namespaces() {
    let c = Cluster {
        grants: vec![grant(
            "billing",
            &["billing", "billing-sandbox"],
            &["yourcompany.com"],
            false,
        )],
        claims: vec![
            identity("shop", "early", "yourcompany.com", 50),
            identity("billing", "en", "en.yourcompany.com", 100),
            identity("shop", "parent", "com-parent.example", 150),
            identity("shop", "sub", "mail.yourcompany.com", 200),
        ],
        ..cluster()
    };
    assert_eq!(c.reason("billing", "en"), None);
    assert_eq!(
        c.reason("shop", "early"),
        Some(reasons::DOMAIN_NOT_GRANTED),
        "being first does not matter"
    );
    assert_eq!(c.reason("shop", "sub"), Some(reasons::DOMAIN_NOT_GRANTED));
    assert_eq!(c.reason("shop", "parent"), None, "another domain");
    let message = c.message("shop", "early");
    assert!(
        message.contains("SenderPolicy billing (grants billing, billing-sandbox)"),
        "{message}"
    );
    assert!(
        message.contains("namespace shop is not granted"),
        "{message}"
    );
}

#[test]
fn a_parent_of_a_governed_domain_needs_a_grant_that_covers_it() {
    let c = Cluster {
        grants: vec![grant("en", &["shop"], &["en.yourcompany.com"], false)],
        claims: vec![identity("shop", "parent", "yourcompany.com", 100)],
        ..cluster()
    };
    assert_eq!(
        c.reason("shop", "parent"),
        Some(reasons::DOMAIN_NOT_GRANTED)
    );
}

#[test]
fn granted_namespaces_share_one_ses_identity_only_with_share_identities() {
    let claims = vec![
        identity("billing", "yourcompany-com", "yourcompany.com", 100),
        identity("billing-sandbox", "yourcompany-com", "yourcompany.com", 200),
        identity("billing-sandbox", "en", "en.yourcompany.com", 201),
        identity_in(
            "billing-sandbox",
            "us",
            "yourcompany.com",
            202,
            SesScope {
                region: "us-east-1".into(),
                account: None,
            },
        ),
    ];
    let apart = Cluster {
        grants: vec![grant(
            "billing",
            &["billing", "billing-sandbox"],
            &["yourcompany.com"],
            false,
        )],
        claims: claims.clone(),
        ..cluster()
    };
    assert_eq!(apart.reason("billing", "yourcompany-com"), None);
    assert_eq!(
        apart.reason("billing-sandbox", "yourcompany-com"),
        Some(reasons::IDENTITY_SHARING_NOT_ALLOWED)
    );
    assert!(
        apart
            .message("billing-sandbox", "yourcompany-com")
            .contains("shareIdentities: true")
    );
    assert_eq!(
        apart.reason("billing-sandbox", "en"),
        None,
        "its own SES identity"
    );
    assert_eq!(
        apart.reason("billing-sandbox", "us"),
        None,
        "another region is another SES identity"
    );

    let shared = Cluster {
        grants: vec![grant(
            "billing",
            &["billing", "billing-sandbox"],
            &["yourcompany.com"],
            true,
        )],
        claims,
        ..cluster()
    };
    assert_eq!(shared.reason("billing-sandbox", "yourcompany-com"), None);

    // Sharing granted by a policy that grants only one of them does not count.
    let half = Cluster {
        grants: vec![
            grant("prod", &["billing"], &["yourcompany.com"], true),
            grant("sandbox", &["billing-sandbox"], &["yourcompany.com"], true),
        ],
        claims: vec![
            identity("billing", "yourcompany-com", "yourcompany.com", 100),
            identity("billing-sandbox", "yourcompany-com", "yourcompany.com", 200),
        ],
        ..cluster()
    };
    assert_eq!(
        half.reason("billing-sandbox", "yourcompany-com"),
        Some(reasons::IDENTITY_SHARING_NOT_ALLOWED)
    );
}

#[test]
fn namespaces_are_selected_by_label_only_where_labels_are_known() {
    let mut g = grant("team", &[], &["yourcompany.com"], false);
    g.selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("team".into(), "billing".into())])),
        ..LabelSelector::default()
    });
    let claims = vec![identity(
        "billing",
        "yourcompany-com",
        "yourcompany.com",
        100,
    )];
    let labels = BTreeMap::from([(
        "billing".to_string(),
        BTreeMap::from([("team".to_string(), "billing".to_string())]),
    )]);
    let known = Cluster {
        grants: vec![g.clone()],
        claims: claims.clone(),
        labels,
        ..cluster()
    };
    assert_eq!(known.reason("billing", "yourcompany-com"), None);
    let unknown = Cluster {
        grants: vec![g.clone()],
        claims: claims.clone(),
        labels: BTreeMap::new(),
        ..cluster()
    };
    assert_eq!(
        unknown.reason("billing", "yourcompany-com"),
        Some(reasons::DOMAIN_NOT_GRANTED)
    );
    // An empty selector selects every namespace, labels known or not.
    let mut everyone = g;
    everyone.selector = Some(LabelSelector::default());
    let everywhere = Cluster {
        grants: vec![everyone],
        claims,
        labels: BTreeMap::new(),
        ..cluster()
    };
    assert_eq!(everywhere.reason("billing", "yourcompany-com"), None);
}

#[test]
fn label_selectors_match_as_kubernetes_does() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    let labels = BTreeMap::from([
        ("team".to_string(), "billing".to_string()),
        ("env".to_string(), "prod".to_string()),
    ]);
    let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }]),
        ..LabelSelector::default()
    };
    assert!(
        selects(&LabelSelector::default(), &labels),
        "empty selects all"
    );
    assert!(selects(&expr("env", "In", &["prod", "staging"]), &labels));
    assert!(!selects(&expr("env", "NotIn", &["prod"]), &labels));
    assert!(selects(&expr("tier", "NotIn", &["x"]), &labels));
    assert!(selects(&expr("team", "Exists", &[]), &labels));
    assert!(!selects(&expr("team", "DoesNotExist", &[]), &labels));
    assert!(!selects(&expr("team", "Bogus", &[]), &labels));
}

#[test]
fn the_default_relay_needs_the_flag_or_a_policy_for_the_from_domain() {
    let mut relay_grant = grant("tools", &["internal-tools"], &["yourcompany.com"], false);
    relay_grant.default_relay = true;
    let c = Cluster {
        grants: vec![relay_grant],
        claims: vec![
            from("internal-tools", "tools@yourcompany.com", true, 100),
            from("ops", "ops@ops.example", true, 200),
            from("flagged", "x@flagged.example", true, 300),
        ],
        relay_namespaces: vec!["flagged".into()],
        ..cluster()
    };
    assert_eq!(c.reason("internal-tools", "notifications"), None);
    assert_eq!(c.reason("flagged", "notifications"), None);
    assert_eq!(
        c.reason("ops", "notifications"),
        Some(reasons::DEFAULT_RELAY_NOT_ALLOWED)
    );
    assert!(
        c.message("ops", "notifications")
            .contains("--default-relay-namespaces")
    );

    // A policy without defaultRelay grants the domain but not the relay.
    let c = Cluster {
        grants: vec![grant(
            "tools",
            &["internal-tools"],
            &["yourcompany.com"],
            false,
        )],
        claims: vec![from("internal-tools", "tools@yourcompany.com", true, 100)],
        ..cluster()
    };
    assert_eq!(
        c.reason("internal-tools", "notifications"),
        Some(reasons::DEFAULT_RELAY_NOT_ALLOWED)
    );
}

#[test]
fn a_role_is_assumed_only_for_namespaces_a_policy_grants_it() {
    let mut billing = grant("billing", &["billing"], &["yourcompany.com"], false);
    billing.roles = vec![
        "arn:aws:iam::111122223333:role/ses-billing".into(),
        "arn:aws:iam::444455556666:role/*".into(),
    ];
    let with_role = |ns: &str, role: &str| {
        let mut c = identity(ns, "yourcompany-com", "yourcompany.com", 100);
        c.role = Some(role.into());
        c
    };
    let c = Cluster {
        grants: vec![billing.clone()],
        claims: vec![with_role(
            "billing",
            "arn:aws:iam::111122223333:role/ses-billing",
        )],
        ..cluster()
    };
    assert_eq!(c.reason("billing", "yourcompany-com"), None);
    for (ns, role) in [
        ("billing", "arn:aws:iam::111122223333:role/ses-admin"),
        ("shop", "arn:aws:iam::111122223333:role/ses-billing"),
    ] {
        let c = Cluster {
            grants: vec![billing.clone()],
            claims: vec![with_role(ns, role)],
            ..cluster()
        };
        assert_eq!(
            c.reason(ns, "yourcompany-com"),
            Some(reasons::ROLE_NOT_GRANTED),
            "{ns} {role}"
        );
        assert!(c.message(ns, "yourcompany-com").contains("roleArns"));
    }
    let c = Cluster {
        grants: vec![billing],
        claims: vec![with_role(
            "billing",
            "arn:aws:iam::444455556666:role/anything",
        )],
        ..cluster()
    };
    assert_eq!(
        c.reason("billing", "yourcompany-com"),
        None,
        "an account's every role"
    );
}

#[test]
fn adoption_publishing_and_relay_credentials_are_granted_per_domain_and_namespace() {
    let mut g = grant("billing", &["billing"], &["yourcompany.com"], false);
    g.adopt = true;
    g.publish_records = true;
    g.default_relay = true;
    g.relay_credentials = Some("billing-relay".into());
    let c = Cluster {
        grants: vec![g],
        ..cluster()
    };
    let d = |s: &str| DomainName::parse(s).expect("domain");
    assert!(may_adopt(&c, "billing", &d("en.yourcompany.com")));
    assert!(!may_adopt(&c, "shop", &d("yourcompany.com")));
    assert!(!may_adopt(&c, "billing", &d("corp.example")));
    assert!(may_publish_records(&c, "billing", &d("yourcompany.com")));
    assert!(!may_publish_records(&c, "shop", &d("yourcompany.com")));
    assert_eq!(
        relay_credentials(&c, "billing", &d("yourcompany.com")).as_deref(),
        Some("billing-relay")
    );
    assert_eq!(relay_credentials(&c, "billing", &d("other.example")), None);
}

/// A cluster that counts the other claims the judge reads (each costs the controller a cache
/// lookup and parsing the object's names).
struct Counting {
    inner: Cluster,
    read: std::cell::Cell<usize>,
}

impl World for Counting {
    fn grants(&self) -> &[Grant] {
        self.inner.grants()
    }
    fn policy_namespace(&self) -> &str {
        self.inner.policy_namespace()
    }
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.inner.labels(namespace)
    }
    fn relay_allowed(&self, namespace: &str) -> bool {
        self.inner.relay_allowed(namespace)
    }
    fn overlapping(&self, domain: &DomainName, other_than: &str) -> Vec<Claim> {
        let claims = self.inner.overlapping(domain, other_than);
        self.read.set(self.read.get() + claims.len());
        claims
    }
    fn overlapping_identities(&self, domain: &DomainName, other_than: &str) -> Vec<Claim> {
        let claims = self.inner.overlapping_identities(domain, other_than);
        self.read.set(self.read.get() + claims.len());
        claims
    }
}

#[test]
fn many_namespaces_sending_from_one_governed_domain_cost_the_judge_no_reads_of_each_other() {
    // A company-wide policy granting yourcompany.com to 200 teams, each with an EmailSettings
    // sending from it and a SenderIdentity of its own address: every claim is admitted, and
    // judging one reads only the identities that could collide with it, not every team's
    // claims and their earlier claims in turn (quadratic: 40,000 reads per judgement).
    let teams: Vec<String> = (0..200).map(|i| format!("team{i}")).collect();
    let names: Vec<&str> = teams.iter().map(String::as_str).collect();
    let mut claims = Vec::new();
    for (i, ns) in names.iter().enumerate() {
        claims.push(from(ns, "billing@yourcompany.com", false, i as i64));
        claims.push(identity(
            ns,
            "sender",
            &format!("{ns}@yourcompany.com"),
            i as i64,
        ));
    }
    let world = Counting {
        inner: Cluster {
            grants: vec![grant("company", &names, &["yourcompany.com"], false)],
            claims,
            ..cluster()
        },
        read: std::cell::Cell::new(0),
    };
    let last_from = world.inner.claims[398].clone();
    assert!(Judge::new(&world).judge(&last_from).is_admitted());
    assert_eq!(
        world.read.get(),
        0,
        "an EmailSettings' from domain, granted by a policy, collides with no other claim"
    );
    let last_identity = world.inner.claims[399].clone();
    assert!(Judge::new(&world).judge(&last_identity).is_admitted());
    assert!(
        world.read.get() <= 199,
        "one read of the other teams' identities, no EmailSettings, no recursion: read {}",
        world.read.get()
    );

    // Without the policy the first team holds the domain: the last is refused after reading
    // the others' claims and the first team's (whose verdict decides), not every verdict.
    let world = Counting {
        inner: Cluster {
            grants: vec![],
            ..world.inner
        },
        read: std::cell::Cell::new(0),
    };
    let refused = match Judge::new(&world).judge(&last_from) {
        Verdict::Rejected { reason, .. } => Some(reason),
        Verdict::Admitted(_) => None,
    };
    assert_eq!(refused, Some(reasons::DOMAIN_HELD_BY_ANOTHER_NAMESPACE));
    assert!(
        world.read.get() <= 2 * 399,
        "the others' claims, then the first team's: read {}",
        world.read.get()
    );
}
