//! The `Upstream` trait: a remote registry that the pull-through proxy reads from (Docker Hub,
//! ghcr.io, …). Implemented by upstream plugins (e.g. the Docker-Hub-style token client); called
//! by the proxy/cache layer.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ByteStream, Digest};

/// Largest manifest (and referrers answer) an upstream may send, as for pushes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A manifest fetched from upstream, with its exact bytes.
///
/// Implementations read at most [`MAX_MANIFEST_BYTES`] and answer a `media_type` that
/// [`crate::media_type::is_media_type`] accepts (anything else is [`UpstreamError::Invalid`]).
#[derive(Debug, Clone)]
pub struct UpstreamManifest {
    pub digest: Digest,
    pub media_type: String,
    /// Empty for a HEAD.
    pub bytes: Bytes,
    pub size: u64,
}

/// A blob being streamed from upstream.
pub struct UpstreamBlob {
    /// The blob's full size, when upstream declared it.
    pub size: Option<u64>,
    pub body: ByteStream,
}

impl fmt::Debug for UpstreamBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBlob")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("not found upstream")]
    NotFound,
    #[error("upstream denied access")]
    Denied,
    #[error("upstream rate limit; retry after {retry_after_secs:?} s")]
    TooManyRequests { retry_after_secs: Option<u64> },
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    #[error("upstream sent invalid data: {0}")]
    Invalid(String),
}

/// A remote registry.
///
/// # Contract
/// - Contacts only the registry it was configured with (and hosts that registry redirects blob
///   downloads to, without forwarding credentials across hosts); never a host taken from a
///   client request.
/// - Handles its own authentication (anonymous or configured credentials, token dance) and
///   reuses tokens until they expire.
/// - `repository` is the upstream name (e.g. `library/nginx`); `reference` a tag or digest.
/// - Returns bytes as upstream sent them; the caller verifies digests and sizes.
/// - `head_manifest` must not count as a pull where the upstream distinguishes (use HEAD).
#[async_trait]
pub trait Upstream: Send + Sync + fmt::Debug {
    /// The registry's name as clients address it, e.g. `docker.io`.
    fn name(&self) -> &str;

    async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[String],
    ) -> Result<UpstreamManifest, UpstreamError>;

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[String],
    ) -> Result<UpstreamManifest, UpstreamError>;

    async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<UpstreamBlob, UpstreamError>;

    /// The referrers of `digest` as an OCI image index (JSON bytes), optionally filtered by
    /// artifact type. Registries without the referrers API answer an empty index. The default
    /// implementation says there are none.
    async fn referrers(
        &self,
        _repository: &str,
        _digest: &Digest,
        _artifact_type: Option<&str>,
    ) -> Result<Bytes, UpstreamError> {
        Ok(Bytes::from_static(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        ))
    }
}
