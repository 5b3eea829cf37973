//! `/api/v1/tokens`: API tokens for CI — create (the token is shown once), list, revoke.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use oci_storage_config::RuleAction;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;
use super::security::ApiUser;
use super::text::Text;
use crate::auth::api_tokens::{ApiTokenRecord, TokenError};
use crate::records::ReadError;
use crate::state::AppState;

/// An action a token may perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum TokenAction {
    Pull,
    Push,
    Delete,
}

impl From<TokenAction> for RuleAction {
    fn from(a: TokenAction) -> Self {
        match a {
            TokenAction::Pull => RuleAction::Pull,
            TokenAction::Push => RuleAction::Push,
            TokenAction::Delete => RuleAction::Delete,
        }
    }
}

impl From<RuleAction> for TokenAction {
    fn from(a: RuleAction) -> Self {
        match a {
            RuleAction::Pull => TokenAction::Pull,
            RuleAction::Push => TokenAction::Push,
            RuleAction::Delete => TokenAction::Delete,
        }
    }
}

/// What a new token may do.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct NewToken {
    /// A name to recognise the token by (e.g. the CI job).
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
    /// Repository glob patterns: `*` within a path segment, `**` across segments.
    #[oai(validator(min_items = 1, max_items = 100, max_length = 255))]
    pub repositories: Vec<Text>,
    #[oai(validator(min_items = 1, max_items = 3))]
    pub actions: Vec<TokenAction>,
    /// Days until the token expires; none: it never expires.
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    pub expires_in_days: Option<u32>,
}

/// A token as listed (never the token itself).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub repositories: Vec<String>,
    pub actions: Vec<TokenAction>,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// A token just created: `token` is shown this once.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedToken {
    /// Use it as the password, with your username (`helm registry login`, `docker login`,
    /// `skopeo --creds user:TOKEN`).
    pub token: String,
    #[oai(flatten)]
    pub info: TokenInfo,
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

impl From<&ApiTokenRecord> for TokenInfo {
    fn from(r: &ApiTokenRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
            repositories: r.repositories.clone(),
            actions: r.actions.iter().copied().map(Into::into).collect(),
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum Created {
    /// The token was created.
    #[oai(status = 201)]
    Created(Json<CreatedToken>),
}

#[derive(Debug, ApiResponse)]
pub enum Revoked {
    /// The token no longer works.
    #[oai(status = 204)]
    Revoked,
}

/// The tokens API.
#[derive(Debug)]
pub struct TokensApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Tokens")]
impl TokensApi {
    /// Create an API token
    ///
    /// Only with a password (a token cannot create tokens). The token acts as its owner,
    /// limited to the given repositories and actions.
    #[oai(path = "/tokens", method = "post", operation_id = "createToken")]
    async fn create(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        body: Json<NewToken>,
    ) -> Result<Created, ApiError> {
        if principal.api_token.is_some() {
            return Err(ApiError::forbidden(
                "API tokens cannot create tokens; log in with a password",
            ));
        }
        let NewToken {
            name,
            repositories,
            actions,
            expires_in_days,
        } = body.0;
        let expires = expires_in_days.map(|d| Duration::from_secs(u64::from(d) * 86_400));
        let actions = actions.into_iter().map(Into::into).collect();
        let (record, token) = state
            .access
            .api_tokens()
            .create(
                &principal.identity,
                &name,
                repositories.into_iter().map(Text::into_string).collect(),
                actions,
                expires,
            )
            .await
            .map_err(|e| match e {
                TokenError::Storage(e) => ApiError::internal("creating a token", e),
                other => ApiError::bad_request(other.to_string()),
            })?;
        tracing::info!(token = %record.id, owner = %record.owner, "API token created");
        Ok(Created::Created(Json(CreatedToken {
            token,
            info: TokenInfo::from(&record),
        })))
    }

    /// List API tokens
    ///
    /// Your own tokens; administrators may ask for everyone's with `all=true`.
    #[oai(path = "/tokens", method = "get", operation_id = "listTokens")]
    async fn list(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// Every user's tokens (administrators only).
        all: Query<Option<bool>>,
    ) -> Result<Json<Vec<TokenInfo>>, ApiError> {
        let all = all.0.unwrap_or(false);
        if all
            && (principal.api_token.is_some()
                || !state.access.policy().is_admin(&principal.identity))
        {
            return Err(ApiError::forbidden(
                "only administrators may list every token",
            ));
        }
        let owner = (!all).then_some(principal.identity.username.as_str());
        let records = state
            .access
            .api_tokens()
            .list(owner)
            .await
            .map_err(|e| ApiError::internal("listing tokens", e))?;
        Ok(Json(records.iter().map(TokenInfo::from).collect()))
    }

    /// Revoke an API token
    ///
    /// Your own, or anyone's for administrators. It stops working at once on this instance,
    /// and within a minute on others sharing the storage.
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "revokeToken")]
    async fn revoke(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> Result<Revoked, ApiError> {
        let tokens = state.access.api_tokens();
        let is_admin =
            principal.api_token.is_none() && state.access.policy().is_admin(&principal.identity);
        // With an API token, only that token itself may be revoked; with a password, your
        // own tokens, or anyone's for administrators — also a record that cannot be read.
        let visible = match tokens.get(&id.0).await {
            Ok(record) => record.as_ref().is_some_and(|r| match &principal.api_token {
                Some(own) => own.id == r.id,
                None => r.owner == principal.identity.username || is_admin,
            }),
            Err(ReadError::Unreadable { .. }) => is_admin,
            Err(e) => return Err(ApiError::internal("reading a token", e)),
        };
        if !visible {
            return Err(ApiError::not_found("no such token"));
        }
        tokens
            .revoke(&id.0)
            .await
            .map_err(|e| ApiError::internal("revoking a token", e))?;
        state.access.forget_api_token(&id.0);
        tracing::info!(token = %id.0, "API token revoked");
        Ok(Revoked::Revoked)
    }
}
