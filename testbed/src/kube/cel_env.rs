//! The CEL environment kube-apiserver compiles CRD `x-kubernetes-validations` against, by
//! Kubernetes version, and the check that a rule only calls functions declared there.
//!
//! kube-apiserver compiles *new* rules (a CRD create, or a rule changed on update) with the
//! base environment of its `DefaultCompatibilityVersion`, which is the previous minor
//! (apiserver pkg/cel/environment/base.go: `DefaultCompatibilityVersion` returns 1.28 in
//! 1.29, 1.29 in 1.30, and `MinCompatibilityVersion()` = n-1 since 1.31). That environment
//! holds the libraries whose `IntroducedVersion` is at most that version (and whose
//! `RemovedVersion` is later), so a library added in 1.30 (IP, CIDR) is usable in a CRD
//! installed on a 1.31 cluster. A call of a function the environment does not declare fails
//! compilation with cel-go's checker error `undeclared reference to '<name>' (in
//! container '')`, which the CRD install reports as a 422 on the rule.
//!
//! Only function *names* are checked (not overloads, types or identifiers): see
//! [`super::cel_compile`], which parses rules with the `cel` crate and looks every call up
//! in the table below.

use super::version::KubeVersion;

/// One library of the base environment, as apiserver pkg/cel/environment/base.go adds it.
struct Library {
    /// Where the function names come from.
    #[allow(dead_code)]
    source: &'static str,
    /// `IntroducedVersion` (minor of 1.x) in base.go.
    introduced: u32,
    /// `RemovedVersion`, if any.
    removed: Option<u32>,
    /// Declared function names; namespaced ones as `ns.name`.
    functions: &'static [&'static str],
}

/// Functions of the CEL standard library, always declared (cel-go
/// common/stdlib/standard.go). The standard macros (`has`, `all`, `exists`, `exists_one`,
/// `map`, `filter`) never reach this table: the parser expands them, and a call left under
/// one of those names (a wrong arity) is undeclared, as in cel-go.
const STANDARD: &[&str] = &[
    "size",
    "matches",
    "startsWith",
    "endsWith",
    "contains",
    "duration",
    "timestamp",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

/// Targets that name a function namespace (`sets.contains(...)` is the function
/// `sets.contains`, not a member call on a variable `sets`). `math` and `base64` are cel-go
/// extensions no Kubernetes version declares.
pub const NAMESPACES: &[&str] = &[
    "sets", "format", "lists", "strings", "math", "base64", "optional", "ip",
];

const LIBRARIES: &[Library] = &[
    Library {
        source: "apiserver pkg/cel/library/urls.go",
        introduced: 0,
        removed: None,
        functions: &[
            "url",
            "isURL",
            "getScheme",
            "getHost",
            "getHostname",
            "getPort",
            "getEscapedPath",
            "getQuery",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/regex.go",
        introduced: 0,
        removed: None,
        functions: &["find", "findAll"],
    },
    Library {
        source: "apiserver pkg/cel/library/lists.go (ListsVersion 0)",
        introduced: 0,
        removed: Some(37),
        functions: &["isSorted", "sum", "max", "min", "indexOf", "lastIndexOf"],
    },
    Library {
        source: "cel-go ext/strings.go (StringsVersion 0)",
        introduced: 0,
        removed: Some(29),
        functions: &[
            "charAt",
            "indexOf",
            "lastIndexOf",
            "lowerAscii",
            "replace",
            "split",
            "substring",
            "trim",
            "upperAscii",
            "join",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/authz.go",
        introduced: 27,
        removed: None,
        functions: &[
            "path",
            "group",
            "serviceAccount",
            "resource",
            "subresource",
            "namespace",
            "name",
            "check",
            "allowed",
            "reason",
            "errored",
            "error",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/quantity.go",
        introduced: 28,
        removed: None,
        functions: &[
            "quantity",
            "isQuantity",
            "sign",
            "isGreaterThan",
            "isLessThan",
            "compareTo",
            "add",
            "sub",
            "asInteger",
            "isInteger",
            "asApproximateFloat",
        ],
    },
    Library {
        source: "cel-go cel/library.go (cel.OptionalTypes)",
        introduced: 28,
        removed: None,
        functions: &[
            "optional.of",
            "optional.ofNonZeroValue",
            "optional.none",
            "optional.unwrap",
            "value",
            "hasValue",
            "or",
            "orValue",
            "optMap",
            "optFlatMap",
            "first",
            "last",
            "unwrapOpt",
        ],
    },
    Library {
        source: "cel-go ext/strings.go (StringsVersion 2)",
        introduced: 29,
        removed: None,
        functions: &[
            "charAt",
            "indexOf",
            "lastIndexOf",
            "lowerAscii",
            "replace",
            "split",
            "substring",
            "trim",
            "upperAscii",
            "join",
            "format",
            "strings.quote",
        ],
    },
    Library {
        source: "cel-go ext/sets.go",
        introduced: 29,
        removed: None,
        functions: &["sets.contains", "sets.equivalent", "sets.intersects"],
    },
    Library {
        source: "apiserver pkg/cel/library/ip.go",
        introduced: 30,
        removed: None,
        functions: &[
            "ip",
            "isIP",
            "ip.isCanonical",
            "family",
            "isUnspecified",
            "isLoopback",
            "isLinkLocalMulticast",
            "isLinkLocalUnicast",
            "isGlobalUnicast",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/cidr.go",
        introduced: 30,
        removed: None,
        functions: &[
            "cidr",
            "isCIDR",
            "containsIP",
            "containsCIDR",
            "masked",
            "prefixLength",
            "ip",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/format.go",
        introduced: 31,
        removed: None,
        functions: &[
            "validate",
            "format.named",
            "format.dns1123Label",
            "format.dns1123Subdomain",
            "format.dns1035Label",
            "format.qualifiedName",
            "format.dns1123LabelPrefix",
            "format.dns1123SubdomainPrefix",
            "format.dns1035LabelPrefix",
            "format.labelValue",
            "format.uri",
            "format.uuid",
            "format.byte",
            "format.date",
            "format.datetime",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/authz.go (AuthzSelectors)",
        introduced: 31,
        removed: None,
        functions: &["fieldSelector", "labelSelector"],
    },
    Library {
        // The three-argument forms; the parser expands the two-argument ones as standard
        // macros, so a call left in the AST under these names is a two-variable one.
        source: "cel-go ext/comprehensions.go (TwoVarComprehensions)",
        introduced: 32,
        removed: None,
        functions: &[
            "all",
            "exists",
            "exists_one",
            "existsOne",
            "transformList",
            "transformMap",
            "transformMapEntry",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/semverlib.go",
        introduced: 33,
        removed: None,
        functions: &[
            "semver",
            "isSemver",
            "major",
            "minor",
            "patch",
            "isGreaterThan",
            "isLessThan",
            "compareTo",
        ],
    },
    Library {
        source: "cel-go ext/lists.go (ListsVersion 3)",
        introduced: 34,
        removed: None,
        functions: &[
            "slice",
            "flatten",
            "sort",
            "sortBy",
            "lists.range",
            "reverse",
            "distinct",
        ],
    },
    Library {
        source: "apiserver pkg/cel/library/lists.go (ListsVersion 1)",
        introduced: 37,
        removed: None,
        functions: &[
            "isSorted",
            "sum",
            "max",
            "min",
            "indexOf",
            "lastIndexOf",
            "includes",
        ],
    },
];

/// The minor of the environment new CRD rules are compiled with when claiming `version`.
pub fn new_rule_env(version: KubeVersion) -> u32 {
    version.minor.saturating_sub(1)
}

/// Whether `name` (`ns.name` for namespaced functions) is declared in the base
/// environment of `1.env_minor`.
pub fn declared(name: &str, env_minor: u32) -> bool {
    STANDARD.contains(&name)
        || LIBRARIES.iter().any(|l| {
            l.introduced <= env_minor
                && l.removed.is_none_or(|r| env_minor < r)
                && l.functions.contains(&name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rules_use_the_previous_minor() {
        assert_eq!(new_rule_env(KubeVersion::new(1, 29)), 28);
        assert!(declared("quantity", 28));
        assert!(!declared("sets.contains", 28));
        assert!(declared("sets.contains", 29));
        assert!(!declared("isIP", 29));
        assert!(declared("isIP", 30));
        assert!(!declared("format.named", 30));
        assert!(declared("format.named", 31));
        assert!(declared("compareTo", 28) && declared("compareTo", 40));
        assert!(!declared("includes", 36) && declared("includes", 37));
        assert!(declared("indexOf", 40));
        assert!(!declared("math.greatest", 99));
    }
}
