//! `backup-bench`: fills a registry for the backup benchmark (`scripts/bench-backup.sh`):
//! `--repos` repositories × `--images` images × `--layers` layers, layer sizes spread
//! log-uniformly between `--min-bytes` and `--max-bytes` (deterministic per `--seed`), pushed
//! over HTTP with monolithic uploads, 8 at once. Prints `blobs=N bytes=N` (configs and
//! layers) for the script.
//!
//! Usage: backup-bench --url URL --password P [--repos 64] [--images 4] [--layers 3]
//!        [--min-bytes 4096] [--max-bytes 33554432] [--seed 1]

use futures_util::StreamExt;
use oci_storage_tests::XorShift;
use oci_storage_tests::bench::arg;
use sha2::Digest as _;

struct Pusher {
    http: reqwest::Client,
    url: String,
    password: String,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Pusher {
    async fn blob(&self, repo: &str, bytes: Vec<u8>) -> String {
        let digest = digest(&bytes);
        let resp = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                self.url
            ))
            .basic_auth("admin", Some(&self.password))
            .body(bytes)
            .send()
            .await
            .expect("push a blob");
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        digest
    }

    async fn manifest(&self, repo: &str, tag: &str, bytes: Vec<u8>) {
        let resp = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.url))
            .basic_auth("admin", Some(&self.password))
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
    }
}

/// One image: a config and `layers` layers; answers (blobs, bytes).
async fn push_image(
    pusher: &Pusher,
    repo: String,
    tag: String,
    sizes: Vec<usize>,
    seed: u64,
) -> (u64, u64) {
    let mut rng = XorShift::new(seed);
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}");
    let config_size = config.len();
    let config_digest = pusher.blob(&repo, config.into_bytes()).await;
    let mut bytes = config_size as u64;
    let mut layers = Vec::new();
    for size in sizes {
        let layer = rng.bytes(size);
        bytes += size as u64;
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": pusher.blob(&repo, layer).await,
            "size": size,
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    });
    let count = 1 + layers.len() as u64;
    pusher
        .manifest(&repo, &tag, serde_json::to_vec(&manifest).expect("json"))
        .await;
    (count, bytes)
}

#[tokio::main]
async fn main() {
    let pusher = Pusher {
        http: reqwest::Client::new(),
        url: arg("--url", "http://127.0.0.1:3030"),
        password: arg("--password", ""),
    };
    let number =
        |name: &str, default: &str| -> u64 { arg(name, default).parse().expect("a number") };
    let (repos, images, layers) = (
        number("--repos", "64"),
        number("--images", "4"),
        number("--layers", "3"),
    );
    let (min, max) = (
        number("--min-bytes", "4096") as f64,
        number("--max-bytes", "33554432") as f64,
    );
    let seed = number("--seed", "1");
    let mut rng = XorShift::new(seed);
    let mut jobs = Vec::new();
    for r in 0..repos {
        for i in 0..images {
            let sizes: Vec<usize> = (0..layers)
                .map(|_| {
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    (min * (max / min).powf(u)) as usize
                })
                .collect();
            jobs.push((
                format!("bench/r{r:04}"),
                format!("v{i}"),
                sizes,
                rng.next_u64(),
            ));
        }
    }
    let pusher = &pusher;
    let totals: Vec<(u64, u64)> = futures_util::stream::iter(jobs)
        .map(|(repo, tag, sizes, seed)| push_image(pusher, repo, tag, sizes, seed))
        .buffer_unordered(8)
        .collect()
        .await;
    let (blobs, bytes) = totals
        .iter()
        .fold((0, 0), |(b, n), (cb, cn)| (b + cb, n + cn));
    println!("blobs={blobs} bytes={bytes}");
}
