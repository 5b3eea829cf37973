//! What every request handler shares: the registry service and the access gate.

use std::sync::Arc;

use crate::auth::Access;
use crate::registry::Registry;

#[derive(Debug)]
pub struct AppState {
    pub registry: Registry,
    pub access: Arc<Access>,
}
