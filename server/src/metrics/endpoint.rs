//! `GET /metrics`: reads the figures that come from the registry's state, then answers every
//! metric in the Prometheus text format, to whom `metrics.access` allows; on the service port,
//! or on an address of its own (`metrics.listen`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_storage_config::{MetricsAccess, MetricsConfig};
use poem::http::{StatusCode, header};
use poem::listener::{AcceptorExt, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};

use crate::auth::{CHALLENGE, Caller, Denial};
use crate::state::AppState;

/// How long a scrape waits for figures that need the storage (a first usage walk, the upload
/// sessions' listing); past that it answers with the figures it had.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Upload sessions counted at most (a listing of the storage's `uploads/`).
const UPLOADS_COUNTED: usize = 10_000;

#[handler]
pub async fn metrics(req: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    if state.metrics.access == MetricsAccess::Admins
        && let Err(refused) = admit_admin(state, req).await
    {
        return refused;
    }
    if tokio::time::timeout(GATHER_TIMEOUT, gather(state))
        .await
        .is_err()
    {
        tracing::debug!("metrics: the storage figures took too long; answering the last ones");
    }
    Response::builder()
        .content_type(prometheus::TEXT_FORMAT)
        .body(super::get().encode())
}

/// Only an administrator with a password or a bearer token of the token service.
async fn admit_admin(state: &AppState, req: &Request) -> Result<(), Response> {
    let caller = state.access.identify_request(req).await;
    let identity = match &caller {
        Ok(Caller::User(p)) if p.api_token.is_none() => Some(&p.identity),
        Ok(Caller::Token { identity, .. }) => identity.as_ref(),
        _ => None,
    };
    if identity.is_some_and(|who| state.access.policy().is_admin(who)) {
        return Ok(());
    }
    let (status, text) = match caller {
        Ok(Caller::Anonymous) | Err(Denial::Unauthenticated) => {
            (StatusCode::UNAUTHORIZED, "log in as an administrator")
        }
        Err(Denial::TooManyRequests(_)) => (StatusCode::TOO_MANY_REQUESTS, "too many attempts"),
        Err(Denial::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "authentication unavailable",
        ),
        _ => (
            StatusCode::FORBIDDEN,
            "only administrators may read metrics",
        ),
    };
    let mut resp = Response::builder().status(status).body(text);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(CHALLENGE),
        );
    }
    Err(resp)
}

/// Sets the gauges that come from the registry's state.
async fn gather(state: &AppState) {
    let gauges = &super::get().gauges;
    if let Some(proxy) = &state.proxy {
        sync_proxy_counters(proxy);
        gauges.proxy_cache_bytes.set(proxy.cached_bytes() as i64);
        gauges
            .proxy_cache_max_bytes
            .set(proxy.max_cache_bytes() as i64);
    }
    if let Some(sessions) = upload_sessions(state).await {
        gauges.uploads_in_progress.set(sessions as i64);
    }
    let usage = state.usage.snapshot(&state.registry).await;
    gauges.repositories.set(usage.repositories.len() as i64);
    gauges
        .storage_bytes
        .set(usage.total(usage.repositories.keys().map(String::as_str)) as i64);
}

/// Brings `registry_proxy_*_total` up to the proxy's own counters (which the web interface
/// shows per upstream): each grows by what they grew since the last scrape.
fn sync_proxy_counters(proxy: &crate::proxy::Proxy) {
    use crate::proxy::Stats;
    static SEEN: Mutex<[u64; 7]> = Mutex::new([0; 7]);
    let mut now = [0u64; 7];
    for (_, s, _) in proxy.stats() {
        let blob_hits = Stats::get(&s.blob_hits);
        let blob_misses = Stats::get(&s.blob_misses);
        let manifest_hits = Stats::get(&s.manifest_hits);
        let manifest_misses = Stats::get(&s.manifest_misses);
        let from_upstream = Stats::get(&s.bytes_from_upstream);
        let from_cache = Stats::get(&s.bytes_from_cache);
        for (slot, value) in now.iter_mut().zip([
            blob_hits,
            blob_misses,
            manifest_hits,
            manifest_misses,
            from_upstream,
            from_cache + from_upstream,
            Stats::get(&s.upstream_errors),
        ]) {
            *slot += value;
        }
    }
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let grew: Vec<u64> = now
        .iter()
        .zip(seen.iter())
        .map(|(n, s)| n.saturating_sub(*s))
        .collect();
    *seen = now;
    drop(seen);
    let p = &super::get().proxy;
    let blob = ["blob"];
    let manifest = ["manifest"];
    p.hits.with_label_values(&blob).inc_by(grew[0]);
    p.misses.with_label_values(&blob).inc_by(grew[1]);
    p.requests
        .with_label_values(&blob)
        .inc_by(grew[0] + grew[1]);
    p.hits.with_label_values(&manifest).inc_by(grew[2]);
    p.misses.with_label_values(&manifest).inc_by(grew[3]);
    p.requests
        .with_label_values(&manifest)
        .inc_by(grew[2] + grew[3]);
    p.pulled_bytes.with_label_values(&blob).inc_by(grew[4]);
    p.pushed_bytes.with_label_values(&blob).inc_by(grew[5]);
    p.upstream_errors.inc_by(grew[6]);
}

/// The number of upload sessions in the storage (one listing per scrape, bounded).
async fn upload_sessions(state: &AppState) -> Option<usize> {
    match state.registry.count_upload_sessions(UPLOADS_COUNTED).await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::debug!(error = %e, "metrics: counting upload sessions failed");
            None
        }
    }
}

/// With `metrics.listen`: serves `/metrics` alone on that address, in the background, with
/// the service's TLS certificate when it has one (an administrator's credentials must not
/// cross the network in the clear). Answers once it listens, so that a taken port fails the
/// start.
pub async fn serve_separately(
    config: &MetricsConfig,
    tls: Option<oci_storage_config::TlsConfig>,
    state: Arc<AppState>,
) -> anyhow::Result<()> {
    let Some(address) = config.listen else {
        return Ok(());
    };
    let acceptor = TcpListener::bind(address.0.to_string())
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("binding metrics.listen {}: {e}", address.0))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let acceptor = match tls.map(crate::tls::config_stream).transpose()? {
        Some(configs) => crate::tls::ConfigFirst::new(acceptor)
            .rustls(configs)
            .boxed(),
        None => acceptor.boxed(),
    };
    tracing::info!(address = %address.0, "metrics: served at {scheme}://{}/metrics", address.0);
    let app = Route::new()
        .at("/metrics", metrics)
        .data(state)
        .around(super::track_requests);
    tokio::spawn(async move {
        if let Err(e) = poem::Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %e, "metrics: the listener stopped");
        }
    });
    Ok(())
}
