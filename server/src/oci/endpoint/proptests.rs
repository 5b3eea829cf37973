//! Properties of `/v2` path parsing, the first thing every registry request meets: any
//! method and path is answered with an endpoint or a 4xx (never a panic or a 5xx), a 405
//! names the allowed methods, and paths built from valid parts parse to what they name.

use proptest::prelude::*;

use super::*;
use crate::registry::names::proptests::{valid_digest, valid_name, valid_tag};
use crate::test_support::near_valid;

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ]),
        "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// Paths made of the words the router looks for, valid parts and junk, in any order.
fn path_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        prop::sample::select(vec![
            "",
            ".",
            "..",
            "_catalog",
            "tags",
            "list",
            "blobs",
            "uploads",
            "manifests",
            "referrers",
            "sha256:",
            "A",
        ])
        .prop_map(str::to_owned),
        valid_name(),
        valid_tag(),
        valid_digest(),
        any::<String>(),
    ];
    prop::collection::vec(segment, 0..7).prop_map(|s| s.join("/"))
}

/// A path of a real endpoint with valid parts, and the endpoint it names.
fn valid_request() -> impl Strategy<Value = (String, Method, OciEndpoint)> {
    let name = || valid_name().prop_map(|n| RepoName::parse(&n).unwrap());
    let digest = || valid_digest().prop_map(|d| d.parse::<Digest>().unwrap());
    let reference = prop_oneof![
        valid_tag().prop_map(|t| Reference::Tag(crate::registry::Tag::parse(&t).unwrap())),
        digest().prop_map(Reference::Digest),
    ];
    prop_oneof![
        name().prop_map(|name| {
            let path = format!("{name}/tags/list");
            (path, Method::GET, OciEndpoint::ListTags { name })
        }),
        (name(), reference).prop_map(|(name, reference)| {
            let path = format!("{name}/manifests/{reference}");
            let head = false;
            (
                path,
                Method::GET,
                OciEndpoint::GetManifest {
                    name,
                    reference,
                    head,
                },
            )
        }),
        (name(), digest()).prop_map(|(name, digest)| {
            let path = format!("{name}/blobs/{digest}");
            (
                path,
                Method::HEAD,
                OciEndpoint::GetBlob {
                    name,
                    digest,
                    head: true,
                },
            )
        }),
        (name(), digest()).prop_map(|(name, digest)| {
            let path = format!("{name}/referrers/{digest}");
            (
                path,
                Method::GET,
                OciEndpoint::ListReferrers { name, digest },
            )
        }),
        name().prop_map(|name| {
            let path = format!("{name}/blobs/uploads/");
            (path, Method::POST, OciEndpoint::StartUpload { name })
        }),
        (name(), "[0-9a-f]{32}").prop_map(|(name, id)| {
            let path = format!("{name}/blobs/uploads/{id}");
            (path, Method::PATCH, OciEndpoint::PatchUpload { name, id })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_path_gets_an_endpoint_or_a_4xx(
        method in method(),
        path in prop_oneof![
            path_like(),
            any::<String>(),
            near_valid(valid_request().prop_map(|r| r.0)),
        ]
    ) {
        match OciEndpoint::parse(&method, &path) {
            Ok(endpoint) => {
                // Whatever names a repository named a valid one.
                if let Some(name) = endpoint.repository() {
                    let reparsed = RepoName::parse(name.as_str());
                    prop_assert_eq!(reparsed.as_ref(), Some(name));
                }
            }
            Err(e) => {
                prop_assert!((400..500).contains(&e.status), "{} {:?}: {}", method, path, e);
                prop_assert_eq!(e.status == 405, e.allow.is_some());
            }
        }
    }

    #[test]
    fn valid_paths_parse_to_what_they_name((path, method, expected) in valid_request()) {
        prop_assert_eq!(OciEndpoint::parse(&method, &path).unwrap(), expected);
    }
}
