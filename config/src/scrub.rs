//! `scrub`: scheduled re-reads of stored content (`oci-storage verify` on a schedule).

use serde::{Deserialize, Serialize};

use crate::Schedule;

/// `scrub`: when stored content is re-hashed by itself.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ScrubConfig {
    /// An interval (`168h`) or a cron expression; absent: only `oci-storage verify`.
    pub schedule: Option<Schedule>,
}
