//! `ui-bench`: fills registries with N image repositories (and oci-storage with some charts),
//! then times the web interface's pages against the reference's repository listing
//! (Distribution has no web interface; its `_catalog` is the least a page listing repositories
//! must do). Prints a Markdown table; numbers are reported, never asserted.
//! `scripts/bench-ui.sh` starts the servers and runs it.
//!
//! Usage: ui-bench --ours URL --reference URL --user U --password P [--repositories 2000]
//!        [--charts 200] [--rounds 20]

use oci_storage_tests::bench::arg;
use std::io::Write;
use std::time::Instant;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A minimal chart archive with a keyword.
fn chart(name: &str) -> Vec<u8> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\nversion: 1.0.0\ndescription: Benchmark chart\nkeywords: [bench]\n"
    );
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(chart_yaml.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("{name}/Chart.yaml"),
            chart_yaml.as_bytes(),
        )
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

struct Pusher {
    http: reqwest::Client,
    user: String,
    password: String,
}

impl Pusher {
    /// Pushes a blob in one POST; if the registry opens a session instead (Distribution does),
    /// finishes it with one PUT.
    async fn blob(&self, base: &str, repo: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let resp = self
            .http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .basic_auth(&self.user, Some(&self.password))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        if resp.status() == 202 {
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            let separator = if url.contains('?') { '&' } else { '?' };
            let resp = self
                .http
                .put(format!("{url}{separator}digest={d}"))
                .basic_auth(&self.user, Some(&self.password))
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "blob upload to {base}/{repo}");
        } else {
            assert_eq!(resp.status(), 201, "blob push to {base}/{repo}");
        }
        d
    }

    /// An image (or, with a chart config, a chart) of one layer.
    async fn artifact(
        &self,
        base: &str,
        repo: &str,
        config: &[u8],
        config_type: &str,
        layer: &[u8],
        layer_type: &str,
    ) {
        let config_digest = self.blob(base, repo, config).await;
        let layer_digest = self.blob(base, repo, layer).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": config_type, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": layer_type, "digest": layer_digest, "size": layer.len() }],
        });
        let resp = self
            .http
            .put(format!("{base}/v2/{repo}/manifests/1.0.0"))
            .basic_auth(&self.user, Some(&self.password))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "manifest push to {base}/{repo}");
    }
}

/// Milliseconds of each of `rounds` GETs of `url` (the body read whole).
async fn time_get(http: &reqwest::Client, url: &str, rounds: usize) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let resp = http.get(url).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.bytes().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Milliseconds of each of `rounds` walks of `_catalog` in pages of 1,000 (Distribution's most),
/// following the Link headers.
async fn time_catalog(http: &reqwest::Client, base: &str, rounds: usize) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut next = Some("/v2/_catalog?n=1000".to_owned());
        while let Some(path) = next.take() {
            let resp = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            next = resp
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_owned()));
            resp.bytes().await.unwrap();
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ours = arg("--ours", "http://127.0.0.1:3030");
    let reference = arg("--reference", "");
    let repositories: usize = arg("--repositories", "2000").parse().unwrap();
    let charts: usize = arg("--charts", "200").parse().unwrap();
    let rounds: usize = arg("--rounds", "20").parse().unwrap();
    let pusher = Pusher {
        http: reqwest::Client::new(),
        user: arg("--user", "admin"),
        password: arg("--password", ""),
    };
    let pusher = &pusher;

    eprintln!("pushing {repositories} image repositories to both, {charts} charts to oci-storage");
    let started = Instant::now();
    let targets: Vec<&str> = [ours.as_str(), reference.as_str()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    let image_config = br#"{"architecture":"amd64","os":"linux"}"#;
    futures_util::stream::iter(
        (0..repositories).flat_map(|i| targets.iter().map(move |t| (i, *t))),
    )
    .for_each_concurrent(8, |(i, base)| async move {
        let layer = format!("layer of repository {i}").repeat(1 + i % 50);
        pusher
            .artifact(
                base,
                &format!("team-{}/app-{i:05}", i % 20),
                image_config,
                "application/vnd.oci.image.config.v1+json",
                layer.as_bytes(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
            .await;
    })
    .await;
    futures_util::stream::iter(0..charts)
        .for_each_concurrent(8, |i| {
            let ours = &ours;
            async move {
                let name = format!("chart{i:04}");
                pusher
                    .artifact(
                        ours,
                        &format!("charts/{name}"),
                        br#"{"name":"bench"}"#,
                        "application/vnd.cncf.helm.config.v1+json",
                        &chart(&name),
                        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    )
                    .await;
            }
        })
        .await;
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());

    let http = reqwest::Client::new();
    let total = repositories + charts;
    let mut rows: Vec<(String, String)> = Vec::new();
    let first = time_get(&http, &format!("{ours}/"), 1).await[0];
    rows.push((
        format!("home page, first load ({total} repositories, sizes measured)"),
        format!("{first:.1} ms"),
    ));
    for (what, path) in [
        ("home page, 50 of them", "/".to_owned()),
        (
            "home page sorted by size (with the plot)",
            "/?sort=size".to_owned(),
        ),
        (
            "search as you type (`partial=1&q=app-01`)",
            "/?partial=1&q=app-01".to_owned(),
        ),
        (
            "keyword filter (`keyword=bench`)",
            "/?keyword=bench".to_owned(),
        ),
        (
            "chart page",
            "/ui/chart?repository=charts%2Fchart0001".to_owned(),
        ),
        (
            "image page",
            "/ui/image?repository=team-1%2Fapp-00001".to_owned(),
        ),
    ] {
        let times = time_get(&http, &format!("{ours}{path}"), rounds).await;
        rows.push((what.to_owned(), format!("{:.1} ms", median(&times))));
    }
    let times = time_catalog(&http, &ours, rounds).await;
    rows.push((
        format!("oci-storage `_catalog` of its {total}, pages of 1,000"),
        format!("{:.1} ms", median(&times)),
    ));
    if !reference.is_empty() {
        let times = time_catalog(&http, &reference, rounds).await;
        rows.push((
            format!("reference: Distribution `_catalog` of its {repositories}, pages of 1,000"),
            format!("{:.1} ms", median(&times)),
        ));
    }
    println!("| oci-storage web interface | median of {rounds} |");
    println!("|---|---|");
    for (what, value) in rows {
        println!("| {what} | {value} |");
    }
}
