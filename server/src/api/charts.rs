//! `/api/v1/charts`: chart search and details. Search runs over the in-memory chart index (no
//! archive is read): free text over name, description and keywords, filters by keyword,
//! appVersion, version range (semver), deprecation and repository prefix, sorting and pages.
//! Repository names travel as query parameters, since they contain `/`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::problem::ApiError;
use super::security::ApiUser;
use crate::auth::Caller;
use crate::charts::IndexEntry;
use crate::state::AppState;

/// One chart version in search results.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChartVersion {
    /// The OCI repository holding it (`helm pull oci://HOST/<repository>`).
    pub repository: String,
    pub name: String,
    pub version: String,
    pub app_version: Option<String>,
    pub description: Option<String>,
    pub keywords: Vec<String>,
    pub deprecated: bool,
    pub icon: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// Digest of the chart archive.
    pub digest: String,
    pub size: u64,
    pub has_provenance: bool,
}

impl From<&IndexEntry> for ChartVersion {
    fn from(e: &IndexEntry) -> Self {
        Self {
            repository: e.repository.clone(),
            name: e.metadata.name.clone(),
            version: e.metadata.version.clone(),
            app_version: e.metadata.app_version.clone(),
            description: e.metadata.description.clone(),
            keywords: e.metadata.keywords.clone(),
            deprecated: e.metadata.deprecated,
            icon: e.metadata.icon.clone(),
            created: e.created.clone(),
            digest: e.chart_digest.to_string(),
            size: e.chart_size,
            has_provenance: e.provenance_digest.is_some(),
        }
    }
}

/// A page of results.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChartPage {
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<ChartVersion>,
}

/// Sort orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "camelCase")]
pub enum ChartSort {
    Name,
    Created,
    Version,
}

/// A chart version in full.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChartDetail {
    #[oai(flatten)]
    pub summary: ChartVersion,
    /// Everything in Chart.yaml.
    pub metadata: serde_json::Value,
    pub values: Option<String>,
    pub readme: Option<String>,
    pub values_schema: Option<String>,
    pub templates: Vec<String>,
    /// Every version of this chart in the repository, newest first.
    pub versions: Vec<String>,
}

#[derive(Debug, ApiResponse)]
pub enum DetailResponse {
    /// The chart version.
    #[oai(status = 200)]
    Ok(Json<Box<ChartDetail>>),
}

/// Chart search and details.
#[derive(Debug)]
pub struct ChartsApi;

/// Newest chart version first (versions that are not semver last).
pub(crate) fn semver_desc(a: &IndexEntry, b: &IndexEntry) -> std::cmp::Ordering {
    let va = semver::Version::parse(&a.metadata.version).ok();
    let vb = semver::Version::parse(&b.metadata.version).ok();
    vb.cmp(&va)
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Charts")]
impl ChartsApi {
    /// Search charts
    ///
    /// Every filter is optional. Only charts the caller may pull are considered.
    // Each argument is one documented query parameter of the operation.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/charts", method = "get", operation_id = "searchCharts")]
    async fn search(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// Free text over name, description and keywords (case-insensitive).
        q: Query<Option<String>>,
        /// Only charts with this keyword.
        keyword: Query<Option<String>>,
        /// Only charts with this appVersion.
        #[oai(name = "appVersion")]
        app_version: Query<Option<String>>,
        /// A semver range, e.g. `>=1.2, <2` or `~1.4`.
        version: Query<Option<String>>,
        /// Include (true), exclude (false, the default) or only show deprecated charts.
        deprecated: Query<Option<bool>>,
        /// Only repositories under this prefix (e.g. `team-a/`).
        prefix: Query<Option<String>>,
        /// Only the newest version of each chart (default true).
        latest: Query<Option<bool>>,
        sort: Query<Option<ChartSort>>,
        #[oai(validator(minimum(value = "1")))] page: Query<Option<u32>>,
        #[oai(
            name = "perPage",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        per_page: Query<Option<u32>>,
    ) -> Result<Json<ChartPage>, ApiError> {
        let range =
            match version.0.as_deref() {
                Some(v) => Some(semver::VersionReq::parse(v).map_err(|e| {
                    ApiError::bad_request(format!("invalid version range {v:?}: {e}"))
                })?),
                None => None,
            };
        let caller = Caller::User(principal);
        let (_, all) = state.charts.entries().await;
        let needle = q.0.map(|q| q.to_lowercase());
        let mut hits: Vec<Arc<IndexEntry>> = all
            .into_iter()
            .filter(|e| {
                prefix
                    .0
                    .as_deref()
                    .is_none_or(|p| e.repository.starts_with(p))
            })
            .filter(|e| {
                keyword
                    .0
                    .as_deref()
                    .is_none_or(|k| e.metadata.keywords.iter().any(|x| x == k))
            })
            .filter(|e| {
                app_version
                    .0
                    .as_deref()
                    .is_none_or(|a| e.metadata.app_version.as_deref() == Some(a))
            })
            .filter(|e| match deprecated.0 {
                Some(wanted) => e.metadata.deprecated == wanted,
                None => !e.metadata.deprecated,
            })
            .filter(|e| {
                range.as_ref().is_none_or(|r| {
                    semver::Version::parse(&e.metadata.version).is_ok_and(|v| r.matches(&v))
                })
            })
            .filter(|e| {
                needle.as_deref().is_none_or(|n| {
                    e.metadata.name.to_lowercase().contains(n)
                        || e.metadata
                            .description
                            .as_deref()
                            .is_some_and(|d| d.to_lowercase().contains(n))
                        || e.metadata
                            .keywords
                            .iter()
                            .any(|k| k.to_lowercase().contains(n))
                })
            })
            .filter(|e| state.access.may_pull(&caller, &e.repository))
            .collect();
        if latest.0.unwrap_or(true) {
            hits.sort_by(|a, b| {
                a.repository
                    .cmp(&b.repository)
                    .then_with(|| semver_desc(a, b))
            });
            hits.dedup_by(|b, a| a.repository == b.repository);
        }
        match sort.0.unwrap_or(ChartSort::Name) {
            ChartSort::Name => hits.sort_by(|a, b| {
                (&a.metadata.name, &a.repository)
                    .cmp(&(&b.metadata.name, &b.repository))
                    .then_with(|| semver_desc(a, b))
            }),
            ChartSort::Created => hits.sort_by(|a, b| b.created.cmp(&a.created)),
            ChartSort::Version => hits.sort_by(|a, b| semver_desc(a, b)),
        }
        let per_page = per_page.0.unwrap_or(50);
        let page = page.0.unwrap_or(1);
        let total = hits.len() as u64;
        let items = hits
            .iter()
            .skip(((page - 1) as usize).saturating_mul(per_page as usize))
            .take(per_page as usize)
            .map(|e| ChartVersion::from(e.as_ref()))
            .collect();
        Ok(Json(ChartPage {
            total,
            page,
            per_page,
            items,
        }))
    }

    /// Chart details
    ///
    /// Metadata, values.yaml, README and templates of one version (the newest when `version`
    /// is not given), and the list of versions.
    #[oai(path = "/charts/detail", method = "get", operation_id = "chartDetail")]
    async fn detail(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// The OCI repository, e.g. `charts/webapp`.
        repository: Query<String>,
        version: Query<Option<String>>,
    ) -> Result<DetailResponse, ApiError> {
        let caller = Caller::User(principal);
        if !state.access.may_pull(&caller, &repository.0) {
            return Err(ApiError::not_found("no such chart"));
        }
        let (_, all) = state.charts.entries().await;
        let mut versions: Vec<Arc<IndexEntry>> = all
            .into_iter()
            .filter(|e| e.repository == repository.0)
            .collect();
        versions.sort_by(|a, b| semver_desc(a, b));
        let chosen = match version.0.as_deref() {
            Some(v) => versions.iter().find(|e| e.metadata.version == v),
            None => versions.first(),
        }
        .ok_or_else(|| ApiError::not_found("no such chart"))?;
        let record = state
            .charts
            .record(&chosen.repository, &chosen.tag)
            .await
            .map_err(|e| ApiError::internal("reading chart metadata", e))?
            .ok_or_else(|| ApiError::not_found("no such chart"))?;
        Ok(DetailResponse::Ok(Json(Box::new(ChartDetail {
            summary: ChartVersion::from(chosen.as_ref()),
            metadata: serde_json::to_value(&record.content.metadata).unwrap_or_default(),
            values: record.content.values,
            readme: record.content.readme,
            values_schema: record.content.values_schema,
            templates: record.content.templates,
            versions: versions
                .iter()
                .map(|e| e.metadata.version.clone())
                .collect(),
        }))))
    }
}
