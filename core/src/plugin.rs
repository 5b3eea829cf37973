//! The plugin registry: named factories for each trait, chosen by the `type` key of a config
//! section. The server registers the built-in plugins in one place
//! (`oci_storage_server::builtin_plugins`); a third party registers its own before starting the
//! server, without touching it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::{Authenticator, BackupTarget, Storage, Upstream};

/// What a factory may need besides its own configuration section.
#[derive(Debug, Clone)]
pub struct PluginContext {
    /// Directory that relative paths in configuration are resolved against.
    pub base_dir: PathBuf,
    /// The configuration key of the section being built (`storage.s3`, `backup.aws`), for
    /// errors that name the key: one factory may serve several sections.
    pub section: String,
}

impl PluginContext {
    pub fn new(base_dir: PathBuf, section: impl Into<String>) -> Self {
        Self {
            base_dir,
            section: section.into(),
        }
    }
}

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown {kind} type {name:?}; known types: {known}")]
    Unknown {
        kind: &'static str,
        name: String,
        known: String,
    },
    #[error("invalid configuration at {path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    Init(String),
}

impl PluginError {
    /// The same error, naming `to` where it named the section `from` (a storage plugin's
    /// checks name `storage.s3`; built as a backup target, the section is `backup.aws`).
    pub fn rehomed(self, from: &str, to: &str) -> Self {
        if from == to {
            return self;
        }
        let swap = |text: String| match text.strip_prefix(from) {
            Some(rest) if rest.is_empty() || rest.starts_with(['.', ':']) => format!("{to}{rest}"),
            _ => text,
        };
        match self {
            PluginError::Config { path, message } => PluginError::Config {
                path: swap(path),
                message,
            },
            PluginError::Init(message) => PluginError::Init(swap(message)),
            other => other,
        }
    }

    /// Deserializes a plugin's configuration section, naming the offending key path on error.
    pub fn parse_config<T: serde::de::DeserializeOwned>(
        section: &str,
        value: serde_json::Value,
    ) -> Result<T, PluginError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            PluginError::Config {
                path: if path == "." {
                    section.to_owned()
                } else {
                    format!("{section}.{path}")
                },
                message: e.into_inner().to_string(),
            }
        })
    }
}

/// Builds a plugin from its configuration section (a JSON value; `null` when absent).
pub type Factory<T> = Arc<
    dyn Fn(PluginContext, serde_json::Value) -> BoxFuture<'static, Result<Arc<T>, PluginError>>
        + Send
        + Sync,
>;

/// Factories for every plugin kind, by type name.
#[derive(Default, Clone)]
pub struct Plugins {
    storage: BTreeMap<String, Factory<dyn Storage>>,
    authenticators: BTreeMap<String, Factory<dyn Authenticator>>,
    upstreams: BTreeMap<String, Factory<dyn Upstream>>,
    backup_targets: BTreeMap<String, Factory<dyn BackupTarget>>,
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugins")
            .field("storage", &self.storage.keys().collect::<Vec<_>>())
            .field(
                "authenticators",
                &self.authenticators.keys().collect::<Vec<_>>(),
            )
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .field(
                "backup_targets",
                &self.backup_targets.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

macro_rules! plugin_kind {
    ($field:ident, $register:ident, $build:ident, $names:ident, $trait:ident, $label:literal) => {
        /// Registers (or replaces) a factory under `name`.
        pub fn $register<F, Fut>(&mut self, name: &str, factory: F) -> &mut Self
        where
            F: Fn(PluginContext, serde_json::Value) -> Fut + Send + Sync + 'static,
            Fut:
                std::future::Future<Output = Result<Arc<dyn $trait>, PluginError>> + Send + 'static,
        {
            self.$field.insert(
                name.to_owned(),
                Arc::new(move |ctx, cfg| Box::pin(factory(ctx, cfg))),
            );
            self
        }

        /// Builds the plugin registered under `name`.
        pub async fn $build(
            &self,
            name: &str,
            ctx: PluginContext,
            config: serde_json::Value,
        ) -> Result<Arc<dyn $trait>, PluginError> {
            let factory = self.$field.get(name).ok_or_else(|| PluginError::Unknown {
                kind: $label,
                name: name.to_owned(),
                known: self.$names().join(", "),
            })?;
            factory(ctx, config).await
        }

        /// The registered type names.
        pub fn $names(&self) -> Vec<&str> {
            self.$field.keys().map(String::as_str).collect()
        }
    };
}

impl Plugins {
    plugin_kind!(
        storage,
        register_storage,
        build_storage,
        storage_types,
        Storage,
        "storage"
    );
    plugin_kind!(
        authenticators,
        register_authenticator,
        build_authenticator,
        authenticator_types,
        Authenticator,
        "authenticator"
    );
    plugin_kind!(
        upstreams,
        register_upstream,
        build_upstream,
        upstream_types,
        Upstream,
        "upstream"
    );
    plugin_kind!(
        backup_targets,
        register_backup_target,
        build_backup_target,
        backup_target_types,
        BackupTarget,
        "backup target"
    );
}
