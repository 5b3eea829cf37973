//! Properties of the name, tag and reference grammar that every `/v2` path goes through:
//! any input is answered without a panic, what is accepted is a safe storage key fragment
//! (every layout key built from it is valid, since layout `expect`s that), and what is
//! accepted prints back unchanged. The strategies are shared with the endpoint properties.

use proptest::prelude::*;

use super::*;
use crate::registry::layout;
use crate::test_support::near_valid;

/// A repository name as the OCI grammar defines it, short components or long ones near the
/// 253-character limit (the long ones may pass it).
pub(crate) fn name_like() -> impl Strategy<Value = String> {
    let component = "[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,3}";
    prop_oneof![
        3 => prop::collection::vec(component, 1..5).prop_map(|c| c.join("/")),
        1 => prop::collection::vec("[a-z0-9]{1,70}", 3..6).prop_map(|c| c.join("/")),
    ]
}

pub(crate) fn valid_name() -> impl Strategy<Value = String> {
    name_like().prop_filter("within the length limit", |n| n.len() <= MAX_NAME_LEN)
}

pub(crate) fn valid_tag() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
}

pub(crate) fn valid_digest() -> impl Strategy<Value = String> {
    prop_oneof!["sha256:[0-9a-f]{64}", "sha512:[0-9a-f]{128}"]
}

/// What an accepted name must be, whatever the parser's own logic: the storage layout and
/// the catalog encoding rely on each of these.
fn safe_name(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    s.len() <= MAX_NAME_LEN
        && !s.contains("..")
        && !s.contains("___")
        && s.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && alnum(b[0])
                && alnum(b[b.len() - 1])
                && b.iter().all(|&x| alnum(x) || b"._-".contains(&x))
        })
}

fn tag_grammar(s: &str) -> bool {
    let ok = |b: u8, first: bool| {
        b.is_ascii_alphanumeric() || b == b'_' || (!first && b".-".contains(&b))
    };
    (1..=128).contains(&s.len()) && s.bytes().enumerate().all(|(i, b)| ok(b, i == 0))
}

/// Builds every layout key of a repository; a panic here is a 500 on a valid request.
fn all_keys(name: &RepoName, tag: &Tag, a: &Digest, b: &Digest) {
    layout::blob(a);
    layout::blob_link(name, a);
    layout::manifest_link(name, a);
    layout::tag(name, tag);
    layout::referrer(name, a, b);
    layout::catalog_entry(name);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_names_round_trip(s in name_like()) {
        let parsed = RepoName::parse(&s);
        prop_assert_eq!(parsed.is_some(), s.len() <= MAX_NAME_LEN, "{}", s);
        if let Some(name) = parsed {
            prop_assert_eq!(name.to_string(), s.clone());
            prop_assert_eq!(RepoName::parse(&name.to_string()), Some(name));
        }
    }

    #[test]
    fn accepted_names_are_safe(
        s in prop_oneof![any::<String>(), near_valid(valid_name()), "[a-z0-9._/-]{0,12}"],
    ) {
        if let Some(name) = RepoName::parse(&s) {
            prop_assert!(safe_name(&s), "{:?}", s);
            prop_assert_eq!(name.as_str(), s.as_str());
        }
    }

    #[test]
    fn tags_accept_exactly_their_grammar(
        s in prop_oneof![any::<String>(), valid_tag(), near_valid(valid_tag())],
    ) {
        let parsed = Tag::parse(&s);
        prop_assert_eq!(parsed.is_some(), tag_grammar(&s), "{:?}", s);
        if let Some(tag) = parsed {
            prop_assert_eq!(tag.to_string(), s);
        }
    }

    /// A reference is a digest exactly when it has a `:`, otherwise a tag; both print back
    /// as given.
    #[test]
    fn references_round_trip(s in prop_oneof![
        any::<String>(),
        valid_tag(),
        valid_digest(),
        near_valid(valid_tag()),
        near_valid(valid_digest()),
    ]) {
        match s.parse::<Reference>() {
            Ok(r) => {
                prop_assert_eq!(r.to_string(), s.clone());
                prop_assert_eq!(s.parse::<Reference>(), Ok(r.clone()));
                match r {
                    Reference::Tag(_) => prop_assert!(!s.contains(':')),
                    Reference::Digest(_) => prop_assert!(s.contains(':')),
                }
            }
            Err(()) => prop_assert!(Tag::parse(&s).is_none() || s.contains(':')),
        }
    }

    /// A valid name is a safe storage key fragment: every key of the layout builds (it
    /// `expect`s so), and the catalog key sorts and decodes as the name does.
    #[test]
    fn valid_names_build_every_layout_key(
        a in valid_name(),
        b in valid_name(),
        tag in valid_tag(),
        d1 in valid_digest(),
        d2 in valid_digest(),
    ) {
        let (na, nb) = (RepoName::parse(&a).unwrap(), RepoName::parse(&b).unwrap());
        let tag = Tag::parse(&tag).unwrap();
        let (d1, d2): (Digest, Digest) = (d1.parse().unwrap(), d2.parse().unwrap());
        all_keys(&na, &tag, &d1, &d2);
        let (ka, kb) = (layout::catalog_entry(&na), layout::catalog_entry(&nb));
        prop_assert_eq!(layout::catalog_name(ka.as_str()), Some(a.clone()));
        prop_assert_eq!(a.cmp(&b), ka.as_str().cmp(kb.as_str()), "{} vs {}", a, b);
    }
}
