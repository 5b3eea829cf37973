//! Properties of manifest parsing, the path every pushed manifest and index takes: valid
//! documents of each kind are read as what they are, and any other bytes — garbage, or a
//! valid document with a field removed, swapped, retyped, nested, repeated or cut short —
//! are refused as `MANIFEST_INVALID` with a 4xx, never a panic or a 5xx.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

use super::*;
use crate::registry::names::proptests::valid_digest;
use crate::registry::strict_json::proptests::{edit, edited};
use crate::test_support::json_value;

fn media_type() -> impl Strategy<Value = String> {
    "application/vnd\\.[a-z]{1,8}\\.[a-z.]{1,10}(\\+json|\\.tar|\\.tar\\+gzip)?"
}

fn annotations() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z.]{1,10}", any::<String>(), 0..3).prop_map(|m| json!(m))
}

fn descriptor(media_type: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
    (
        media_type,
        valid_digest(),
        0..1_000_000i64,
        prop::option::of(annotations()),
    )
        .prop_map(|(media_type, digest, size, annotations)| {
            let mut d = json!({ "mediaType": media_type, "digest": digest, "size": size });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        })
}

/// A valid manifest or index, the Content-Type it is pushed with, and what it must be read
/// as: its kind, media type, and how many blobs and child manifests it references.
#[derive(Debug, Clone)]
struct Valid {
    doc: Value,
    content_type: Option<String>,
    kind: Kind,
    media_type: String,
    blobs: usize,
    children: usize,
}

fn valid_manifest() -> impl Strategy<Value = Valid> {
    let is_index = any::<bool>();
    let declared = (any::<bool>(), any::<bool>());
    let refs = prop::collection::vec(descriptor(media_type()), 0..4);
    let extras = (
        prop::option::of(descriptor(Just(OCI_MANIFEST.to_owned()))),
        prop::option::of(media_type()),
        prop::option::of(annotations()),
    );
    let header = 0..4u8;
    (
        is_index,
        declared,
        descriptor(media_type()),
        refs,
        extras,
        header,
    )
        .prop_map(
            |(
                is_index,
                (declare, docker),
                config,
                refs,
                (subject, artifact, annotations),
                header,
            )| {
                let media_type = match (is_index, docker) {
                    (true, false) => OCI_INDEX,
                    (true, true) => DOCKER_LIST,
                    (false, false) => OCI_MANIFEST,
                    (false, true) => DOCKER_MANIFEST,
                };
                let media_type = if declare {
                    media_type
                } else if is_index {
                    OCI_INDEX
                } else {
                    OCI_MANIFEST
                };
                let mut doc = json!({ "schemaVersion": 2 });
                if declare {
                    doc["mediaType"] = json!(media_type);
                }
                let n = refs.len();
                if is_index {
                    doc["manifests"] = json!(refs);
                } else {
                    doc["config"] = config;
                    doc["layers"] = json!(refs);
                }
                for (field, value) in [
                    ("subject", subject),
                    ("artifactType", artifact.map(Value::from)),
                    ("annotations", annotations),
                ] {
                    if let Some(v) = value {
                        doc[field] = v;
                    }
                }
                let content_type = match header {
                    0 => None,
                    1 => Some("application/json".to_owned()),
                    2 => Some(media_type.to_owned()),
                    _ => Some(format!("{media_type}; charset=utf-8")),
                };
                Valid {
                    doc,
                    content_type,
                    kind: if is_index {
                        Kind::Index
                    } else {
                        Kind::Manifest
                    },
                    media_type: media_type.to_owned(),
                    blobs: if is_index { 0 } else { 1 + n },
                    children: if is_index { n } else { 0 },
                }
            },
        )
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        prop::sample::select(vec![
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_LIST,
            DOCKER_SCHEMA1[0],
            "application/json",
            ""
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ])
}

/// Refused input is the client's fault: `MANIFEST_INVALID` and a 4xx.
fn refused_as_4xx(bytes: &[u8], content_type: Option<&str>) -> Result<(), TestCaseError> {
    if let Err(e) = ManifestDoc::parse(bytes, content_type) {
        prop_assert_eq!(e.code, ErrorCode::ManifestInvalid);
        prop_assert!((400..500).contains(&e.status), "{}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_documents_are_read_as_what_they_are(v in valid_manifest(), pretty in any::<bool>()) {
        let bytes = match pretty {
            true => serde_json::to_vec_pretty(&v.doc),
            false => serde_json::to_vec(&v.doc),
        }
        .unwrap();
        let doc = ManifestDoc::parse(&bytes, v.content_type.as_deref())
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", v.doc)))?;
        prop_assert_eq!(doc.kind, v.kind);
        prop_assert_eq!(doc.media_type, v.media_type);
        prop_assert_eq!(doc.blobs.len(), v.blobs);
        prop_assert_eq!(doc.children.len(), v.children);
        prop_assert_eq!(doc.subject.is_some(), v.doc.get("subject").is_some());
    }

    /// A valid document after one edit: accepted or refused with a 4xx; a repeated key is
    /// always refused.
    #[test]
    fn edited_documents_are_accepted_or_4xx(
        v in valid_manifest(),
        at in any::<Index>(),
        edit in edit(),
    ) {
        let (bytes, repeated) = edited(&v.doc, at, &edit);
        let result = ManifestDoc::parse(&bytes, v.content_type.as_deref());
        if repeated {
            prop_assert!(result.is_err(), "{}", String::from_utf8_lossy(&bytes));
        }
        refused_as_4xx(&bytes, v.content_type.as_deref())?;
    }

    /// Two edits, and any Content-Type: further from valid, still never a panic or a 5xx.
    #[test]
    fn twice_edited_documents_with_any_content_type_are_accepted_or_4xx(
        v in valid_manifest(), edits in prop::collection::vec((any::<Index>(), edit()), 2),
        content_type in content_type(),
    ) {
        let (once, _) = edited(&v.doc, edits[0].0, &edits[0].1);
        let bytes = match serde_json::from_slice::<Value>(&once) {
            Ok(doc) => edited(&doc, edits[1].0, &edits[1].1).0,
            Err(_) => once,
        };
        refused_as_4xx(&bytes, content_type.as_deref())?;
    }

    #[test]
    fn any_bytes_are_accepted_or_4xx(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
        content_type in content_type(),
    ) {
        refused_as_4xx(&bytes, content_type.as_deref())?;
    }
}
