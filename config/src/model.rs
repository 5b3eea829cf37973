//! The configuration model: one struct per section of `config.yaml`, every field documented.
//! Defaults here must match `config/config.yaml` (a test checks it).

use std::collections::BTreeMap;

use oci_storage_core::Secret;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub registry: RegistryConfig,
    pub auth: AuthConfig,
    pub logging: LoggingConfig,
    pub backup: BackupConfig,
    pub proxy: ProxyConfig,
    pub helm: HelmConfig,
    pub ui: UiConfig,
    pub metrics: crate::MetricsConfig,
    pub gc: crate::GcConfig,
    pub scrub: crate::ScrubConfig,
}

/// `ui`: the web interface.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct UiConfig {
    /// Show chart icons given as http(s) URLs. Off by default: the browser would fetch them
    /// from wherever the chart points (telling that host who looks, and failing offline);
    /// icons embedded as data: URIs are always shown.
    pub remote_icons: bool,
}

/// `helm`: the chart side — metadata read from pushed charts and the classic repository.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct HelmConfig {
    /// Largest chart archive (compressed) accepted.
    pub max_chart_bytes: u64,
    /// A chart that inflates past this many bytes is refused.
    pub max_unpacked_bytes: u64,
    /// A chart with more archive entries than this is refused.
    pub max_entries: u64,
    /// Largest Chart.yaml, values.yaml, README or values.schema.json kept.
    pub max_file_bytes: u64,
    /// Seconds between re-reads of the chart index from storage (to see other replicas' pushes).
    pub refresh_seconds: u64,
    /// Where charts uploaded through the top-level ChartMuseum API (`/api/charts`) go: the OCI
    /// repository is `<namespace>/<chart name>` (`helm pull oci://HOST/<namespace>/<chart>`).
    pub default_namespace: String,
}

impl Default for HelmConfig {
    fn default() -> Self {
        Self {
            max_chart_bytes: 20 * 1024 * 1024,
            max_unpacked_bytes: 100 * 1024 * 1024,
            max_entries: 10_000,
            max_file_bytes: 1024 * 1024,
            refresh_seconds: 30,
            default_namespace: "charts".into(),
        }
    }
}

/// `server`: where and how the HTTP server listens.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind.
    pub port: u16,
    /// Seconds that running transfers may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace_seconds: u64,
    /// Most threads doing blocking work at once (file I/O of the fs storage, password
    /// hashing); more requests wait for one. Each thread costs memory (its stack and its
    /// allocator cache): with tokio's default of 512, 32 clients kept 160 threads alive.
    pub blocking_threads: std::num::NonZeroUsize,
    /// Serve HTTPS with this certificate and key (PEM files, re-read when they change).
    pub tls: Option<TlsConfig>,
    /// When blob downloads from fs storage go out with `sendfile(2)`.
    pub sendfile: Sendfile,
}

/// `server.sendfile`: when blob downloads from fs storage are sent with `sendfile(2)`, from
/// the page cache to the socket without passing through the registry's buffers. Only on
/// plain-text HTTP/1 connections; TLS and HTTP/2 always copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sendfile {
    /// To clients on other hosts. A client on this host (a loopback or this host's own
    /// address) would itself read the bytes cold from memory, which costs it more than the
    /// registry's copy saves (docs/BENCHMARKS.md, Downloads), so its downloads are copied.
    #[default]
    Auto,
    /// To every client.
    Always,
    /// To none: every download is read and written by the registry.
    Never,
}

/// `server.tls`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// Private key (PEM).
    pub key: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 3030,
            shutdown_grace_seconds: 30,
            blocking_threads: std::num::NonZeroUsize::new(32).expect("not zero"),
            tls: None,
            sendfile: Sendfile::Auto,
        }
    }
}

/// `storage`: the storage plugin, chosen by `type`, with its settings under a key of the same
/// name (`storage.fs`, `storage.s3`, …).
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct StorageConfig {
    #[serde(rename = "type", default = "default_storage_type")]
    pub kind: String,
    /// Settings of each plugin, by type name; only the selected one is used.
    #[serde(flatten)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

fn default_storage_type() -> String {
    "fs".into()
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: default_storage_type(),
            settings: BTreeMap::from([(
                "fs".to_owned(),
                serde_json::json!({"path": "./data", "fsync": true}),
            )]),
        }
    }
}

/// Plugin settings are free-form JSON: Debug shows them with secret values masked.
impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: BTreeMap<&String, serde_json::Value> = self
            .settings
            .iter()
            .map(|(k, v)| (k, crate::redact_secrets(v)))
            .collect();
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind)
            .field("settings", &settings)
            .finish()
    }
}

impl StorageConfig {
    /// The selected plugin's settings (`null` when absent).
    pub fn selected_settings(&self) -> serde_json::Value {
        self.settings
            .get(&self.kind)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }
}

/// `registry`: OCI Distribution behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RegistryConfig {
    /// Largest manifest accepted, in bytes (the spec suggests at least 4 MiB).
    pub max_manifest_bytes: u64,
    /// Upload sessions untouched for this many minutes are discarded.
    pub upload_expiry_minutes: u64,
    /// Allow DELETE of manifests, tags and blobs.
    pub delete_enabled: bool,
    /// Seconds a tag or manifest lookup is trusted from memory. This process's own changes
    /// show at once; other replicas' changes show within this time. 0 disables the cache.
    pub cache_seconds: f64,
    /// Tag patterns (globs, e.g. `v*`, `*.*.*`) that may not be moved to another manifest or
    /// deleted once they exist.
    pub immutable_tags: Vec<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 * 1024 * 1024,
            upload_expiry_minutes: 24 * 60,
            delete_enabled: true,
            cache_seconds: 2.0,
            immutable_tags: Vec::new(),
        }
    }
}

/// `auth`: who may do what.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AuthConfig {
    /// Let clients without credentials pull (and list) every repository. Finer: `rules` with
    /// `anonymous: true`.
    pub anonymous_pull: bool,
    /// Users. When empty (and no other identity source is configured), the first start creates
    /// `admin` with a random password.
    pub users: Vec<UserConfig>,
    /// Further identity sources, each chosen by `type` (e.g. `{type: htpasswd, path: FILE}`),
    /// asked after `users`, in order.
    pub providers: Vec<ProviderConfig>,
    /// Group memberships for users of any source: group → usernames.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Administrators: usernames, or `@group` for every member of a group. Admins may do
    /// everything, including the management API.
    pub admins: Vec<String>,
    /// Access rules. Without any rule, every logged-in user may pull, push and delete
    /// everywhere; with rules, users get exactly what the rules grant (admins: everything).
    pub rules: Vec<AccessRule>,
    /// Brute-force protection of logins.
    pub login_limits: LoginLimits,
    /// The built-in Docker token service.
    pub token: TokenConfig,
}

/// `auth.token`: Docker-style token authentication. When enabled, `/v2` challenges clients
/// with `Bearer realm=…` and the realm (`/auth/token`) issues signed JWTs for the scopes the
/// caller may have.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct TokenConfig {
    pub enabled: bool,
    /// The realm URL sent in challenges; default: `<scheme>://<request host>/auth/token`.
    pub realm: Option<String>,
    /// The `service` (token audience).
    pub service: String,
    /// The token issuer.
    pub issuer: String,
    /// Token lifetime in seconds.
    pub expiry_seconds: u64,
    /// PKCS#8 EC P-256 private key (PEM) to sign with; default: generated on first start and
    /// kept in storage (`system/token-signing-key.json`), shared by replicas.
    pub key: Option<std::path::PathBuf>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            realm: None,
            service: "oci-storage".into(),
            issuer: "oci-storage".into(),
            expiry_seconds: 300,
            key: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            anonymous_pull: false,
            users: Vec::new(),
            providers: Vec::new(),
            groups: BTreeMap::new(),
            admins: vec!["admin".into(), "@admins".into()],
            rules: Vec::new(),
            login_limits: LoginLimits::default(),
            token: TokenConfig::default(),
        }
    }
}

/// An identity provider plugin: its `type` and its settings.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct ProviderConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field(
                "settings",
                &crate::redact_secrets(&serde_json::Value::Object(self.settings.clone())),
            )
            .finish()
    }
}

/// One configured user.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserConfig {
    pub username: String,
    /// An argon2id (`$argon2id$…`) or bcrypt (`$2b$…`) hash from `oci-storage hash-password`;
    /// plaintext is accepted with a warning. `passwordFile: PATH` reads it from a file.
    #[serde(serialize_with = "redact")]
    pub password: Secret,
    /// Groups (roles) the user belongs to, for `rules` and `admins`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The actions a rule can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Pull,
    Push,
    Delete,
}

/// Grants `actions` on repositories matching `repositories` to the listed users and groups
/// (and to everyone, logged in or not, when `anonymous` is true).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessRule {
    /// Glob patterns: `*` within one path segment, `**` across segments (`team-a/**`).
    pub repositories: Vec<String>,
    pub actions: Vec<RuleAction>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub anonymous: bool,
}

/// `auth.loginLimits`: failed logins allowed before a client address or a username is made to
/// wait (429 with Retry-After). Credentials that worked recently keep working.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LoginLimits {
    /// Failures allowed per client address within the window.
    pub per_address: u32,
    /// Failures allowed per username within the window (from addresses where the user has
    /// not logged in successfully).
    pub per_user: u32,
    /// The window, in seconds; also how long a client waits once over the limit.
    pub window_seconds: u64,
    /// Password checks run at once (an argon2id check holds 19 MiB while it runs); default:
    /// the number of CPUs.
    pub concurrent_checks: Option<usize>,
    /// Password checks that may wait for a free slot; beyond that (or beyond 4 for one client
    /// address) logins get 429 with Retry-After.
    pub queued_checks: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_address: 20,
            per_user: 10,
            window_seconds: 60,
            concurrent_checks: None,
            queued_checks: 64,
        }
    }
}

fn redact<S: serde::Serializer>(_: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("***")
}

/// `logging`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as
    /// `info,oci_storage_server=debug`. The `RUST_LOG` environment variable wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `backup`: copies of the registry in a bucket or directory. The target's settings belong to
/// its plugin (`backup.aws` → `s3`, `backup.gcp` → `gcs`, `backup.target` → its `type`), which
/// checks them when the server starts; errors name the key.
#[derive(Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct BackupConfig {
    pub enabled: bool,
    /// An S3 bucket: `bucket`, `region`, and the s3 storage's other settings.
    pub aws: Option<serde_json::Map<String, serde_json::Value>>,
    /// A GCS bucket: `bucket`, `projectID`, and the gcs storage's other settings.
    pub gcp: Option<serde_json::Map<String, serde_json::Value>>,
    /// Any registered target: `type` (`fs`, `s3`, `gcs`, or a third party's) and its settings.
    pub target: Option<serde_json::Map<String, serde_json::Value>>,
    /// When backups run by themselves: an interval (`24h`) or a cron expression (`0 3 * * *`).
    pub schedule: Option<Schedule>,
    /// Which snapshots are kept when old ones are pruned; absent: all of them.
    pub keep: Option<Keep>,
    /// Objects transferred at once.
    pub concurrency: BackupConcurrency,
    /// Seconds a job's lease lasts without renewal: how long a process that died mid-job keeps
    /// other jobs waiting.
    pub lease_seconds: LeaseSeconds,
}

/// Masks the targets' secrets (keys, tokens), as for storage.
impl std::fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |m: &Option<serde_json::Map<String, serde_json::Value>>| {
            m.as_ref()
                .map(|m| crate::redact_secrets(&serde_json::Value::Object(m.clone())))
        };
        f.debug_struct("BackupConfig")
            .field("enabled", &self.enabled)
            .field("aws", &redacted(&self.aws))
            .field("gcp", &redacted(&self.gcp))
            .field("target", &redacted(&self.target))
            .field("schedule", &self.schedule)
            .field("keep", &self.keep)
            .field("concurrency", &self.concurrency)
            .field("lease_seconds", &self.lease_seconds)
            .finish()
    }
}

/// `backup.schedule`, checked when the configuration loads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Schedule {
    /// Every so long, counted from the Unix epoch (UTC), so that every replica computes the
    /// same times: `24h` runs at midnight UTC.
    Every(std::time::Duration),
    /// A cron expression (5 fields, or 6 with seconds), evaluated in UTC.
    Cron(String),
}

/// The shortest interval a schedule may have.
pub const MIN_SCHEDULE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl TryFrom<String> for Schedule {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(every) = humantime::parse_duration(&s) {
            if every < MIN_SCHEDULE_INTERVAL {
                return Err(format!(
                    "{s:?} is shorter than the shortest interval, {}",
                    humantime::format_duration(MIN_SCHEDULE_INTERVAL)
                ));
            }
            return Ok(Self::Every(every));
        }
        match s.parse::<croner::Cron>() {
            Ok(_) => Ok(Self::Cron(s)),
            Err(e) => Err(format!(
                "{s:?} is neither an interval (24h, 90m) nor a cron expression (0 3 * * *): {e}"
            )),
        }
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        match s {
            Schedule::Every(every) => humantime::format_duration(every).to_string(),
            Schedule::Cron(expression) => expression,
        }
    }
}

/// `backup.keep`: the newest `last` snapshots, plus the newest of each of the `daily` most
/// recent days and the `weekly` most recent ISO weeks that have one (UTC), as restic's
/// `forget` keeps them. The newest snapshot is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "KeepCounts")]
pub struct Keep {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
}

/// The fields of [`Keep`] before they are checked.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct KeepCounts {
    last: u32,
    daily: u32,
    weekly: u32,
}

impl TryFrom<KeepCounts> for Keep {
    type Error = &'static str;

    fn try_from(k: KeepCounts) -> Result<Self, Self::Error> {
        if k.last == 0 && k.daily == 0 && k.weekly == 0 {
            return Err("keeps no snapshot: set last, daily or weekly above 0, or leave keep out");
        }
        Ok(Self {
            last: k.last,
            daily: k.daily,
            weekly: k.weekly,
        })
    }
}

/// `backup.concurrency`: 1 to 64, default 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct BackupConcurrency(usize);

impl BackupConcurrency {
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for BackupConcurrency {
    fn default() -> Self {
        Self(8)
    }
}

impl TryFrom<usize> for BackupConcurrency {
    type Error = String;

    fn try_from(n: usize) -> Result<Self, String> {
        if (1..=64).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("{n} is not between 1 and 64"))
        }
    }
}

impl From<BackupConcurrency> for usize {
    fn from(c: BackupConcurrency) -> usize {
        c.0
    }
}

/// `backup.leaseSeconds`: at least 5, default 60.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct LeaseSeconds(u64);

impl LeaseSeconds {
    pub fn get(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl Default for LeaseSeconds {
    fn default() -> Self {
        Self(60)
    }
}

impl TryFrom<u64> for LeaseSeconds {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, String> {
        if (5..=3600).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("{n} is not between 5 and 3600"))
        }
    }
}

impl From<LeaseSeconds> for u64 {
    fn from(l: LeaseSeconds) -> u64 {
        l.0
    }
}

/// `proxy`: the pull-through cache of upstream registries.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ProxyConfig {
    pub enabled: bool,
    pub cache: ProxyCacheConfig,
    pub registries: Vec<ProxyRegistryConfig>,
}

/// `proxy.cache`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ProxyCacheConfig {
    #[serde(rename = "maxSizeGB")]
    pub max_size_gb: f64,
    /// Seconds a cached tag is served without asking upstream (a HEAD) again.
    pub tag_ttl_seconds: u64,
    /// Blob downloads from upstreams running at once.
    pub max_concurrent_downloads: usize,
    /// `<registry>/<repository>` globs (e.g. `docker.io/library/*`) whose blobs are never evicted.
    pub pins: Vec<String>,
}

impl Default for ProxyCacheConfig {
    fn default() -> Self {
        Self {
            max_size_gb: 10.0,
            tag_ttl_seconds: 60,
            max_concurrent_downloads: 3,
            pins: Vec::new(),
        }
    }
}

/// One upstream registry of the proxy. `url` may be left out for the presets docker.io,
/// ghcr.io, gcr.io, quay.io, nvcr.io and registry.k8s.io.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyRegistryConfig {
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    /// Upstream plugin type (default `registry`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password or token; `passwordFile: PATH` reads it from a file.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact_opt"
    )]
    pub password: Option<Secret>,
}

fn redact_opt<S: serde::Serializer>(v: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("***"),
        None => s.serialize_none(),
    }
}

impl ProxyRegistryConfig {
    /// The configured URL, or the preset's.
    pub fn resolved_url(&self) -> Option<String> {
        self.url.clone().or_else(|| {
            let preset = match self.name.as_str() {
                "docker.io" => "https://registry-1.docker.io",
                "ghcr.io" => "https://ghcr.io",
                "gcr.io" => "https://gcr.io",
                "quay.io" => "https://quay.io",
                "nvcr.io" => "https://nvcr.io",
                "registry.k8s.io" => "https://registry.k8s.io",
                _ => return None,
            };
            Some(preset.to_owned())
        })
    }
}
