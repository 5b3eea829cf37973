//! The REST API over real content: chart search and details, repositories with their kind,
//! tags, image details, tag delete and copy, immutable tags — and a client generated from the
//! committed OpenAPI document by a real generator (openapi-python-client) calling it.

use std::path::Path;
use std::process::Command;

use oci_storage_tests::{
    PASSWORD, Server, USER, default_config, helm_env, layout, read, require_tool, run_ok,
};
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn package(home: &Path, name: &str, version: &str, extra: &str) -> Vec<u8> {
    let dir = home.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(helm_env("helm", &dir).args(["create", name]));
    let chart_yaml = dir.join(name).join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml)
        .unwrap()
        .replace("version: 0.1.0", &format!("version: {version}"));
    std::fs::write(&chart_yaml, text + extra).unwrap();
    std::fs::write(dir.join(name).join("README.md"), format!("# {name}\n")).unwrap();
    run_ok(helm_env("helm", &dir).args(["package", name, "-d", dir.to_str().unwrap()]));
    read(&dir.join(format!("{name}-{version}.tgz")))
}

fn upload(client: &Client, server: &Server, ns_path: &str, archive: Vec<u8>) {
    let resp = client
        .post(server.at(ns_path))
        .basic_auth(USER, Some(PASSWORD))
        .body(archive)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
}

fn get(client: &Client, server: &Server, path: &str) -> Value {
    let resp = client
        .get(server.at(path))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}@{}",
                i["repository"].as_str().unwrap(),
                i["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn chart_search_and_details() {
    require_tool("helm");
    let server = super::server();
    let client = server.client();
    let home = server.scratch("charts");
    upload(
        &client,
        &server,
        "/api/charts",
        package(
            &home,
            "webapp",
            "1.0.0",
            "keywords: [web]\nappVersion: \"2.0\"\n",
        ),
    );
    upload(
        &client,
        &server,
        "/api/charts",
        package(
            &home,
            "webapp",
            "1.5.0",
            "keywords: [web]\nappVersion: \"2.1\"\n",
        ),
    );
    upload(
        &client,
        &server,
        "/api/team-a/charts",
        package(&home, "worker", "0.1.0", "keywords: [queue]\n"),
    );
    upload(
        &client,
        &server,
        "/api/charts",
        package(&home, "legacy", "3.0.0", "deprecated: true\n"),
    );

    let all = get(&client, &server, "/api/v1/charts");
    assert_eq!(
        names(&all),
        ["charts/webapp@1.5.0", "team-a/worker@0.1.0"],
        "latest versions, deprecated hidden"
    );
    assert_eq!(all["total"], 2);
    let versions = get(&client, &server, "/api/v1/charts?latest=false&q=WEB");
    assert_eq!(
        names(&versions),
        ["charts/webapp@1.5.0", "charts/webapp@1.0.0"]
    );
    let ranged = get(
        &client,
        &server,
        "/api/v1/charts?latest=false&q=webapp&version=%3C1.5",
    );
    assert_eq!(names(&ranged), ["charts/webapp@1.0.0"]);
    assert_eq!(
        names(&get(&client, &server, "/api/v1/charts?keyword=queue")),
        ["team-a/worker@0.1.0"]
    );
    assert_eq!(
        names(&get(&client, &server, "/api/v1/charts?prefix=team-a/")),
        ["team-a/worker@0.1.0"]
    );
    assert_eq!(
        names(&get(
            &client,
            &server,
            "/api/v1/charts?appVersion=2.0&latest=false"
        )),
        ["charts/webapp@1.0.0"]
    );
    assert_eq!(
        names(&get(&client, &server, "/api/v1/charts?deprecated=true")),
        ["charts/legacy@3.0.0"]
    );
    let paged = get(&client, &server, "/api/v1/charts?perPage=1&page=2");
    assert_eq!(
        (paged["total"].as_u64(), names(&paged)),
        (Some(2), vec!["team-a/worker@0.1.0".to_owned()])
    );
    let bad = client
        .get(server.at("/api/v1/charts?version=not-a-range"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");

    let detail = get(
        &client,
        &server,
        "/api/v1/charts/detail?repository=charts/webapp",
    );
    assert_eq!(detail["version"], "1.5.0");
    assert_eq!(detail["versions"], json!(["1.5.0", "1.0.0"]));
    assert!(detail["values"].as_str().unwrap().contains("replicaCount"));
    assert_eq!(detail["readme"], "# webapp\n");
    assert!(
        detail["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "deployment.yaml")
    );
    assert_eq!(detail["metadata"]["keywords"], json!(["web"]));
    let older = get(
        &client,
        &server,
        "/api/v1/charts/detail?repository=charts/webapp&version=1.0.0",
    );
    assert_eq!(older["appVersion"], "2.0");
    let missing = client
        .get(server.at("/api/v1/charts/detail?repository=charts/nothing"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn repositories_tags_images_and_tag_management() {
    require_tool("skopeo");
    let config = format!("{}registry:\n  immutableTags: [\"v*\"]\n", default_config());
    let server = Server::start_with(super::BIN, &config, &[]);
    let client = server.client();
    let home = server.scratch("h");
    upload(
        &client,
        &server,
        "/api/charts",
        package(&home, "chartrepo", "0.1.0", "keywords: [Infra]\n"),
    );
    let src = server.scratch("layout");
    let (_, images) = layout::multi_arch(&src, "multi", &["amd64", "arm64"]);
    let auth = server.scratch("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    run_ok(
        Command::new("skopeo")
            .env("REGISTRY_AUTH_FILE", &auth)
            .args([
                "copy",
                "--all",
                "--dest-tls-verify=false",
                "--dest-creds",
                &creds,
                &format!("oci:{}:multi", src.display()),
                &format!("docker://{}/apps/web:v1", server.host),
            ]),
    );

    let repos = get(&client, &server, "/api/v1/repositories");
    let kinds: Vec<(String, String)> = repos["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("apps/web".to_owned(), "image".to_owned()),
            ("charts/chartrepo".to_owned(), "chart".to_owned())
        ]
    );
    assert_eq!(
        get(&client, &server, "/api/v1/repositories?prefix=charts/")["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Search across charts and images, with a type filter.
    let hits = |query: &str| -> Vec<(String, String)> {
        get(&client, &server, &format!("/api/v1/search?{query}"))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["repository"].as_str().unwrap().to_owned(),
                    h["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let both = vec![
        ("apps/web".to_owned(), "image".to_owned()),
        ("charts/chartrepo".to_owned(), "chart".to_owned()),
    ];
    assert_eq!(hits(""), both);
    assert_eq!(hits("q=WEB"), both[..1]);
    assert_eq!(hits("type=chart"), both[1..]);
    assert_eq!(hits("type=image&q=apps"), both[..1]);
    assert_eq!(
        hits("q=kubernetes"),
        both[1..],
        "chart descriptions are searched"
    );
    assert!(hits("type=artifact").is_empty());
    assert_eq!(
        hits("keyword=infra"),
        both[1..],
        "keywords match whole, any case"
    );
    assert!(hits("keyword=inf").is_empty());
    assert!(
        hits("keyword=web").is_empty(),
        "only charts have keywords (apps/web is an image)"
    );
    assert_eq!(
        get(&client, &server, "/api/v1/search")["items"][1]["deprecated"],
        false
    );

    let tags = get(&client, &server, "/api/v1/tags?repository=apps/web");
    assert_eq!(tags[0]["tag"], "v1");
    assert_eq!(
        tags[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index = get(
        &client,
        &server,
        "/api/v1/manifests?repository=apps/web&reference=v1",
    );
    let archs: Vec<&str> = index["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let arm = &images[1];
    let image = get(
        &client,
        &server,
        &format!(
            "/api/v1/manifests?repository=apps/web&reference={}",
            arm.manifest.digest
        ),
    );
    assert_eq!(image["layers"].as_array().unwrap().len(), 2);
    assert_eq!(image["config"]["architecture"], "arm64");
    assert_eq!(image["history"].as_array().unwrap().len(), 2);

    // Copy a tag, delete a tag; immutable tags neither move nor go away.
    let copy = |source: &str, target: &str| {
        client
            .post(server.at("/api/v1/tags/copy"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&json!({"repository": "apps/web", "source": source, "target": target}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(copy("v1", "latest"), 204);
    assert_eq!(
        copy(&arm.manifest.digest, "latest"),
        204,
        "mutable tags move"
    );
    assert_eq!(
        copy(&arm.manifest.digest, "v1"),
        403,
        "v* tags are immutable"
    );
    assert_eq!(
        copy("v1", "v1"),
        204,
        "re-pointing at the same manifest is fine"
    );
    let delete = |tag: &str| {
        client
            .delete(server.at(&format!("/api/v1/tags?repository=apps/web&tag={tag}")))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(delete("v1"), 403);
    let v1_digest = tags_now(&client, &server)
        .into_iter()
        .find(|(tag, _)| tag == "v1")
        .unwrap()
        .1;
    let by_digest = client
        .delete(server.at(&format!("/v2/apps/web/manifests/{v1_digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(
        by_digest.status(),
        403,
        "deleting the manifest would delete the immutable tag"
    );
    assert_eq!(delete("latest"), 204);
    let tags: Vec<String> = get(&client, &server, "/api/v1/tags?repository=apps/web")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags, ["v1"]);
    // The same rule on the OCI side.
    let manifest = arm.manifest.bytes.clone();
    let moved = client
        .put(server.at("/v2/apps/web/manifests/v1"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .unwrap();
    assert_eq!(moved.status(), 403);
    assert_eq!(
        moved.json::<Value>().unwrap()["errors"][0]["code"],
        "DENIED"
    );
    let unknown = client
        .get(server.at("/api/v1/tags?repository=nothing/here"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// (tag, digest) of apps/web.
fn tags_now(client: &Client, server: &Server) -> Vec<(String, String)> {
    get(client, server, "/api/v1/tags?repository=apps/web")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"].as_str().unwrap().to_owned(),
                t["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A client generated by openapi-python-client from the committed document works.
#[test]
fn generated_python_client() {
    require_tool("openapi-python-client");
    require_tool("helm");
    let server = super::server();
    let client = server.client();
    let home = server.scratch("py");
    upload(
        &client,
        &server,
        "/api/charts",
        package(&home, "pyclient", "1.2.3", "keywords: [generated]\n"),
    );
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let out = home.join("client");
    run_ok(
        Command::new("openapi-python-client")
            .args(["generate", "--path"])
            .arg(&spec)
            .arg("--output-path")
            .arg(&out)
            .arg("--meta")
            .arg("none"),
    );
    let script = format!(
        r#"
import base64, sys
sys.path.insert(0, {parent:?})
from client import Client
from client.api.charts import search_charts
from client.api.system import who_am_i
auth = base64.b64encode(b"{USER}:{PASSWORD}").decode()
c = Client(base_url="{url}", headers={{"Authorization": "Basic " + auth}})
me = who_am_i.sync(client=c)
page = search_charts.sync(client=c, keyword="generated")
print(me.username, me.admin, page.total, page.items[0].name, page.items[0].version)
"#,
        parent = home.display().to_string(),
        url = server.url,
    );
    let printed = run_ok(Command::new("python3").arg("-c").arg(script));
    assert_eq!(printed.trim(), format!("{USER} True 1 pyclient 1.2.3"));
}

#[test]
fn retagging_onto_a_chart_version_keeps_the_chart_index_true() {
    let server = super::server();
    let client = server.client();
    for version in ["1.0.0", "2.0.0"] {
        let chart_yaml = format!("apiVersion: v2\nname: x\nversion: {version}\n");
        let archive = crate::helm_repo::tgz(&[("x/Chart.yaml", chart_yaml.into_bytes())]);
        let (status, body) =
            crate::helm_repo::push_oci_tagged(&client, &server, "charts/x", version, &archive);
        assert_eq!(status, 201, "{body}");
    }
    let index = |client: &Client| {
        client
            .get(server.at("/charts/index.yaml"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert!(index(&client).contains("version: 2.0.0"));
    // The tag 2.0.0 now holds chart 1.0.0: it is no longer version 2.0.0.
    let resp = client
        .post(server.at("/api/v1/tags/copy"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"repository": "charts/x", "source": "1.0.0", "target": "2.0.0"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let after = index(&client);
    assert!(!after.contains("version: 2.0.0"), "{after}");
    assert!(after.contains("version: 1.0.0"), "{after}");
}
