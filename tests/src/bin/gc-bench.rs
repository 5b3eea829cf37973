//! `gc-bench`: fills a registry for the garbage-collection benchmark (`scripts/bench-gc.sh`),
//! then deletes half of its manifests, so that about half of its content is garbage.
//!
//! `--repos` repositories, each with `--shared` base layers and `--images` images; an image
//! is a manifest, a config and `--layers` layers of its own, plus the repository's base
//! layers. Every blob is different (random, `--min-bytes` to `--max-bytes`, deterministic per
//! `--seed`), so two registries filled with the same arguments hold the same blobs. Blobs are
//! pushed with the Distribution API's monolithic upload (POST, then one PUT with the bytes),
//! `--connections` repositories at once; each image is tagged `v<i>`. Then every odd image's
//! manifest is deleted by digest (which also removes its tag), leaving its manifest, config and
//! own layers unreferenced (the base layers stay referenced by the even images).
//!
//! Prints one line for the script: `blobs=N manifests=N deleted=N unreferenced=N push_s=S
//! delete_s=S` (blobs counts manifests, configs and layers: what the registry stores as
//! content).
//!
//! Usage: gc-bench --url URL [--user admin] [--password P] [--repos 1000] [--images 14]
//!        [--layers 5] [--shared 2] [--min-bytes 1024] [--max-bytes 4096] [--seed 1]
//!        [--connections 32]

use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use oci_storage_tests::XorShift;
use oci_storage_tests::bench::arg;
use sha2::Digest as _;

struct Pusher {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Pusher {
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        if self.password.is_empty() {
            request
        } else {
            request.basic_auth(&self.user, Some(&self.password))
        }
    }

    /// POST an upload session, then PUT the whole blob into it; answers its digest and size.
    async fn blob(&self, repo: &str, bytes: Vec<u8>) -> (String, usize) {
        let digest = digest(&bytes);
        let size = bytes.len();
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.url),
            )
            .send()
            .await
            .expect("start an upload");
        assert_eq!(resp.status(), 202, "start an upload in {repo}");
        let location = resp.headers()["location"]
            .to_str()
            .expect("a Location")
            .to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.url)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let resp = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("PUT a blob");
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        (digest, size)
    }

    /// PUT a manifest under `tag`; answers its digest.
    async fn manifest(&self, repo: &str, tag: &str, bytes: Vec<u8>) -> String {
        let digest = digest(&bytes);
        let resp = self
            .request(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{tag}", self.url),
            )
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(bytes)
            .send()
            .await
            .expect("push a manifest");
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        digest
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) {
        let resp = self
            .request(
                reqwest::Method::DELETE,
                &format!("{}/v2/{repo}/manifests/{digest}", self.url),
            )
            .send()
            .await
            .expect("delete a manifest");
        assert_eq!(
            resp.status(),
            202,
            "delete {repo}@{digest}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
}

/// What the benchmark pushes: sizes and seeds, the same for every registry.
#[derive(Clone, Copy)]
struct Shape {
    images: u64,
    layers: u64,
    shared: u64,
    min: u64,
    max: u64,
    seed: u64,
}

impl Shape {
    /// The bytes of blob `index` of image `image` (`None`: the repository's base layers) of
    /// repository `repo`: random, 1 to 4 KiB by default, never the same twice.
    fn layer(&self, repo: u64, image: Option<u64>, index: u64) -> Vec<u8> {
        let image = image.map_or(0, |i| i + 1);
        let mut rng = XorShift::new(
            self.seed ^ (repo << 40) ^ (image << 20) ^ (index << 4) ^ 0x9e37_79b9_7f4a_7c15,
        );
        let len = rng.range(self.min, self.max + 1) as usize;
        rng.bytes(len)
    }
}

fn descriptor(media_type: &str, (digest, size): &(String, usize)) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// Pushes one repository: its base layers, then its images one after the other; answers the
/// digests of the manifests to delete (the odd images').
async fn push_repository(pusher: &Pusher, shape: Shape, r: u64) -> Vec<(String, String)> {
    let repo = format!("gc/r{r:04}");
    let mut base = Vec::new();
    for s in 0..shape.shared {
        base.push(pusher.blob(&repo, shape.layer(r, None, s)).await);
    }
    let mut doomed = Vec::new();
    for i in 0..shape.images {
        let config = format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{\"Labels\":{{\"repository\":\"{repo}\",\"image\":\"{i}\",\"seed\":\"{}\"}}}}}}",
            shape.seed
        );
        let config = pusher.blob(&repo, config.into_bytes()).await;
        let mut layers: Vec<serde_json::Value> = base
            .iter()
            .map(|b| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b))
            .collect();
        for l in 0..shape.layers {
            let layer = pusher.blob(&repo, shape.layer(r, Some(i), l)).await;
            layers.push(descriptor(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                &layer,
            ));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let digest = pusher.manifest(&repo, &format!("v{i}"), bytes).await;
        if i % 2 == 1 {
            doomed.push((repo.clone(), digest));
        }
    }
    doomed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let number = |name: &str, default: &str| -> u64 {
        arg(name, default)
            .parse()
            .unwrap_or_else(|_| panic!("{name}: a number"))
    };
    let connections = number("--connections", "32") as usize;
    let pusher = Pusher {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("an HTTP client"),
        url: arg("--url", "http://127.0.0.1:3030"),
        user: arg("--user", "admin"),
        password: arg("--password", ""),
    };
    let repos = number("--repos", "1000");
    let shape = Shape {
        images: number("--images", "14"),
        layers: number("--layers", "5"),
        shared: number("--shared", "2"),
        min: number("--min-bytes", "1024"),
        max: number("--max-bytes", "4096"),
        seed: number("--seed", "1"),
    };
    assert!(
        shape.min >= 1 && shape.min <= shape.max,
        "--min-bytes ≤ --max-bytes"
    );
    let pusher = &pusher;

    let started = Instant::now();
    let doomed: Vec<Vec<(String, String)>> = futures_util::stream::iter(0..repos)
        .map(|r| push_repository(pusher, shape, r))
        .buffer_unordered(connections)
        .collect()
        .await;
    let push_s = started.elapsed().as_secs_f64();
    let doomed: Vec<(String, String)> = doomed.into_iter().flatten().collect();

    let started = Instant::now();
    futures_util::stream::iter(doomed.iter())
        .map(|(repo, digest)| async move {
            pusher.delete_manifest(repo, digest).await;
            Ok::<_, ()>(())
        })
        .buffer_unordered(connections)
        .try_collect::<Vec<()>>()
        .await
        .expect("deletes");
    let delete_s = started.elapsed().as_secs_f64();

    let per_image = 2 + shape.layers;
    let blobs = repos * (shape.shared + shape.images * per_image);
    let deleted = doomed.len() as u64;
    println!(
        "blobs={blobs} manifests={} deleted={deleted} unreferenced={} push_s={push_s:.1} delete_s={delete_s:.1}",
        repos * shape.images,
        deleted * per_image,
    );
}
