//! Verify: reads a snapshot back from the target and checks every object's digest, restoring
//! nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use oci_storage_core::Digest;
use serde::Serialize;

use super::BackupService;
use super::format::{RepositoryDoc, SnapshotRecord, SystemDoc};
use super::objects::{self, Damage};
use crate::progress::Progress;

/// What a verify found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Findings {
    pub objects: u64,
    pub bytes: u64,
    pub missing: Vec<Digest>,
    /// Digest and what is wrong with it.
    pub damaged: Vec<(Digest, String)>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.damaged.is_empty()
    }
}

pub async fn verify(
    service: &BackupService,
    record: &SnapshotRecord,
    progress: &Arc<Progress>,
) -> anyhow::Result<Findings> {
    let target = service.target.as_ref();
    progress.set_phase("documents");
    let mut content: BTreeMap<Digest, u64> = BTreeMap::new();
    for entry in &record.repositories {
        let doc: RepositoryDoc = objects::read_document(target, &entry.doc).await?;
        anyhow::ensure!(
            doc.name == entry.name,
            "document {} names repository {:?}, the record {:?}",
            entry.doc,
            doc.name,
            entry.name
        );
        content.extend(doc.content().map(|(d, s)| (d.clone(), s)));
    }
    let _: SystemDoc = objects::read_document(target, &record.system).await?;
    progress.set_phase("content");
    let mut findings = Findings {
        objects: content.len() as u64,
        bytes: content.values().sum(),
        ..Findings::default()
    };
    progress.set_totals(findings.objects, findings.bytes);
    let mut checks =
        futures_util::stream::iter(content.into_iter().map(|(digest, size)| async move {
            let outcome = objects::check_content(target, &digest, size, progress).await;
            progress.add_object();
            (digest, outcome)
        }))
        .buffer_unordered(service.settings.concurrency);
    while let Some((digest, outcome)) = checks.next().await {
        match outcome {
            Ok(()) => {}
            Err(Damage::Missing) => findings.missing.push(digest),
            Err(Damage::Damaged(why)) => findings.damaged.push((digest, why)),
            Err(Damage::Target(e)) => {
                anyhow::bail!("reading {digest} from {}: {e}", target.describe())
            }
        }
    }
    findings.missing.sort();
    findings.damaged.sort();
    Ok(findings)
}
