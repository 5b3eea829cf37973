//! The oci-storage server: wires configuration, plugins, the registry service and the HTTP
//! layers together. [`builtin_plugins`] is the one place built-in plugins are registered; a
//! custom binary adds its own factories to it and calls [`serve`].

pub mod api;
pub mod auth;
pub mod backup;
pub mod charts;
pub mod gc;
mod health;
mod http_server;
pub mod human;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod oci;
pub mod progress;
pub mod proxy;
pub mod records;
pub mod registry;
pub mod schedule;
pub mod scrub;
pub mod state;
mod tls;
mod token_endpoint;
pub mod ui;
pub mod usage;
mod zero_copy;

#[cfg(test)]
mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use oci_storage_config::Loaded;
use oci_storage_core::{Authenticator, PluginContext, Plugins, Storage};
use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use poem::{EndpointExt, Route};

use auth::Access;
use auth::limiter::LoginLimiter;
use auth::password::StoredPassword;
use auth::policy::Policy;
use auth::token::TokenService;
use auth::users::{ConfigUser, ConfigUsers};
use registry::{Registry, Settings};
use state::AppState;

/// The plugins compiled into this binary, by config `type`.
pub fn builtin_plugins() -> Plugins {
    let mut plugins = Plugins::default();
    plugins.register_storage("fs", oci_storage_storage_fs::factory);
    plugins.register_storage("s3", oci_storage_storage_s3::factory);
    plugins.register_storage("gcs", oci_storage_storage_gcs::factory);
    plugins.register_backup_target("fs", oci_storage_storage_fs::backup_factory);
    plugins.register_backup_target("s3", oci_storage_storage_s3::backup_factory);
    plugins.register_backup_target("gcs", oci_storage_storage_gcs::backup_factory);
    plugins.register_authenticator("htpasswd", oci_storage_auth_htpasswd::factory);
    plugins.register_upstream("registry", oci_storage_upstream_registry::factory);
    plugins
}

/// Builds the storage plugin that the configuration selects.
pub async fn build_storage(plugins: &Plugins, loaded: &Loaded) -> anyhow::Result<Arc<dyn Storage>> {
    let storage_config = &loaded.config.storage;
    let ctx = PluginContext::new(
        loaded.base_dir.clone(),
        format!("storage.{}", storage_config.kind),
    );
    for other in storage_config.settings.keys() {
        if *other != storage_config.kind {
            tracing::warn!(section = %format!("storage.{other}"), "ignored: storage.type is {}", storage_config.kind);
        }
    }
    let storage = plugins
        .build_storage(
            &storage_config.kind,
            ctx,
            storage_config.selected_settings(),
        )
        .await
        .context("building the storage backend")?;
    Ok(metrics::MeteredStorage::wrap(storage, &storage_config.kind))
}

/// The identity sources, in the order they are asked: configured users (or the generated
/// initial admin when no source is configured at all), then `auth.providers`.
async fn build_authenticators(
    plugins: &Plugins,
    loaded: &Loaded,
    storage: &dyn Storage,
) -> anyhow::Result<Vec<Arc<dyn Authenticator>>> {
    let auth = &loaded.config.auth;
    let mut users: Vec<(String, ConfigUser)> = auth
        .users
        .iter()
        .map(|u| {
            let user = ConfigUser {
                password: StoredPassword::from_config(&u.password),
                groups: u.groups.clone(),
            };
            (u.username.clone(), user)
        })
        .collect();
    if users.is_empty() && auth.providers.is_empty() {
        let (name, password) = auth::initial_admin::ensure(storage)
            .await
            .context("creating the initial admin user")?;
        let admin = ConfigUser {
            password,
            groups: Vec::new(),
        };
        users.push((name, admin));
    }
    let mut sources: Vec<Arc<dyn Authenticator>> = Vec::new();
    if !users.is_empty() {
        let users = tokio::task::spawn_blocking(move || ConfigUsers::new(users)).await?;
        for name in users.plaintext_users() {
            tracing::warn!(
                user = name,
                "password is configured in plaintext; store a hash from `oci-storage hash-password` instead"
            );
        }
        sources.push(Arc::new(users));
    }
    let ctx = PluginContext::new(loaded.base_dir.clone(), "auth.providers");
    for provider in &auth.providers {
        let settings = serde_json::Value::Object(provider.settings.clone());
        let source = plugins
            .build_authenticator(&provider.kind, ctx.clone(), settings)
            .await
            .with_context(|| format!("building the {} identity provider", provider.kind))?;
        sources.push(source);
    }
    Ok(sources)
}

/// The pull-through proxy over the configured upstreams, when `proxy.enabled`.
async fn build_proxy(
    plugins: &Plugins,
    loaded: &Loaded,
    registry: &Registry,
) -> anyhow::Result<Option<Arc<proxy::Proxy>>> {
    let config = &loaded.config.proxy;
    if !config.enabled {
        return Ok(None);
    }
    let ctx = PluginContext::new(loaded.base_dir.clone(), "proxy.registries");
    let mut upstreams = std::collections::BTreeMap::new();
    for upstream in &config.registries {
        let url = upstream
            .resolved_url()
            .with_context(|| format!("proxy registry {} needs a url", upstream.name))?;
        let settings = serde_json::json!({
            "name": upstream.name,
            "url": url,
            "username": upstream.username,
            "password": upstream.password.as_ref().map(|p| p.expose().to_owned()),
        });
        let kind = upstream.kind.as_deref().unwrap_or("registry");
        let built = plugins
            .build_upstream(kind, ctx.clone(), settings)
            .await
            .with_context(|| format!("building the upstream {}", upstream.name))?;
        tracing::info!(upstream = %upstream.name, url = %url, "proxying");
        upstreams.insert(upstream.name.clone(), built);
    }
    let pins = config
        .cache
        .pins
        .iter()
        .map(|p| glob::Pattern::new(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("invalid proxy.cache.pins pattern: {e}"))?;
    Ok(Some(Arc::new(proxy::Proxy::new(
        upstreams,
        registry.clone(),
        Duration::from_secs(config.cache.tag_ttl_seconds),
        config.cache.max_concurrent_downloads,
        (config.cache.max_size_gb * 1024.0 * 1024.0 * 1024.0) as u64,
        pins,
    ))))
}

/// The backup target the configuration selects, built (and so checked: errors name the key)
/// when backups are enabled. Which of `backup.aws`, `backup.gcp` and `backup.target` is set
/// picks the plugin; exactly one must be.
pub async fn build_backup_target(
    plugins: &Plugins,
    loaded: &Loaded,
) -> anyhow::Result<Option<Arc<dyn oci_storage_core::BackupTarget>>> {
    let backup = &loaded.config.backup;
    if !backup.enabled {
        return Ok(None);
    }
    let as_value =
        |m: &serde_json::Map<String, serde_json::Value>| serde_json::Value::Object(m.clone());
    let mut chosen = Vec::new();
    if let Some(aws) = &backup.aws {
        chosen.push(("s3".to_owned(), "backup.aws", as_value(aws)));
    }
    if let Some(gcp) = &backup.gcp {
        chosen.push(("gcs".to_owned(), "backup.gcp", as_value(gcp)));
    }
    if let Some(target) = &backup.target {
        let mut settings = target.clone();
        let kind = match settings.remove("type") {
            Some(serde_json::Value::String(kind)) => kind,
            _ => anyhow::bail!(
                "{}: backup.target.type is required (fs, s3, gcs…)",
                loaded.origin
            ),
        };
        chosen.push((kind, "backup.target", serde_json::Value::Object(settings)));
    }
    let (kind, section, settings) = match <[_; 1]>::try_from(chosen) {
        Ok([one]) => one,
        Err(chosen) if chosen.is_empty() => anyhow::bail!(
            "{}: backup.enabled is true but no target is set: set one of backup.aws, backup.gcp, backup.target",
            loaded.origin
        ),
        Err(chosen) => anyhow::bail!(
            "{}: set only one backup target, not {}",
            loaded.origin,
            chosen
                .iter()
                .map(|(_, section, _)| *section)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    let ctx = PluginContext::new(loaded.base_dir.clone(), section);
    let target = plugins
        .build_backup_target(&kind, ctx, settings)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.origin))?;
    Ok(Some(target))
}

/// The registry behaviour that `registry` in the configuration sets.
fn registry_settings(loaded: &Loaded) -> anyhow::Result<Settings> {
    let r = &loaded.config.registry;
    Ok(Settings {
        max_manifest_bytes: r.max_manifest_bytes,
        delete_enabled: r.delete_enabled,
        upload_expiry: Duration::from_secs(r.upload_expiry_minutes * 60),
        cache_ttl: Duration::from_millis((r.cache_seconds * 1000.0) as u64),
        immutable_tags: r
            .immutable_tags
            .iter()
            .map(|p| glob::Pattern::new(p))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("invalid registry.immutableTags pattern: {e}"))?,
    })
}

/// The backup service, when `backup.enabled`. Repositories that the proxy caches are left out
/// of snapshots: they are copies of upstreams, fetched again on demand.
async fn build_backup_service(
    plugins: &Plugins,
    loaded: &Loaded,
    registry: &Registry,
    charts: &Arc<charts::Charts>,
    proxy: Option<Arc<proxy::Proxy>>,
) -> anyhow::Result<Option<Arc<backup::BackupService>>> {
    let Some(target) = build_backup_target(plugins, loaded).await? else {
        return Ok(None);
    };
    let config = &loaded.config.backup;
    let skip: backup::SkipRepository = Arc::new(move |repo: &registry::RepoName| {
        proxy
            .as_ref()
            .is_some_and(|proxy| proxy.route(repo, None).is_some())
    });
    Ok(Some(Arc::new(backup::BackupService::new(
        registry.clone(),
        charts.clone(),
        target,
        backup::Settings {
            concurrency: config.concurrency.get(),
            lease_ttl: config.lease_seconds.get(),
            schedule: config.schedule.clone(),
            keep: config.keep,
        },
        skip,
    ))))
}

/// For the command line's `gc`: the registry alone, without the HTTP side.
pub async fn build_registry_only(plugins: &Plugins, loaded: &Loaded) -> anyhow::Result<Registry> {
    let storage = build_storage(plugins, loaded).await?;
    Ok(Registry::new(storage, registry_settings(loaded)?))
}

/// For the command line's backup and restore: the registry and the backup service, without
/// the HTTP side (no initial admin is created, no background work starts).
pub async fn build_backup_only(
    plugins: &Plugins,
    loaded: &Loaded,
) -> anyhow::Result<Arc<backup::BackupService>> {
    anyhow::ensure!(
        loaded.config.backup.enabled,
        "{}: backups are not enabled: set backup.enabled and one of backup.aws, backup.gcp, backup.target",
        loaded.origin
    );
    let storage = build_storage(plugins, loaded).await?;
    let registry = Registry::new(storage, registry_settings(loaded)?);
    let proxy = build_proxy(plugins, loaded, &registry).await?;
    let charts = Arc::new(charts::Charts::new(
        registry.clone(),
        loaded.config.helm.clone(),
    ));
    build_backup_service(plugins, loaded, &registry, &charts, proxy)
        .await?
        .ok_or_else(|| anyhow::anyhow!("backups are not enabled"))
}

/// Everything a running server needs, built from configuration.
pub async fn build_state(plugins: &Plugins, loaded: &Loaded) -> anyhow::Result<Arc<AppState>> {
    let storage = build_storage(plugins, loaded).await?;
    tracing::info!(storage = %storage.describe(), config = %loaded.origin, "starting");
    let authenticators = build_authenticators(plugins, loaded, storage.as_ref()).await?;
    let registry = Registry::new(storage, registry_settings(loaded)?);
    let auth = &loaded.config.auth;
    let policy = Policy::new(auth).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let tokens = if auth.token.enabled {
        Some(Arc::new(
            TokenService::load(auth.token.clone(), registry.storage().as_ref())
                .await
                .context("starting the token service")?,
        ))
    } else {
        None
    };
    let api_tokens = Arc::new(auth::api_tokens::ApiTokens::new(registry.storage().clone()));
    let access = Arc::new(Access::new(
        authenticators,
        api_tokens,
        tokens,
        policy,
        LoginLimiter::new(&auth.login_limits),
        auth::gate::HashGate::new(
            auth.login_limits.concurrent_checks.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
            }),
            auth.login_limits.queued_checks,
        ),
    ));
    let proxy = build_proxy(plugins, loaded, &registry).await?;
    let charts = Arc::new(charts::Charts::new(
        registry.clone(),
        loaded.config.helm.clone(),
    ));
    let backup = build_backup_service(plugins, loaded, &registry, &charts, proxy.clone()).await?;
    match &backup {
        Some(backup) => tracing::info!(
            target = %backup.target().describe(),
            schedule = %loaded.config.backup.schedule.clone().map(String::from).unwrap_or_else(|| "none".into()),
            next_run = %backup.next_run().map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
            "backup: enabled"
        ),
        None => tracing::info!("backup: not enabled"),
    }
    let sessions = ui::session::Sessions::new(registry.storage().clone());
    let gc = gc::service::GcService::new(registry.clone(), &loaded.config.gc, Some(charts.clone()));
    Ok(Arc::new(AppState {
        registry,
        access,
        charts,
        backup,
        proxy,
        sessions,
        ui: loaded.config.ui.clone(),
        metrics: loaded.config.metrics.clone(),
        gc,
        usage: Default::default(),
    }))
}

/// The HTTP application.
pub fn app(state: Arc<AppState>) -> impl poem::Endpoint {
    let mut routes = Route::new();
    // Elsewhere (`metrics.listen`) or off: `/metrics` is nothing special here.
    if state.metrics.enabled && state.metrics.listen.is_none() {
        routes = routes.at("/metrics", metrics::metrics);
    }
    routes
        .at("/v2", oci::v2)
        .at("/v2/*path", oci::v2)
        .nest_no_strip("/api", api::routes())
        .at("/auth/token", token_endpoint::token)
        .at("/healthz", health::healthz)
        .nest("/ui", ui::routes())
        // poem's catch-all also takes `/`, which is the web interface's home page.
        .at(
            "/*path",
            ui::RootOr::new(ui::home_endpoint(), charts::classic::classic),
        )
        .at("/readyz", health::readyz)
        .data(state)
        // A bug must cost one request an error answer, never the connection or the process.
        .with(poem::middleware::CatchPanic::new().with_handler(|_| {
            tracing::error!("request handler panicked");
            oci::response::error_response(&registry::RegistryError::new(
                registry::ErrorCode::Unknown,
                "internal error",
            ))
        }))
        .around(logging::access_log)
        .around(metrics::track_requests)
}

/// Discards expired upload sessions periodically.
fn spawn_upload_expiry(registry: Registry) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match registry.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "discarded abandoned upload sessions"),
                Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
            }
        }
    });
}

/// Moves catalog entries written by an earlier version into the current layout, in the
/// background, and again every ten minutes: during a rolling upgrade, replicas still on the
/// old version keep writing old entries until they are replaced.
fn spawn_catalog_migration(registry: Registry) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match registry.migrate_legacy_catalog().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(repositories = n, "moved catalog entries to the new layout")
                }
                Err(e) => tracing::warn!(error = %e, "catalog migration failed; retried later"),
            }
        }
    });
}

/// Runs the server until SIGTERM/SIGINT, then lets running requests finish within the
/// configured grace period.
pub async fn serve(plugins: Plugins, loaded: Loaded) -> anyhow::Result<()> {
    logging::init(&loaded.config.logging);
    let state = build_state(&plugins, &loaded).await?;
    spawn_upload_expiry(state.registry.clone());
    spawn_catalog_migration(state.registry.clone());
    if let Some(backup) = &state.backup {
        backup::schedule::spawn(backup.clone());
        let backup = backup.clone();
        tokio::spawn(async move { backup.report_latest_to_metrics().await });
    }
    if let (Some(schedule), Some(next)) = (state.gc.schedule(), state.gc.next_run()) {
        tracing::info!(schedule = %String::from(schedule.clone()), next_run = %next.to_rfc3339(), "gc: scheduled");
        gc::service::spawn_scheduled(state.gc.clone());
    }
    if let Some(schedule) = loaded.config.scrub.schedule.clone() {
        tracing::info!(schedule = %String::from(schedule.clone()), "scrub: scheduled");
        scrub::spawn_scheduled(state.registry.clone(), schedule);
    }
    if loaded.config.metrics.enabled {
        metrics::serve_separately(
            &loaded.config.metrics,
            loaded.config.server.tls.clone(),
            state.clone(),
        )
        .await?;
    }
    let server = &loaded.config.server;
    let addr = format!("{}:{}", server.host, server.port);
    let tls = server.tls.clone().map(tls::config_stream).transpose()?;
    let acceptor = zero_copy::Acceptor::new(
        TcpListener::bind(addr.clone())
            .into_acceptor()
            .await
            .with_context(|| format!("binding {addr}"))?,
        // TLS encrypts what hyper writes: the body never reaches the socket as it is.
        if tls.is_none() {
            server.sendfile
        } else {
            oci_storage_config::Sendfile::Never
        },
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    let local: Vec<String> = acceptor
        .local_addr()
        .iter()
        .filter_map(|a| a.as_socket_addr().map(SocketAddr::to_string))
        .collect();
    tracing::info!(address = %local.join(","), scheme, "listening on {}", local.join(","));
    let grace = Duration::from_secs(server.shutdown_grace_seconds);
    // Not boxed (poem's `.boxed()` connections do not write vectored; see http_server).
    match tls {
        Some(configs) => {
            let acceptor = tls::ConfigFirst::new(acceptor).rustls(configs);
            http_server::run(acceptor, app(state), shutdown_signal(), grace).await
        }
        None => http_server::run(acceptor, app(state), shutdown_signal(), grace).await,
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new connections; running transfers may finish");
}
