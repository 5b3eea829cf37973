//! Helm charts: metadata read from every pushed chart (bounded), kept in storage next to the
//! registry data and indexed in memory, so that the same charts are served the classic way
//! (`index.yaml`, `.tgz` downloads) without re-reading archives.
//!
//! Storage: `chartmeta/<repository>/<tag>.json` per chart version (a cache derived from the
//! chart content: it can be rebuilt by re-reading the archives). Memory: the index of those
//! records without the large texts, refreshed from storage every `helm.refreshSeconds` and
//! updated at once by this process's own pushes and deletes.

pub mod chartmuseum;
pub mod classic;
pub mod extract;
mod index_yaml;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use oci_storage_config::HelmConfig;
use oci_storage_core::{Digest, Key, PutMode, StorageError, StorageExt};
use serde::{Deserialize, Serialize};

use crate::records;
use crate::registry::{ErrorCode, Registry, RegistryError, RepoName, Tag};
use extract::{ChartContent, ChartMetadata, Limits};

pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const CHART_LAYERS: &[&str] = &[
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    "application/tar+gzip",
];
pub const PROVENANCE_LAYER: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
const META_PREFIX: &str = "chartmeta/";

/// One chart version as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartRecord {
    pub repository: String,
    pub tag: String,
    pub manifest_digest: Digest,
    pub chart_digest: Digest,
    pub chart_size: u64,
    pub provenance_digest: Option<Digest>,
    /// RFC 3339.
    pub created: String,
    pub content: ChartContent,
}

/// One chart version in the in-memory index (no large texts).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub repository: String,
    pub tag: String,
    pub manifest_digest: Digest,
    pub chart_digest: Digest,
    pub chart_size: u64,
    pub provenance_digest: Option<Digest>,
    pub created: String,
    pub metadata: ChartMetadata,
}

impl IndexEntry {
    /// The repository path without its last segment (`team-a/charts/x` → `team-a/charts`).
    pub fn namespace(&self) -> &str {
        self.repository.rsplit_once('/').map_or("", |(ns, _)| ns)
    }

    /// `<name>-<version>.tgz`, as Helm names chart archives.
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.metadata.name, self.metadata.version)
    }
}

impl From<&ChartRecord> for IndexEntry {
    fn from(r: &ChartRecord) -> Self {
        Self {
            repository: r.repository.clone(),
            tag: r.tag.clone(),
            manifest_digest: r.manifest_digest.clone(),
            chart_digest: r.chart_digest.clone(),
            chart_size: r.chart_size,
            provenance_digest: r.provenance_digest.clone(),
            created: r.created.clone(),
            metadata: r.content.metadata.clone(),
        }
    }
}

/// A chart found in a pushed manifest, read and validated, waiting for the push to succeed.
#[derive(Debug)]
pub struct PendingChart {
    chart_digest: Digest,
    chart_size: u64,
    provenance_digest: Option<Digest>,
    created: Option<String>,
    content: ChartContent,
}

#[derive(Debug, Default)]
struct IndexState {
    /// (repository, tag) → (storage version of the record, entry).
    entries: BTreeMap<(String, String), (Option<String>, Arc<IndexEntry>)>,
    loaded: bool,
    /// Bumped on every change; keys rendered-index caches.
    generation: u64,
}

/// The chart service.
#[derive(Debug)]
pub struct Charts {
    registry: Registry,
    config: HelmConfig,
    state: RwLock<IndexState>,
    refresh_lock: tokio::sync::Mutex<Option<std::time::Instant>>,
    rendered: index_yaml::RenderCache,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFields {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

fn invalid_chart(message: String) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, message)
}

/// Room in a chart record for what is not the chart's content (names, digests, times).
const RECORD_OVERHEAD: usize = 4096;

fn record_key(repo: &str, tag: &str) -> Option<Key> {
    Key::new(format!("{META_PREFIX}{repo}/{tag}.json")).ok()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Charts {
    pub fn new(registry: Registry, config: HelmConfig) -> Self {
        Self {
            registry,
            config,
            state: RwLock::default(),
            refresh_lock: tokio::sync::Mutex::new(None),
            rendered: index_yaml::RenderCache::default(),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_unpacked_bytes: self.config.max_unpacked_bytes,
            max_entries: self.config.max_entries,
            max_file_bytes: self.config.max_file_bytes,
        }
    }

    /// Reads the chart of a manifest being pushed, if it is a Helm chart; refuses hostile or
    /// invalid charts before the manifest is stored.
    pub async fn inspect_push(
        &self,
        repo: &RepoName,
        manifest: &[u8],
    ) -> Result<Option<PendingChart>, RegistryError> {
        let Ok(fields) = serde_json::from_slice::<ManifestFields>(manifest) else {
            return Ok(None); // not ours to judge: the registry validates manifests
        };
        if fields
            .config
            .as_ref()
            .is_none_or(|c| c.media_type != HELM_CONFIG)
        {
            return Ok(None);
        }
        let Some(layer) = fields
            .layers
            .iter()
            .find(|l| CHART_LAYERS.contains(&l.media_type.as_str()))
        else {
            return Err(invalid_chart(
                "a Helm chart manifest must have a chart content layer".into(),
            ));
        };
        let Ok(chart_digest) = layer.digest.parse::<Digest>() else {
            return Ok(None); // the registry reports the bad digest
        };
        if layer.size > self.config.max_chart_bytes {
            return Err(invalid_chart(format!(
                "chart archive is {} bytes, over the limit of {}",
                layer.size, self.config.max_chart_bytes
            )));
        }
        let read = match self.registry.get_blob(repo, &chart_digest, None).await {
            Ok(read) => read,
            Err(e) if e.code == ErrorCode::BlobUnknown => return Ok(None), // MANIFEST_BLOB_UNKNOWN follows
            Err(e) => return Err(e),
        };
        if read.meta.size > self.config.max_chart_bytes {
            return Err(invalid_chart("chart archive is over the size limit".into()));
        }
        let limits = self.limits();
        // A storage failure while the archive streams is the registry's fault (500), not a bad
        // chart (400): remember it apart from what the archive reader makes of the error.
        let storage_failure = Arc::new(std::sync::OnceLock::<String>::new());
        let failure = storage_failure.clone();
        let body = futures_util::TryStreamExt::inspect_err(read.body, move |e| {
            let _ = failure.set(e.to_string());
        });
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
        let content = tokio::task::spawn_blocking(move || extract::read_chart(reader, limits))
            .await
            .map_err(|e| RegistryError::internal("reading a chart", e))?
            .map_err(|e| match storage_failure.get() {
                Some(failure) => RegistryError::internal("reading a chart", failure),
                None => invalid_chart(format!("invalid Helm chart: {e}")),
            })?;
        // Helm's convention, relied on by the classic side: the repository's last segment is the
        // chart name (a chart must not pose as another chart of the namespace).
        let basename = repo.as_str().rsplit('/').next().unwrap_or_default();
        if content.metadata.name != basename {
            return Err(invalid_chart(format!(
                "chart name {:?} does not match the repository name {basename:?}",
                content.metadata.name
            )));
        }
        let size_as_record = serde_json::to_vec(&content).map_or(0, |v| v.len());
        if size_as_record > records::CHART_METADATA.max_bytes - RECORD_OVERHEAD {
            return Err(invalid_chart(format!(
                "the chart's metadata (Chart.yaml, values.yaml, README, schema and template \
                 names) takes {size_as_record} bytes as JSON, over the limit of {}",
                records::CHART_METADATA.max_bytes - RECORD_OVERHEAD
            )));
        }
        let provenance_digest = fields
            .layers
            .iter()
            .find(|l| l.media_type == PROVENANCE_LAYER)
            .and_then(|l| l.digest.parse().ok());
        Ok(Some(PendingChart {
            chart_digest,
            chart_size: read.meta.size,
            provenance_digest,
            // Shown in index.yaml, which helm parses as a timestamp: only a valid one.
            created: fields
                .annotations
                .get("org.opencontainers.image.created")
                .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
                .cloned(),
            content,
        }))
    }

    /// Records a pushed chart under each of its tags.
    async fn record_push(
        &self,
        repo: &RepoName,
        manifest_digest: &Digest,
        tags: &[Tag],
        chart: PendingChart,
    ) -> Result<(), RegistryError> {
        let created = chart.created.clone().unwrap_or_else(now_rfc3339);
        // Not while a refresh is replacing the index from an older listing.
        let _refreshing = self.refresh_lock.lock().await;
        // A chart version is the tag named after it (`+` as `_`); other tags of the same
        // manifest (`latest`, retags) are not versions of their own.
        let version_tag = chart.content.metadata.version.replace('+', "_");
        for tag in tags.iter().filter(|t| t.as_str() == version_tag) {
            let record = ChartRecord {
                repository: repo.to_string(),
                tag: tag.to_string(),
                manifest_digest: manifest_digest.clone(),
                chart_digest: chart.chart_digest.clone(),
                chart_size: chart.chart_size,
                provenance_digest: chart.provenance_digest.clone(),
                created: created.clone(),
                content: chart.content.clone(),
            };
            let Some(key) = record_key(repo.as_str(), tag.as_str()) else {
                continue;
            };
            let bytes = records::CHART_METADATA
                .encode(&record)
                .map_err(|e| invalid_chart(e.to_string()))?;
            let meta = self
                .registry
                .storage()
                .put_bytes(&key, bytes, PutMode::Overwrite)
                .await
                .map_err(|e| RegistryError::internal("recording chart metadata", e))?;
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.entries.insert(
                (record.repository.clone(), record.tag.clone()),
                (meta.version, Arc::new(IndexEntry::from(&record))),
            );
            state.generation += 1;
        }
        Ok(())
    }

    /// Keeps the index in step with tags just pointed at a manifest (a push or a retag): the
    /// chart's version tag is recorded; any other tag no longer holds the chart version it may
    /// have held (`chart` is `None` when the manifest is not a chart).
    pub async fn tags_written(
        &self,
        repo: &RepoName,
        manifest_digest: &Digest,
        tags: &[Tag],
        chart: Option<PendingChart>,
    ) -> Result<(), RegistryError> {
        let version_tag = chart
            .as_ref()
            .map(|c| c.content.metadata.version.replace('+', "_"));
        for tag in tags {
            if version_tag.as_deref() != Some(tag.as_str()) {
                self.tag_deleted(repo, tag).await;
            }
        }
        match chart {
            Some(chart) => self.record_push(repo, manifest_digest, tags, chart).await,
            None => Ok(()),
        }
    }

    /// Forgets a deleted tag.
    pub async fn tag_deleted(&self, repo: &RepoName, tag: &Tag) {
        self.forget(repo.as_str(), |entry| entry.tag == tag.as_str())
            .await;
    }

    /// Forgets every tag of a deleted manifest.
    pub async fn manifest_deleted(&self, repo: &RepoName, digest: &Digest) {
        self.forget(repo.as_str(), |entry| entry.manifest_digest == *digest)
            .await;
    }

    async fn forget(&self, repo: &str, matches: impl Fn(&IndexEntry) -> bool) {
        self.ensure_loaded().await;
        let _refreshing = self.refresh_lock.lock().await;
        let gone: Vec<String> = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            state
                .entries
                .range((repo.to_owned(), String::new())..)
                .take_while(|((r, _), _)| r == repo)
                .filter(|(_, (_, e))| matches(e))
                .map(|((_, t), _)| t.clone())
                .collect()
        };
        for tag in gone {
            if let Some(key) = record_key(repo, &tag)
                && let Err(e) = self.registry.storage().delete(&key).await
            {
                tracing::warn!(error = %e, "could not delete chart metadata");
            }
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.entries.remove(&(repo.to_owned(), tag));
            state.generation += 1;
        }
    }

    /// Loads the index from storage on first use.
    async fn ensure_loaded(&self) {
        self.refresh(Duration::MAX).await;
    }

    /// Re-reads changed records from storage (all of them on first load) when the last read is
    /// older than `max_age`.
    async fn refresh(&self, max_age: Duration) {
        let mut last = self.refresh_lock.lock().await;
        let loaded = self.state.read().unwrap_or_else(|p| p.into_inner()).loaded;
        if loaded && last.is_some_and(|t| t.elapsed() < max_age) {
            return;
        }
        let storage = self.registry.storage();
        let listed = match storage.list_all(META_PREFIX).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "could not list chart metadata");
                return;
            }
        };
        let known: BTreeMap<(String, String), Option<String>> = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            state
                .entries
                .iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect()
        };
        let mut fresh = BTreeMap::new();
        for meta in listed {
            let Some((repo, tag)) = meta
                .key
                .as_str()
                .strip_prefix(META_PREFIX)
                .and_then(|k| k.strip_suffix(".json"))
                .and_then(|k| k.rsplit_once('/'))
            else {
                continue;
            };
            let id = (repo.to_owned(), tag.to_owned());
            if known.get(&id) == Some(&meta.version) {
                let state = self.state.read().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = state.entries.get(&id) {
                    fresh.insert(id, entry.clone());
                }
                continue;
            }
            match read_record(storage.as_ref(), &meta.key).await {
                Ok(Some(record)) => {
                    fresh.insert(id, (meta.version, Arc::new(IndexEntry::from(&record))));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, key = %meta.key, "could not read chart metadata")
                }
            }
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let changed = !state.loaded
            || state.entries.len() != fresh.len()
            || state
                .entries
                .iter()
                .zip(fresh.iter())
                .any(|(a, b)| a.0 != b.0 || a.1.0 != b.1.0);
        if changed {
            state.entries = fresh;
            state.generation += 1;
        }
        state.loaded = true;
        *last = Some(std::time::Instant::now());
    }

    /// Every chart version, after refreshing from storage when the interval has passed.
    pub async fn entries(&self) -> (u64, Vec<Arc<IndexEntry>>) {
        self.refresh(Duration::from_secs(self.config.refresh_seconds))
            .await;
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        (
            state.generation,
            state.entries.values().map(|(_, e)| e.clone()).collect(),
        )
    }

    /// Every chart version, read from storage now (for a backup, which must not miss another
    /// replica's push of the last seconds).
    pub async fn entries_now(&self) -> Vec<Arc<IndexEntry>> {
        self.refresh(Duration::ZERO).await;
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.entries.values().map(|(_, e)| e.clone()).collect()
    }

    /// A chart version's full record (values, README…).
    pub async fn record(&self, repo: &str, tag: &str) -> Result<Option<ChartRecord>, StorageError> {
        match record_key(repo, tag) {
            Some(key) => read_record(self.registry.storage().as_ref(), &key).await,
            None => Ok(None),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn config(&self) -> &HelmConfig {
        &self.config
    }

    /// Rebuilds every chart record from the content in storage (after `chartmeta/` was lost,
    /// or limits changed): walks the catalog, reads each tagged Helm chart manifest. Answers how
    /// many chart versions were recorded.
    pub async fn rebuild(&self) -> Result<usize, RegistryError> {
        let mut recorded = 0;
        let mut last: Option<String> = None;
        loop {
            let page = self.registry.catalog(Some(200), last.as_deref()).await?;
            for name in &page.items {
                let Some(repo) = RepoName::parse(name) else {
                    continue;
                };
                let tags = match self.registry.list_tags(&repo, None, None).await {
                    Ok(tags) => tags.items,
                    Err(_) => continue,
                };
                for tag in tags.iter().filter_map(|t| Tag::parse(t)) {
                    let reference = crate::registry::Reference::Tag(tag.clone());
                    let Ok(manifest) = self.registry.get_manifest(&repo, &reference).await else {
                        continue;
                    };
                    match self.inspect_push(&repo, &manifest.bytes).await {
                        Ok(Some(chart)) => {
                            self.record_push(
                                &repo,
                                &manifest.link.digest,
                                std::slice::from_ref(&tag),
                                chart,
                            )
                            .await?;
                            recorded += 1;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(repository = %repo, tag = %tag, error = %e.message, "skipping a chart")
                        }
                    }
                }
            }
            match (page.more, page.items.last()) {
                (true, Some(name)) => last = Some(name.clone()),
                _ => return Ok(recorded),
            }
        }
    }

    /// Records the chart a restored tag points at, with the `created` time it had when it was
    /// backed up (so that index.yaml reads as before), if known. `false` when the tag is not a
    /// chart.
    pub async fn restore_chart(
        &self,
        repo: &RepoName,
        tag: &Tag,
        created: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let reference = crate::registry::Reference::Tag(tag.clone());
        let manifest = self.registry.get_manifest(repo, &reference).await?;
        match self.inspect_push(repo, &manifest.bytes).await? {
            Some(mut chart) => {
                if let Some(created) = created {
                    chart.created = Some(created.to_owned());
                }
                self.record_push(
                    repo,
                    &manifest.link.digest,
                    std::slice::from_ref(tag),
                    chart,
                )
                .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The entry of a chart version in a repository, if indexed.
    pub async fn find(&self, repo: &str, tag: &str) -> Option<Arc<IndexEntry>> {
        self.ensure_loaded().await;
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .entries
            .get(&(repo.to_owned(), tag.to_owned()))
            .map(|(_, e)| e.clone())
    }

    /// Stores a chart archive (and its provenance file) as an OCI artifact in
    /// `<namespace>/<chart name>`, tagged with the chart version, exactly as `helm push` would;
    /// answers the new index entry. `force`: replace an existing version. `authorize` is asked
    /// about the repository the chart lands in (known only once the archive is read) before
    /// anything is stored; the archive is read once.
    pub async fn publish(
        &self,
        namespace: &str,
        archive: Bytes,
        provenance: Option<Bytes>,
        force: bool,
        authorize: impl FnOnce(&RepoName) -> Result<(), PublishError>,
    ) -> Result<Arc<IndexEntry>, PublishError> {
        if archive.len() as u64 > self.config.max_chart_bytes {
            return Err(PublishError::Invalid(format!(
                "chart archive is over the limit of {} bytes",
                self.config.max_chart_bytes
            )));
        }
        let limits = self.limits();
        let reader = archive.clone();
        let content =
            tokio::task::spawn_blocking(move || extract::read_chart(reader.as_ref(), limits))
                .await
                .map_err(|e| PublishError::Internal(e.to_string()))?
                .map_err(|e| PublishError::Invalid(format!("invalid Helm chart: {e}")))?;
        let name = &content.metadata.name;
        let repo_path = if namespace.is_empty() {
            name.clone()
        } else {
            format!("{namespace}/{name}")
        };
        let repo = RepoName::parse(&repo_path).ok_or_else(|| {
            PublishError::Invalid(format!("{repo_path:?} is not a valid repository name"))
        })?;
        authorize(&repo)?;
        let tag = Tag::parse(&content.metadata.version.replace('+', "_"))
            .ok_or_else(|| PublishError::Invalid("the chart version cannot be a tag".into()))?;
        if !force && self.find(repo.as_str(), tag.as_str()).await.is_some() {
            return Err(PublishError::Exists);
        }
        let algorithm = oci_storage_core::DigestAlgorithm::Sha256;
        let config =
            Bytes::from(serde_json::to_vec(&content.metadata).expect("metadata serializes"));
        let chart_digest = algorithm.digest(&archive);
        let chart_size = archive.len() as u64;
        let provenance_digest = provenance.as_ref().map(|p| algorithm.digest(p));
        let mut layers = vec![(CHART_LAYERS[0], archive)];
        if let Some(prov) = provenance {
            layers.push((PROVENANCE_LAYER, prov));
        }
        let mut descriptors = Vec::new();
        for (media_type, bytes) in std::iter::once((HELM_CONFIG, config.clone())).chain(layers) {
            let digest = algorithm.digest(&bytes);
            let size = bytes.len() as u64;
            self.registry
                .upload_monolithic(
                    &repo,
                    &digest,
                    oci_storage_core::storage::bytes_stream(bytes),
                    Some(size),
                )
                .await
                .map_err(PublishError::Registry)?;
            descriptors.push(serde_json::json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size }));
        }
        let config_descriptor = descriptors.remove(0);
        let mut annotations = serde_json::Map::new();
        let created = now_rfc3339();
        annotations.insert(
            "org.opencontainers.image.created".into(),
            created.clone().into(),
        );
        annotations.insert("org.opencontainers.image.title".into(), name.clone().into());
        annotations.insert(
            "org.opencontainers.image.version".into(),
            content.metadata.version.clone().into(),
        );
        if let Some(description) = &content.metadata.description {
            annotations.insert(
                "org.opencontainers.image.description".into(),
                description.clone().into(),
            );
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::registry::manifest_doc::OCI_MANIFEST,
            "config": config_descriptor,
            "layers": descriptors,
            "annotations": annotations,
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifest serializes"));
        // Built from what was just read: no need to read the archive back from storage.
        let pending = PendingChart {
            chart_digest,
            chart_size,
            provenance_digest,
            created: Some(created),
            content,
        };
        let outcome = self
            .registry
            .put_manifest(
                &repo,
                crate::registry::PutManifest {
                    reference: crate::registry::Reference::Tag(tag.clone()),
                    content_type: Some(crate::registry::manifest_doc::OCI_MANIFEST.into()),
                    bytes,
                    extra_tags: Vec::new(),
                },
            )
            .await
            .map_err(PublishError::Registry)?;
        self.record_push(&repo, &outcome.digest, &outcome.tags, pending)
            .await
            .map_err(PublishError::Registry)?;
        self.find(repo.as_str(), tag.as_str())
            .await
            .ok_or_else(|| PublishError::Internal("the chart was stored but not indexed".into()))
    }
}

/// Why a chart could not be published.
#[derive(Debug)]
pub enum PublishError {
    Invalid(String),
    /// The caller may not push to the chart's repository.
    Denied(crate::auth::Denial),
    Exists,
    Registry(RegistryError),
    Internal(String),
}

/// A chart version's record; one that cannot be read is skipped with a log line.
async fn read_record(
    storage: &dyn oci_storage_core::Storage,
    key: &Key,
) -> Result<Option<ChartRecord>, StorageError> {
    records::CHART_METADATA.read_listed(storage, key).await
}
