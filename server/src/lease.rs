//! One maintenance job (backup, restore, verify, prune, garbage collection) at a time, across
//! replicas and CLI processes: a lease record in registry storage, taken and renewed with
//! compare-and-set writes and never deleted (a stale holder must not delete a newer holder's
//! lease), with an expiry so that a process killed mid-job blocks others for at most the
//! lease time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use oci_storage_core::{PutMode, Storage, StorageError, StorageExt, Within};
use serde::{Deserialize, Serialize};

use crate::registry::layout;

const MAX_LEASE_BYTES: u64 = 4096;

/// The lease record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// `<host>/<pid>/<random>`.
    pub holder: String,
    pub job: String,
    pub kind: String,
    /// Milliseconds since the Unix epoch; 0 once released.
    pub expires_at_ms: u64,
}

/// Why a lease was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another job is running: {kind} {job} on {holder}")]
    Busy {
        job: String,
        kind: String,
        holder: String,
    },
    #[error("the job lease could not be written: {0}")]
    Storage(#[from] StorageError),
    #[error("the job lease was lost (another process took it after it expired)")]
    Lost,
    #[error(
        "the job lease could not be renewed in time (registry storage too slow or unreachable)"
    )]
    Expired,
    #[error("registry storage gives the job lease no version to compare and set")]
    Unversioned,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This process's name in lease records.
pub fn holder_name() -> String {
    let host = hostname();
    format!(
        "{host}/{}/{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// The machine's name (the pod's name in Kubernetes), without a dependency for it.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".into())
}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    storage: Arc<dyn Storage>,
    record: LeaseRecord,
    version: String,
    ttl: Duration,
}

/// A record that cannot be read counts as expired, so it can never block jobs.
fn unreadable() -> LeaseRecord {
    LeaseRecord {
        holder: "?".into(),
        job: "?".into(),
        kind: "?".into(),
        expires_at_ms: 0,
    }
}

async fn read(storage: &dyn Storage) -> Result<Option<(LeaseRecord, String)>, StorageError> {
    match storage
        .get_within(&layout::job_lease(), MAX_LEASE_BYTES)
        .await
    {
        Ok(Within::Read { meta, bytes }) => Ok(Some((
            serde_json::from_slice(&bytes).unwrap_or_else(|_| unreadable()),
            meta.version.unwrap_or_default(),
        ))),
        Ok(Within::TooLarge) => Ok(Some((unreadable(), String::new()))),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The job holding the lease now, if any.
pub async fn current(storage: &dyn Storage) -> Result<Option<LeaseRecord>, StorageError> {
    Ok(read(storage)
        .await?
        .map(|(r, _)| r)
        .filter(|r| r.expires_at_ms > now_ms()))
}

impl Lease {
    /// Takes the lease for `job` of `kind`, or says who holds it.
    pub async fn acquire(
        storage: Arc<dyn Storage>,
        holder: &str,
        kind: &str,
        job: &str,
        ttl: Duration,
    ) -> Result<Self, LeaseError> {
        let key = layout::job_lease();
        // Each lost race means another process took or renewed it: a few tries settle it.
        for _ in 0..8 {
            let mode = match read(storage.as_ref()).await? {
                Some((current, _)) if current.expires_at_ms > now_ms() => {
                    return Err(LeaseError::Busy {
                        job: current.job,
                        kind: current.kind,
                        holder: current.holder,
                    });
                }
                Some((_, version)) if !version.is_empty() => PutMode::Update(version),
                // Without a version there is no compare-and-set, and two processes could both
                // win: no backend of ours lists objects without one.
                Some(_) => return Err(LeaseError::Unversioned),
                None => PutMode::Create,
            };
            let record = LeaseRecord {
                holder: holder.to_owned(),
                job: job.to_owned(),
                kind: kind.to_owned(),
                expires_at_ms: now_ms() + ttl.as_millis() as u64,
            };
            let bytes = Bytes::from(serde_json::to_vec(&record).expect("serializes"));
            match storage.put_bytes(&key, bytes, mode).await {
                Ok(meta) => {
                    return Ok(Self {
                        storage,
                        record,
                        version: meta.version.unwrap_or_default(),
                        ttl,
                    });
                }
                // Someone else took it meanwhile: look again.
                Err(StorageError::AlreadyExists { .. } | StorageError::Precondition { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match current(storage.as_ref()).await? {
            Some(lease) => Err(LeaseError::Busy {
                job: lease.job,
                kind: lease.kind,
                holder: lease.holder,
            }),
            None => Err(LeaseError::Expired),
        }
    }

    async fn write(&mut self, expires_at_ms: u64) -> Result<(), LeaseError> {
        let mut record = self.record.clone();
        record.expires_at_ms = expires_at_ms;
        let bytes = Bytes::from(serde_json::to_vec(&record).expect("serializes"));
        match self
            .storage
            .put_bytes(
                &layout::job_lease(),
                bytes,
                PutMode::Update(self.version.clone()),
            )
            .await
        {
            Ok(meta) => {
                self.version = meta.version.unwrap_or_default();
                self.record = record;
                Ok(())
            }
            Err(StorageError::Precondition { .. } | StorageError::NotFound { .. }) => {
                Err(LeaseError::Lost)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Extends the lease by its time to live.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        self.write(now_ms() + self.ttl.as_millis() as u64).await
    }

    /// Keeps the lease until it is lost or can no longer be renewed in time: renews every
    /// quarter of its time, each renewal given only the time left before a quarter of the lease
    /// remains, and gives up (returns) then. The caller stops the job at once, so it has ended
    /// before another process may take the lease, even when storage hangs.
    pub async fn keep(&mut self) -> LeaseError {
        let quarter = self.ttl / 4;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(quarter).await;
            let left = (self.ttl - quarter).saturating_sub(renewed.elapsed());
            match tokio::time::timeout(left, self.renew()).await {
                Ok(Ok(())) => renewed = tokio::time::Instant::now(),
                Ok(Err(LeaseError::Lost)) => return LeaseError::Lost,
                Ok(Err(e)) => {
                    tracing::warn!(target: "lease", error = %e, "could not renew the job lease; retrying");
                    if renewed.elapsed() >= self.ttl - quarter {
                        return LeaseError::Expired;
                    }
                }
                Err(_) => return LeaseError::Expired,
            }
        }
    }

    /// Lets the next job start at once.
    pub async fn release(mut self) {
        if let Err(e) = self.write(0).await {
            tracing::warn!(target: "lease", error = %e, "could not release the job lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn storage() -> (tempfile::TempDir, Arc<dyn Storage>) {
        crate::test_support::temporary_storage().await
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry() {
        let (_dir, storage) = storage().await;
        let ttl = Duration::from_millis(400);
        let a = Lease::acquire(storage.clone(), "a", "backup", "j1", ttl)
            .await
            .unwrap();
        match Lease::acquire(storage.clone(), "b", "restore", "j2", ttl).await {
            Err(LeaseError::Busy { holder, job, .. }) => {
                assert_eq!((holder.as_str(), job.as_str()), ("a", "j1"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            current(storage.as_ref()).await.unwrap().unwrap().holder,
            "a"
        );
        a.release().await;
        assert!(current(storage.as_ref()).await.unwrap().is_none());
        let mut b = Lease::acquire(storage.clone(), "b", "restore", "j2", ttl)
            .await
            .unwrap();
        b.renew().await.unwrap();
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        // Expired: another process takes it, and the old holder has lost it.
        let c = Lease::acquire(storage.clone(), "c", "backup", "j3", ttl)
            .await
            .unwrap();
        assert!(matches!(b.renew().await, Err(LeaseError::Lost)));
        assert!(matches!(b.keep().await, LeaseError::Lost));
        c.release().await;
    }

    /// A renewal that hangs (storage stalled) ends `keep` before the lease could expire.
    #[tokio::test]
    async fn a_hanging_renewal_gives_up_in_time() {
        let (_dir, inner) = storage().await;
        let hangs = Arc::new(crate::test_support::StallingWrites::new(inner));
        let ttl = Duration::from_millis(800);
        let mut lease = Lease::acquire(hangs.clone(), "a", "backup", "j", ttl)
            .await
            .unwrap();
        hangs.stall();
        let started = std::time::Instant::now();
        assert!(matches!(lease.keep().await, LeaseError::Expired));
        // It gave up with a quarter of the lease left.
        assert!(started.elapsed() < ttl - ttl / 8, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn racing_acquirers_get_one_lease() {
        let (_dir, storage) = storage().await;
        let ttl = Duration::from_secs(30);
        let tries = (0..8).map(|i| {
            let storage = storage.clone();
            async move { Lease::acquire(storage, &format!("h{i}"), "backup", "j", ttl).await }
        });
        let results = futures_util::future::join_all(tries).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    }
}
