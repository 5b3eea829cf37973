//! Properties of digest parsing, the grammar every blob and manifest URL goes through: any
//! input is answered without a panic, exactly the canonical `sha256:`/`sha512:` lowercase-hex
//! forms are accepted, and what is accepted prints back unchanged.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// The grammar, restated independently of the parser.
fn canonical(s: &str) -> bool {
    let hex_of = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match s.split_once(':') {
        Some(("sha256", hex)) => hex_of(hex, 64),
        Some(("sha512", hex)) => hex_of(hex, 128),
        _ => false,
    }
}

fn valid_digest() -> impl Strategy<Value = String> {
    prop_oneof!["sha256:[0-9a-f]{64}", "sha512:[0-9a-f]{128}"]
}

/// A valid digest with one character replaced, inserted or removed; the character is mostly
/// one that matters to the grammar (separator, case, hex edge, non-ASCII).
fn near_valid_digest() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        3 => prop::sample::select(vec![':', 'A', 'F', 'f', 'g', '0', '9', ' ', '/', '\0', 'é']),
        1 => any::<char>(),
    ];
    (valid_digest(), any::<Index>(), 0..3u8, chars).prop_map(|(s, at, op, c)| {
        let mut v: Vec<char> = s.chars().collect();
        let i = at.index(v.len());
        match op {
            0 => v[i] = c,
            1 => v.insert(i, c),
            _ => {
                v.remove(i);
            }
        }
        v.into_iter().collect()
    })
}

fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        near_valid_digest(),
        "(sha256|sha512|md5|):.{0,130}"
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Accepts exactly the grammar; whatever it accepts prints back as the same string, so a
    /// digest read from a URL and one written into a storage key never differ.
    #[test]
    fn parse_accepts_exactly_the_canonical_form(s in any_input()) {
        let parsed = s.parse::<Digest>();
        prop_assert_eq!(parsed.is_ok(), canonical(&s), "{:?} → {:?}", s, parsed);
        if let Ok(d) = parsed {
            prop_assert_eq!(d.to_string(), s.clone());
            prop_assert_eq!(format!("{}:{}", d.algorithm().as_str(), d.hex()), s);
        }
    }

    /// Serde (manifests, records) and `FromStr` (URLs) agree on every input.
    #[test]
    fn serde_agrees_with_from_str(s in any_input()) {
        let json = serde_json::to_string(&s).unwrap();
        let via_serde = serde_json::from_str::<Digest>(&json).ok();
        prop_assert_eq!(via_serde, s.parse::<Digest>().ok());
    }

    /// A computed digest is in the canonical form and round-trips through text and JSON.
    #[test]
    fn computed_digests_round_trip(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        sha512 in any::<bool>(),
    ) {
        let algorithm = if sha512 { DigestAlgorithm::Sha512 } else { DigestAlgorithm::Sha256 };
        let d = algorithm.digest(&bytes);
        let text = d.to_string();
        prop_assert!(canonical(&text), "{}", text);
        prop_assert_eq!(text.parse::<Digest>().unwrap(), d.clone());
        let json = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }
}
