//! Properties of the `Range` (blob GETs) and `Content-Range` (upload chunks) parsers: no
//! panic and no arithmetic overflow on any header, a partial range always lies inside the
//! blob (so the `Content-Range` answered for it is valid), well-formed headers mean what they
//! say, and a refused upload header maps to a 4xx.

use proptest::prelude::*;

use super::*;
use crate::test_support::near_valid;

/// Numbers where overflow and off-by-one live.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0..20u64, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()]
}

/// Headers shaped like byte ranges: optional numbers, spaces, several ranges, `/total`.
fn range_like() -> impl Strategy<Value = String> {
    let bound = prop_oneof![
        Just(String::new()),
        number().prop_map(|n| n.to_string()),
        "[ 0-9+-]{1,4}"
    ];
    let prefix = prop::sample::select(vec!["bytes=", "bytes ", "", "BYTES=", " bytes="]);
    let tail = prop::sample::select(vec!["", "/*", "/100", ",0-1", " ", "/"]);
    (prefix, bound.clone(), bound, tail).prop_map(|(p, a, b, t)| format!("{p}{a}-{b}{t}"))
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![range_like(), near_valid(range_like()), any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A partial answer is a non-empty range inside the blob: `bytes a-b/size` with
    /// `a <= b < size`, the only valid form (RFC 9110 §14.4).
    #[test]
    fn partial_ranges_lie_inside_the_blob(h in header(), size in prop_oneof![Just(0), number()]) {
        if let RangeRequest::Partial(r) = parse_range(Some(&h), size) {
            prop_assert!(r.start < r.end && r.end <= size, "{:?} of {} → {:?}", h, size, r);
        }
    }

    #[test]
    fn well_formed_ranges_mean_what_they_say(size in 1..u64::MAX, a in number(), b in number()) {
        let (first, last) = (a.min(b), a.max(b));
        let expected = if first >= size {
            RangeRequest::Unsatisfiable
        } else {
            RangeRequest::Partial(first..last.saturating_add(1).min(size))
        };
        prop_assert_eq!(parse_range(Some(&format!("bytes={first}-{last}")), size), expected);
        let open = match first {
            f if f >= size => RangeRequest::Unsatisfiable,
            f => RangeRequest::Partial(f..size),
        };
        prop_assert_eq!(parse_range(Some(&format!("bytes={first}-")), size), open);
        let suffix = match a {
            0 => RangeRequest::Unsatisfiable,
            n => RangeRequest::Partial(size.saturating_sub(n)..size),
        };
        prop_assert_eq!(parse_range(Some(&format!("bytes=-{a}")), size), suffix);
    }

    /// A chunk's range never overflows: its last byte `start + len - 1` is a `u64`.
    #[test]
    fn content_ranges_never_overflow(h in header()) {
        if let Some((start, len)) = parse_content_range(&h) {
            prop_assert!(len >= 1);
            prop_assert!(start.checked_add(len - 1).is_some(), "{:?}", h);
        }
    }

    #[test]
    fn well_formed_content_ranges_round_trip(
        a in number(), b in number(),
        form in prop::sample::select(vec![
            "{a}-{b}", "bytes {a}-{b}/*", "bytes={a}-{b}", " {a} - {b} ",
        ]),
    ) {
        let h = form.replace("{a}", &a.to_string()).replace("{b}", &b.to_string());
        let expected = (a <= b && (a, b) != (0, u64::MAX)).then(|| (a, b - a + 1));
        prop_assert_eq!(parse_content_range(&h), expected, "{:?}", h);
    }

    /// The upload handler refuses any `Content-Range`/`Content-Length` it cannot use with a 4xx.
    #[test]
    fn refused_upload_headers_are_4xx(
        range in prop::option::of(header()),
        length in prop::option::of(prop_oneof![
            number().prop_map(|n| n.to_string()),
            any::<String>(),
        ]),
        patch in any::<bool>(),
    ) {
        let mut req = poem::Request::builder();
        if let Some(v) = range.as_deref().and_then(|v| poem::http::HeaderValue::from_str(v).ok()) {
            req = req.header(poem::http::header::CONTENT_RANGE, v);
        }
        if let Some(v) = length.as_deref().and_then(|v| poem::http::HeaderValue::from_str(v).ok()) {
            req = req.header(poem::http::header::CONTENT_LENGTH, v);
        }
        let req = req.finish();
        if let Err(e) = super::super::handlers::chunk_of(&req, poem::Body::empty(), patch) {
            prop_assert!((400..500).contains(&e.status), "{:?} {:?}: {}", range, length, e);
        }
    }
}

#[test]
fn suffix_range_of_an_empty_blob_is_served_whole() {
    // Was `Partial(0..0)`, answered as 206 with `Content-Range: bytes 0-0/0`, which claims a
    // byte the blob does not have.
    assert_eq!(parse_range(Some("bytes=-5"), 0), RangeRequest::Whole);
}
