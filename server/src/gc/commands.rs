//! `oci-storage gc [--dry-run]`: a run in this process, under the same lease as a server's, so
//! it never overlaps another run or a backup; progress on standard error, the summary on
//! standard output.

use std::sync::Arc;

use oci_storage_config::Loaded;

use super::Report;
use super::service::GcService;
use crate::progress::line::{self as progress_line, human_bytes};

pub async fn gc(loaded: &Loaded, dry_run: bool) -> anyhow::Result<()> {
    crate::logging::init_to(&loaded.config.logging, crate::logging::Output::Stderr);
    let registry = crate::build_registry_only(&crate::builtin_plugins(), loaded).await?;
    let charts = Arc::new(crate::charts::Charts::new(
        registry.clone(),
        loaded.config.helm.clone(),
    ));
    let service = GcService::new(registry, &loaded.config.gc, Some(charts));
    let mut line = None;
    let report = service
        .run_now(
            dry_run,
            &crate::backup::commands::started_by(),
            |progress| {
                line = Some(progress_line::spawn(progress));
            },
        )
        .await;
    drop(line);
    println!("{}", summary(&report?));
    Ok(())
}

/// What a run did, in a few lines.
pub fn summary(r: &Report) -> String {
    let (verb, trash) = if r.dry_run {
        ("would collect", String::new())
    } else {
        (
            "collected",
            format!(
                "\nfreed {} ({} objects) from the trash of earlier runs; {} upload session(s) expired; {} object(s) put back for pushes made during the run",
                human_bytes(r.trash_bytes),
                r.trash_objects,
                r.uploads_expired,
                r.rescued
            ),
        )
    };
    let retention = if r.retention_tags == 0 {
        String::new()
    } else {
        let tags = if r.dry_run { "would delete" } else { "deleted" };
        format!(
            "\nretention {tags} {} tags: {}{}",
            r.retention_tags,
            r.retention_sample.join(", "),
            if r.retention_tags as usize > r.retention_sample.len() {
                ", …"
            } else {
                ""
            }
        )
    };
    let healed = match (r.healed, r.dry_run) {
        (0, _) => String::new(),
        (n, true) => {
            format!("\nwould put back {n} object(s) from the trash that kept manifests need")
        }
        (n, false) => format!("\nput back {n} object(s) from the trash that kept manifests need"),
    };
    format!(
        "gc {}: {} repositories, {} manifests and {} content objects kept{retention}{healed}\n{verb} {} manifests, {} blob links, {} referrer entries, {} content objects ({}){trash}",
        r.id,
        r.repositories,
        r.kept_manifests,
        r.kept_content,
        r.manifests,
        r.blob_links,
        r.referrers,
        r.content_objects,
        human_bytes(r.content_bytes),
    )
}
