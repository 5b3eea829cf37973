//! `registry-bench`: measures registries side by side over HTTP, the same way for each:
//! blob push (monolithic and chunked), blob pull (one and 8 in parallel), manifest GET/HEAD
//! throughput at 64 connections, tags/list latency with 500 tags, and each server's peak RSS.
//! Prints a table with ratios to the first target (the reference). Not a test: numbers are
//! reported, never asserted. `scripts/bench.sh` starts the servers and runs it.
//!
//! Usage: registry-bench --target NAME=URL[,pid=PID] … [--file-url URL] [--blob-mib N]
//!        [--chunk-mib N] [--seconds N] [--write-blob FILE] [--user U --password P]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::Digest as _;

use oci_storage_tests::bench::{MIB, blob_digest, blob_stream, block};
const REPO: &str = "bench/blob";

#[derive(Debug, Clone)]
struct Target {
    name: String,
    url: String,
    pid: Option<u32>,
}

#[derive(Debug)]
struct Args {
    targets: Vec<Target>,
    file_url: Option<String>,
    blob_mib: u64,
    chunk_mib: u64,
    seconds: u64,
    write_blob: Option<String>,
    user: String,
    password: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        targets: Vec::new(),
        file_url: None,
        blob_mib: 1024,
        chunk_mib: 16,
        seconds: 5,
        write_blob: None,
        user: "admin".into(),
        password: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => {
                let v = value();
                let (name, rest) = v.split_once('=').expect("--target NAME=URL[,pid=PID]");
                let mut parts = rest.split(",pid=");
                let url = parts.next().unwrap().trim_end_matches('/').to_owned();
                let pid = parts.next().map(|p| p.parse().expect("pid"));
                args.targets.push(Target {
                    name: name.to_owned(),
                    url,
                    pid,
                });
            }
            "--file-url" => args.file_url = Some(value()),
            "--blob-mib" => args.blob_mib = value().parse().expect("number"),
            "--chunk-mib" => args.chunk_mib = value().parse().expect("number"),
            "--seconds" => args.seconds = value().parse().expect("number"),
            "--write-blob" => args.write_blob = Some(value()),
            "--user" => args.user = value(),
            "--password" => args.password = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

struct Bench {
    http: reqwest::Client,
    user: String,
    password: String,
}

impl Bench {
    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth(&self.user, Some(&self.password))
    }

    fn absolute(base: &str, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{base}{location}")
        }
    }

    async fn start_upload(&self, base: &str) -> String {
        self.start_upload_in(base, REPO).await
    }

    async fn start_upload_in(&self, base: &str, repo: &str) -> String {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("{base}/v2/{repo}/blobs/uploads/"),
            )
            .send()
            .await
            .expect("POST upload");
        assert_eq!(resp.status(), 202, "start upload at {base}");
        Self::absolute(base, resp.headers()["location"].to_str().unwrap())
    }

    fn with_digest(location: &str, digest: &str) -> String {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    }

    /// POST, then one PUT carrying the whole blob.
    async fn push_monolithic(&self, base: &str, seed: u64, mib: u64, digest: &str) -> Duration {
        let started = Instant::now();
        let location = self.start_upload(base).await;
        let resp = self
            .req(reqwest::Method::PUT, &Self::with_digest(&location, digest))
            .header("content-type", "application/octet-stream")
            .header("content-length", mib * MIB)
            .body(reqwest::Body::wrap_stream(blob_stream(seed, 0, mib)))
            .send()
            .await
            .expect("PUT blob");
        assert_eq!(resp.status(), 201, "monolithic push to {base}");
        started.elapsed()
    }

    /// POST, PATCH chunks with Content-Range, PUT to finish.
    async fn push_chunked(
        &self,
        base: &str,
        seed: u64,
        mib: u64,
        chunk: u64,
        digest: &str,
    ) -> Duration {
        let started = Instant::now();
        let mut location = self.start_upload(base).await;
        let mut at = 0;
        while at < mib {
            let end = (at + chunk).min(mib);
            let resp = self
                .req(reqwest::Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .header("content-length", (end - at) * MIB)
                .header("content-range", format!("{}-{}", at * MIB, end * MIB - 1))
                .body(reqwest::Body::wrap_stream(blob_stream(seed, at, end)))
                .send()
                .await
                .expect("PATCH");
            assert_eq!(resp.status(), 202, "chunk to {base}");
            location = Self::absolute(base, resp.headers()["location"].to_str().unwrap());
            at = end;
        }
        let resp = self
            .req(reqwest::Method::PUT, &Self::with_digest(&location, digest))
            .header("content-length", 0)
            .send()
            .await
            .expect("PUT finish");
        assert_eq!(resp.status(), 201, "finish chunked push to {base}");
        started.elapsed()
    }

    /// Downloads a URL, discarding the bytes; answers the byte count.
    async fn pull(&self, url: &str) -> u64 {
        let resp = self
            .req(reqwest::Method::GET, url)
            .send()
            .await
            .expect("GET");
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let mut n = 0;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            n += chunk.expect("body").len() as u64;
        }
        n
    }

    async fn put_manifest(&self, base: &str, repo: &str, reference: &str, manifest: &[u8]) {
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("{base}/v2/{repo}/manifests/{reference}"),
            )
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_vec())
            .send()
            .await
            .expect("PUT manifest");
        assert_eq!(resp.status(), 201, "manifest push to {base}");
    }

    /// Pushes a tiny image (empty config, one layer) and answers its manifest.
    async fn small_image(&self, base: &str, repo: &str) -> Vec<u8> {
        let config = b"{}".to_vec();
        let layer = b"layer".to_vec();
        for blob in [&config, &layer] {
            // POST then PUT: Distribution does not take the single `POST ?digest=` form.
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(blob)));
            let location = self.start_upload_in(base, repo).await;
            let resp = self
                .req(reqwest::Method::PUT, &Self::with_digest(&location, &digest))
                .header("content-type", "application/octet-stream")
                .body(blob.clone())
                .send()
                .await
                .expect("PUT blob");
            assert_eq!(resp.status(), 201, "blob push to {base}");
        }
        let d = |b: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d(&layer), "size": layer.len()}],
        }))
        .unwrap()
    }

    /// Requests per second for `method url` from 64 concurrent connections for `seconds`.
    async fn throughput(&self, method: reqwest::Method, url: &str, seconds: u64) -> f64 {
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let req = self
                    .req(method.clone(), url)
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .build()
                    .unwrap();
                let http = self.http.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let resp = http
                            .execute(req.try_clone().unwrap())
                            .await
                            .expect("request");
                        assert_eq!(resp.status(), 200);
                        let _ = resp.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let started = Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    }
}

fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    oci_storage_tests::proc_status(pid?, "VmHWM").map(|kib| kib as f64 / 1024.0)
}

#[derive(Debug, Default, Clone)]
struct Row {
    push_mono: f64,
    push_chunked: f64,
    pull: f64,
    pull8: f64,
    manifest_get: f64,
    manifest_head: f64,
    tags_ms: f64,
    rss_mib: Option<f64>,
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

async fn measure(b: &Bench, t: &Target, args: &Args, digests: &[String; 2]) -> Row {
    let bytes = args.blob_mib * MIB;
    let mut row = Row::default();
    eprintln!("[{}] monolithic push of {} MiB", t.name, args.blob_mib);
    row.push_mono = mbps(
        bytes,
        b.push_monolithic(&t.url, 1, args.blob_mib, &digests[0])
            .await,
    );
    eprintln!("[{}] chunked push ({} MiB chunks)", t.name, args.chunk_mib);
    row.push_chunked = mbps(
        bytes,
        b.push_chunked(&t.url, 2, args.blob_mib, args.chunk_mib, &digests[1])
            .await,
    );
    let blob_url = format!("{}/v2/{REPO}/blobs/{}", t.url, digests[0]);
    eprintln!("[{}] pull", t.name);
    let started = Instant::now();
    assert_eq!(b.pull(&blob_url).await, bytes);
    row.pull = mbps(bytes, started.elapsed());
    eprintln!("[{}] 8 parallel pulls", t.name);
    row.pull8 = parallel_pulls(b, &blob_url, bytes).await;

    let manifest = b.small_image(&t.url, "bench/small").await;
    b.put_manifest(&t.url, "bench/small", "latest", &manifest)
        .await;
    let manifest_url = format!("{}/v2/bench/small/manifests/latest", t.url);
    eprintln!("[{}] manifest GET/HEAD at 64 connections", t.name);
    row.manifest_get = b
        .throughput(reqwest::Method::GET, &manifest_url, args.seconds)
        .await;
    row.manifest_head = b
        .throughput(reqwest::Method::HEAD, &manifest_url, args.seconds)
        .await;

    eprintln!("[{}] tags/list with 500 tags", t.name);
    for i in 0..500 {
        b.put_manifest(&t.url, "bench/small", &format!("t{i:03}"), &manifest)
            .await;
    }
    let mut times = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let resp = b
            .req(
                reqwest::Method::GET,
                &format!("{}/v2/bench/small/tags/list", t.url),
            )
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["tags"].as_array().unwrap().len() >= 500);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    row.tags_ms = times[times.len() / 2];
    row.rss_mib = peak_rss_mib(t.pid);
    row
}

async fn parallel_pulls(b: &Bench, url: &str, bytes: u64) -> f64 {
    let started = Instant::now();
    let pulls = (0..8).map(|_| b.pull(url));
    let got = futures_util::future::join_all(pulls).await;
    assert!(got.iter().all(|n| *n == bytes));
    mbps(bytes * 8, started.elapsed())
}

fn ratio(x: f64, reference: f64) -> String {
    if reference > 0.0 {
        format!("{:.2}×", x / reference)
    } else {
        "-".into()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    assert!(!args.targets.is_empty(), "give at least one --target");
    let bench = Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .unwrap(),
        user: args.user.clone(),
        password: args.password.clone(),
    };
    eprintln!("hashing the {} MiB test blobs", args.blob_mib);
    let digests = [blob_digest(1, args.blob_mib), blob_digest(2, args.blob_mib)];
    if let Some(path) = &args.write_blob {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for i in 0..args.blob_mib {
            f.write_all(&block(1, i)).unwrap();
        }
    }
    let mut rows = Vec::new();
    for t in &args.targets {
        rows.push((t.name.clone(), measure(&bench, t, &args, &digests).await));
    }
    let file_pull = match &args.file_url {
        Some(url) => {
            let started = Instant::now();
            let n = bench.pull(url).await;
            Some(mbps(n, started.elapsed()))
        }
        None => None,
    };

    let reference = rows[0].1.clone();
    println!(
        "\n| target | push mono MiB/s | push 16 MiB chunks MiB/s | pull MiB/s | 8× pull MiB/s | manifest GET req/s | manifest HEAD req/s | tags/list (500) ms | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, r) in &rows {
        println!(
            "| {name} | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.2} ({}) | {} |",
            r.push_mono,
            ratio(r.push_mono, reference.push_mono),
            r.push_chunked,
            ratio(r.push_chunked, reference.push_chunked),
            r.pull,
            ratio(r.pull, reference.pull),
            r.pull8,
            ratio(r.pull8, reference.pull8),
            r.manifest_get,
            ratio(r.manifest_get, reference.manifest_get),
            r.manifest_head,
            ratio(r.manifest_head, reference.manifest_head),
            r.tags_ms,
            ratio(reference.tags_ms, r.tags_ms),
            r.rss_mib.map_or("-".into(), |m| format!("{m:.1}")),
        );
    }
    if let Some(file) = file_pull {
        println!("\nStatic file server (same blob): {file:.0} MiB/s");
        for (name, r) in &rows {
            println!(
                "- {name}: pull at {:.0}% of the static file server",
                r.pull / file * 100.0
            );
        }
    }
    println!("\nRatios are to the first target (for tags/list: its latency over this one's).");
}
