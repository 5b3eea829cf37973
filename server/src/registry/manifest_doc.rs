//! Reading a pushed manifest: which kind it is, which media type it is served with, what it
//! references, and its descriptor in a referrers list. The bytes themselves are never rewritten;
//! unknown fields are ignored here and kept in storage.

use std::collections::BTreeMap;

use oci_storage_core::Digest;
use oci_storage_core::media_type::is_media_type;
use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// A descriptor as found in manifests (extra fields are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub data: Option<String>,
}

/// The fields of a manifest or index that the registry needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Whether a document lists blobs (an image manifest) or other manifests (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

/// A validated manifest.
#[derive(Debug)]
pub struct ManifestDoc {
    pub kind: Kind,
    /// The media type the manifest is stored and served with.
    pub media_type: String,
    /// Blobs that must exist in the repository (config and distributable layers).
    pub blobs: Vec<Digest>,
    /// Child manifests that must exist in the repository (for an index).
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image manifest its config media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The media type without parameters, e.g. `application/json; charset=utf-8` → `application/json`.
pub fn base_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// At most 80 characters of a value quoted in an error message.
fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, message)
}

fn parse_digest(d: &Descriptor, what: &str) -> Result<Digest> {
    if d.media_type.is_empty() {
        return Err(invalid(format!("{what} has no mediaType")));
    }
    if d.size < 0 {
        return Err(invalid(format!("{what} has a negative size")));
    }
    d.digest
        .parse()
        .map_err(|e| invalid(format!("{what} has an invalid digest {:?}: {e}", d.digest)))
}

/// Layers that clients are not expected to push (foreign / non-distributable).
fn is_non_distributable(d: &Descriptor) -> bool {
    d.media_type.contains("nondistributable")
        || d.media_type.contains(".foreign.")
        || !d.urls.is_empty()
}

impl ManifestDoc {
    /// Parses and validates a manifest pushed with `content_type` (the request's Content-Type).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self> {
        super::strict_json::check(bytes)
            .map_err(|e| invalid(format!("manifest is not acceptable JSON: {e}")))?;
        let raw: RawDoc = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
        let header_type = content_type.map(base_media_type).filter(|t| {
            !t.is_empty() && *t != "application/json" && *t != "application/octet-stream"
        });
        if let (Some(header), Some(field)) = (header_type, raw.media_type.as_deref())
            && header != field
        {
            return Err(invalid(format!(
                "Content-Type {header} does not match the manifest's mediaType {field}"
            )));
        }
        let declared = header_type.or(raw.media_type.as_deref());
        if declared.is_some_and(|t| DOCKER_SCHEMA1.contains(&t)) {
            return Err(invalid("Docker schema 1 manifests are not supported").with_status(400));
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        let kind = match declared {
            Some(OCI_INDEX | DOCKER_LIST) => Kind::Index,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => Kind::Manifest,
            _ if raw.manifests.is_some() => Kind::Index,
            _ if raw.config.is_some() => Kind::Manifest,
            _ => return Err(invalid("neither an image manifest nor an index")),
        };
        if let Some(t) = declared.filter(|t| !is_media_type(t)) {
            return Err(invalid(format!(
                "mediaType {:?} is not a media type (RFC 6838: type/subtype)",
                shorten(t)
            )));
        }
        let media_type = declared.map(str::to_owned).unwrap_or_else(|| match kind {
            Kind::Index => OCI_INDEX.to_owned(),
            Kind::Manifest => OCI_MANIFEST.to_owned(),
        });
        let mut blobs = Vec::new();
        let mut children = Vec::new();
        let mut artifact_type = raw.artifact_type.clone();
        match kind {
            Kind::Manifest => {
                let config = raw
                    .config
                    .as_ref()
                    .ok_or_else(|| invalid("image manifest without config"))?;
                let config_digest = parse_digest(config, "config")?;
                if config.data.is_none() {
                    blobs.push(config_digest);
                }
                if artifact_type.is_none() {
                    artifact_type = Some(config.media_type.clone());
                }
                for (i, layer) in raw.layers.iter().flatten().enumerate() {
                    let digest = parse_digest(layer, &format!("layers[{i}]"))?;
                    if !is_non_distributable(layer) && layer.data.is_none() {
                        blobs.push(digest);
                    }
                }
                if raw.manifests.is_some() {
                    return Err(invalid("image manifest must not have manifests"));
                }
            }
            Kind::Index => {
                let manifests = raw
                    .manifests
                    .as_ref()
                    .ok_or_else(|| invalid("index without manifests"))?;
                for (i, m) in manifests.iter().enumerate() {
                    children.push(parse_digest(m, &format!("manifests[{i}]"))?);
                }
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err(invalid("index must not have config or layers"));
                }
            }
        }
        if let Some(t) = artifact_type.as_deref().filter(|t| !is_media_type(t)) {
            return Err(invalid(format!(
                "artifactType {:?} is not a media type (RFC 6838: type/subtype)",
                shorten(t)
            )));
        }
        let subject = raw
            .subject
            .as_ref()
            .map(|s| parse_digest(s, "subject"))
            .transpose()?;
        Ok(Self {
            kind,
            media_type,
            blobs,
            children,
            subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }

    /// This manifest's entry in its subject's referrers list.
    pub fn referrer_descriptor(&self, digest: &Digest, size: u64) -> ReferrerDescriptor {
        ReferrerDescriptor {
            media_type: self.media_type.clone(),
            digest: digest.to_string(),
            size,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// A descriptor in a referrers response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn manifest(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},"layers":[]{extra}}}"#
        )
    }

    #[test]
    fn image_manifest() {
        let doc = ManifestDoc::parse(manifest("").as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(doc.kind, Kind::Manifest);
        assert_eq!(doc.blobs.len(), 1);
        assert_eq!(
            doc.artifact_type.as_deref(),
            Some("application/vnd.oci.empty.v1+json")
        );
    }

    #[test]
    fn media_types_follow_rfc_6838() {
        let long = format!("application/{}", "a".repeat(128));
        let field = |t: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{t}","config":{{"mediaType":"a/b","digest":"{D}","size":2}},"layers":[]}}"#
            )
        };
        let err = ManifestDoc::parse(field(&long).as_bytes(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
        let err = ManifestDoc::parse(field("a/b; x=y").as_bytes(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
        let err = ManifestDoc::parse(manifest(r#","artifactType":"not a type""#).as_bytes(), None)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
    }

    #[test]
    fn duplicate_keys_and_deep_nesting_are_invalid() {
        let dup = manifest(r#","annotations":{"k":"1","k":"2"}"#);
        let err = ManifestDoc::parse(dup.as_bytes(), Some(OCI_MANIFEST)).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
        let deep = manifest(&format!(r#","x":{}{}"#, "[".repeat(5000), "]".repeat(5000)));
        let err = ManifestDoc::parse(deep.as_bytes(), Some(OCI_MANIFEST)).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
    }

    #[test]
    fn mismatched_content_type() {
        let err = ManifestDoc::parse(manifest("").as_bytes(), Some(OCI_INDEX)).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
    }

    #[test]
    fn foreign_layers_need_not_exist() {
        let extra =
            format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}}"#);
        let text = manifest(&extra).replace(
            r#""layers":[]"#,
            &format!(
                r#""layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{D}","size":9,"urls":["https://x"]}}]"#
            ),
        );
        let doc = ManifestDoc::parse(text.as_bytes(), None).unwrap();
        assert_eq!(doc.blobs.len(), 1, "only the config");
        assert!(doc.subject.is_some());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "not json",
            "{}",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1}}"#,
            r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"md5:00","size":1}]}"#,
        ] {
            assert!(ManifestDoc::parse(bad.as_bytes(), None).is_err(), "{bad}");
        }
    }
}
