//! The command line's backup commands: `backup`, `backup list`, `backup verify`, `restore`.
//! They run in the calling process under the same lease as the server's jobs, so they cannot
//! overlap a job of a running server, and their jobs appear in the web interface's history.

use oci_storage_config::Loaded;

use super::{BackupService, RestoreOptions, Which, jobs::JobKind};
use crate::progress::line::{self as progress_line, human_bytes};

async fn service(loaded: &Loaded) -> anyhow::Result<std::sync::Arc<BackupService>> {
    crate::logging::init_to(&loaded.config.logging, crate::logging::Output::Stderr);
    crate::build_backup_only(&crate::builtin_plugins(), loaded).await
}

/// `cli:<user>@<host>`.
pub fn started_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}@{}", crate::lease::hostname())
}

/// `oci-storage backup`: a snapshot now.
pub async fn backup_now(loaded: &Loaded) -> anyhow::Result<()> {
    let service = service(loaded).await?;
    let started = service.begin(JobKind::Backup, &started_by(), None).await?;
    let line = progress_line::spawn(started.progress());
    let record = service.backup(started).await;
    drop(line);
    let record = record?;
    let t = record.totals;
    println!(
        "snapshot {}: {} objects, {} ({} new objects, {} uploaded), {} repositories",
        record.id,
        t.objects,
        human_bytes(t.bytes),
        t.new_objects,
        human_bytes(t.new_bytes),
        record.repositories.len()
    );
    Ok(())
}

/// `oci-storage backup list`.
pub async fn list(loaded: &Loaded, json: bool) -> anyhow::Result<()> {
    let service = service(loaded).await?;
    let snapshots = service.snapshots().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshots)?);
        return Ok(());
    }
    if snapshots.is_empty() {
        println!("no snapshots in {}", service.target().describe());
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:>12} {:>12} {:>9} {:>6}  started by",
        "snapshot", "completed", "size", "uploaded", "objects", "repos"
    );
    for s in &snapshots {
        println!(
            "{:<24} {:<20} {:>12} {:>12} {:>9} {:>6}  {}",
            s.id.as_str(),
            s.completed_at,
            human_bytes(s.totals.bytes),
            human_bytes(s.totals.new_bytes),
            s.totals.objects,
            s.repositories.len(),
            s.started_by
        );
    }
    Ok(())
}

/// `oci-storage backup verify`.
pub async fn verify(loaded: &Loaded, which: &Which) -> anyhow::Result<()> {
    let service = service(loaded).await?;
    let record = service.snapshot(which).await?;
    let started = service
        .begin(JobKind::Verify, &started_by(), Some(record.id.clone()))
        .await?;
    let line = progress_line::spawn(started.progress());
    let findings = service.verify(started, &record).await;
    drop(line);
    let findings = findings?;
    println!(
        "snapshot {} verified: {} objects, {}, every digest right",
        record.id,
        findings.objects,
        human_bytes(findings.bytes)
    );
    Ok(())
}

/// `oci-storage restore`.
pub async fn restore(
    loaded: &Loaded,
    which: &Which,
    options: RestoreOptions,
    dry_run: bool,
) -> anyhow::Result<()> {
    let service = service(loaded).await?;
    let record = service.snapshot(which).await?;
    if dry_run {
        let plan = service.plan_restore(&record, options).await?;
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let started = service
        .begin(JobKind::Restore, &started_by(), Some(record.id.clone()))
        .await?;
    let line = progress_line::spawn(started.progress());
    let plan = service.restore(started, &record, options).await;
    drop(line);
    let plan = plan?;
    println!(
        "restored snapshot {}: {} repositories created, {} merged; {} tags added, {} moved, {} unchanged, {} kept (changed after the snapshot), {} kept (immutable); {} objects copied ({})",
        record.id,
        plan.repositories_created,
        plan.repositories_merged,
        plan.tags_added,
        plan.tags_moved.len(),
        plan.tags_unchanged,
        plan.tags_kept_newer.len(),
        plan.tags_kept_immutable.len(),
        plan.content_objects,
        human_bytes(plan.content_bytes)
    );
    Ok(())
}
