//! Scheduled jobs (`backup.schedule`, `gc.schedule`). Every replica computes the same slots
//! (intervals count from the Unix epoch, cron is read in UTC), wakes at each, and tries to
//! claim it in a record of the schedule with a compare-and-set write: one replica wins the slot
//! and runs the job, the others skip it.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use oci_storage_config::Schedule;
use oci_storage_core::{Key, PutMode, Storage, StorageError, StorageExt, Within};
use serde::{Deserialize, Serialize};

/// The first slot strictly after `now`.
pub fn next_slot(schedule: &Schedule, now: DateTime<Utc>) -> DateTime<Utc> {
    match schedule {
        Schedule::Every(every) => {
            let period = every.as_millis().max(1) as i64;
            let next = (now.timestamp_millis().div_euclid(period) + 1) * period;
            DateTime::from_timestamp_millis(next).unwrap_or(now)
        }
        Schedule::Cron(expression) => expression
            .parse::<croner::Cron>()
            .ok()
            .and_then(|cron| cron.find_next_occurrence(&now, false).ok())
            // Checked when the configuration loaded; an expression with no next time
            // (a date that never comes) runs never, not in a loop.
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}

/// The claim record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claim {
    /// The slot, in milliseconds since the Unix epoch.
    slot_ms: i64,
    claimed_by: String,
}

/// Claims `slot` of the schedule recorded at `key` for `holder`; `false` when another
/// process has it (or a later one).
pub async fn claim(
    storage: &dyn Storage,
    key: &Key,
    slot: DateTime<Utc>,
    holder: &str,
) -> Result<bool, StorageError> {
    let mode = match storage.get_within(key, 4096).await {
        Ok(Within::Read { meta, bytes }) => {
            if let Ok(current) = serde_json::from_slice::<Claim>(&bytes)
                && current.slot_ms >= slot.timestamp_millis()
            {
                return Ok(false);
            }
            match meta.version {
                Some(version) => PutMode::Update(version),
                // No compare-and-set without a version: claiming could let two replicas win.
                None => return Ok(false),
            }
        }
        Ok(Within::TooLarge) => return Ok(false),
        Err(StorageError::NotFound { .. }) => PutMode::Create,
        Err(e) => return Err(e),
    };
    let claim = Claim {
        slot_ms: slot.timestamp_millis(),
        claimed_by: holder.to_owned(),
    };
    let bytes = Bytes::from(serde_json::to_vec(&claim).expect("serializes"));
    match storage.put_bytes(key, bytes, mode).await {
        Ok(_) => Ok(true),
        Err(StorageError::AlreadyExists { .. } | StorageError::Precondition { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sleeps until the next slot of `schedule` (plus up to 2 s of jitter, so that replicas do
/// not all reach storage in the same millisecond); answers the slot.
pub async fn sleep_until_next(schedule: &Schedule) -> DateTime<Utc> {
    let now = Utc::now();
    let slot = next_slot(schedule, now);
    let wait = (slot - now).to_std().unwrap_or_default();
    let jitter = Duration::from_millis(u64::from(rand::random::<u16>() % 2000));
    tokio::time::sleep(wait + jitter).await;
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn slots_are_the_same_everywhere() {
        let day = Schedule::Every(Duration::from_secs(86400));
        assert_eq!(
            next_slot(&day, at("2026-12-01T13:45:00Z")),
            at("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            next_slot(&day, at("2026-12-02T00:00:00Z")),
            at("2026-12-03T00:00:00Z")
        );
        let ten = Schedule::Every(Duration::from_secs(10));
        assert_eq!(
            next_slot(&ten, at("2026-12-01T13:45:03.5Z")),
            at("2026-12-01T13:45:10Z")
        );
        let cron = Schedule::Cron("0 3 * * *".into());
        assert_eq!(
            next_slot(&cron, at("2026-12-01T13:45:00Z")),
            at("2026-12-02T03:00:00Z")
        );
        assert_eq!(
            next_slot(&cron, at("2026-12-01T02:59:59Z")),
            at("2026-12-01T03:00:00Z")
        );
    }

    #[tokio::test]
    async fn one_claim_per_slot() {
        let (_dir, storage) = crate::test_support::temporary_storage().await;
        let key = crate::registry::layout::backup_schedule();
        let key = &key;
        let slot = at("2026-12-01T03:00:00Z");
        let tries = (0..6).map(|i| {
            let storage = storage.clone();
            async move {
                claim(storage.as_ref(), key, slot, &format!("h{i}"))
                    .await
                    .unwrap()
            }
        });
        let won = futures_util::future::join_all(tries).await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1);
        assert!(!claim(storage.as_ref(), key, slot, "late").await.unwrap());
        assert!(
            claim(storage.as_ref(), key, at("2026-12-02T03:00:00Z"), "next")
                .await
                .unwrap()
        );
    }
}
