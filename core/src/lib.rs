//! The contracts of oci-storage: the four plugin traits, the types they exchange, and the
//! registry of plugin factories. Every other crate depends on this one; it depends on no other
//! oci-storage crate.
//!
//! - [`Storage`]: where everything lives (blobs, manifests, tags, upload sessions).
//! - [`Upstream`]: a remote registry the pull-through proxy reads from.
//! - [`Authenticator`]: turns credentials into an [`Identity`].
//! - [`BackupTarget`]: where backups are written and restored from.
//!
//! Plugins are chosen by a `type` key in configuration and built by factories held in
//! [`Plugins`]; a third party adds a backend by implementing a trait and registering a factory.

pub mod auth;
pub mod backup;
pub mod bounded_cache;
pub mod chunks;
pub mod digest;
pub mod media_type;
#[cfg(feature = "object-parts")]
pub mod object_parts;
pub mod plugin;
pub mod secret;
pub mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod upstream;

pub use auth::{AuthError, Authenticator, Credentials, Identity};
pub use backup::{BackupError, BackupObject, BackupPage, BackupTarget, StorageTarget, WriteMode};
pub use digest::{Digest, DigestAlgorithm, DigestError, Hasher};
pub use plugin::{PluginContext, PluginError, Plugins};
pub use secret::Secret;
pub use storage::{
    ByteStream, GetResult, Key, ListOptions, ListPage, ObjectMeta, PartInfo, PutMode, Storage,
    StorageError, StorageExt, Within,
};
pub use upstream::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};
