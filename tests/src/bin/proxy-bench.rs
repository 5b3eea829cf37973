//! `proxy-bench`: pull-through proxy figures against a direct pull from the same upstream, in
//! one run: a blob pushed upstream is pulled directly, then through the proxy cold (time to
//! first byte, throughput) and warm; a manifest is fetched through the proxy with the tag
//! cached. Numbers are reported, never asserted. `scripts/bench-proxy.sh` starts the servers.
//!
//! Usage: proxy-bench --upstream URL --proxy URL --user U --password P [--blob-mib 1024]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci_storage_tests::bench::{MIB, arg, blob_digest, blob_stream};

/// GETs a URL; answers (time to first byte, total time, bytes).
async fn pull(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> (Duration, Duration, u64) {
    let started = Instant::now();
    let resp = http
        .get(url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("GET");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let mut body = resp.bytes_stream();
    let mut first = None;
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("body");
        if first.is_none() && !chunk.is_empty() {
            first = Some(started.elapsed());
        }
        n += chunk.len() as u64;
    }
    (first.unwrap_or_default(), started.elapsed(), n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let upstream = arg("--upstream", "http://127.0.0.1:5000");
    let proxy = arg("--proxy", "http://127.0.0.1:3030");
    let user = arg("--user", "admin");
    let password = arg("--password", "");
    let mib: u64 = arg("--blob-mib", "1024").parse().unwrap();
    let http = reqwest::Client::new();

    eprintln!("pushing a {mib} MiB blob upstream");
    let digest = blob_digest(9, mib);
    let resp = http
        .post(format!("{upstream}/v2/library/big/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{upstream}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = http
        .put(format!("{location}{sep}digest={digest}"))
        .header("content-length", mib * MIB)
        .body(reqwest::Body::wrap_stream(blob_stream(9, 0, mib)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let mibps = |bytes: u64, d: Duration| bytes as f64 / MIB as f64 / d.as_secs_f64();
    let direct = pull(
        &http,
        &format!("{upstream}/v2/library/big/blobs/{digest}"),
        &user,
        &password,
    )
    .await;
    let path = format!("{proxy}/v2/proxy/docker.io/library/big/blobs/{digest}");
    let cold = pull(&http, &path, &user, &password).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the cache write settles
    let warm = pull(&http, &path, &user, &password).await;
    for (_, _, n) in [direct, cold, warm] {
        assert_eq!(n, mib * MIB);
    }
    println!("\n| pull of a {mib} MiB blob | time to first byte | throughput |");
    println!("|---|---|---|");
    for (name, (first, total, n)) in [
        ("direct from upstream", direct),
        ("through the proxy, cold", cold),
        ("through the proxy, warm", warm),
    ] {
        println!(
            "| {name} | {:.1} ms | {:.0} MiB/s |",
            first.as_secs_f64() * 1000.0,
            mibps(n, total)
        );
    }
}
