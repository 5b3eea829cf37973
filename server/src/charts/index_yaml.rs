//! Rendering a Helm repository index (`index.yaml`, or the same as JSON) from chart entries,
//! newest version first per chart, with a render cache keyed by the index generation so that
//! repeated fetches of a large index cost a lookup.

use std::collections::BTreeMap;
use std::sync::Arc;

use oci_storage_core::bounded_cache::{BoundedCache, Footprint, Sharding, bounded_cache};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::IndexEntry;
use super::extract::ChartMetadata;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile<'a> {
    api_version: &'static str,
    entries: BTreeMap<&'a str, Vec<IndexChart<'a>>>,
    generated: &'a str,
}

#[derive(Serialize)]
struct IndexChart<'a> {
    #[serde(flatten)]
    metadata: &'a ChartMetadata,
    created: &'a str,
    digest: &'a str,
    urls: Vec<String>,
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Yaml,
    Json,
}

/// A rendered index and its entity tag.
#[derive(Debug)]
pub struct Rendered {
    pub body: String,
    pub etag: String,
}

/// Renders `entries`; `url` gives each chart's download URL relative to the index.
pub fn render(
    entries: &[Arc<IndexEntry>],
    format: Format,
    url: impl Fn(&IndexEntry) -> String,
) -> Rendered {
    let mut by_name: BTreeMap<&str, Vec<&IndexEntry>> = BTreeMap::new();
    for entry in entries {
        by_name
            .entry(entry.metadata.name.as_str())
            .or_default()
            .push(entry);
    }
    let mut charts: BTreeMap<&str, Vec<IndexChart<'_>>> = BTreeMap::new();
    for (name, mut versions) in by_name {
        versions.sort_by(|a, b| {
            let va = semver::Version::parse(&a.metadata.version).ok();
            let vb = semver::Version::parse(&b.metadata.version).ok();
            vb.cmp(&va).then_with(|| a.repository.cmp(&b.repository))
        });
        charts.insert(
            name,
            versions
                .into_iter()
                .map(|e| IndexChart {
                    metadata: &e.metadata,
                    created: &e.created,
                    digest: e.chart_digest.hex(),
                    urls: vec![url(e)],
                })
                .collect(),
        );
    }
    // Stable for unchanged content, so the ETag is too.
    let generated = entries
        .iter()
        .map(|e| e.created.as_str())
        .max()
        .unwrap_or("1970-01-01T00:00:00Z");
    let index = IndexFile {
        api_version: "v1",
        entries: charts,
        generated,
    };
    let body = match format {
        Format::Yaml => serde_yaml_ng::to_string(&index).expect("index serializes"),
        Format::Json => serde_json::to_string(&index).expect("index serializes"),
    };
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..16])
    );
    Rendered { body, etag }
}

/// A rendered index and the generation it was rendered for.
type CachedRender = (u64, Arc<Rendered>);

/// Bytes of rendered indexes kept: a repository of thousands of chart versions renders to a
/// few MiB, and rendering it again costs far more than keeping it.
const RENDER_CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl Footprint for Rendered {
    fn footprint(&self) -> usize {
        self.body.len() + self.etag.len()
    }
}

impl Footprint for Format {
    fn footprint(&self) -> usize {
        0
    }
}

/// Rendered indexes by (namespace, format), valid for one index generation; bounded by bytes.
#[derive(Debug)]
pub struct RenderCache(BoundedCache<(String, Format), CachedRender>);

impl Default for RenderCache {
    fn default() -> Self {
        Self(bounded_cache(
            RENDER_CACHE_BYTES,
            256 * 1024,
            Sharding::OneShard,
        ))
    }
}

impl RenderCache {
    pub fn get_or_render(
        &self,
        namespace: &str,
        format: Format,
        generation: u64,
        render: impl FnOnce() -> Rendered,
    ) -> Arc<Rendered> {
        let key = (namespace.to_owned(), format);
        if let Some((generation_seen, rendered)) = self.0.get(&key)
            && generation_seen == generation
        {
            return rendered;
        }
        let rendered = Arc::new(render());
        self.0.insert(key, (generation, rendered.clone()));
        rendered
    }
}
