//! The proxy cache page, for administrators (backups: `backups.rs`).

use std::sync::Arc;

use askama::Template;
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem::{Response, handler};

use super::{html, human_size, is_admin, session};
use crate::proxy::Stats;
use crate::state::AppState;

/// One upstream's figures, formatted.
struct UpstreamRow {
    name: String,
    manifests: String,
    blobs: String,
    from_cache: String,
    from_upstream: String,
    errors: u64,
    circuit_open: bool,
}

#[derive(Template)]
#[template(path = "proxy.html")]
struct ProxyPage {
    user: Option<String>,
    csrf: String,
    admin: bool,
    enabled: bool,
    used: String,
    limit: String,
    percent: u64,
    hit_ratio: String,
    upstreams: Vec<UpstreamRow>,
}

#[handler]
pub(super) async fn proxy_page(Data(state): Data<&Arc<AppState>>, jar: &CookieJar) -> Response {
    let claims = session(state, jar).await;
    if !is_admin(state, claims.as_ref()) {
        return super::admins_only();
    }
    let (mut hits, mut lookups) = (0u64, 0u64);
    let (enabled, used, max, upstreams) = match &state.proxy {
        None => (false, 0, 0, Vec::new()),
        Some(proxy) => {
            let rows = proxy
                .stats()
                .into_iter()
                .map(|(name, s, circuit_open)| {
                    let (mh, mm) = (Stats::get(&s.manifest_hits), Stats::get(&s.manifest_misses));
                    let (bh, bm) = (Stats::get(&s.blob_hits), Stats::get(&s.blob_misses));
                    hits += mh + bh;
                    lookups += mh + mm + bh + bm;
                    UpstreamRow {
                        name,
                        manifests: format!("{mh} / {mm}"),
                        blobs: format!("{bh} / {bm}"),
                        from_cache: human_size(Stats::get(&s.bytes_from_cache)),
                        from_upstream: human_size(Stats::get(&s.bytes_from_upstream)),
                        errors: Stats::get(&s.upstream_errors),
                        circuit_open,
                    }
                })
                .collect();
            (true, proxy.cached_bytes(), proxy.max_cache_bytes(), rows)
        }
    };
    html(ProxyPage {
        user: claims.as_ref().map(|c| c.sub.clone()),
        admin: true,
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        enabled,
        used: human_size(used),
        limit: human_size(max),
        percent: (used.saturating_mul(100))
            .checked_div(max)
            .unwrap_or(0)
            .min(100),
        hit_ratio: match lookups {
            0 => "no requests yet".to_owned(),
            n => format!("{:.0} %", hits as f64 * 100.0 / n as f64),
        },
        upstreams,
    })
}
