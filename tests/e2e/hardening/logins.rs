//! Login floods: password checks are bounded in number, counted before they run, and leave
//! memory where it was.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use oci_storage_tests::{PASSWORD, Server, USER};

/// 500 concurrent logins of unknown users (each would run the 19 MiB argon2id dummy check),
/// from 125 addresses: most are turned away at once with 429, the process never holds more
/// than a few checks' memory, and afterwards it is back where it started.
#[test]
fn concurrent_bad_logins_keep_memory_flat() {
    let server = Server::start(crate::BIN);
    let client = server.client();
    let ok = client
        .get(server.at("/v2/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let before = server.rss_kib();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let statuses = runtime.block_on(async {
        let attempts = (0..500).map(|i| {
            let ip: IpAddr = format!("127.0.10.{}", 1 + i % 125).parse().unwrap();
            let client = reqwest::Client::builder()
                .local_address(ip)
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap();
            let url = server.at("/v2/");
            async move {
                let resp = client
                    .get(url)
                    .basic_auth(format!("nobody-{i}"), Some("wrong password"))
                    .send()
                    .await
                    .expect("an answer, not a dropped connection");
                let retry = resp.headers().contains_key("retry-after");
                (resp.status().as_u16(), retry)
            }
        });
        futures_util::future::join_all(attempts).await
    });
    let refused = statuses.iter().filter(|(s, _)| *s == 429).count();
    let checked = statuses.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(refused + checked, 500, "only 401 and 429: {statuses:?}");
    assert!(
        statuses.iter().all(|(s, retry)| *s != 429 || *retry),
        "every 429 says when to come back"
    );
    assert!(
        refused > 300,
        "most of a flood is turned away before hashing ({checked} checked)"
    );

    let peak = server.peak_rss_kib();
    assert!(
        peak < before + 96 * 1024,
        "a few 19 MiB checks at a time, not hundreds: before {before} KiB, peak {peak} KiB"
    );
    // Freed memory goes back to the system within seconds (the allocator's background decay).
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut after = server.rss_kib();
    while after > before + 4 * 1024 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = server.rss_kib();
    }
    eprintln!("RSS before {before} KiB, peak {peak} KiB, after {after} KiB; {checked} checked");
    assert!(
        after <= before + 4 * 1024,
        "memory goes back: before {before} KiB, after {after} KiB"
    );

    // The flood did not lock out a user at an address that took no part in it.
    let fresh = reqwest::blocking::Client::builder()
        .local_address("127.0.99.1".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = fresh
        .get(server.at("/v2/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}
