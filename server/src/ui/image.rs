//! The image page: tags, platforms of an index, layers and history from the config,
//! referrers, and copyable pull commands.

use std::sync::Arc;

use super::form::PostedForm;
use askama::Template;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::{caller, html, human_size};
use crate::api::repositories::{copy_tag, manifest_detail, tag_details};
use crate::auth::Action;
use crate::registry::{Reference, RepoName, Tag};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(super) struct ImageQuery {
    repository: String,
    tag: Option<String>,
}

/// `/ui/image?repository=…&tag=…`
pub(super) fn link(repository: &str, tag: Option<&str>) -> String {
    match tag {
        Some(value) => super::page_link("/ui/image", &[("repository", repository), ("tag", value)]),
        None => super::page_link("/ui/image", &[("repository", repository)]),
    }
}

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    user: Option<String>,
    csrf: String,
    /// Administrators see the proxy and backup pages.
    admin: bool,
    repository: String,
    tag: String,
    digest: String,
    media_type: String,
    size: String,
    created: String,
    os_arch: String,
    /// (platform, digest, size)
    platforms: Vec<(String, String, String)>,
    /// (digest, media type, size)
    layers: Vec<(String, String, String)>,
    history: Vec<String>,
    /// (artifact type, digest)
    referrers: Vec<(String, String)>,
    tags: Vec<TagRow>,
    /// Tags beyond those detailed.
    more_tags: usize,
    docker_pull: String,
    skopeo_copy: String,
    can_push: bool,
    can_delete: bool,
    notice: String,
}

/// One tag in the tags table.
#[derive(Debug)]
struct TagRow {
    name: String,
    link: String,
    digest: String,
    /// The first 12 hex digits, as `docker images` shows them.
    short_digest: String,
    size: String,
    created: String,
}

/// Most tags detailed on the page (each costs a manifest and a config read).
const DETAILED_TAGS: usize = 100;

fn not_found() -> Response {
    super::not_found("image")
}

async fn tag_rows(state: &AppState, repo: &RepoName, tags: &[Tag]) -> Vec<TagRow> {
    let tags = &tags[..tags.len().min(DETAILED_TAGS)];
    tag_details(state, repo, tags)
        .await
        .into_iter()
        .map(|t| TagRow {
            link: link(repo.as_str(), Some(&t.tag)),
            short_digest: t
                .digest
                .split_once(':')
                .map_or(t.digest.as_str(), |(_, hex)| hex)
                .chars()
                .take(12)
                .collect(),
            digest: t.digest,
            size: human_size(t.size),
            created: t.created.unwrap_or_default(),
            name: t.tag,
        })
        .collect()
}

#[handler]
pub(super) async fn image_page(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    Query(query): Query<ImageQuery>,
) -> Response {
    let claims = super::session(state, jar).await;
    let caller = caller(state, claims.as_ref());
    let Some(repo) = RepoName::parse(&query.repository) else {
        return not_found();
    };
    if !state.access.may_pull(&caller, repo.as_str()) {
        return not_found();
    }
    let listing = match state.registry.tag_listing(&repo).await {
        Ok(listing) => listing,
        Err(_) => return not_found(),
    };
    // `latest` if there is one, else the tag pushed last.
    let Some(tag) = query.tag.clone().or_else(|| {
        listing
            .tags
            .iter()
            .find(|t| t.as_str() == "latest")
            .or(listing.newest.as_ref())
            .map(|t| t.to_string())
    }) else {
        return not_found();
    };
    let Ok(reference) = tag.parse::<Reference>() else {
        return not_found();
    };
    let detail = match manifest_detail(state, &repo, &reference).await {
        Ok(detail) => detail,
        Err(_) => return not_found(),
    };
    let referrers = match detail.digest.parse() {
        Ok(digest) => state
            .registry
            .referrers(&repo, &digest, None)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                (
                    r.artifact_type.unwrap_or_else(|| r.media_type.clone()),
                    r.digest,
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let config = detail.config.clone().unwrap_or_default();
    let host = super::request_host(req);
    let tls_flag = if super::secure(req) {
        ""
    } else {
        " --src-tls-verify=false"
    };
    let can_push = super::may_change(state, &caller, &repo, Action::Push);
    // Opened by digest (from a platform or a referrer): there is no tag to delete.
    let by_digest = matches!(reference, Reference::Digest(_));
    let can_delete = !by_digest
        && state.registry.settings().delete_enabled
        && super::may_change(state, &caller, &repo, Action::Delete);
    let (pull_ref, layout_ref) = if by_digest {
        (format!("@{tag}"), String::new())
    } else {
        (format!(":{tag}"), format!(":{tag}"))
    };
    let page = ImagePage {
        can_push,
        can_delete,
        notice: super::take_notice(req, jar),
        user: claims.as_ref().map(|c| c.sub.clone()),
        admin: super::is_admin(state, claims.as_ref()),
        csrf: claims.map(|c| c.csrf).unwrap_or_default(),
        repository: repo.to_string(),
        digest: detail.digest.clone(),
        media_type: detail.media_type.clone(),
        size: human_size(detail.size),
        created: config["created"].as_str().unwrap_or_default().to_owned(),
        os_arch: match (config["os"].as_str(), config["architecture"].as_str()) {
            (Some(os), Some(arch)) => format!("{os}/{arch}"),
            _ => String::new(),
        },
        platforms: detail
            .platforms
            .iter()
            .map(|p| {
                let mut name = format!(
                    "{}/{}",
                    p.os.as_deref().unwrap_or("?"),
                    p.architecture.as_deref().unwrap_or("?")
                );
                if let Some(v) = &p.variant {
                    name = format!("{name}/{v}");
                }
                (name, p.digest.clone(), human_size(p.size))
            })
            .collect(),
        layers: detail
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.media_type.clone(), human_size(l.size)))
            .collect(),
        history: detail
            .history
            .iter()
            .filter_map(|h| h["created_by"].as_str().map(str::to_owned))
            .collect(),
        referrers,
        tags: tag_rows(state, &repo, &listing.tags).await,
        more_tags: listing.tags.len().saturating_sub(DETAILED_TAGS),
        docker_pull: format!("docker pull {host}/{repo}{pull_ref}"),
        skopeo_copy: format!(
            "skopeo copy{tls_flag} docker://{host}/{repo}{pull_ref} oci:{}{layout_ref}",
            repo.as_str().rsplit('/').next().unwrap_or("image")
        ),
        tag,
    };
    html(page)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct CopyForm {
    csrf: String,
    repository: String,
    source: String,
    target: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct DeleteTagForm {
    csrf: String,
    repository: String,
    tag: String,
}

/// Back to the image page, saying why an action was refused.
fn refused(req: &Request, jar: &CookieJar, repo: &str, tag: &str, why: &str) -> Response {
    super::see_other_with_notice(req, jar, &link(repo, Some(tag)), why)
}

/// Retag: points a new tag at the shown manifest.
#[handler]
pub(super) async fn tag_copy(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<CopyForm>,
) -> Response {
    let repo = match super::authorized_change(
        state,
        jar,
        &form.csrf,
        &form.repository,
        Action::Push,
        "image",
    )
    .await
    {
        Ok(repo) => repo,
        Err(response) => return response,
    };
    let Ok(source) = form.source.parse::<Reference>() else {
        return not_found();
    };
    let Some(target) = Tag::parse(form.target.trim()) else {
        return refused(
            req,
            jar,
            repo.as_str(),
            &form.source,
            "That is not a valid tag name.",
        );
    };
    let target_name = target.as_str().to_owned();
    match copy_tag(state, &repo, &source, target).await {
        Ok(()) => {
            state.usage.invalidate(repo.as_str());
            super::see_other(&link(repo.as_str(), Some(&target_name)))
        }
        Err(e) => refused(req, jar, repo.as_str(), &form.source, &e.message),
    }
}

/// Deletes a tag (the manifest stays reachable by digest).
#[handler]
pub(super) async fn tag_delete(
    req: &Request,
    Data(state): Data<&Arc<AppState>>,
    jar: &CookieJar,
    PostedForm(form): PostedForm<DeleteTagForm>,
) -> Response {
    let repo = match super::authorized_change(
        state,
        jar,
        &form.csrf,
        &form.repository,
        Action::Delete,
        "image",
    )
    .await
    {
        Ok(repo) => repo,
        Err(response) => return response,
    };
    let Some(tag) = Tag::parse(&form.tag) else {
        return not_found();
    };
    if let Err(e) = state
        .registry
        .delete_manifest(&repo, &Reference::Tag(tag.clone()))
        .await
    {
        return refused(req, jar, repo.as_str(), tag.as_str(), &e.message);
    }
    state.charts.tag_deleted(&repo, &tag).await;
    state.usage.invalidate(repo.as_str());
    let left = state
        .registry
        .list_tags(&repo, Some(1), None)
        .await
        .map(|page| !page.items.is_empty())
        .unwrap_or(false);
    if left {
        super::see_other(&link(repo.as_str(), None))
    } else {
        super::see_other("/")
    }
}
