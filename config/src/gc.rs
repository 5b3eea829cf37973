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
    /// Which tags and untagged manifests go, per repository (the first policy whose
    /// `repositories` match applies); applied by every run, and shown by dry runs.
    pub retention: Vec<RetentionPolicy>,
}

/// `gc.retention[]`: for the repositories it matches, keep the newest `keepLast` tags (by
/// the time they were pushed or moved) and every tag matching `keepTags`, delete the other
/// tags; delete untagged manifests older than `untaggedOlderThan`. Immutable tags
/// (`registry.immutableTags`) are never deleted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RetentionFields", into = "RetentionFields")]
pub struct RetentionPolicy {
    pub repositories: Vec<glob::Pattern>,
    pub keep_last: Option<u32>,
    pub keep_tags: Vec<glob::Pattern>,
    pub untagged_older_than: Option<Duration>,
}

/// How repository globs match: `*` within one path segment, `**` across segments.
pub const REPOSITORY_GLOB: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl RetentionPolicy {
    pub fn applies_to(&self, repository: &str) -> bool {
        self.repositories
            .iter()
            .any(|p| p.matches_with(repository, REPOSITORY_GLOB))
    }

    pub fn keeps_tag(&self, tag: &str) -> bool {
        self.keep_tags.iter().any(|p| p.matches(tag))
    }
}

/// The fields of [`RetentionPolicy`] as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RetentionFields {
    repositories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keep_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    untagged_older_than: Option<String>,
}

impl TryFrom<RetentionFields> for RetentionPolicy {
    type Error = String;

    fn try_from(f: RetentionFields) -> Result<Self, String> {
        if f.repositories.is_empty() {
            return Err("repositories: name at least one glob (team/**)".into());
        }
        if f.keep_last.is_none() && f.untagged_older_than.is_none() {
            return Err(
                "set keepLast, untaggedOlderThan, or both: this policy does nothing".into(),
            );
        }
        let globs = |list: &[String], key: &str| {
            list.iter()
                .map(|g| {
                    glob::Pattern::new(g).map_err(|e| format!("{key}: {g:?} is not a glob: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let untagged_older_than = f
            .untagged_older_than
            .map(|s| {
                humantime::parse_duration(&s).map_err(|e| {
                    format!("untaggedOlderThan: {s:?} is not a duration (7d, 12h): {e}")
                })
            })
            .transpose()?;
        Ok(Self {
            repositories: globs(&f.repositories, "repositories")?,
            keep_last: f.keep_last,
            keep_tags: globs(&f.keep_tags, "keepTags")?,
            untagged_older_than,
        })
    }
}

impl From<RetentionPolicy> for RetentionFields {
    fn from(p: RetentionPolicy) -> Self {
        let strings =
            |list: Vec<glob::Pattern>| list.iter().map(|g| g.as_str().to_owned()).collect();
        Self {
            repositories: strings(p.repositories),
            keep_last: p.keep_last,
            keep_tags: strings(p.keep_tags),
            untagged_older_than: p
                .untagged_older_than
                .map(|d| humantime::format_duration(d).to_string()),
        }
    }
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
