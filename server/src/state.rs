//! What every request handler shares: the registry service, the access gate, the charts.

use std::sync::Arc;

use crate::auth::Access;
use crate::charts::Charts;
use crate::registry::Registry;

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub access: Arc<Access>,
    pub charts: Arc<Charts>,
    /// The pull-through proxy, when enabled.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// Browser sessions of the web interface.
    pub sessions: crate::ui::session::Sessions,
    /// Settings of the web interface.
    pub ui: oci_storage_config::UiConfig,
    /// Storage used by each repository, for the web interface.
    pub usage: Arc<crate::usage::Usage>,
}
