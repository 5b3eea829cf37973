//! `soak`: a steady mixed load against one registry for a long time, watching its memory.
//! Clients loop over the operations a busy cluster sends: manifest GETs by tag, ranged blob
//! GETs, whole small-blob GETs, small pushes (blob + manifest + tag) and listings (tags,
//! catalog). Every answer is checked (status, and the bytes of every blob read against what
//! was pushed). Every `--report-every` seconds it prints the server's RSS and the rates; at
//! the end, per operation: count, errors, p50/p99/max, and the RSS over time. Not a test:
//! numbers are reported, never asserted. `scripts/soak.sh` starts the server and runs it.
//!
//! Usage: soak --url URL --pid PID [--clients 32] [--seconds 600] [--report-every 30]
//!        [--user U --password P] [--ops manifest,range,blob,push,tags,catalog]
//! `--ops` keeps only some operations of the mix, to see which one holds memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::Digest as _;

use oci_storage_tests::XorShift;
use oci_storage_tests::bench::{MIB, arg, blob_digest, blob_stream, block};

/// Repositories read from; each holds a few tags of one image and a big layer for ranges.
const REPOS: usize = 4;
const TAGS_PER_REPO: usize = 20;
/// The big layer's size: ranged reads land anywhere in it.
const BIG_MIB: u64 = 16;
/// Tags the pushing clients cycle through, so that storage stays bounded over a long soak.
const PUSH_TAGS: u64 = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Manifest,
    RangedBlob,
    SmallBlob,
    Push,
    TagList,
    Catalog,
}

const OPS: [Op; 6] = [
    Op::Manifest,
    Op::RangedBlob,
    Op::SmallBlob,
    Op::Push,
    Op::TagList,
    Op::Catalog,
];

impl Op {
    /// The name `--ops` takes.
    fn key(self) -> &'static str {
        match self {
            Op::Manifest => "manifest",
            Op::RangedBlob => "range",
            Op::SmallBlob => "blob",
            Op::Push => "push",
            Op::TagList => "tags",
            Op::Catalog => "catalog",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Manifest => "manifest GET (by tag)",
            Op::RangedBlob => "blob GET, 4 KiB–1 MiB range",
            Op::SmallBlob => "blob GET, whole 64 KiB",
            Op::Push => "push (blob + manifest + tag)",
            Op::TagList => "tags/list",
            Op::Catalog => "_catalog",
        }
    }

    /// The mix, out of 100: mostly pulls, as on a cluster.
    fn pick(roll: u64) -> Op {
        match roll % 100 {
            0..45 => Op::Manifest,
            45..65 => Op::RangedBlob,
            65..75 => Op::SmallBlob,
            75..85 => Op::Push,
            85..95 => Op::TagList,
            _ => Op::Catalog,
        }
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

/// What the readers read: the layers every repository holds.
struct Fixture {
    big_digest: String,
    small: Bytes,
    small_digest: String,
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Client {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .basic_auth(&self.user, Some(&self.password))
    }

    async fn expect(&self, req: reqwest::RequestBuilder, status: u16) -> Result<Bytes, String> {
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let got = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if got != status {
            return Err(format!(
                "status {got}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        Ok(body)
    }

    async fn push_blob(&self, repo: &str, body: reqwest::Body, digest: &str) -> Result<(), String> {
        let resp = self
            .req(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 202 {
            return Err(format!("start upload: {}", resp.status()));
        }
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location.replacen(&self.url, "", 1)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        self.expect(
            self.req(
                reqwest::Method::PUT,
                &format!("{location}{sep}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(body),
            201,
        )
        .await
        .map(drop)
    }

    async fn push_manifest(
        &self,
        repo: &str,
        tag: &str,
        layers: &[(String, u64)],
    ) -> Result<(), String> {
        let config = b"{}";
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(config), "size": 2},
            "layers": layers.iter().map(|(d, size)| serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size,
            })).collect::<Vec<_>>(),
        });
        self.expect(
            self.req(reqwest::Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(serde_json::to_vec(&manifest).unwrap()),
            201,
        )
        .await
        .map(drop)
    }

    /// The readers' content: in each repository, the config, a small and a big layer, and
    /// TAGS_PER_REPO tags of manifests naming them.
    async fn setup(&self) -> Fixture {
        let small: Bytes = block(7, 0).slice(..64 * 1024);
        let fixture = Fixture {
            big_digest: blob_digest(1, BIG_MIB),
            small_digest: sha(&small),
            small,
        };
        for r in 0..REPOS {
            let repo = format!("soak/app-{r}");
            self.push_blob(&repo, b"{}".to_vec().into(), &sha(b"{}"))
                .await
                .expect("config");
            self.push_blob(&repo, fixture.small.clone().into(), &fixture.small_digest)
                .await
                .expect("small layer");
            self.push_blob(
                &repo,
                reqwest::Body::wrap_stream(blob_stream(1, 0, BIG_MIB)),
                &fixture.big_digest,
            )
            .await
            .expect("big layer");
            for t in 0..TAGS_PER_REPO {
                let layers = [
                    (fixture.small_digest.clone(), fixture.small.len() as u64),
                    (fixture.big_digest.clone(), BIG_MIB * MIB),
                ];
                // Distinct manifests per tag: an annotation-free way is a layer order change.
                let layers: Vec<_> = if t % 2 == 0 {
                    layers.to_vec()
                } else {
                    layers.iter().rev().cloned().collect()
                };
                self.push_manifest(&repo, &format!("v{t}"), &layers)
                    .await
                    .expect("manifest");
            }
        }
        fixture
    }

    async fn run(
        &self,
        op: Op,
        rng: &mut XorShift,
        fixture: &Fixture,
        client: usize,
        round: u64,
    ) -> Result<(), String> {
        let repo = format!("soak/app-{}", rng.next_u64() as usize % REPOS);
        match op {
            Op::Manifest => {
                let tag = rng.next_u64() as usize % TAGS_PER_REPO;
                let body = self
                    .expect(
                        self.req(
                            reqwest::Method::GET,
                            &format!("/v2/{repo}/manifests/v{tag}"),
                        )
                        .header("accept", "application/vnd.oci.image.manifest.v1+json"),
                        200,
                    )
                    .await?;
                if !body.starts_with(b"{") {
                    return Err("manifest is not JSON".into());
                }
            }
            Op::RangedBlob => {
                let len = 4096 + rng.next_u64() % (MIB - 4096);
                let start = rng.next_u64() % (BIG_MIB * MIB - len);
                let body = self
                    .expect(
                        self.req(
                            reqwest::Method::GET,
                            &format!("/v2/{repo}/blobs/{}", fixture.big_digest),
                        )
                        .header("range", format!("bytes={start}-{}", start + len - 1)),
                        206,
                    )
                    .await?;
                if body.len() as u64 != len || !matches_big(start, &body) {
                    return Err(format!("range {start}+{len}: wrong bytes"));
                }
            }
            Op::SmallBlob => {
                let body = self
                    .expect(
                        self.req(
                            reqwest::Method::GET,
                            &format!("/v2/{repo}/blobs/{}", fixture.small_digest),
                        ),
                        200,
                    )
                    .await?;
                if body != fixture.small {
                    return Err("small blob: wrong bytes".into());
                }
            }
            Op::Push => {
                let repo = format!("soak/push-{}", client % 8);
                let layer = format!("layer of client {client} round {round}").into_bytes();
                let digest = sha(&layer);
                let size = layer.len() as u64;
                // As clients do: HEAD first, push only what is missing.
                let config = self
                    .req(
                        reqwest::Method::HEAD,
                        &format!("/v2/{repo}/blobs/{}", sha(b"{}")),
                    )
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if config.status() != 200 {
                    self.push_blob(&repo, b"{}".to_vec().into(), &sha(b"{}"))
                        .await?;
                }
                self.push_blob(&repo, layer.into(), &digest).await?;
                self.push_manifest(
                    &repo,
                    &format!("c{client}-{}", round % PUSH_TAGS),
                    &[(digest, size)],
                )
                .await?;
            }
            Op::TagList => {
                let body = self
                    .expect(
                        self.req(reqwest::Method::GET, &format!("/v2/{repo}/tags/list")),
                        200,
                    )
                    .await?;
                let list: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                if list["tags"].as_array().map(Vec::len) != Some(TAGS_PER_REPO) {
                    return Err("tags/list: wrong tag count".into());
                }
            }
            Op::Catalog => {
                self.expect(self.req(reqwest::Method::GET, "/v2/_catalog?n=100"), 200)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Whether `bytes` are the big layer's bytes from `start` on.
fn matches_big(start: u64, bytes: &[u8]) -> bool {
    let mut at = start;
    let mut rest = bytes;
    while !rest.is_empty() {
        let block = block(1, at / MIB);
        let from = (at % MIB) as usize;
        let n = rest.len().min(block.len() - from);
        if rest[..n] != block[from..from + n] {
            return false;
        }
        rest = &rest[n..];
        at += n as u64;
    }
    true
}

/// A field of `/proc/PID/status` (NaN once the process is gone).
fn proc_status(pid: u32, field: &str) -> f64 {
    oci_storage_tests::proc_status(pid, field).map_or(f64::NAN, |v| v as f64)
}

fn rss_mib(pid: u32) -> f64 {
    proc_status(pid, "VmRSS") / 1024.0
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let url = arg("--url", "http://127.0.0.1:3030")
        .trim_end_matches('/')
        .to_owned();
    let pid: u32 = arg("--pid", "0").parse().expect("--pid");
    let clients: usize = arg("--clients", "32").parse().expect("--clients");
    let seconds: u64 = arg("--seconds", "600").parse().expect("--seconds");
    let every: u64 = arg("--report-every", "30").parse().expect("--report-every");
    let only = arg("--ops", "manifest,range,blob,push,tags,catalog");
    let allowed: Arc<Vec<Op>> = Arc::new(
        only.split(',')
            .map(|k| {
                *OPS.iter()
                    .find(|o| o.key() == k)
                    .unwrap_or_else(|| panic!("unknown operation {k} in --ops"))
            })
            .collect(),
    );
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap(),
        url,
        user: arg("--user", "admin"),
        password: arg("--password", ""),
    });

    let rss_start = rss_mib(pid);
    let fixture = Arc::new(client.setup().await);
    let rss_loaded = rss_mib(pid);
    println!(
        "soak: {clients} clients for {seconds} s; RSS at start {rss_start:.1} MiB, after setup {rss_loaded:.1} MiB"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (client, fixture, stop, done, failed, allowed) = (
                client.clone(),
                fixture.clone(),
                stop.clone(),
                done.clone(),
                failed.clone(),
                allowed.clone(),
            );
            tokio::spawn(async move {
                let mut rng = XorShift::new(c as u64 + 1);
                let mut tallies: Vec<Tally> = OPS.iter().map(|_| Tally::default()).collect();
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    let op = Op::pick(rng.next_u64());
                    if !allowed.contains(&op) {
                        continue;
                    }
                    let started = Instant::now();
                    let result = client.run(op, &mut rng, &fixture, c, round).await;
                    let tally = &mut tallies[OPS.iter().position(|o| *o == op).unwrap()];
                    tally
                        .latencies_us
                        .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = result {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                    round += 1;
                }
                tallies
            })
        })
        .collect();

    let began = Instant::now();
    let mut timeline = vec![(0u64, rss_loaded)];
    let mut last_done = 0;
    println!(
        "\n| time (s) | RSS (MiB) | threads | requests/s | errors so far |\n|---:|---:|---:|---:|---:|"
    );
    for tick in 1..=seconds.div_ceil(every) {
        let until = Duration::from_secs((tick * every).min(seconds));
        tokio::time::sleep(until.saturating_sub(began.elapsed())).await;
        let now_done = done.load(Ordering::Relaxed);
        let rss = rss_mib(pid);
        let secs = until.as_secs();
        timeline.push((secs, rss));
        println!(
            "| {secs} | {rss:.1} | {} | {:.0} | {} |",
            proc_status(pid, "Threads"),
            (now_done - last_done) as f64 / (secs - timeline[timeline.len() - 2].0) as f64,
            failed.load(Ordering::Relaxed)
        );
        last_done = now_done;
    }
    stop.store(true, Ordering::Relaxed);
    let mut merged: Vec<Tally> = OPS.iter().map(|_| Tally::default()).collect();
    for w in workers {
        for (into, from) in merged.iter_mut().zip(w.await.expect("client task")) {
            into.latencies_us.extend(from.latencies_us);
            into.errors += from.errors;
            if into.first_error.is_none() {
                into.first_error = from.first_error;
            }
        }
    }

    println!(
        "\n| operation | count | errors | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    for (op, t) in OPS.iter().zip(&mut merged) {
        t.latencies_us.sort_unstable();
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.1} |",
            op.name(),
            t.latencies_us.len(),
            t.errors,
            percentile(&t.latencies_us, 0.5),
            percentile(&t.latencies_us, 0.99),
            percentile(&t.latencies_us, 1.0)
        );
    }
    for (op, t) in OPS.iter().zip(&merged) {
        if let Some(e) = &t.first_error {
            println!("first error in {}: {e}", op.name());
        }
    }
    let peak = timeline.iter().map(|(_, r)| *r).fold(f64::NAN, f64::max);
    let (_, half) = timeline[timeline.len() / 2];
    let (_, end) = *timeline.last().unwrap();
    println!(
        "\nRSS (MiB): start {rss_start:.1}, after setup {rss_loaded:.1}, peak {peak:.1}, half-way {half:.1}, end {end:.1} (second half drift {:+.1})",
        end - half
    );
    let total_errors: u64 = merged.iter().map(|t| t.errors).sum();
    println!("errors: {total_errors}");
}
