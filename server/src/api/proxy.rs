//! `/api/v1/proxy/stats`: how the pull-through cache is doing, per upstream (administrators).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;
use super::security::{ApiUser, require_admin};
use crate::proxy::Stats;
use crate::state::AppState;

/// Figures of one upstream since the process started.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpstreamStats {
    pub name: String,
    pub manifest_hits: u64,
    pub manifest_misses: u64,
    pub blob_hits: u64,
    pub blob_misses: u64,
    pub bytes_from_upstream: u64,
    pub bytes_from_cache: u64,
    /// Requests that waited for another request's download instead of fetching.
    pub coalesced_waiters: u64,
    pub upstream_errors: u64,
    /// Cached tags served because the upstream could not be asked.
    pub stale_served: u64,
    /// Blobs evicted after downloads from this upstream filled the cache.
    pub evictions: u64,
    /// The upstream is failing and not contacted for now.
    pub circuit_open: bool,
}

/// The proxy's statistics.
#[derive(Debug)]
pub struct ProxyApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Proxy")]
impl ProxyApi {
    /// Proxy cache statistics
    #[oai(path = "/proxy/stats", method = "get", operation_id = "proxyStats")]
    async fn stats(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
    ) -> Result<Json<Vec<UpstreamStats>>, ApiError> {
        require_admin(state, &principal, "see proxy statistics")?;
        let Some(proxy) = &state.proxy else {
            return Err(ApiError::not_found("the proxy is not enabled"));
        };
        Ok(Json(
            proxy
                .stats()
                .into_iter()
                .map(|(name, s, circuit_open)| UpstreamStats {
                    name,
                    manifest_hits: Stats::get(&s.manifest_hits),
                    manifest_misses: Stats::get(&s.manifest_misses),
                    blob_hits: Stats::get(&s.blob_hits),
                    blob_misses: Stats::get(&s.blob_misses),
                    bytes_from_upstream: Stats::get(&s.bytes_from_upstream),
                    bytes_from_cache: Stats::get(&s.bytes_from_cache),
                    coalesced_waiters: Stats::get(&s.coalesced_waiters),
                    upstream_errors: Stats::get(&s.upstream_errors),
                    stale_served: Stats::get(&s.stale_served),
                    evictions: Stats::get(&s.evictions),
                    circuit_open,
                })
                .collect(),
        ))
    }
}
