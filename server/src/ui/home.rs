//! The home page (`/`): the charts and images the caller may pull, searched, filtered, sorted
//! and paged, with counts, the storage they take and a plot of the largest. Search as you type
//! asks for the same page with `partial=1` and swaps in the result list.

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::plot::{Plot, top_bars};
use super::{caller, chart, html, human_size, image, is_admin, session};
use crate::api::repositories::{RepositoryKind, SearchFilters, SearchHit, search_repositories};
use crate::auth::Caller;
use crate::state::AppState;
use crate::usage::UsageSnapshot;

/// Rows per page.
const PER_PAGE: usize = 50;

/// Repositories drawn in the plot.
const PLOTTED: usize = 10;

/// Most keywords offered as suggestions.
const KEYWORD_SUGGESTIONS: usize = 200;

/// One row of the repository list.
#[derive(Debug)]
struct Row {
    repository: String,
    /// The chart or image page.
    link: String,
    kind: &'static str,
    version: String,
    description: String,
    deprecated: bool,
    size: Option<u64>,
    /// RFC 3339 (for `<time datetime>`) and for people.
    pushed: Option<(String, String)>,
}

impl Row {
    fn size_text(&self) -> String {
        self.size.map(human_size).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    user: Option<String>,
    csrf: String,
    /// Administrators see the proxy and backup pages.
    admin: bool,
    query: HomeQuery,
    /// Keywords of the charts the caller may see, for the keyword field's suggestions.
    keywords: Vec<String>,
    results: ResultsView,
}

#[derive(Template)]
#[template(path = "results.html")]
struct Results {
    user: Option<String>,
    results: ResultsView,
}

/// One page of the list, with its counts, its storage and neighbours.
#[derive(Debug, Default)]
struct ResultsView {
    hits: Vec<Row>,
    total: usize,
    charts: usize,
    images: usize,
    /// Bytes of every listed repository together, shared layers once.
    stored: String,
    /// The largest listed repositories.
    plot: Plot,
    page: usize,
    pages: usize,
    /// Links to the previous and next pages (empty when there is none).
    prev: String,
    next: String,
}

/// The order of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Name,
    /// Newest push first.
    Pushed,
    /// Largest first.
    Size,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct HomeQuery {
    q: Option<String>,
    kind: Option<String>,
    keyword: Option<String>,
    /// Only repositories under this prefix.
    prefix: Option<String>,
    /// `hide` or `only` deprecated charts (anything else: show them).
    deprecated: Option<String>,
    /// `pushed` or `size` (anything else: by name).
    sort: Option<String>,
    page: Option<usize>,
    /// Set by the search-as-you-type script: answer the result list only.
    partial: Option<String>,
}

impl HomeQuery {
    /// A parameter as the form shows it.
    fn value(&self, name: &str) -> &str {
        let value = match name {
            "q" => &self.q,
            "kind" => &self.kind,
            "keyword" => &self.keyword,
            "prefix" => &self.prefix,
            "deprecated" => &self.deprecated,
            "sort" => &self.sort,
            _ => &None,
        };
        value.as_deref().unwrap_or_default()
    }

    fn sort(&self) -> Sort {
        match self.sort.as_deref() {
            Some("pushed") => Sort::Pushed,
            Some("size") => Sort::Size,
            _ => Sort::Name,
        }
    }

    /// `/` with these filters on another page.
    fn page_link(&self, page: usize) -> String {
        let mut params: Vec<(&str, &str)> =
            ["q", "kind", "keyword", "prefix", "deprecated", "sort"]
                .into_iter()
                .map(|name| (name, self.value(name)))
                .filter(|(_, value)| !value.is_empty())
                .collect();
        let page = page.to_string();
        params.push(("page", &page));
        format!(
            "/?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    }

    fn filters(&self) -> SearchFilters {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        SearchFilters {
            text: given(&self.q),
            kind: match self.kind.as_deref() {
                Some("chart") => Some(RepositoryKind::Chart),
                Some("image") => Some(RepositoryKind::Image),
                _ => None,
            },
            prefix: given(&self.prefix),
            keyword: given(&self.keyword),
        }
    }
}

fn kind_name(kind: RepositoryKind) -> &'static str {
    match kind {
        RepositoryKind::Chart => "chart",
        RepositoryKind::Image => "image",
        RepositoryKind::Artifact => "artifact",
        RepositoryKind::Empty => "empty",
    }
}

fn row(hit: SearchHit, usage: &UsageSnapshot) -> Row {
    let measured = usage.repositories.get(&hit.repository);
    Row {
        link: match hit.kind {
            RepositoryKind::Chart => chart::link(&hit.repository, None),
            _ => image::link(&hit.repository, None),
        },
        kind: kind_name(hit.kind),
        version: hit.version.unwrap_or_default(),
        description: hit.description.unwrap_or_default(),
        deprecated: hit.deprecated,
        size: measured.map(|m| m.size),
        pushed: measured.and_then(|m| m.last_push).map(|t| {
            let iso = humantime::format_rfc3339_seconds(t).to_string();
            let shown = iso.replacen('T', " ", 1).replace('Z', " UTC");
            (iso, shown)
        }),
        repository: hit.repository,
    }
}

fn sort_rows(rows: &mut [Row], sort: Sort) {
    match sort {
        // Search answers in name order already.
        Sort::Name => {}
        // Unmeasured (just pushed) repositories last; ties by name (the sort is stable).
        Sort::Pushed => rows.sort_by(|a, b| {
            b.pushed
                .as_ref()
                .map(|p| &p.0)
                .cmp(&a.pushed.as_ref().map(|p| &p.0))
        }),
        Sort::Size => rows.sort_by_key(|r| std::cmp::Reverse(r.size)),
    }
}

/// Keywords of every chart version the caller may pull, lower-cased, in order.
async fn visible_keywords(state: &AppState, caller: &Caller) -> Vec<String> {
    let (_, entries) = state.charts.entries().await;
    let keywords: BTreeSet<String> = entries
        .iter()
        .filter(|e| state.access.may_pull(caller, &e.repository))
        .flat_map(|e| e.metadata.keywords.iter().map(|k| k.to_lowercase()))
        .collect();
    keywords.into_iter().take(KEYWORD_SUGGESTIONS).collect()
}

#[handler]
pub(super) async fn home(
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<HomeQuery>,
) -> Response {
    let claims = session(state, jar).await;
    let caller = caller(state, claims.as_ref());
    let usage = state.usage.snapshot(&state.registry).await;
    let hits = match search_repositories(state, &caller, &query.filters(), Some(&usage)).await {
        Ok(hits) => hits,
        Err(e) => {
            tracing::error!(error = %e.message, "listing repositories for the web interface");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut rows: Vec<Row> = hits
        .into_iter()
        .filter(|h| match query.deprecated.as_deref() {
            Some("hide") => !h.deprecated,
            Some("only") => h.deprecated,
            _ => true,
        })
        .map(|h| row(h, &usage))
        .collect();
    sort_rows(&mut rows, query.sort());

    let total = rows.len();
    let charts = rows.iter().filter(|r| r.kind == "chart").count();
    let stored = usage.total(rows.iter().map(|r| r.repository.as_str()));
    let sizes: Vec<(&str, u64)> = rows
        .iter()
        .filter_map(|r| Some((r.repository.as_str(), r.size?)))
        .collect();
    let plot = top_bars(&sizes, PLOTTED);
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let results = ResultsView {
        charts,
        images: total - charts,
        total,
        stored: human_size(stored),
        plot,
        page,
        pages,
        prev: if page > 1 {
            query.page_link(page - 1)
        } else {
            String::new()
        },
        next: if page < pages {
            query.page_link(page + 1)
        } else {
            String::new()
        },
        hits: rows
            .into_iter()
            .skip((page - 1) * PER_PAGE)
            .take(PER_PAGE)
            .collect(),
    };
    let user = claims.as_ref().map(|c| c.sub.clone());
    if query.partial.is_some() {
        return html(Results { user, results });
    }
    html(HomePage {
        user,
        admin: is_admin(state, claims.as_ref()),
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        keywords: visible_keywords(state, &caller).await,
        query,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, size: Option<u64>, pushed: Option<&str>) -> Row {
        Row {
            repository: name.to_owned(),
            link: String::new(),
            kind: "image",
            version: String::new(),
            description: String::new(),
            deprecated: false,
            size,
            pushed: pushed.map(|p| (p.to_owned(), p.to_owned())),
        }
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.repository.as_str()).collect()
    }

    #[test]
    fn sorts_by_size_and_push_with_unmeasured_last() {
        let mut rows = vec![
            row("a", Some(10), Some("2026-01-02T00:00:00Z")),
            row("b", None, None),
            row("c", Some(30), Some("2026-01-01T00:00:00Z")),
            row("d", Some(10), Some("2026-01-03T00:00:00Z")),
        ];
        sort_rows(&mut rows, Sort::Size);
        assert_eq!(names(&rows), ["c", "a", "d", "b"]);
        sort_rows(&mut rows, Sort::Pushed);
        assert_eq!(names(&rows), ["d", "a", "c", "b"]);
    }

    #[test]
    fn page_links_keep_the_filters() {
        let query = HomeQuery {
            q: Some("a b".into()),
            keyword: Some("db".into()),
            sort: Some("size".into()),
            kind: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(query.page_link(2), "/?q=a+b&keyword=db&sort=size&page=2");
    }
}
