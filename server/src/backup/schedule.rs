//! Scheduled backups (`backup.schedule`). Every replica computes the same slots (intervals
//! count from the Unix epoch, cron is read in UTC), wakes at each, and tries to claim it in
//! `system/backup/schedule.json` with a compare-and-set write: one replica wins the slot and
//! runs the backup, the others skip it. A slot that finds another job running is recorded as
//! a skipped job.

use std::sync::Arc;

use super::BackupService;
use crate::registry::layout;
use crate::schedule::{claim, sleep_until_next};

/// Runs scheduled backups for as long as the process lives.
pub fn spawn(service: Arc<BackupService>) {
    let Some(schedule) = service.settings.schedule.clone() else {
        return;
    };
    tokio::spawn(async move {
        let key = layout::backup_schedule();
        loop {
            let slot = sleep_until_next(&schedule).await;
            match claim(
                service.registry.storage().as_ref(),
                &key,
                slot,
                &service.holder,
            )
            .await
            {
                Ok(true) => service.run_scheduled(slot).await,
                Ok(false) => {
                    tracing::debug!(target: "backup", %slot, "scheduled backup claimed by another process")
                }
                Err(e) => {
                    tracing::warn!(target: "backup", %slot, error = %e, "could not claim a scheduled backup; skipping it")
                }
            }
        }
    });
}
