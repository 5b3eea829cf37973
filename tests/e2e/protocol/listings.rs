//! Tag listing (end-8a/b) and `_catalog`: lexical order, `n`/`last` pagination and the `Link`
//! header, nested repository names.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    EMPTY_DIGEST, OCI_MANIFEST, Reg, artifact_manifest, assert_error, header, json_body,
    maybe_header, text,
};

/// The target of a `Link: <…>; rel="next"` header, if any.
fn next_link(resp: &reqwest::blocking::Response) -> Option<String> {
    let link = maybe_header(resp, "link")?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let target = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(t, _)| t.to_owned())
        .unwrap_or_else(|| panic!("malformed Link {link:?}"));
    Some(target)
}

/// Follows `Link` headers from `first`; answers every page's list under `key` and the links.
fn walk(reg: &Reg, first: &str, key: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut pages = Vec::new();
    let mut links = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        assert!(pages.len() < 100, "pagination does not end");
        let resp = reg.get(&path);
        assert_eq!(resp.status(), 200, "{path}");
        next = next_link(&resp);
        links.extend(next.clone());
        let body = json_body(resp);
        let page: Vec<String> = serde_json::from_value(body[key].clone()).unwrap();
        pages.push(page);
    }
    (pages, links)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Pushes one manifest under all `tags` at once; answers its digest.
fn tag_all(reg: &Reg, repo: &str, tags: &[&str]) -> String {
    reg.push_blob(repo, b"{}");
    let bytes = artifact_manifest(Some("application/vnd.example.x"), None, None);
    let digest = oci_storage_tests::sha256(&bytes);
    let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    let resp = reg
        .req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{digest}?{}", query.join("&")),
        )
        .header("content-type", OCI_MANIFEST)
        .body(bytes)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text(resp));
    digest
}

const TAGS: &[&str] = &[
    "v1.10",
    "v1.9",
    "latest",
    "A",
    "_underscore",
    "1.0",
    "a-b",
    "a.b",
    "a_b",
    "z",
    "Z",
    "10",
    "9",
];

fn sorted_tags() -> Vec<String> {
    let mut all = strings(TAGS);
    all.sort();
    all
}

#[test]
fn tags_in_lexical_order() {
    let reg = Reg::start();
    tag_all(&reg, "lex/repo", TAGS);
    let expected = sorted_tags();
    assert_eq!(
        expected,
        strings(&[
            "1.0",
            "10",
            "9",
            "A",
            "Z",
            "_underscore",
            "a-b",
            "a.b",
            "a_b",
            "latest",
            "v1.10",
            "v1.9",
            "z"
        ])
    );
    let resp = reg.get("/v2/lex/repo/tags/list");
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-type").starts_with("application/json"));
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(
        json_body(resp),
        json!({ "name": "lex/repo", "tags": expected })
    );

    // A nested repository's tags are its own.
    tag_all(&reg, "lex/repo/nested", &["only-here"]);
    tag_all(&reg, "lex", &["parent"]);
    assert_eq!(
        json_body(reg.get("/v2/lex/repo/nested/tags/list"))["tags"],
        json!(["only-here"])
    );
    assert_eq!(
        json_body(reg.get("/v2/lex/tags/list"))["tags"],
        json!(["parent"])
    );
    assert_eq!(
        json_body(reg.get("/v2/lex/repo/tags/list"))["tags"],
        json!(expected)
    );
}

#[test]
fn tags_pagination() {
    let reg = Reg::start();
    tag_all(&reg, "paged/nested/repo", TAGS);
    let expected = sorted_tags();

    for n in [1, 2, 3, 5, 12] {
        let (pages, links) = walk(
            &reg,
            &format!("/v2/paged/nested/repo/tags/list?n={n}"),
            "tags",
        );
        let all: Vec<String> = pages.concat();
        assert_eq!(all, expected, "n={n}");
        let count = expected.len().div_ceil(n);
        assert_eq!(pages.len(), count, "n={n}: {pages:?}");
        for page in &pages[..count - 1] {
            assert_eq!(page.len(), n);
        }
        assert_eq!(
            links.len(),
            count - 1,
            "n={n}: a Link on every page but the last"
        );
        // Each link names n and the last tag of its page.
        for (i, link) in links.iter().enumerate() {
            let last_of_page = pages[i].last().unwrap();
            assert_eq!(
                link,
                &format!("/v2/paged/nested/repo/tags/list?n={n}&last={last_of_page}")
            );
        }
    }

    // n equal to the number of tags: one page, no Link.
    let resp = reg.get(&format!(
        "/v2/paged/nested/repo/tags/list?n={}",
        expected.len()
    ));
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(json_body(resp)["tags"], json!(expected));
    // More than there are, up to the largest number.
    for n in ["1000", "18446744073709551615"] {
        let resp = reg.get(&format!("/v2/paged/nested/repo/tags/list?n={n}"));
        assert_eq!(resp.status(), 200, "n={n}");
        assert!(maybe_header(&resp, "link").is_none());
        assert_eq!(json_body(resp)["tags"], json!(expected), "n={n}");
    }

    // `last` alone.
    let resp = reg.get("/v2/paged/nested/repo/tags/list?last=latest");
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(json_body(resp)["tags"], json!(["v1.10", "v1.9", "z"]));
    // `last` need not be a tag.
    let resp = reg.get("/v2/paged/nested/repo/tags/list?n=2&last=b");
    assert_eq!(json_body(resp)["tags"], json!(["latest", "v1.10"]));
    // `last` after every tag.
    let resp = reg.get("/v2/paged/nested/repo/tags/list?n=2&last=zzz");
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(json_body(resp)["tags"], json!([]));

    // n=0: an empty list.
    let resp = reg.get("/v2/paged/nested/repo/tags/list?n=0");
    assert_eq!(resp.status(), 200);
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(
        json_body(resp),
        json!({ "name": "paged/nested/repo", "tags": [] })
    );

    for bad in ["abc", "-1", "1.5"] {
        let resp = reg.get(&format!("/v2/paged/nested/repo/tags/list?n={bad}"));
        assert_eq!(resp.status(), 400, "n={bad}: {}", text(resp));
    }
}

#[test]
fn tags_of_unknown_repository() {
    let reg = Reg::start();
    tag_all(&reg, "exists", &["v1"]);
    for path in [
        "/v2/does/not/exist/tags/list",
        "/v2/does/not/exist/tags/list?n=0",
        "/v2/does/not/exist/tags/list?n=10",
        "/v2/exists/child/tags/list",
    ] {
        assert_error(reg.get(path), 404, "NAME_UNKNOWN");
    }
    assert_eq!(reg.get("/v2/exists/tags/list").status(), 200);
}

const REPOS: &[&str] = &[
    "a",
    "a-b",
    "a.b",
    "a/b",
    "a/b/c/d/e/f/g",
    "a0",
    "a__b",
    "ab",
    "deep/one/two/three/four/five/six/seven/eight",
    "z/y/x",
    "0numeric",
];

fn push_repos(reg: &Reg) -> Vec<String> {
    for repo in REPOS {
        assert_eq!(reg.push_blob(repo, b"{}"), EMPTY_DIGEST);
        reg.push_manifest(
            repo,
            "v1",
            OCI_MANIFEST,
            &artifact_manifest(None, None, None),
        );
    }
    let mut all = strings(REPOS);
    all.sort();
    all
}

#[test]
fn catalog_lists_every_repository_in_order() {
    let reg = Reg::start();
    let resp = reg.get("/v2/_catalog");
    assert_eq!(resp.status(), 200);
    assert_eq!(json_body(resp), json!({ "repositories": [] }));

    let expected = push_repos(&reg);
    let resp = reg.get("/v2/_catalog");
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-type").starts_with("application/json"));
    assert!(maybe_header(&resp, "link").is_none());
    let body: Value = json_body(resp);
    assert_eq!(body, json!({ "repositories": expected }));
    // Each name is exactly a repository: its tags can be listed.
    for name in &expected {
        assert_eq!(
            json_body(reg.get(&format!("/v2/{name}/tags/list")))["tags"],
            json!(["v1"]),
            "{name}"
        );
    }
}

#[test]
fn catalog_pagination() {
    let reg = Reg::start();
    let expected = push_repos(&reg);
    for n in [1, 2, 4, 11] {
        let (pages, links) = walk(&reg, &format!("/v2/_catalog?n={n}"), "repositories");
        assert_eq!(pages.concat(), expected, "n={n}");
        let count = expected.len().div_ceil(n);
        assert_eq!(pages.len(), count, "n={n}: {pages:?}");
        assert_eq!(links.len(), count - 1);
        for link in &links {
            assert!(
                link.starts_with(&format!("/v2/_catalog?n={n}&last=")),
                "{link}"
            );
        }
    }
    let resp = reg.get("/v2/_catalog?n=18446744073709551615");
    assert_eq!(resp.status(), 200);
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(json_body(resp)["repositories"], json!(expected));
    let resp = reg.get("/v2/_catalog?n=0");
    assert_eq!(resp.status(), 200);
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(json_body(resp), json!({ "repositories": [] }));

    // `last` names a repository; the listing continues after it, nested ones included.
    let resp = reg.get("/v2/_catalog?last=a.b");
    assert_eq!(
        json_body(resp)["repositories"],
        json!([
            "a/b",
            "a/b/c/d/e/f/g",
            "a0",
            "a__b",
            "ab",
            "deep/one/two/three/four/five/six/seven/eight",
            "z/y/x"
        ])
    );
    let resp = reg.get("/v2/_catalog?n=2&last=a/b");
    assert!(next_link(&resp).is_some());
    assert_eq!(
        json_body(resp)["repositories"],
        json!(["a/b/c/d/e/f/g", "a0"])
    );
    let resp = reg.get("/v2/_catalog?n=5&last=z/y/x");
    assert!(maybe_header(&resp, "link").is_none());
    assert_eq!(json_body(resp)["repositories"], json!([]));
}
