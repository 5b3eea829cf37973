//! `storage.s3` settings and the client they build. Every value a cloud client would otherwise
//! go looking for (endpoint, region, credentials) can be given explicitly, so nothing probes an
//! instance metadata server unless the default credential chain is asked for.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use oci_storage_core::{PluginError, Secret};
use serde::Deserialize;

/// The smallest part S3 accepts (MiB).
const MIN_PART_MIB: u64 = 5;
/// The largest part S3 accepts (MiB).
const MAX_PART_MIB: u64 = 5 * 1024;

/// `storage.s3`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Objects are stored under this prefix (e.g. `registry/`), so a bucket can be shared.
    #[serde(default)]
    pub prefix: String,
    /// The region; defaults to the SDK's (environment, profile), else `us-east-1`.
    pub region: Option<String>,
    /// A custom endpoint for S3-compatible stores, e.g. `http://minio:9000`.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    #[serde(default)]
    pub force_path_style: bool,
    /// Static credentials (`accessKeyIdFile` / `secretAccessKeyFile` read them from files).
    /// Without them, the SDK's default chain is used (environment, profile, web identity,
    /// container and instance roles).
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Unsigned requests, without credentials (a local server or a public bucket); never asks
    /// the default credential chain.
    #[serde(default)]
    pub anonymous: bool,
    /// `whenSupported` (the SDK default) or `whenRequired`: some S3-compatible stores reject
    /// the SDK's streaming checksums, and need `whenRequired`.
    #[serde(default)]
    pub request_checksum_calculation: ChecksumCalculation,
    /// Size of the parts large objects are uploaded in (MiB, 5..=5120). Each upload in flight
    /// holds about two parts in memory.
    #[serde(default = "default_part_size_mib")]
    pub part_size_mib: u64,
    /// Answer blob downloads with a redirect to a presigned URL of the bucket, so the bytes
    /// flow from the store to the client directly. Clients must reach `endpoint` (or AWS).
    #[serde(default)]
    pub redirect_downloads: bool,
    /// How long a presigned download URL stays valid (seconds, 1..=604800).
    #[serde(default = "default_redirect_expiry_seconds")]
    pub redirect_expiry_seconds: u64,
}

fn default_redirect_expiry_seconds() -> u64 {
    300
}

fn default_part_size_mib() -> u64 {
    8
}

/// When the SDK computes request checksums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChecksumCalculation {
    #[default]
    WhenSupported,
    WhenRequired,
}

impl S3Config {
    fn invalid(message: impl Into<String>) -> PluginError {
        PluginError::Init(format!("storage.s3: {}", message.into()))
    }

    pub(crate) fn part_size(&self) -> Result<usize, PluginError> {
        if !(MIN_PART_MIB..=MAX_PART_MIB).contains(&self.part_size_mib) {
            return Err(Self::invalid(format!(
                "partSizeMib must be between {MIN_PART_MIB} and {MAX_PART_MIB}"
            )));
        }
        Ok((self.part_size_mib * 1024 * 1024) as usize)
    }

    /// How long presigned download URLs live, when downloads are redirected.
    pub(crate) fn redirect_expiry(&self) -> Result<Option<Duration>, PluginError> {
        if !self.redirect_downloads {
            return Ok(None);
        }
        if !(1..=604_800).contains(&self.redirect_expiry_seconds) {
            return Err(Self::invalid(
                "redirectExpirySeconds must be between 1 and 604800 (7 days)",
            ));
        }
        Ok(Some(Duration::from_secs(self.redirect_expiry_seconds)))
    }

    /// The prefix with a trailing `/` (or empty), checked to be a sequence of key segments.
    pub(crate) fn normalised_prefix(&self) -> Result<String, PluginError> {
        oci_storage_core::object_parts::object_prefix(&self.prefix)
            .map_err(|e| Self::invalid(format!("prefix: {e}")))
    }

    pub(crate) async fn client(&self) -> Result<Client, PluginError> {
        if self.bucket.is_empty() {
            return Err(Self::invalid("bucket is required"));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            // The read timeout runs until response headers, which for a server-side copy of a
            // multi-GiB part can take minutes; it is there for stalled stores, not slow ones.
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(300))
                .build(),
        );
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), _) | (_, Some(_)) if self.anonymous => {
                return Err(Self::invalid(
                    "anonymous: true and accessKeyId/secretAccessKey exclude each other",
                ));
            }
            (None, None) if self.anonymous => loader = loader.no_credentials(),
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id.expose(),
                    secret.expose(),
                    self.session_token.as_ref().map(|t| t.expose().to_owned()),
                    None,
                    "oci-storage-config",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(Self::invalid("accessKeyId and secretAccessKey go together"));
            }
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.force_path_style)
            .request_checksum_calculation(match self.request_checksum_calculation {
                ChecksumCalculation::WhenSupported => RequestChecksumCalculation::WhenSupported,
                ChecksumCalculation::WhenRequired => RequestChecksumCalculation::WhenRequired,
            });
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Client::from_conf(builder.build()))
    }
}
