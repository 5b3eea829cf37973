//! `chart-bench`: fills a registry with N chart versions through the ChartMuseum API, then
//! measures `GET /index.yaml` (first render, repeated, and conditional with If-None-Match) and
//! chart search through the REST API. Prints a Markdown table; numbers are reported, never
//! asserted. `scripts/bench-charts.sh` starts the server and runs it.
//!
//! Usage: chart-bench --url URL --user U --password P [--versions 10000] [--charts 500]

use oci_storage_tests::bench::arg;
use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// A minimal valid chart archive.
fn chart(name: &str, version: &str) -> Vec<u8> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"1.0\"\ndescription: Benchmark chart {name}\nkeywords: [bench, k{}]\n",
        name.len() % 7
    );
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in [
        (format!("{name}/Chart.yaml"), chart_yaml.into_bytes()),
        (format!("{name}/values.yaml"), b"replicaCount: 1\n".to_vec()),
        (
            format!("{name}/templates/cm.yaml"),
            b"kind: ConfigMap\n".to_vec(),
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, content.as_slice())
            .unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = arg("--url", "http://127.0.0.1:3030");
    let user = arg("--user", "admin");
    let password = arg("--password", "");
    let versions: usize = arg("--versions", "10000").parse().unwrap();
    let charts: usize = arg("--charts", "500").parse().unwrap();
    let http = reqwest::Client::new();

    eprintln!("uploading {versions} chart versions ({charts} charts)");
    let started = Instant::now();
    let uploads = futures_util::stream::iter(0..versions).map(|i| {
        let (http, url, user, password) =
            (http.clone(), url.clone(), user.clone(), password.clone());
        async move {
            let name = format!("chart-{:04}", i % charts);
            let version = format!("1.{}.0", i / charts);
            let resp = http
                .post(format!("{url}/api/charts"))
                .basic_auth(user, Some(password))
                .body(chart(&name, &version))
                .send()
                .await
                .expect("upload");
            assert_eq!(resp.status(), 201, "upload {name} {version}");
        }
    });
    uploads.buffer_unordered(8).collect::<Vec<()>>().await;
    let upload_rate = versions as f64 / started.elapsed().as_secs_f64();

    let get = |path: &str, etag: Option<String>| {
        let mut req = http
            .get(format!("{url}{path}"))
            .basic_auth(&user, Some(&password));
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        async move {
            let started = Instant::now();
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let etag = resp
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp.bytes().await.expect("body");
            (started.elapsed(), status, etag, body.len())
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    let (first, status, etag, size) = get("/index.yaml", None).await;
    assert_eq!(status, 200);
    let mut warm = Vec::new();
    for _ in 0..20 {
        let (d, status, _, _) = get("/index.yaml", None).await;
        assert_eq!(status, 200);
        warm.push(ms(d));
    }
    warm.sort_by(f64::total_cmp);
    let mut conditional = Vec::new();
    for _ in 0..20 {
        let (d, status, _, _) = get("/index.yaml", etag.clone()).await;
        assert_eq!(status, 304);
        conditional.push(ms(d));
    }
    conditional.sort_by(f64::total_cmp);
    let mut search = Vec::new();
    for q in ["chart-01", "bench", "chart-0499", "k3", "nothing-matches"] {
        for _ in 0..4 {
            let (d, status, _, _) = get(
                &format!("/api/v1/charts?q={q}&latest=false&perPage=100"),
                None,
            )
            .await;
            assert_eq!(status, 200);
            search.push(ms(d));
        }
    }
    search.sort_by(f64::total_cmp);

    println!("\n| measure ({versions} chart versions, {charts} charts) | result |");
    println!("|---|---|");
    println!("| ChartMuseum uploads (8 concurrent) | {upload_rate:.0} versions/s |");
    println!("| index.yaml size | {:.1} MiB |", size as f64 / 1048576.0);
    println!("| index.yaml, first render | {:.1} ms |", ms(first));
    println!(
        "| index.yaml, repeated (median / p90) | {:.1} / {:.1} ms |",
        percentile(&warm, 0.5),
        percentile(&warm, 0.9)
    );
    println!(
        "| index.yaml, If-None-Match → 304 (median) | {:.2} ms |",
        percentile(&conditional, 0.5)
    );
    println!(
        "| search /api/v1/charts (median / p90) | {:.1} / {:.1} ms |",
        percentile(&search, 0.5),
        percentile(&search, 0.9)
    );
}
