//! `/api/v1/system` and `/api/v1/me`: what this registry is, and who the caller is.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::security::ApiUser;
use crate::state::AppState;

/// About this registry.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SystemInfo {
    /// The oci-storage version.
    pub version: String,
    /// Whether the Docker token service (`/auth/token`) is enabled.
    pub token_auth: bool,
}

/// The authenticated caller.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Me {
    pub username: String,
    pub groups: Vec<String>,
    pub admin: bool,
    /// Set when the caller authenticated with an API token.
    pub api_token_id: Option<String>,
}

/// System information.
#[derive(Debug)]
pub struct SystemApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::System")]
impl SystemApi {
    /// About this registry
    #[oai(path = "/system", method = "get", operation_id = "systemInfo")]
    async fn info(&self, Data(state): Data<&Arc<AppState>>) -> Json<SystemInfo> {
        Json(SystemInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            token_auth: state.access.tokens().is_some(),
        })
    }

    /// Who am I
    #[oai(path = "/me", method = "get", operation_id = "whoAmI")]
    async fn me(&self, ApiUser(principal): ApiUser, Data(state): Data<&Arc<AppState>>) -> Json<Me> {
        Json(Me {
            admin: state.access.policy().is_admin(&principal.identity),
            username: principal.identity.username,
            groups: principal.identity.groups,
            api_token_id: principal.api_token.map(|t| t.id.clone()),
        })
    }
}
