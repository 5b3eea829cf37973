//! `/api/v1/repositories`, `/api/v1/tags`, `/api/v1/manifests`: browse what the registry holds
//! (kind, tags with digest, size, created time and media type; image platforms, config, layers
//! and history), delete a tag, copy a tag to a new one. Repository names are query parameters.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::Value;

use super::ApiTags;
use super::problem::ApiError;
use super::security::ApiUser;
use super::text::Text;
use crate::auth::{Action, Caller, Denial};
use crate::registry::manifest_doc::{DOCKER_LIST, OCI_INDEX};
use crate::registry::{
    ErrorCode, PutManifest, Reference, Registry, RegistryError, RepoName, StoredManifest, Tag,
};
use crate::state::AppState;

/// What a repository holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RepositoryKind {
    Chart,
    Image,
    Artifact,
    #[default]
    Empty,
}

/// A repository.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Repository {
    pub name: String,
    pub kind: RepositoryKind,
    pub tag_count: u64,
    /// Bytes of the tagged manifests and the blobs they reference (each counted once; the
    /// first 100 tags).
    pub size: u64,
    /// RFC 3339 time of the last tag write.
    pub last_push: Option<String>,
}

/// A page of repositories.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RepositoryPage {
    pub items: Vec<Repository>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A tag.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// Manifest plus the blobs it references directly.
    pub size: u64,
    /// From the image config or the manifest's `org.opencontainers.image.created`.
    pub created: Option<String>,
    pub artifact_type: Option<String>,
}

/// One platform of a multi-platform index.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Platform {
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    pub digest: String,
    pub size: u64,
}

/// A layer of an image.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Layer {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// A manifest in detail.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ManifestDetail {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub platforms: Vec<Platform>,
    pub config_media_type: Option<String>,
    /// The image configuration, when it is a JSON image config.
    pub config: Option<Value>,
    pub layers: Vec<Layer>,
    /// The config's `history`.
    pub history: Vec<Value>,
    pub annotations: Option<Value>,
}

/// Copy a tag.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TagCopy {
    #[oai(validator(max_length = 255))]
    pub repository: Text,
    /// A tag or a digest.
    #[oai(validator(max_length = 255))]
    pub source: Text,
    #[oai(validator(max_length = 128))]
    pub target: Text,
}

/// One search result: a chart (its newest version) or a repository of images or artifacts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SearchHit {
    pub repository: String,
    pub kind: RepositoryKind,
    /// The chart name, or the repository's last path segment.
    pub name: String,
    /// For a chart: its newest version.
    pub version: Option<String>,
    pub description: Option<String>,
    /// For a chart: its newest version is marked deprecated.
    pub deprecated: bool,
}

/// A page of search results.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SearchPage {
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<SearchHit>,
}

/// What a search looks for.
#[derive(Debug, Default, Clone)]
pub struct SearchFilters {
    /// Free text, matched case-insensitively against names, descriptions and keywords.
    pub text: Option<String>,
    pub kind: Option<RepositoryKind>,
    /// Only repositories under this prefix.
    pub prefix: Option<String>,
    /// Only charts with this keyword (case-insensitive).
    pub keyword: Option<String>,
}

/// Charts (newest version of each) and other repositories the caller may pull, matching the
/// filters, sorted by repository. Shared by the REST API and the web interface; the latter
/// passes its usage snapshot, whose kinds spare a tag listing per repository (repositories
/// newer than the snapshot are looked at).
pub async fn search_repositories(
    state: &AppState,
    caller: &Caller,
    filters: &SearchFilters,
    known: Option<&crate::usage::UsageSnapshot>,
) -> Result<Vec<SearchHit>, RegistryError> {
    let needle = filters.text.as_deref().map(str::to_lowercase);
    let keyword = filters.keyword.as_deref().map(str::to_lowercase);
    let matches_text = |text: &str| {
        needle
            .as_deref()
            .is_none_or(|n| text.to_lowercase().contains(n))
    };
    let in_prefix = |repo: &str| {
        filters
            .prefix
            .as_deref()
            .is_none_or(|p| repo.starts_with(p))
    };
    let (_, charts) = state.charts.entries().await;
    let mut newest: std::collections::BTreeMap<&str, &crate::charts::IndexEntry> =
        Default::default();
    for entry in charts.iter() {
        let newer = newest.get(entry.repository.as_str()).is_none_or(|current| {
            semver::Version::parse(&entry.metadata.version).ok()
                > semver::Version::parse(&current.metadata.version).ok()
        });
        if newer {
            newest.insert(&entry.repository, entry);
        }
    }
    let mut hits: Vec<SearchHit> = Vec::new();
    if filters.kind.is_none_or(|k| k == RepositoryKind::Chart) {
        for (repo, e) in &newest {
            let text_hit = matches_text(&e.metadata.name)
                || e.metadata.description.as_deref().is_some_and(&matches_text)
                || e.metadata.keywords.iter().any(|k| matches_text(k));
            let keyword_hit = keyword.as_deref().is_none_or(|wanted| {
                e.metadata
                    .keywords
                    .iter()
                    .any(|k| k.to_lowercase() == wanted)
            });
            if text_hit && keyword_hit && in_prefix(repo) && state.access.may_pull(caller, repo) {
                hits.push(SearchHit {
                    repository: (*repo).to_owned(),
                    kind: RepositoryKind::Chart,
                    name: e.metadata.name.clone(),
                    version: Some(e.metadata.version.clone()),
                    description: e.metadata.description.clone(),
                    deprecated: e.metadata.deprecated,
                });
            }
        }
    }
    // Only charts have keywords.
    if filters.keyword.is_none() && filters.kind.is_none_or(|k| k != RepositoryKind::Chart) {
        let mut last: Option<String> = None;
        let mut scanned = 0;
        loop {
            let page = state.registry.catalog(Some(1000), last.as_deref()).await?;
            for name in &page.items {
                scanned += 1;
                if newest.contains_key(name.as_str())
                    || !in_prefix(name)
                    || !matches_text(name)
                    || !state.access.may_pull(caller, name)
                {
                    continue;
                }
                let Some(repo) = RepoName::parse(name) else {
                    continue;
                };
                let found = match known.and_then(|k| k.repositories.get(name.as_str())) {
                    Some(usage) => usage.kind,
                    None => {
                        let listing = state.registry.tag_listing(&repo).await.unwrap_or_default();
                        repository_kind(&state.registry, &repo, listing.newest.as_ref()).await
                    }
                };
                if filters.kind.is_none_or(|k| k == found) {
                    hits.push(SearchHit {
                        repository: name.clone(),
                        kind: found,
                        name: name.rsplit('/').next().unwrap_or(name).to_owned(),
                        version: None,
                        description: None,
                        deprecated: false,
                    });
                }
            }
            match (page.more, page.items.last()) {
                (true, Some(name)) if scanned < SEARCH_SCAN_LIMIT => last = Some(name.clone()),
                _ => break,
            }
        }
    }
    hits.sort_by(|a, b| a.repository.cmp(&b.repository));
    Ok(hits)
}

/// Most repositories a search walks.
const SEARCH_SCAN_LIMIT: usize = 20_000;

#[derive(Debug, ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    Done,
}

fn from_registry(e: RegistryError) -> ApiError {
    match e.code {
        ErrorCode::ManifestUnknown | ErrorCode::NameUnknown | ErrorCode::BlobUnknown => {
            ApiError::not_found(e.message)
        }
        ErrorCode::Denied => ApiError::forbidden(e.message),
        ErrorCode::Unsupported => ApiError::forbidden(e.message),
        ErrorCode::Unknown => ApiError::internal("serving a registry request", e.message),
        _ => ApiError::bad_request(e.message),
    }
}

fn repo_name(
    caller: &Caller,
    state: &AppState,
    name: &str,
    action: Action,
) -> Result<RepoName, ApiError> {
    let repo =
        RepoName::parse(name).ok_or_else(|| ApiError::bad_request("invalid repository name"))?;
    match state.access.authorize(caller, Some(repo.as_str()), action) {
        Ok(()) if action != Action::Pull && state.is_proxy_cache(&repo) => Err(
            ApiError::forbidden("the proxy cache is read-only: only the proxy writes it"),
        ),
        Ok(()) => Ok(repo),
        // Without pull rights, a repository does not exist for the caller.
        Err(_) if action == Action::Pull => Err(ApiError::not_found("no such repository")),
        Err(Denial::Denied) if state.access.may_pull(caller, repo.as_str()) => {
            Err(ApiError::forbidden("not allowed"))
        }
        Err(_) => Err(ApiError::not_found("no such repository")),
    }
}

fn size_of(manifest: &StoredManifest, doc: &Value) -> u64 {
    let sum = |list: &Value| {
        list.as_array().map_or(0, |ds| {
            ds.iter().filter_map(|d| d["size"].as_u64()).sum::<u64>()
        })
    };
    // An index references its platforms' manifests directly.
    let blob_sizes =
        doc["config"]["size"].as_u64().unwrap_or(0) + sum(&doc["layers"]) + sum(&doc["manifests"]);
    manifest.link.size + blob_sizes
}

/// A manifest with its platforms (for an index), layers, config and history. Shared by the
/// REST API and the web interface; the caller has checked pull rights.
pub async fn manifest_detail(
    state: &AppState,
    repo: &RepoName,
    reference: &Reference,
) -> Result<ManifestDetail, RegistryError> {
    let manifest = state.registry.get_manifest(repo, reference).await?;
    let doc: Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
    let platforms = doc["manifests"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| Platform {
                    os: m["platform"]["os"].as_str().map(str::to_owned),
                    architecture: m["platform"]["architecture"].as_str().map(str::to_owned),
                    variant: m["platform"]["variant"].as_str().map(str::to_owned),
                    digest: m["digest"].as_str().unwrap_or_default().to_owned(),
                    size: m["size"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let layers = doc["layers"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| Layer {
                    media_type: l["mediaType"].as_str().unwrap_or_default().to_owned(),
                    digest: l["digest"].as_str().unwrap_or_default().to_owned(),
                    size: l["size"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let config = config_of(state, repo, &doc).await;
    let history = config
        .as_ref()
        .and_then(|c| c["history"].as_array().cloned())
        .unwrap_or_default();
    Ok(ManifestDetail {
        digest: manifest.link.digest.to_string(),
        media_type: manifest.link.media_type.clone(),
        size: manifest.link.size,
        platforms,
        config_media_type: doc["config"]["mediaType"].as_str().map(str::to_owned),
        config,
        layers,
        history,
        annotations: doc.get("annotations").cloned(),
    })
}

/// Digest, media type, size and created time of each tag (tags whose manifest is gone are
/// left out). Shared by the REST API and the web interface; the caller has checked pull rights.
pub async fn tag_details(state: &AppState, repo: &RepoName, tags: &[Tag]) -> Vec<TagInfo> {
    let mut out = Vec::new();
    for tag in tags {
        let Ok(manifest) = state
            .registry
            .get_manifest(repo, &Reference::Tag(tag.clone()))
            .await
        else {
            continue;
        };
        let doc: Value = serde_json::from_slice(&manifest.bytes).unwrap_or_default();
        let created = match doc["annotations"]["org.opencontainers.image.created"].as_str() {
            Some(c) => Some(c.to_owned()),
            None => config_of(state, repo, &doc)
                .await
                .and_then(|c| c["created"].as_str().map(str::to_owned)),
        };
        out.push(TagInfo {
            tag: tag.to_string(),
            digest: manifest.link.digest.to_string(),
            media_type: manifest.link.media_type.clone(),
            size: size_of(&manifest, &doc),
            created,
            artifact_type: doc["artifactType"]
                .as_str()
                .or(doc["config"]["mediaType"].as_str())
                .map(str::to_owned),
        });
    }
    out
}

/// Points `target` at the manifest `source` names, in the same repository (a retag), keeping
/// the chart index in step. Shared by the REST API and the web interface; the caller has
/// checked push rights.
pub async fn copy_tag(
    state: &AppState,
    repo: &RepoName,
    source: &Reference,
    target: Tag,
) -> Result<(), RegistryError> {
    let manifest = state.registry.get_manifest(repo, source).await?;
    let chart = state.charts.inspect_push(repo, &manifest.bytes).await?;
    let outcome = state
        .registry
        .put_manifest(
            repo,
            PutManifest {
                reference: Reference::Tag(target),
                content_type: Some(manifest.link.media_type.clone()),
                bytes: manifest.bytes.clone(),
                extra_tags: Vec::new(),
            },
        )
        .await?;
    state
        .charts
        .tags_written(repo, &outcome.digest, &outcome.tags, chart)
        .await?;
    Ok(())
}

async fn config_of(state: &AppState, repo: &RepoName, doc: &Value) -> Option<Value> {
    let media_type = doc["config"]["mediaType"].as_str()?;
    if !media_type.ends_with("json") || media_type.contains("empty") {
        return None;
    }
    let digest = doc["config"]["digest"].as_str()?.parse().ok()?;
    let read = state.registry.get_blob(repo, &digest, None).await.ok()?;
    if read.meta.size > 4 * 1024 * 1024 {
        return None;
    }
    use futures_util::StreamExt;
    let mut body = read.body;
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.ok()?);
    }
    serde_json::from_slice(&buf).ok()
}

/// What a repository other than a chart holds, judged by its newest tag's manifest.
pub(crate) async fn repository_kind(
    registry: &Registry,
    repo: &RepoName,
    newest: Option<&Tag>,
) -> RepositoryKind {
    let Some(tag) = newest.cloned() else {
        return RepositoryKind::Empty;
    };
    let Ok(m) = registry.get_manifest(repo, &Reference::Tag(tag)).await else {
        return RepositoryKind::Artifact;
    };
    let doc: Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
    let config = doc["config"]["mediaType"].as_str().unwrap_or_default();
    let image = m.link.media_type == OCI_INDEX
        || m.link.media_type == DOCKER_LIST
        || config == "application/vnd.oci.image.config.v1+json"
        || config == "application/vnd.docker.container.image.v1+json";
    if image {
        RepositoryKind::Image
    } else {
        RepositoryKind::Artifact
    }
}

/// Browsing and tag management.
#[derive(Debug)]
pub struct RepositoriesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Repositories")]
impl RepositoriesApi {
    /// List repositories
    ///
    /// In name order, only those the caller may pull.
    #[oai(
        path = "/repositories",
        method = "get",
        operation_id = "listRepositories"
    )]
    async fn repositories(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// Only names starting with this prefix.
        prefix: Query<Option<String>>,
        /// Start after this name (from `next`).
        after: Query<Option<String>>,
        #[oai(
            name = "perPage",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        per_page: Query<Option<u32>>,
    ) -> Result<Json<RepositoryPage>, ApiError> {
        let caller = Caller::User(principal);
        let per_page = per_page.0.unwrap_or(50) as usize;
        let (_, charts) = state.charts.entries().await;
        let mut items = Vec::new();
        let mut last = after.0.clone().or_else(|| {
            // Start just before the prefix, so the listing begins there.
            prefix
                .0
                .as_ref()
                .and_then(|p| p.strip_suffix(|_: char| true).map(str::to_owned))
        });
        let mut exhausted = false;
        while items.len() < per_page && !exhausted {
            let page = state
                .registry
                .catalog(Some(200), last.as_deref())
                .await
                .map_err(from_registry)?;
            exhausted = !page.more;
            for name in page.items {
                last = Some(name.clone());
                if prefix.0.as_deref().is_some_and(|p| !name.starts_with(p)) {
                    if prefix.0.as_deref().is_some_and(|p| name.as_str() > p) {
                        exhausted = true;
                        break;
                    }
                    continue;
                }
                if !state.access.may_pull(&caller, &name) {
                    continue;
                }
                let Some(repo) = RepoName::parse(&name) else {
                    continue;
                };
                let listing = state.registry.tag_listing(&repo).await.unwrap_or_default();
                let usage = crate::usage::measure_listing(&state.registry, &repo, &listing).await;
                let kind = if charts.iter().any(|c| c.repository == name) {
                    RepositoryKind::Chart
                } else {
                    usage.kind
                };
                let size = usage.size;
                let last_push = usage
                    .last_push
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string());
                items.push(Repository {
                    name,
                    kind,
                    tag_count: usage.tags as u64,
                    size,
                    last_push,
                });
                if items.len() == per_page {
                    break;
                }
            }
        }
        let next = (!exhausted && items.len() == per_page)
            .then(|| items.last().map(|r| r.name.clone()))
            .flatten();
        Ok(Json(RepositoryPage { items, next }))
    }

    /// Search charts and images
    ///
    /// Charts match on name, description and keywords; other repositories on their name.
    /// Results are in repository order; only what the caller may pull.
    // Each argument is one documented query parameter of the operation.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/search", method = "get", operation_id = "search")]
    async fn search(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        /// Free text (case-insensitive).
        q: Query<Option<String>>,
        /// Only this kind.
        #[oai(name = "type")]
        kind: Query<Option<RepositoryKind>>,
        /// Only repositories under this prefix.
        prefix: Query<Option<String>>,
        /// Only charts with this keyword (case-insensitive).
        keyword: Query<Option<String>>,
        #[oai(validator(minimum(value = "1")))] page: Query<Option<u32>>,
        #[oai(
            name = "perPage",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        per_page: Query<Option<u32>>,
    ) -> Result<Json<SearchPage>, ApiError> {
        let caller = Caller::User(principal);
        let filters = SearchFilters {
            text: q.0,
            kind: kind.0,
            prefix: prefix.0,
            keyword: keyword.0,
        };
        let hits = search_repositories(state, &caller, &filters, None)
            .await
            .map_err(from_registry)?;
        let per_page = per_page.0.unwrap_or(50);
        let page = page.0.unwrap_or(1);
        let total = hits.len() as u64;
        let items = hits
            .into_iter()
            .skip(((page - 1) as usize).saturating_mul(per_page as usize))
            .take(per_page as usize)
            .collect();
        Ok(Json(SearchPage {
            total,
            page,
            per_page,
            items,
        }))
    }

    /// List tags
    #[oai(path = "/tags", method = "get", operation_id = "listTags")]
    async fn tags(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        repository: Query<String>,
    ) -> Result<Json<Vec<TagInfo>>, ApiError> {
        let caller = Caller::User(principal);
        let repo = repo_name(&caller, state, &repository.0, Action::Pull)?;
        let tags = state
            .registry
            .list_tags(&repo, None, None)
            .await
            .map_err(from_registry)?;
        let tags: Vec<Tag> = tags.items.iter().filter_map(|t| Tag::parse(t)).collect();
        Ok(Json(tag_details(state, &repo, &tags).await))
    }

    /// Manifest details
    ///
    /// Platforms of an index; config, layers and history of an image.
    #[oai(path = "/manifests", method = "get", operation_id = "manifestDetail")]
    async fn manifest(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        repository: Query<String>,
        /// A tag or a digest.
        reference: Query<String>,
    ) -> Result<Json<ManifestDetail>, ApiError> {
        let caller = Caller::User(principal);
        let repo = repo_name(&caller, state, &repository.0, Action::Pull)?;
        let reference: Reference = reference
            .0
            .parse()
            .map_err(|()| ApiError::bad_request("invalid reference"))?;
        manifest_detail(state, &repo, &reference)
            .await
            .map(Json)
            .map_err(from_registry)
    }

    /// Delete a tag
    ///
    /// Only the tag: the manifest stays reachable by digest. For a chart, the version leaves
    /// the chart index.
    #[oai(path = "/tags", method = "delete", operation_id = "deleteTag")]
    async fn delete_tag(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        repository: Query<String>,
        tag: Query<String>,
    ) -> Result<Done, ApiError> {
        let caller = Caller::User(principal);
        let repo = repo_name(&caller, state, &repository.0, Action::Delete)?;
        let tag = Tag::parse(&tag.0).ok_or_else(|| ApiError::bad_request("invalid tag"))?;
        state
            .registry
            .delete_manifest(&repo, &Reference::Tag(tag.clone()))
            .await
            .map_err(from_registry)?;
        state.charts.tag_deleted(&repo, &tag).await;
        Ok(Done::Done)
    }

    /// Copy a tag
    ///
    /// Points `target` at the manifest `source` names (a retag), in the same repository.
    #[oai(path = "/tags/copy", method = "post", operation_id = "copyTag")]
    async fn copy_tag(
        &self,
        ApiUser(principal): ApiUser,
        Data(state): Data<&Arc<AppState>>,
        body: Json<TagCopy>,
    ) -> Result<Done, ApiError> {
        let caller = Caller::User(principal);
        let repo = repo_name(&caller, state, &body.0.repository, Action::Push)?;
        let source: Reference = body
            .0
            .source
            .parse()
            .map_err(|()| ApiError::bad_request("invalid source"))?;
        let target = Tag::parse(&body.0.target)
            .ok_or_else(|| ApiError::bad_request("invalid target tag"))?;
        copy_tag(state, &repo, &source, target)
            .await
            .map_err(from_registry)?;
        Ok(Done::Done)
    }
}
