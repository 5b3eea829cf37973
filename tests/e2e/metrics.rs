//! `/metrics` scraped by a real Prometheus: CNCF Distribution's metric names over real
//! traffic, answered by PromQL; and who may read them, where.

use oci_storage_tests::object_stores::free_port;
use oci_storage_tests::prometheus::{Job, Prometheus};
use oci_storage_tests::{PASSWORD, Server, USER, XorShift, config_with_storage, sha256};
use reqwest::Method;

use crate::protocol::Reg;

const FS: &str = "storage:\n  type: fs\n  fs:\n    path: data\n";

/// Pushes, pulls, misses and failed logins, then checks what Prometheus scraped.
#[test]
fn prometheus_scrapes_request_storage_and_registry_metrics() {
    // Two failed logins per user are allowed (then 429), so that a third is throttled.
    let reg = Reg::with(Server::start_with(
        crate::BIN,
        &(config_with_storage(FS) + "  loginLimits: {perUser: 2}\n"),
        &[],
    ));
    let prometheus = Prometheus::start(&[Job {
        name: "oci-storage",
        target: &reg.server.host,
        basic_auth: None,
    }]);

    let mut rng = XorShift::new(11);
    let mut content_bytes = 2; // the shared config, `{}`
    let mut layer = Vec::new();
    for i in 0..3 {
        layer = (0..20_000 + i * 1000)
            .map(|_| rng.next_u64() as u8)
            .collect();
        let (manifest, _) = reg.push_image("team/app", &format!("v{i}"), &layer);
        content_bytes += layer.len() + manifest.len();
    }
    for _ in 0..5 {
        assert_eq!(reg.get("/v2/team/app/manifests/v1").status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(reg.get("/v2/team/app/manifests/nope").status(), 404);
    }
    let blob = format!("/v2/team/app/blobs/{}", sha256(&layer));
    assert_eq!(reg.get(&blob).bytes().unwrap().len(), layer.len());
    let _open = reg.start_upload("team/app");
    // Guesses at another user's password (the test user is trusted from this address).
    for expected in [401, 401, 429] {
        let wrong = reg
            .anon(Method::GET, "/v2/")
            .basic_auth("mallory", Some("not-the-password"))
            .send()
            .unwrap();
        assert_eq!(wrong.status(), expected);
    }

    prometheus.wait_for_fresh_scrapes();
    let value = |q: &str| prometheus.value(q);
    assert_eq!(value("up{job=\"oci-storage\"}"), 1.0);
    let requests =
        |selector: &str| value(&format!("sum(registry_http_requests_total{{{selector}}})"));
    assert_eq!(
        requests("handler=\"manifest\",method=\"PUT\",code=\"201\""),
        3.0
    );
    assert_eq!(
        requests("handler=\"manifest\",method=\"GET\",code=\"200\""),
        5.0
    );
    assert_eq!(requests("handler=\"manifest\",code=\"404\""), 2.0);
    assert_eq!(requests("handler=\"base\",code=\"401\""), 2.0);
    assert_eq!(requests("handler=\"base\",code=\"429\""), 1.0);
    assert_eq!(
        requests("handler=\"blob_upload\",method=\"POST\",code=\"202\""),
        1.0
    );
    assert_eq!(
        value("sum(registry_http_response_size_bytes_sum{handler=\"blob\"})"),
        layer.len() as f64,
        "a blob GET's body, counted"
    );
    assert_eq!(
        value("sum(registry_http_in_flight_requests{handler=\"manifest\"})"),
        0.0
    );
    let p99 = value(
        "histogram_quantile(0.99, sum by (le) (registry_http_request_duration_seconds_bucket{handler=\"manifest\"}))",
    );
    assert!(p99 > 0.0 && p99 <= 60.0, "p99 {p99}");
    assert!(
        value("sum(registry_storage_action_seconds_count{driver=\"fs\",action=\"put\"})") >= 9.0,
        "every blob, manifest and tag written is a timed storage put"
    );
    assert_eq!(value("oci_storage_login_failures_total"), 2.0);
    assert_eq!(value("oci_storage_login_throttled_total"), 1.0);
    assert_eq!(value("oci_storage_repositories"), 1.0);
    assert_eq!(value("oci_storage_storage_bytes"), content_bytes as f64);
    assert_eq!(value("oci_storage_uploads_in_progress"), 1.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") > 0.0);
}

/// `metrics.access: admins`: a 401 challenge without credentials, 403 for other users, and
/// Prometheus scraping with an administrator's password; `metrics.listen` moves `/metrics`
/// to an address of its own; `enabled: false` removes it.
#[test]
fn metrics_access_and_address() {
    let config = format!(
        "{FS}auth:\n  users:\n    - {{username: {USER}, password: {PASSWORD}}}\n    - {{username: bob, password: {PASSWORD}}}\nmetrics:\n  access: admins\n"
    );
    let server = Server::start_with(crate::BIN, &config, &[]);
    let client = server.client();
    let get = |user: Option<&str>| {
        let mut req = client.get(server.at("/metrics"));
        if let Some(user) = user {
            req = req.basic_auth(user, Some(PASSWORD));
        }
        req.send().unwrap()
    };
    let anonymous = get(None);
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(get(Some("bob")).status(), 403);
    let admin = get(Some(USER));
    assert_eq!(admin.status(), 200);
    assert!(
        admin.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        admin
            .text()
            .unwrap()
            .contains("registry_http_requests_total")
    );
    let prometheus = Prometheus::start(&[Job {
        name: "admin-only",
        target: &server.host,
        basic_auth: Some((USER, PASSWORD)),
    }]);
    prometheus.wait_for_fresh_scrapes();
    assert_eq!(prometheus.value("up"), 1.0);

    let port = free_port();
    let separate = Server::start_with(
        crate::BIN,
        &format!(
            "{}metrics:\n  listen: 127.0.0.1:{port}\n",
            config_with_storage(FS)
        ),
        &[],
    );
    let resp = client.get(separate.at("/metrics")).send().unwrap();
    assert_eq!(resp.status(), 404, "not on the service port");
    let resp = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().unwrap().contains("process_cpu_seconds_total"));

    let off = Server::start_with(
        crate::BIN,
        &format!("{}metrics:\n  enabled: false\n", config_with_storage(FS)),
        &[],
    );
    let resp = client.get(off.at("/metrics")).send().unwrap();
    assert_eq!(resp.status(), 404);
}
