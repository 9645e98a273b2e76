//! SES's rules for resource tags, as CreateEmailIdentity and TagResource enforce them.
//!
//! Source: SES v2 API Reference, data type `Tag` (also in botocore's
//! `sesv2/2019-09-27/service-2.json`, shape `Tag`): at most 50 tags per resource; a key of 1–128
//! and a value of 0–256 characters; "Unicode letters, digits, white space, or one of the
//! following symbols: _ . : / = + -"; the `aws:` prefix is reserved ("you can't use it in any
//! tag keys or values that you define") and tags using it do not count against the 50; each key
//! unique per resource. The SDK's model carries no pattern, so only the server refuses a bad tag
//! (HTTP 400 `BadRequestException`).
//!
//! Where probes of the real service are more lenient than the reference (`@` is accepted, and a
//! value starting with `aws:` is), the stand-in follows the reference: a stand-in must refuse at
//! least what the service refuses. The messages are the service's, as observed; their order of
//! evaluation too (count, then characters, then the reserved prefix, then lengths, then
//! duplicates).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::errors::SesError;

/// At most this many tags (not counting `aws:` ones) per resource.
pub const MAX_TAGS: usize = 50;
/// Longest key, in characters (Unicode code points).
pub const MAX_KEY_CHARS: usize = 128;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// Letters, digits, white space (Unicode separators) and `_ . : / = + -`.
static CHARSET: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-]*$").expect("invariant: a valid pattern")
});

const TOO_MANY: &str = "Maximum of 50 user tags are allowed per resource, consider reducing the number of tags in the request";
const BAD_CHARACTERS: &str = "Tags can only contain letters, numbers, spaces, and the following special characters: _ . : / = + -";
const RESERVED: &str = "Caller is an end user and not allowed to mutate system tags";
const DUPLICATE: &str = "Cannot provide multiple tags with the same key";

fn reserved(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

fn user_tags<'a>(keys: impl Iterator<Item = &'a String>) -> usize {
    keys.filter(|k| !reserved(k)).count()
}

/// Checks the tags of one request, as SES does before it touches the resource.
pub fn validate(tags: &[(String, String)]) -> Result<(), SesError> {
    if user_tags(tags.iter().map(|(k, _)| k)) > MAX_TAGS {
        return Err(SesError::BadRequest(TOO_MANY.into()));
    }
    if tags
        .iter()
        .any(|(k, v)| !CHARSET.is_match(v) || !CHARSET.is_match(k))
    {
        return Err(SesError::BadRequest(BAD_CHARACTERS.into()));
    }
    if tags.iter().any(|(k, v)| reserved(k) || reserved(v)) {
        return Err(SesError::BadRequest(RESERVED.into()));
    }
    let mut lengths = Vec::new();
    for (i, (key, value)) in tags.iter().enumerate() {
        if value.chars().count() > MAX_VALUE_CHARS {
            lengths.push(format!("Value at 'tags.{}.member.value' failed to satisfy constraint: Member must have length less than or equal to {MAX_VALUE_CHARS}", i + 1));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            lengths.push(format!("Value at 'tags.{}.member.key' failed to satisfy constraint: Member must have length less than or equal to {MAX_KEY_CHARS}", i + 1));
        }
        if key.is_empty() {
            lengths.push(format!("Value at 'tags.{}.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1", i + 1));
        }
    }
    if !lengths.is_empty() {
        let n = lengths.len();
        return Err(SesError::BadRequest(format!(
            "{n} validation error{} detected: {}",
            if n > 1 { "s" } else { "" },
            lengths.join("; ")
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if !tags.iter().all(|(k, _)| seen.insert(k)) {
        return Err(SesError::BadRequest(DUPLICATE.into()));
    }
    Ok(())
}

/// UntagResource: tags using the reserved prefix cannot be removed.
pub fn check_untag(keys: &[String]) -> Result<(), SesError> {
    if keys.iter().any(|k| reserved(k)) {
        return Err(SesError::BadRequest(RESERVED.into()));
    }
    Ok(())
}

/// TagResource: checks the request, then adds or replaces the tags; the 50-tag limit applies to
/// the merged set (replacing a value is always allowed). Nothing changes when it fails.
pub fn merge(
    tags: &mut BTreeMap<String, String>,
    new: Vec<(String, String)>,
) -> Result<(), SesError> {
    validate(&new)?;
    let mut merged = tags.clone();
    merged.extend(new);
    if user_tags(merged.keys()) > MAX_TAGS {
        return Err(SesError::BadRequest(format!(
            "{TOO_MANY} or delete existing tags and retry"
        )));
    }
    *tags = merged;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    fn message(r: Result<(), SesError>) -> String {
        match r {
            Err(SesError::BadRequest(m)) => m,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn lengths_are_counted_in_characters_at_and_past_the_limit() {
        let key = "k".repeat(MAX_KEY_CHARS);
        let value = "é".repeat(MAX_VALUE_CHARS); // 512 bytes, 256 characters
        assert_eq!(validate(&[tag(&key, &value)]), Ok(()));
        let m = message(validate(&[tag(&format!("{key}k"), "v")]));
        assert!(
            m.contains("'tags.1.member.key'") && m.contains("128"),
            "{m}"
        );
        let m = message(validate(&[tag("a", "v"), tag("b", &format!("{value}x"))]));
        assert!(
            m.starts_with("1 validation error detected: Value at 'tags.2.member.value'"),
            "{m}"
        );
        assert!(message(validate(&[tag("", "v")])).contains("greater than or equal to 1"));
        assert_eq!(
            validate(&[tag("k", "")]),
            Ok(()),
            "an empty value is allowed"
        );
    }

    #[test]
    fn only_letters_digits_spaces_and_seven_symbols() {
        assert_eq!(
            validate(&[tag(
                "email.ops.dev/owner/0a1b",
                "Delete prod-eu/billing/x_y:z=1+2"
            )]),
            Ok(())
        );
        assert_eq!(validate(&[tag("équipe", "Überweisung 東京 ２")]), Ok(()));
        for bad in [";", "@", "#", "a,b", "(x)", "*", "\u{0}"] {
            assert_eq!(
                message(validate(&[tag("k", bad)])),
                BAD_CHARACTERS,
                "{bad:?}"
            );
            assert_eq!(
                message(validate(&[tag(bad, "v")])),
                BAD_CHARACTERS,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_aws_prefix_is_reserved_in_keys_and_values() {
        assert_eq!(
            message(validate(&[tag("aws:cloudformation:stack", "x")])),
            RESERVED
        );
        assert_eq!(message(validate(&[tag("AWS:x", "y")])), RESERVED);
        assert_eq!(message(validate(&[tag("k", "aws:x")])), RESERVED);
        assert_eq!(validate(&[tag("awsx", "aws")]), Ok(()));
    }

    #[test]
    fn fifty_tags_at_most_per_request_and_per_resource() {
        let fifty: Vec<_> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(validate(&fifty), Ok(()));
        let mut fifty_one = fifty.clone();
        fifty_one.push(tag("k50", "v"));
        assert_eq!(message(validate(&fifty_one)), TOO_MANY);

        let mut stored = BTreeMap::new();
        merge(&mut stored, fifty[..49].to_vec()).expect("49");
        merge(&mut stored, vec![tag("k49", "v")]).expect("the 50th");
        merge(&mut stored, vec![tag("k0", "new")]).expect("replacing a value");
        let before = stored.clone();
        let m = message(merge(&mut stored, vec![tag("k50", "v")]));
        assert!(m.ends_with("or delete existing tags and retry"), "{m}");
        assert_eq!(stored, before, "a refused TagResource changes nothing");
    }

    #[test]
    fn keys_are_unique_within_a_request() {
        assert_eq!(
            message(validate(&[tag("k", "a"), tag("k", "b")])),
            DUPLICATE
        );
    }
}
