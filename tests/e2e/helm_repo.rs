//! The same charts served the classic way: charts pushed with `helm push` appear in
//! `index.yaml` for `helm repo add` / `search repo` / `install --dry-run` / `pull`; charts
//! uploaded through the ChartMuseum API are pullable over OCI; provenance round trip; hostile
//! charts refused on both paths.

use std::io::Write;
use std::path::Path;

use oci_storage_tests::{
    PASSWORD, Server, USER, default_config, helm_env, read, require_tool, run_ok, sha256,
};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// `helm create` + `helm package` of `name` at `version`; answers the archive path.
pub(crate) fn package(
    helm: &str,
    home: &Path,
    name: &str,
    version: &str,
    description: &str,
) -> std::path::PathBuf {
    let dir = home.join(format!("src-{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(helm_env(helm, &dir).args(["create", name]));
    let chart_yaml = dir.join(name).join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml)
        .unwrap()
        .replace("version: 0.1.0", &format!("version: {version}"))
        .replace(
            "description: A Helm chart for Kubernetes",
            &format!("description: {description}"),
        );
    std::fs::write(&chart_yaml, text + "keywords: [web, demo]\n").unwrap();
    run_ok(helm_env(helm, &dir).args(["package", name, "-d", home.to_str().unwrap()]));
    home.join(format!("{name}-{version}.tgz"))
}

fn repo_add(helm: &str, home: &Path, name: &str, url: &str) {
    run_ok(helm_env(helm, home).args([
        "repo",
        "add",
        name,
        url,
        "--username",
        USER,
        "--password",
        PASSWORD,
    ]));
}

fn classic_side(helm: &str, login_flag: &str) {
    require_tool(helm);
    let server = super::server();
    let home = server.scratch(helm);
    std::fs::create_dir_all(&home).unwrap();
    let mut login = helm_env(helm, &home);
    login.args([
        "registry",
        "login",
        &server.host,
        "-u",
        USER,
        "-p",
        PASSWORD,
        login_flag,
    ]);
    run_ok(&mut login);
    let v1 = package(helm, &home, "webapp", "1.0.0", "Web application");
    let v2 = package(helm, &home, "webapp", "1.1.0", "Web application");
    let other = package(helm, &home, "worker", "0.3.0", "Background worker");
    for (archive, repo) in [
        (&v1, "charts"),
        (&v2, "charts"),
        (&other, "team-a/platform"),
    ] {
        run_ok(helm_env(helm, &home).args([
            "push",
            archive.to_str().unwrap(),
            &format!("oci://{}/{repo}", server.host),
            "--plain-http",
        ]));
    }

    // The top-level index: every chart; a namespace's index: its own.
    repo_add(helm, &home, "all", &server.url);
    run_ok(helm_env(helm, &home).args(["repo", "update"]));
    let found = run_ok(helm_env(helm, &home).args(["search", "repo", "all/"]));
    assert!(
        found.contains("all/webapp") && found.contains("1.1.0") && found.contains("all/worker"),
        "{found}"
    );
    let versions =
        run_ok(helm_env(helm, &home).args(["search", "repo", "all/webapp", "--versions"]));
    assert!(
        versions.contains("1.0.0") && versions.contains("1.1.0"),
        "{versions}"
    );
    let ranged =
        run_ok(helm_env(helm, &home).args(["search", "repo", "all/webapp", "--version", "~1.0"]));
    assert!(
        ranged.contains("1.0.0") && !ranged.contains("1.1.0"),
        "{ranged}"
    );
    let by_keyword = run_ok(helm_env(helm, &home).args(["search", "repo", "background"]));
    assert!(
        by_keyword.contains("all/worker") && !by_keyword.contains("webapp"),
        "{by_keyword}"
    );
    repo_add(
        helm,
        &home,
        "platform",
        &format!("{}/team-a/platform", server.url),
    );
    let platform = run_ok(helm_env(helm, &home).args(["search", "repo", "platform/"]));
    assert!(
        platform.contains("platform/worker") && !platform.contains("webapp"),
        "{platform}"
    );

    // Pull and render from the classic side: the very archive that was pushed.
    std::fs::create_dir_all(home.join("classic")).unwrap();
    run_ok(helm_env(helm, &home).args([
        "pull",
        "all/webapp",
        "--version",
        "1.0.0",
        "-d",
        "classic",
    ]));
    assert_eq!(read(&home.join("classic/webapp-1.0.0.tgz")), read(&v1));
    run_ok(helm_env(helm, &home).args(["pull", "platform/worker", "-d", "classic"]));
    assert_eq!(read(&home.join("classic/worker-0.3.0.tgz")), read(&other));
    let rendered = run_ok(helm_env(helm, &home).args(["template", "demo", "all/webapp"]));
    assert!(
        rendered.contains("kind: Deployment") && rendered.contains("webapp"),
        "{rendered}"
    );
    if helm == "helm4" {
        // helm 3's client dry run still asks a cluster for its version; helm 4's does not.
        let installed = run_ok(
            helm_env(helm, &home)
                .args(["install", "demo", "all/webapp", "--dry-run=client"])
                .env("KUBECONFIG", "/nonexistent"),
        );
        assert!(installed.contains("kind: Deployment"), "{installed}");
    }
}

#[test]
fn classic_repository_with_helm3() {
    classic_side("helm", "--insecure");
}

#[test]
fn classic_repository_with_helm4() {
    classic_side("helm4", "--plain-http");
}

fn client_get(client: &Client, server: &Server, path: &str) -> reqwest::blocking::Response {
    client
        .get(server.at(path))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap()
}

#[test]
fn index_etag_and_permissions() {
    let server = super::server();
    let client = server.client();
    let home = server.scratch("h");
    let archive = package("helm", &home, "etag", "0.1.0", "d");
    assert_eq!(
        upload(
            &client,
            &server,
            "/api/charts",
            read(&archive),
            "application/gzip"
        )
        .0,
        201
    );
    let first = client_get(&client, &server, "/index.yaml");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = client
        .get(server.at("/index.yaml"))
        .basic_auth(USER, Some(PASSWORD))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), 304);
    let as_json: Value = client_get(&client, &server, "/index.json").json().unwrap();
    assert_eq!(as_json["entries"]["etag"][0]["version"], "0.1.0");
    assert_eq!(
        as_json["entries"]["etag"][0]["digest"],
        sha256(&read(&archive))["sha256:".len()..]
    );
    // Without credentials: nothing, not even the list.
    assert_eq!(
        client
            .get(server.at("/index.yaml"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(server.at("/api/charts"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(server.at("/charts/charts/etag-0.1.0.tgz"))
            .send()
            .unwrap()
            .status(),
        401
    );
}

/// POSTs a body to a ChartMuseum endpoint; answers (status, JSON).
fn upload(
    client: &Client,
    server: &Server,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, Value) {
    let resp = client
        .post(server.at(path))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn chartmuseum_upload_then_oci_pull_and_provenance() {
    require_tool("helm");
    let server = super::server();
    let client = server.client();
    let home = server.scratch("cm");
    std::fs::create_dir_all(&home).unwrap();
    let archive = package("helm", &home, "uploaded", "2.0.0", "Uploaded with curl");
    let bytes = read(&archive);

    assert_eq!(
        upload(
            &client,
            &server,
            "/api/charts",
            bytes.clone(),
            "application/gzip"
        ),
        (201, json!({"saved": true}))
    );
    assert_eq!(
        upload(
            &client,
            &server,
            "/api/charts",
            bytes.clone(),
            "application/gzip"
        )
        .0,
        409
    );
    assert_eq!(
        upload(
            &client,
            &server,
            "/api/charts?force",
            bytes.clone(),
            "application/gzip"
        )
        .0,
        201
    );

    // Listed by the ChartMuseum API.
    let all: Value = client_get(&client, &server, "/api/charts").json().unwrap();
    assert_eq!(all["uploaded"][0]["version"], "2.0.0");
    assert_eq!(
        all["uploaded"][0]["urls"],
        json!(["charts/charts/uploaded-2.0.0.tgz"])
    );
    let versions: Value = client_get(&client, &server, "/api/charts/uploaded")
        .json()
        .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1);
    let one: Value = client_get(&client, &server, "/api/charts/uploaded/2.0.0")
        .json()
        .unwrap();
    assert_eq!(one["description"], "Uploaded with curl");
    assert_eq!(
        client
            .head(server.at("/api/charts/uploaded/2.0.0"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client_get(&client, &server, "/api/charts/uploaded/9.9.9").status(),
        404
    );

    // And an OCI artifact: helm pull oci:// gives back the same archive.
    let mut login = helm_env("helm", &home);
    login.args([
        "registry",
        "login",
        &server.host,
        "-u",
        USER,
        "-p",
        PASSWORD,
        "--insecure",
    ]);
    run_ok(&mut login);
    std::fs::create_dir_all(home.join("oci")).unwrap();
    run_ok(helm_env("helm", &home).args([
        "pull",
        &format!("oci://{}/charts/uploaded", server.host),
        "--version",
        "2.0.0",
        "--plain-http",
        "-d",
        "oci",
    ]));
    assert_eq!(read(&home.join("oci/uploaded-2.0.0.tgz")), bytes);

    // Provenance: uploaded with the chart (multipart), served back byte for byte.
    let signed = package("helm", &home, "signed", "1.0.0", "Signed chart");
    let signed_bytes = read(&signed);
    let prov = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v2\nname: signed\nversion: 1.0.0\n\n...\nfiles:\n  signed-1.0.0.tgz: {}\n-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n",
        sha256(&signed_bytes)
    );
    let form = reqwest::blocking::multipart::Form::new()
        .part(
            "chart",
            reqwest::blocking::multipart::Part::bytes(signed_bytes.clone())
                .file_name("signed-1.0.0.tgz"),
        )
        .part(
            "prov",
            reqwest::blocking::multipart::Part::bytes(prov.clone().into_bytes())
                .file_name("signed-1.0.0.tgz.prov"),
        );
    let resp = client
        .post(server.at("/api/charts"))
        .basic_auth(USER, Some(PASSWORD))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let served = client_get(&client, &server, "/charts/charts/signed-1.0.0.tgz.prov");
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().unwrap(), prov);
    assert_eq!(
        client_get(&client, &server, "/charts/charts/signed-1.0.0.tgz")
            .bytes()
            .unwrap()
            .to_vec(),
        signed_bytes
    );

    // A provenance file posted alone attaches to the chart it signs.
    let prov2 = prov
        .replace("signed-1.0.0.tgz", "uploaded-2.0.0.tgz")
        .replace(&sha256(&signed_bytes), &sha256(&bytes));
    assert_eq!(
        upload(
            &client,
            &server,
            "/api/prov",
            prov2.clone().into_bytes(),
            "application/octet-stream"
        )
        .0,
        201
    );
    assert_eq!(
        client_get(&client, &server, "/charts/charts/uploaded-2.0.0.tgz.prov")
            .text()
            .unwrap(),
        prov2
    );

    // A chart tag overwritten with something that is not a chart leaves the index.
    let (status, _) = push_oci(
        &client,
        &server,
        "charts/signed",
        &tgz(&[(
            "signed/Chart.yaml",
            b"apiVersion: v2\nname: signed\nversion: 1.0.0\n".to_vec(),
        )]),
    );
    assert_eq!(status, 201);
    let image_config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let resp = client
        .post(server.at(&format!(
            "/v2/charts/signed/blobs/uploads/?digest={}",
            sha256(&image_config)
        )))
        .basic_auth(USER, Some(PASSWORD))
        .body(image_config.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let image = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&image_config), "size": image_config.len()},
        "layers": []});
    let resp = client
        .put(server.at("/v2/charts/signed/manifests/1.0.0"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(image.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        !client_get(&client, &server, "/index.yaml")
            .text()
            .unwrap()
            .contains("signed")
    );

    // Delete: gone from the API, the index, and the OCI side.
    let deleted = client
        .delete(server.at("/api/charts/uploaded/2.0.0"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().unwrap(), json!({"deleted": true}));
    assert!(
        !client_get(&client, &server, "/index.yaml")
            .text()
            .unwrap()
            .contains("uploaded")
    );
    let oci = client
        .get(server.at("/v2/charts/uploaded/manifests/2.0.0"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(oci.status(), 404);
}

/// A gzip'd tar with raw entry names (so hostile names can be written).
pub(crate) fn tgz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, content.as_slice()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// Pushes a chart archive as an OCI artifact the way helm does; answers the manifest PUT.
pub(crate) fn push_oci(
    client: &Client,
    server: &Server,
    repo: &str,
    archive: &[u8],
) -> (u16, Value) {
    push_oci_tagged(client, server, repo, "1.0.0", archive)
}

/// [`push_oci`] under a given tag (a chart version is the tag named after it).
pub(crate) fn push_oci_tagged(
    client: &Client,
    server: &Server,
    repo: &str,
    tag: &str,
    archive: &[u8],
) -> (u16, Value) {
    let config = br#"{"apiVersion":"v2","name":"evil","version":"1.0.0"}"#.to_vec();
    for blob in [&config, &archive.to_vec()] {
        let resp = client
            .post(server.at(&format!(
                "/v2/{repo}/blobs/uploads/?digest={}",
                sha256(blob)
            )))
            .basic_auth(USER, Some(PASSWORD))
            .body(blob.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": sha256(archive), "size": archive.len()}],
    });
    let resp = client
        .put(server.at(&format!("/v2/{repo}/manifests/{tag}")))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn hostile_charts_are_refused() {
    let config = format!(
        "{}helm:\n  maxUnpackedBytes: 1048576\n  maxEntries: 50\n  maxFileBytes: 65536\n",
        default_config()
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    let client = server.client();
    let chart_yaml = b"apiVersion: v2\nname: evil\nversion: 1.0.0\n".to_vec();
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "tar bomb",
            tgz(&[
                ("evil/Chart.yaml", chart_yaml.clone()),
                ("evil/bomb", vec![0u8; 8 * 1024 * 1024]),
            ]),
        ),
        (
            "path traversal",
            tgz(&[
                ("evil/Chart.yaml", chart_yaml.clone()),
                ("evil/../../../etc/cron.d/x", b"x".to_vec()),
            ]),
        ),
        (
            "absolute path",
            tgz(&[
                ("evil/Chart.yaml", chart_yaml.clone()),
                ("/etc/passwd", b"x".to_vec()),
            ]),
        ),
        (
            "absurd Chart.yaml",
            tgz(&[("evil/Chart.yaml", vec![b'#'; 200_000])]),
        ),
        (
            "invalid version",
            tgz(&[(
                "evil/Chart.yaml",
                b"apiVersion: v2\nname: evil\nversion: latest\n".to_vec(),
            )]),
        ),
        (
            "too many entries",
            tgz(&(0..60)
                .map(|i| {
                    (
                        ["evil/f", &i.to_string()].concat().leak() as &str,
                        Vec::new(),
                    )
                })
                .chain([("evil/Chart.yaml", chart_yaml.clone())])
                .collect::<Vec<_>>()),
        ),
        ("not a chart", b"plain text, not gzip".to_vec()),
        (
            "YAML alias bomb under an unknown key",
            tgz(&[(
                "evil/Chart.yaml",
                b"apiVersion: v2\nname: evil\nversion: 1.0.0\nx: &a [lol, lol, lol, lol]\ny: &b [*a, *a, *a, *a]\nz: &c [*b, *b, *b, *b]\nw: [*c, *c, *c, *c]\n".to_vec(),
            )]),
        ),
    ];
    for (what, archive) in &hostile {
        let (status, body) = upload(
            &client,
            &server,
            "/api/charts",
            archive.clone(),
            "application/gzip",
        );
        assert_eq!(
            status, 400,
            "{what}: ChartMuseum upload must be refused: {body}"
        );
        assert!(
            body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: a clear error: {body}"
        );
        let (status, body) = push_oci(&client, &server, "hostile/evil", archive);
        assert_eq!(status, 400, "{what}: OCI push must be refused: {body}");
        assert_eq!(body["errors"][0]["code"], "MANIFEST_INVALID", "{what}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("chart"),
            "{what}: {body}"
        );
    }
    // A chart may not pose as another chart of its namespace.
    let valid = tgz(&[("evil/Chart.yaml", chart_yaml.clone())]);
    let (status, body) = push_oci(&client, &server, "hostile/other", &valid);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{body}"
    );
    let index = client_get(&client, &server, "/index.yaml").text().unwrap();
    assert!(!index.contains("evil"), "{index}");
    let manifest = client
        .get(server.at("/v2/hostile/evil/manifests/1.0.0"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(manifest.status(), 404, "nothing was stored");
}

#[test]
fn chart_metadata_is_rebuilt_from_content() {
    require_tool("helm");
    let config = format!("{}helm:\n  refreshSeconds: 0\n", default_config());
    let server = Server::start_with(super::BIN, &config, &[]);
    let client = server.client();
    let home = server.scratch("rebuild");
    let archive = package("helm", &home, "rebuilt", "4.5.6", "Rebuilt from content");
    assert_eq!(
        upload(
            &client,
            &server,
            "/api/team/charts",
            read(&archive),
            "application/gzip"
        )
        .0,
        201
    );
    assert!(
        client_get(&client, &server, "/index.yaml")
            .text()
            .unwrap()
            .contains("rebuilt")
    );

    // The derived records are lost: the index is empty, the OCI content is still there.
    std::fs::remove_dir_all(server.data_dir().join("chartmeta")).unwrap();
    assert!(
        !client_get(&client, &server, "/index.yaml")
            .text()
            .unwrap()
            .contains("rebuilt")
    );
    let printed = run_ok(
        std::process::Command::new(super::BIN)
            .arg("reindex-charts")
            .arg("--config")
            .arg(server.scratch("config.yaml"))
            .current_dir(server.dir.path()),
    );
    assert_eq!(printed.trim(), "recorded 1 chart version(s)");
    let index = client_get(&client, &server, "/index.yaml").text().unwrap();
    assert!(
        index.contains("rebuilt") && index.contains("Rebuilt from content"),
        "{index}"
    );
}

#[test]
fn chartmuseum_uploads_need_push_rights_on_the_target_repository() {
    let config = format!(
        "{}  rules:\n    - {{repositories: [\"**\"], actions: [pull], users: [reader]}}\n",
        default_config().replace(
            "auth:\n  users:\n",
            "auth:\n  users:\n    - {username: reader, password: Reader-Pw-1}\n"
        )
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    let chart = tgz(&[(
        "webapp/Chart.yaml",
        b"apiVersion: v2\nname: webapp\nversion: 1.0.0\n".to_vec(),
    )]);
    let resp = server
        .client()
        .post(server.at("/api/charts"))
        .basic_auth("reader", Some("Reader-Pw-1"))
        .body(chart.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let index = client_get(&server.client(), &server, "/index.yaml")
        .text()
        .unwrap();
    assert!(!index.contains("webapp"), "nothing was stored: {index}");
    assert_eq!(
        upload(
            &server.client(),
            &server,
            "/api/charts",
            chart,
            "application/gzip"
        )
        .0,
        201,
        "the admin may"
    );
}

/// A ChartMuseum upload form is bounded as a whole (fields, bytes), and a form that does not
/// parse is refused, never half-read and acted on.
#[test]
fn chartmuseum_forms_are_bounded_and_must_parse() {
    let server = super::server();
    let client = server.client();
    let form = |fields: &[(&str, &str)], closed: bool| {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        if closed {
            body.push_str("--B--\r\n");
        }
        body.into_bytes()
    };
    let post = |body: Vec<u8>| {
        upload(
            &client,
            &server,
            "/api/charts",
            body,
            "multipart/form-data; boundary=B",
        )
    };

    let many: Vec<(&str, &str)> = (0..9).map(|_| ("note", "x")).collect();
    let (status, body) = post(form(&many, true));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("more than 8 fields"), "{body}");

    // A form cut off in the middle of its chart field.
    let (status, body) = post(form(&[("note", "x"), ("chart", "not a chart")], false));
    assert_eq!(status, 400, "{body}");

    // A well-formed form with a few extra fields still reaches the chart check.
    let (status, body) = post(form(&[("note", "x"), ("chart", "not a chart")], true));
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("multipart"), "{body}");
}
