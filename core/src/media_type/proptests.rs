//! Properties of the media-type check that guards every `mediaType`/`artifactType` pushed in
//! a manifest (and later served as a Content-Type): no panic on any input, RFC 6838 names
//! accepted, and nothing accepted that could break a header or smuggle parameters.

use proptest::prelude::*;

use super::*;

/// `type/subtype`, each a restricted-name of 1..=127 characters.
fn valid_media_type() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}";
    (name, name).prop_map(|(t, s)| format!("{t}/{s}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn accepts_rfc_6838_names(t in valid_media_type()) {
        prop_assert!(is_media_type(&t), "{}", t);
    }

    /// Whatever is accepted is one `/` between two short runs of header-safe characters.
    #[test]
    fn accepted_types_are_header_safe(
        s in prop_oneof![any::<String>(), "[a-z0-9/;= .+é\"\r\n-]{0,40}"],
    ) {
        if is_media_type(&s) {
            prop_assert_eq!(s.matches('/').count(), 1);
            prop_assert!(s.len() <= 255);
            let safe = |b: u8| b.is_ascii_graphic() && !b";,\"\\ ".contains(&b);
            prop_assert!(s.bytes().all(safe), "{}", s);
        }
    }

    /// One character of a valid type swapped for a separator, a space or a non-ASCII letter
    /// makes it invalid.
    #[test]
    fn a_forbidden_character_is_refused(
        t in valid_media_type(),
        at in any::<prop::sample::Index>(),
        c in prop::sample::select(vec![';', ' ', '"', ',', '\r', '\n', '/', 'é', '\0', '='])
    ) {
        let mut chars: Vec<char> = t.chars().collect();
        let i = at.index(chars.len());
        chars[i] = c;
        let mutated: String = chars.into_iter().collect();
        // Replacing the one `/` with `/` leaves the type as it was.
        prop_assume!(mutated != t);
        prop_assert!(!is_media_type(&mutated), "{}", mutated);
    }
}
