//! Properties of the token-scope grammar (`type:name:actions`, from the token endpoint's
//! query): any text is answered without a panic, what is accepted has a non-empty type and
//! name and no empty or comma-joined action, and a scope written from its parts (the name
//! may hold `:`, as in `host:port/name`) parses back to those parts.

use proptest::prelude::*;

use super::*;
use crate::registry::names::proptests::valid_name;
use crate::test_support::near_valid;

fn actions() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec!["pull", "push", "delete", "*"]).prop_map(str::to_owned),
            "[^:,]{1,8}",
        ],
        0..4,
    )
}

/// A scope as a Docker client writes it, with a repository name or `host:port/name`.
fn valid_scope() -> impl Strategy<Value = (String, String, Vec<String>)> {
    let kind = prop_oneof![
        Just("repository".to_owned()),
        Just("registry".to_owned()),
        "[^:]{1,10}"
    ];
    let name = prop_oneof![
        valid_name(),
        (valid_name(), 1..65536u32).prop_map(|(n, p)| format!("localhost:{p}/{n}")),
        "[^ ]{1,20}"
    ];
    (kind, name, actions())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scopes_round_trip((kind, name, actions) in valid_scope()) {
        let scope = format!("{kind}:{name}:{}", actions.join(","));
        let g = parse_scope(&scope).unwrap();
        prop_assert_eq!(g, Grant { kind, name, actions });
    }

    #[test]
    fn accepted_scopes_are_well_formed(s in prop_oneof![
        any::<String>(),
        "[a-z:,*]{0,12}",
        near_valid(valid_scope().prop_map(|(k, n, a)| format!("{k}:{n}:{}", a.join(",")))),
    ]) {
        if let Some(g) = parse_scope(&s) {
            prop_assert!(!g.kind.is_empty() && !g.kind.contains(':'));
            prop_assert!(!g.name.is_empty());
            prop_assert!(g.actions.iter().all(|a| !a.is_empty() && !a.contains([',', ':'])));
            // Nothing is invented: the parts are the scope's own text.
            let prefix = format!("{}:{}:", g.kind, g.name);
            prop_assert!(s.starts_with(&prefix), "{:?}", s);
        }
    }
}
