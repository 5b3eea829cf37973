//! The pull-through proxy against a real upstream (CNCF Distribution on loopback, mapped to
//! the name docker.io): skopeo pulls through the path prefix, short names and `?ns=`; the
//! cache serves when the upstream is gone; the proxy namespace is read-only; concurrent cold
//! pulls of one blob cause one upstream fetch.

use std::process::Command;

use oci_storage_tests::{
    Distribution, PASSWORD, Server, USER, default_config, layout, read, require_tool, run, run_ok,
    sha256,
};

fn skopeo(auth: &std::path::Path) -> Command {
    let mut cmd = Command::new("skopeo");
    cmd.env("REGISTRY_AUTH_FILE", auth);
    cmd
}

/// A scratch directory with an empty skopeo auth file.
struct Work {
    dir: tempfile::TempDir,
    auth: std::path::PathBuf,
}

impl Work {
    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.json");
        std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
        Self { dir, auth }
    }

    /// Builds a one-platform image with these layer sizes and pushes it anonymously to
    /// `library/app:v1` of a Distribution upstream.
    fn seed(&self, upstream: &Distribution, layer_sizes: &[usize]) -> layout::Image {
        let src = self.dir.path().join("layout");
        let image = layout::single_image(&src, "v1", layer_sizes);
        run_ok(skopeo(&self.auth).args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", src.display()),
            &format!("docker://{}/library/app:v1", upstream.host),
        ]));
        image
    }
}

fn proxy_config(upstream: &Distribution) -> String {
    format!(
        "{}proxy:\n  enabled: true\n  cache:\n    tagTtlSeconds: 0\n  registries:\n    - name: docker.io\n      url: http://{}\n",
        default_config(),
        upstream.host
    )
}

/// Blob GETs the upstream served for `digest` (its access log has one line per request).
fn upstream_fetches(upstream: &Distribution, digest: &str) -> usize {
    upstream
        .log()
        .lines()
        .filter(|l| l.contains(&format!("GET /v2/library/app/blobs/{digest}")))
        .count()
}

#[test]
fn pulls_through_the_proxy_and_serves_from_cache() {
    require_tool("skopeo");
    let mut upstream = Distribution::start();
    let work = Work::new();
    let image = work.seed(&upstream, &[4096, 300_000]);
    let (auth, src) = (work.auth.clone(), work.path().join("layout"));

    let server = Server::start_with(super::BIN, &proxy_config(&upstream), &[]);
    let creds = format!("{USER}:{PASSWORD}");
    let pull = |reference: &str, into: &str| {
        let dest = work.path().join(into);
        let out = run(skopeo(&auth).args([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &format!("docker://{}/{reference}", server.host),
            &format!("oci:{}:v1", dest.display()),
        ]));
        (
            out.status.success(),
            dest,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // 1. Path prefix: the image arrives intact.
    let (ok, dest, err) = pull("proxy/docker.io/library/app:v1", "first");
    assert!(ok, "{err}");
    for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
        assert_eq!(
            read(
                &dest
                    .join("blobs/sha256")
                    .join(&blob.digest["sha256:".len()..])
            ),
            blob.bytes
        );
    }
    let layer = &image.layers[1].digest;
    assert_eq!(upstream_fetches(&upstream, layer), 1);

    // 2. Short name (Docker Hub's library/ added) is the same cache: no new blob fetch.
    let (ok, _, err) = pull("proxy/app:v1", "short");
    assert!(ok, "{err}");
    assert_eq!(
        upstream_fetches(&upstream, layer),
        1,
        "the blob came from the cache"
    );

    // 3. containerd mirror mode: ?ns= answers with OCI-Namespace.
    let resp = server
        .client()
        .get(server.at("/v2/library/app/manifests/v1?ns=docker.io"))
        .basic_auth(USER, Some(PASSWORD))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["oci-namespace"], "docker.io");
    assert_eq!(sha256(&resp.bytes().unwrap()), image.manifest.digest);

    // 4. The proxy namespace is read-only; hosted repositories keep working beside it.
    let push = server
        .client()
        .post(server.at("/v2/proxy/docker.io/library/app/blobs/uploads/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(push.status(), 405);
    run_ok(skopeo(&auth).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/hosted/app:v1", server.host),
    ]));

    // 5. Upstream gone: the cached tag is still served.
    upstream.stop();
    let (ok, _, err) = pull("proxy/docker.io/library/app:v1", "offline");
    assert!(ok, "cached content survives the upstream: {err}");
    let (ok, _, _) = pull("proxy/docker.io/library/other:v1", "missing");
    assert!(!ok, "nothing cached, no upstream: an error");
    let stats = proxy_stats(&server);
    assert!(stats["staleServed"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["upstreamErrors"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["manifestHits"].as_u64().unwrap() >= 1, "{stats}");

    // 6. /metrics counts the same, under Distribution's names.
    let metrics = server
        .client()
        .get(server.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let sample = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
            .parse::<f64>()
            .unwrap() as u64
    };
    let stat = |name: &str| stats[name].as_u64().unwrap();
    assert_eq!(
        sample("registry_proxy_hits_total{type=\"blob\"}"),
        stat("blobHits")
    );
    assert_eq!(
        sample("registry_proxy_misses_total{type=\"blob\"}"),
        stat("blobMisses")
    );
    assert_eq!(
        sample("registry_proxy_requests_total{type=\"manifest\"}"),
        stat("manifestHits") + stat("manifestMisses")
    );
    assert_eq!(
        sample("registry_proxy_pulled_bytes_total{type=\"blob\"}"),
        stat("bytesFromUpstream")
    );
    assert!(stat("bytesFromUpstream") >= 300_000, "{stats}");
    assert_eq!(
        sample("oci_storage_proxy_upstream_errors_total"),
        stat("upstreamErrors")
    );
    assert!(sample("oci_storage_proxy_cache_bytes") >= 300_000);
}

#[test]
fn concurrent_cold_pulls_fetch_once() {
    require_tool("skopeo");
    let upstream = Distribution::start();
    let work = Work::new();
    let image = work.seed(&upstream, &[8 * 1024 * 1024]);
    let server = Server::start_with(super::BIN, &proxy_config(&upstream), &[]);
    let layer = image.layers[0].clone();
    let url = server.at(&format!(
        "/v2/proxy/docker.io/library/app/blobs/{}",
        layer.digest
    ));
    let pulls: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            let client = server.client();
            std::thread::spawn(move || {
                let resp = client
                    .get(url)
                    .basic_auth(USER, Some(PASSWORD))
                    .send()
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().unwrap().to_vec()
            })
        })
        .collect();
    for pull in pulls {
        assert_eq!(sha256(&pull.join().unwrap()), layer.digest);
    }
    assert_eq!(
        upstream_fetches(&upstream, &layer.digest),
        1,
        "16 clients, one upstream fetch"
    );
}

#[test]
fn a_corrupt_upstream_blob_is_never_cached() {
    require_tool("skopeo");
    let upstream = Distribution::start();
    let work = Work::new();
    let image = work.seed(&upstream, &[200_000]);
    // Flip bytes of the layer in the upstream's own storage: it serves them unverified.
    let layer = &image.layers[0];
    let hex = &layer.digest["sha256:".len()..];
    let data = upstream.dir.path().join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = read(&data);
    bytes[1000] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let server = Server::start_with(super::BIN, &proxy_config(&upstream), &[]);
    let url = server.at(&format!(
        "/v2/proxy/docker.io/library/app/blobs/{}",
        layer.digest
    ));
    assert!(
        result_is_failure(&server, &url),
        "the transfer fails rather than delivering wrong bytes"
    );
    assert!(
        result_is_failure(&server, &url),
        "and again: nothing wrong was cached"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !server
            .data_dir()
            .join(format!("blobs/sha256/{hex}"))
            .exists(),
        "nothing was cached"
    );
}

/// The docker.io entry of the proxy statistics.
fn proxy_stats(server: &Server) -> serde_json::Value {
    let all: serde_json::Value = server
        .client()
        .get(server.at("/api/v1/proxy/stats"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "docker.io")
        .cloned()
        .unwrap()
}

/// Whether a GET of `url` fails (error status or a broken transfer).
fn result_is_failure(server: &Server, url: &str) -> bool {
    match server
        .client()
        .get(url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
    {
        Err(_) => true,
        Ok(resp) if !resp.status().is_success() => true,
        Ok(resp) => resp.bytes().is_err(),
    }
}

/// An upstream with Docker-style token auth (another oci-storage with its token service):
/// anonymous tokens for public content, configured credentials for private content; and a
/// tag moved upstream is picked up.
#[test]
fn token_auth_upstream_and_moved_tags() {
    require_tool("skopeo");
    let upstream_pw = "Upstream-Passw0rd-51";
    let upstream_config = format!(
        "storage: {{type: fs, fs: {{path: data}}}}\nauth:\n  users: [{{username: up, password: {upstream_pw}}}]\n  token: {{enabled: true}}\n  rules:\n    - {{repositories: ['public/**'], actions: [pull], anonymous: true}}\n    - {{repositories: ['**'], actions: [pull, push], users: [up]}}\n"
    );
    let upstream = Server::start_with(super::BIN, &upstream_config, &[]);
    let work = tempfile::tempdir().unwrap();
    let auth = work.path().join("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let up_creds = format!("up:{upstream_pw}");
    let push = |layout_dir: &std::path::Path, reference: &str| {
        run_ok(skopeo(&auth).args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &up_creds,
            &format!("oci:{}:v1", layout_dir.display()),
            &format!("docker://{}/{reference}", upstream.host),
        ]));
    };
    let first = work.path().join("first");
    let image = layout::single_image(&first, "v1", &[1000, 2000]);
    push(&first, "public/tool:v1");
    push(&first, "private/tool:v1");

    let proxy_yaml = format!(
        "{}proxy:\n  enabled: true\n  cache:\n    tagTtlSeconds: 0\n  registries:\n    - name: ghcr.io\n      url: {}\n    - name: quay.io\n      url: {}\n      username: up\n      password: {upstream_pw}\n",
        default_config(),
        upstream.url,
        upstream.url
    );
    let server = Server::start_with(super::BIN, &proxy_yaml, &[]);
    let manifest_digest = |path: &str| {
        let resp = server
            .client()
            .get(server.at(path))
            .basic_auth(USER, Some(PASSWORD))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.headers()
                .get("docker-content-digest")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    };
    // Anonymous token upstream: public content only.
    assert_eq!(
        manifest_digest("/v2/proxy/ghcr.io/public/tool/manifests/v1"),
        (200, Some(image.manifest.digest.clone()))
    );
    assert_ne!(
        manifest_digest("/v2/proxy/ghcr.io/private/tool/manifests/v1").0,
        200,
        "no credentials for private/"
    );
    // With the configured credentials: private content too, and its blobs.
    assert_eq!(
        manifest_digest("/v2/proxy/quay.io/private/tool/manifests/v1"),
        (200, Some(image.manifest.digest.clone()))
    );
    let blob = server
        .client()
        .get(server.at(&format!(
            "/v2/proxy/quay.io/private/tool/blobs/{}",
            image.layers[1].digest
        )))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(sha256(&blob.bytes().unwrap()), image.layers[1].digest);

    // Referrers of a manifest are asked upstream (with the artifactType filter).
    let client = upstream.client();
    let empty = b"{}".to_vec();
    let resp = client
        .post(upstream.at(&format!(
            "/v2/public/tool/blobs/uploads/?digest={}",
            sha256(&empty)
        )))
        .basic_auth("up", Some(upstream_pw))
        .body(empty.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let signature = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image.manifest.digest, "size": image.manifest.size},
    })
    .to_string();
    let resp = client
        .put(upstream.at(&format!(
            "/v2/public/tool/manifests/{}",
            sha256(signature.as_bytes())
        )))
        .basic_auth("up", Some(upstream_pw))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(signature.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let referrers = server
        .client()
        .get(server.at(&format!(
            "/v2/proxy/ghcr.io/public/tool/referrers/{}?artifactType=application/vnd.example.signature",
            image.manifest.digest
        )))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(referrers.status(), 200);
    assert_eq!(referrers.headers()["oci-filters-applied"], "artifactType");
    let index: serde_json::Value = referrers.json().unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        sha256(signature.as_bytes())
    );

    // The tag moves upstream: the proxy follows (tags are revalidated; here at once).
    let second = work.path().join("second");
    let moved = layout::write_image(&second, "arm64", &[3000], 7);
    layout::write_index_json(&second, layout::OCI_MANIFEST, &moved.manifest, "v1");
    push(&second, "public/tool:v1");
    assert_eq!(
        manifest_digest("/v2/proxy/ghcr.io/public/tool/manifests/v1"),
        (200, Some(moved.manifest.digest.clone()))
    );
    assert!(
        !server.logs().contains(upstream_pw),
        "upstream credentials never logged"
    );
}

#[test]
fn lru_eviction_under_a_small_bound_spares_pins() {
    require_tool("skopeo");
    let upstream = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let auth = work.path().join("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let mut layers = Vec::new();
    for (i, name) in ["pinned", "a", "b", "c"].iter().enumerate() {
        let dir = work.path().join(name);
        let image = layout::write_image(&dir, "amd64", &[300_000], 100 + i as u64);
        layout::write_index_json(&dir, layout::OCI_MANIFEST, &image.manifest, "v1");
        run_ok(skopeo(&auth).args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", dir.display()),
            &format!("docker://{}/library/{name}:v1", upstream.host),
        ]));
        layers.push(image.layers[0].digest.clone());
    }
    // About two 300 kB layers fit under the bound.
    let config = format!(
        "{}proxy:\n  enabled: true\n  cache:\n    maxSizeGB: 0.00065\n    tagTtlSeconds: 0\n    pins: [\"docker.io/library/pinned\"]\n  registries:\n    - name: docker.io\n      url: http://{}\n",
        default_config(),
        upstream.host
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    let get = |name: &str, digest: &str| {
        let resp = server
            .client()
            .get(server.at(&format!(
                "/v2/proxy/docker.io/library/{name}/blobs/{digest}"
            )))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(sha256(&resp.bytes().unwrap()), digest);
        std::thread::sleep(std::time::Duration::from_millis(200)); // the fill task finishes
    };
    let cached = |digest: &str| {
        server
            .data_dir()
            .join(format!("proxycache/sha256/{}", &digest["sha256:".len()..]))
            .exists()
    };
    get("pinned", &layers[0]);
    get("a", &layers[1]);
    get("b", &layers[2]);
    assert!(cached(&layers[0]), "pinned blobs stay");
    assert!(
        !cached(&layers[1]),
        "the least recently used blob was evicted"
    );
    assert!(cached(&layers[2]));
    get("c", &layers[3]);
    assert!(cached(&layers[0]) && cached(&layers[3]) && !cached(&layers[2]));
    // An evicted blob is simply fetched again.
    get("a", &layers[1]);
    let fetches = upstream
        .log()
        .lines()
        .filter(|l| l.contains(&format!("GET /v2/library/a/blobs/{}", layers[1])))
        .count();
    assert_eq!(fetches, 2);
    let stats = proxy_stats(&server);
    assert!(stats["evictions"].as_u64().unwrap() >= 3, "{stats}");
}

/// An upstream with HTTP Basic auth (Distribution + htpasswd) and configured credentials.
#[test]
fn basic_auth_upstream() {
    require_tool("skopeo");
    let upstream = Distribution::start_with_auth(Some(("mirror", "Mirror-Pw-7")));
    let work = tempfile::tempdir().unwrap();
    let auth = work.path().join("auth.json");
    std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    let src = work.path().join("layout");
    let image = layout::single_image(&src, "v1", &[5000]);
    run_ok(skopeo(&auth).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "mirror:Mirror-Pw-7",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/team/app:v1", upstream.host),
    ]));
    let secret = work.path().join("upstream-password");
    std::fs::write(&secret, "Mirror-Pw-7\n").unwrap();
    let config = format!(
        "{}proxy:\n  enabled: true\n  registries:\n    - name: registry.example.com\n      url: http://{}\n      username: mirror\n      passwordFile: {}\n",
        default_config(),
        upstream.host,
        secret.display()
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    let creds = format!("{USER}:{PASSWORD}");
    let raw = run_ok(skopeo(&auth).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!(
            "docker://{}/proxy/registry.example.com/team/app:v1",
            server.host
        ),
    ]));
    assert_eq!(sha256(raw.as_bytes()), image.manifest.digest);
    let blob = server
        .client()
        .get(server.at(&format!(
            "/v2/proxy/registry.example.com/team/app/blobs/{}",
            image.layers[0].digest
        )))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(sha256(&blob.bytes().unwrap()), image.layers[0].digest);
    assert!(!server.logs().contains("Mirror-Pw-7"));
}

/// A registry front (on 127.0.0.2) that wants Basic auth and redirects blob downloads to a
/// storage host (127.0.0.1), as registry.k8s.io does. Written in Python for the test; the
/// storage host records whether an Authorization header reached it.
const REDIRECTING_UPSTREAM: &str = r#"
import base64, http.server, sys, threading, urllib.request
upstream, front_port, sink_port, record = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
expected = "Basic " + base64.b64encode(b"mirror:Redirect-Pw-3").decode()

def fetch(path, headers):
    req = urllib.request.Request("http://" + upstream + path, headers=headers)
    try:
        r = urllib.request.urlopen(req)
        return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()

class Front(http.server.BaseHTTPRequestHandler):
    def handle_one(self, body):
        if self.headers.get("Authorization") != expected:
            self.send_response(401); self.send_header("WWW-Authenticate", 'Basic realm="front"'); self.send_header("Content-Length", "0"); self.end_headers(); return
        if "/blobs/" in self.path:
            self.send_response(307); self.send_header("Location", "http://127.0.0.1:%d%s" % (sink_port, self.path)); self.send_header("Content-Length", "0"); self.end_headers(); return
        status, headers, data = fetch(self.path, {"Accept": self.headers.get("Accept", "")})
        self.send_response(status)
        for k in ("Content-Type", "Docker-Content-Digest"):
            if k in headers: self.send_header(k, headers[k])
        self.send_header("Content-Length", str(len(data))); self.end_headers()
        if body: self.wfile.write(data)
    def do_GET(self): self.handle_one(True)
    def do_HEAD(self): self.handle_one(False)
    def log_message(self, *a): pass

class Sink(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(record, "a") as f:
            f.write("auth:%s\n" % ("present" if self.headers.get("Authorization") else "absent"))
        status, headers, data = fetch(self.path, {})
        self.send_response(status); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def log_message(self, *a): pass

sink = http.server.ThreadingHTTPServer(("127.0.0.1", sink_port), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("127.0.0.2", front_port), Front).serve_forever()
"#;

#[test]
fn redirects_are_followed_without_credentials_across_hosts() {
    require_tool("skopeo");
    require_tool("python3");
    let upstream = Distribution::start();
    let work = Work::new();
    let image = work.seed(&upstream, &[7000]);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (front_port, sink_port) = (free(), free());
    let record = work.path().join("sink.log");
    let script = work.path().join("front.py");
    std::fs::write(&script, REDIRECTING_UPSTREAM).unwrap();
    let mut front = Command::new("python3")
        .arg(&script)
        .arg(&upstream.host)
        .arg(front_port.to_string())
        .arg(sink_port.to_string())
        .arg(&record)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.2", front_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the front did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let config = format!(
        "{}proxy:\n  enabled: true\n  registries:\n    - name: registry.k8s.io\n      url: http://127.0.0.2:{front_port}\n      username: mirror\n      password: Redirect-Pw-3\n",
        default_config()
    );
    let server = Server::start_with(super::BIN, &config, &[]);
    let blob = server
        .client()
        .get(server.at(&format!(
            "/v2/proxy/registry.k8s.io/library/app/blobs/{}",
            image.layers[0].digest
        )))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    let status = blob.status();
    let bytes = blob.bytes().unwrap();
    let _ = front.kill();
    let _ = front.wait();
    assert_eq!(status, 200);
    assert_eq!(
        sha256(&bytes),
        image.layers[0].digest,
        "the redirect was followed"
    );
    let seen = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        seen.trim(),
        "auth:absent",
        "credentials never cross to another host"
    );
}
