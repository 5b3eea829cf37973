//! `registry-bench`: measures registries side by side over HTTP, the same way for each:
//! blob push (monolithic and chunked), downloads of the same blob (one stream and 8 in
//! parallel, with this client and with curl, and as consecutive 16 MiB ranges) beside a
//! static file server serving the same bytes, manifest GET/HEAD throughput at 64
//! connections, tags/list latency with 500 tags, and each server's peak RSS per phase.
//! Downloads are measured in rounds that alternate between the servers, and the median of
//! the rounds is reported, so that a slow moment of the machine does not fall on one server
//! only. Prints tables with ratios to the first target (the reference) and to the static
//! server. Not a test: numbers are reported, never asserted. `scripts/bench.sh` starts the
//! servers and runs it.
//!
//! Usage: registry-bench --target NAME=URL[,pid=PID] … [--file-url URL] [--blob-mib N]
//!        [--chunk-mib N] [--seconds N] [--rounds N] [--write-blob FILE]
//!        [--user U --password P]

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
    rounds: usize,
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
        rounds: 3,
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
            "--rounds" => args.rounds = value().parse().expect("number"),
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
        self.pull_range(url, None).await
    }

    /// Downloads a URL or a range of it (`first..=last`), discarding the bytes; answers the
    /// byte count.
    async fn pull_range(&self, url: &str, range: Option<(u64, u64)>) -> u64 {
        let mut req = self.req(reqwest::Method::GET, url);
        if let Some((first, last)) = range {
            req = req.header("range", format!("bytes={first}-{last}"));
        }
        let resp = req.send().await.expect("GET");
        let want = if range.is_some() { 206 } else { 200 };
        assert_eq!(resp.status(), want, "GET {url} {range:?}");
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

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ: /proc counts in hundredths of a second on Linux.
    Some(ticks / 100.0)
}

/// Downloads of one source, MiB/s (medians over the rounds).
#[derive(Debug, Default, Clone)]
struct Downloads {
    pull: f64,
    pull_curl: f64,
    pull8: f64,
    pull8_curl: f64,
    ranged: f64,
    /// The server's CPU seconds per GiB it sent.
    cpu_per_gib: Option<f64>,
}

/// Peak RSS (MiB) of one server in each phase: `VmHWM` reset before the phase, read after.
#[derive(Debug, Default, Clone)]
struct Memory {
    push: Option<f64>,
    pull: Option<f64>,
    manifests: Option<f64>,
}

impl Memory {
    fn whole(&self) -> Option<f64> {
        [self.push, self.pull, self.manifests]
            .into_iter()
            .flatten()
            .reduce(f64::max)
    }
}

/// Starts a phase of a server's peak RSS: resets its `VmHWM` to its current RSS.
fn reset_peak(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    oci_storage_tests::proc_status(pid?, "VmHWM").map(|kib| kib as f64 / 1024.0)
}

#[derive(Debug, Default, Clone)]
struct Row {
    push_mono: f64,
    push_chunked: f64,
    manifest_get: f64,
    manifest_head: f64,
    tags_ms: f64,
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn push(b: &Bench, t: &Target, args: &Args, digests: &[String; 2], row: &mut Row) {
    let bytes = args.blob_mib * MIB;
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
}

async fn manifests(b: &Bench, t: &Target, args: &Args, row: &mut Row) {
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
    row.tags_ms = median(times);
}

/// One round of every download measurement of `source`.
/// `source.url` is the blob's (or the static file's) URL.
async fn download_round(b: &Bench, source: &Target, bytes: u64) -> Downloads {
    eprintln!("[{}] downloads", source.name);
    let cpu_before = cpu_seconds(source.pid);
    let url = &source.url;
    let started = Instant::now();
    assert_eq!(b.pull(url).await, bytes);
    let pull = mbps(bytes, started.elapsed());
    let pull_curl = curl_pulls(b, url, 1, bytes).await;
    let started = Instant::now();
    let got = futures_util::future::join_all((0..8).map(|_| b.pull(url))).await;
    assert!(got.iter().all(|n| *n == bytes));
    let pull8 = mbps(bytes * 8, started.elapsed());
    let pull8_curl = curl_pulls(b, url, 8, bytes).await;
    let started = Instant::now();
    let step = 16 * MIB;
    let mut first = 0;
    while first < bytes {
        let last = (first + step).min(bytes) - 1;
        assert_eq!(
            b.pull_range(url, Some((first, last))).await,
            last - first + 1
        );
        first = last + 1;
    }
    let ranged = mbps(bytes, started.elapsed());
    // 1 + 1 + 8 + 8 + 1 downloads of the blob.
    let gib = 19.0 * bytes as f64 / (1024.0 * MIB as f64);
    let cpu_per_gib = cpu_before
        .zip(cpu_seconds(source.pid))
        .map(|(before, after)| (after - before) / gib);
    Downloads {
        pull,
        pull_curl,
        pull8,
        pull8_curl,
        ranged,
        cpu_per_gib,
    }
}

/// `n` curl processes downloading `url` at once; MiB/s over all of them.
async fn curl_pulls(b: &Bench, url: &str, n: usize, bytes: u64) -> f64 {
    let started = Instant::now();
    let runs = (0..n).map(|_| {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-sSf", "-o", "/dev/null", "-w", "%{size_download}", "-u"])
            .arg(format!("{}:{}", b.user, b.password))
            .arg(url);
        tokio::task::spawn_blocking(move || curl.output())
    });
    for out in futures_util::future::join_all(runs).await {
        let out = out.unwrap().expect("running curl");
        assert!(out.status.success(), "curl {url}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), bytes.to_string());
    }
    mbps(bytes * n as u64, started.elapsed())
}

fn ratio(x: f64, reference: f64) -> String {
    if reference > 0.0 {
        format!("{:.2}×", x / reference)
    } else {
        "-".into()
    }
}

fn mib(x: Option<f64>) -> String {
    x.map_or("-".into(), |m| format!("{m:.1}"))
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
    let bytes = args.blob_mib * MIB;
    let n = args.targets.len();
    let mut rows = vec![Row::default(); n];
    let mut memory = vec![Memory::default(); n];

    for (i, t) in args.targets.iter().enumerate() {
        reset_peak(t.pid);
        push(&bench, t, &args, &digests, &mut rows[i]).await;
        memory[i].push = peak_rss_mib(t.pid);
    }

    // Downloads: the static file first (when given), then the registries, in rounds.
    let mut sources: Vec<Target> = Vec::new();
    if let Some(url) = &args.file_url {
        sources.push(Target {
            name: "nginx (static file)".into(),
            url: url.clone(),
            pid: None,
        });
    }
    let registries = sources.len();
    for t in &args.targets {
        sources.push(Target {
            url: format!("{}/v2/{REPO}/blobs/{}", t.url, digests[0]),
            ..t.clone()
        });
    }
    for t in &args.targets {
        reset_peak(t.pid);
    }
    let mut rounds: Vec<Vec<Downloads>> = vec![Vec::new(); sources.len()];
    for round in 0..args.rounds {
        eprintln!("download round {} of {}", round + 1, args.rounds);
        for (s, source) in sources.iter().enumerate() {
            rounds[s].push(download_round(&bench, source, bytes).await);
        }
    }
    for (i, t) in args.targets.iter().enumerate() {
        memory[i].pull = peak_rss_mib(t.pid);
    }
    let downloads: Vec<Downloads> = rounds
        .iter()
        .map(|r| {
            let of = |f: fn(&Downloads) -> f64| median(r.iter().map(f).collect());
            Downloads {
                pull: of(|d| d.pull),
                pull_curl: of(|d| d.pull_curl),
                pull8: of(|d| d.pull8),
                pull8_curl: of(|d| d.pull8_curl),
                ranged: of(|d| d.ranged),
                cpu_per_gib: r
                    .iter()
                    .map(|d| d.cpu_per_gib)
                    .collect::<Option<Vec<f64>>>()
                    .map(median),
            }
        })
        .collect();

    for (i, t) in args.targets.iter().enumerate() {
        reset_peak(t.pid);
        manifests(&bench, t, &args, &mut rows[i]).await;
        memory[i].manifests = peak_rss_mib(t.pid);
    }

    let reference = rows[0].clone();
    println!(
        "\n| target | push mono MiB/s | push {} MiB chunks MiB/s | manifest GET req/s | manifest HEAD req/s | tags/list (500) ms | peak RSS MiB |",
        args.chunk_mib
    );
    println!("|---|---|---|---|---|---|---|");
    for ((t, r), m) in args.targets.iter().zip(&rows).zip(&memory) {
        println!(
            "| {} | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.0} ({}) | {:.2} ({}) | {} |",
            t.name,
            r.push_mono,
            ratio(r.push_mono, reference.push_mono),
            r.push_chunked,
            ratio(r.push_chunked, reference.push_chunked),
            r.manifest_get,
            ratio(r.manifest_get, reference.manifest_get),
            r.manifest_head,
            ratio(r.manifest_head, reference.manifest_head),
            r.tags_ms,
            ratio(reference.tags_ms, r.tags_ms),
            mib(m.whole()),
        );
    }

    println!(
        "\nDownloads of the same {} MiB blob, MiB/s, median of {} rounds (ratio to the static file server; for 8×, also to {}):\n",
        args.blob_mib, args.rounds, args.targets[0].name
    );
    println!(
        "| source | pull | pull (curl) | 8× pull | 8× pull (curl) | 16 MiB ranges | server CPU s/GiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let base = (registries == 1).then(|| downloads[0].clone());
    let reference = &downloads[registries];
    for (source, d) in sources.iter().zip(&downloads) {
        let vs = |x: f64, f: fn(&Downloads) -> f64| match &base {
            Some(b) => format!("{x:.0} ({})", ratio(x, f(b))),
            None => format!("{x:.0}"),
        };
        let vs8 =
            |x: f64, f: fn(&Downloads) -> f64| format!("{} / {}", vs(x, f), ratio(x, f(reference)));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            source.name,
            vs(d.pull, |d| d.pull),
            vs(d.pull_curl, |d| d.pull_curl),
            vs8(d.pull8, |d| d.pull8),
            vs8(d.pull8_curl, |d| d.pull8_curl),
            vs(d.ranged, |d| d.ranged),
            d.cpu_per_gib.map_or("-".into(), |c| format!("{c:.3}")),
        );
    }

    println!("\nPeak RSS per phase, MiB (VmHWM reset at the start of each phase):\n");
    println!("| target | pushes | downloads | manifests and tags (64 connections) | whole run |");
    println!("|---|---|---|---|---|");
    for (t, m) in args.targets.iter().zip(&memory) {
        println!(
            "| {} | {} | {} | {} | {} |",
            t.name,
            mib(m.push),
            mib(m.pull),
            mib(m.manifests),
            mib(m.whole())
        );
    }
    println!("\nRatios are to the first target (for tags/list: its latency over this one's).");
}
