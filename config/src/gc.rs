//! `gc`: garbage collection of what no tag reaches any more.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{LeaseSeconds, Schedule};

/// `gc`: when it runs and what it may collect.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GcConfig {
    /// When it runs by itself: an interval (`24h`) or a cron expression; absent: only when
    /// started (`oci-storage gc`, the REST API, the web interface).
    pub schedule: Option<Schedule>,
    /// Nothing written more recently than this is collected, and what is collected can be
    /// brought back this long (a push that began before a run finds what it relies on).
    pub delay: GcDelay,
    /// Also delete manifests that no tag, index or referrer reaches.
    pub untagged: bool,
    /// As `backup.leaseSeconds`: GC and backups share one lease.
    pub lease_seconds: LeaseSeconds,
}

/// `gc.delay`: a duration of at least 1 s, default 2 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct GcDelay(Duration);

impl GcDelay {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl Default for GcDelay {
    fn default() -> Self {
        Self(Duration::from_secs(2 * 3600))
    }
}

impl TryFrom<String> for GcDelay {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match humantime::parse_duration(&s) {
            Ok(d) if d >= Duration::from_secs(1) => Ok(Self(d)),
            Ok(_) => Err(format!("{s:?} is shorter than 1s")),
            Err(e) => Err(format!("{s:?} is not a duration such as 2h or 30m: {e}")),
        }
    }
}

impl From<GcDelay> for String {
    fn from(d: GcDelay) -> String {
        humantime::format_duration(d.0).to_string()
    }
}
