//! What every request handler shares: the registry service, the access gate, the charts.

use std::sync::Arc;

use crate::auth::Access;
use crate::charts::Charts;
use crate::registry::{Registry, RepoName};

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub access: Arc<Access>,
    pub charts: Arc<Charts>,
    /// Backups, when enabled.
    pub backup: Option<Arc<crate::backup::BackupService>>,
    /// The pull-through proxy, when enabled.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// Browser sessions of the web interface.
    pub sessions: crate::ui::session::Sessions,
    /// Settings of the web interface.
    pub ui: oci_storage_config::UiConfig,
    /// Garbage collection: runs, their records, the schedule.
    pub gc: Arc<crate::gc::service::GcService>,
    /// Who may read `/metrics`, and where.
    pub metrics: oci_storage_config::MetricsConfig,
    /// Storage used by each repository, for the web interface.
    pub usage: Arc<crate::usage::Usage>,
}

impl AppState {
    /// Whether `repo` is the pull-through proxy's cache of an upstream: read-only for
    /// everyone (only the proxy writes it), through /v2, the REST API and the web interface.
    pub fn is_proxy_cache(&self, repo: &RepoName) -> bool {
        self.proxy
            .as_ref()
            .is_some_and(|proxy| proxy.route(repo, None).is_some())
    }
}
