//! The fs storage keeps nothing but live data: finished and cancelled chunked uploads leave no
//! directory behind, and what a crash leaves is swept at the next start.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::protocol::{Reg, header, with_query};

/// Every file and directory under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn age_by_two_hours(path: &Path) {
    let ok = Command::new("touch")
        .args(["-h", "-d", "2 hours ago"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn chunked_uploads_leave_nothing_and_crash_leftovers_are_swept_at_start() {
    let mut reg = Reg::start();
    for (cancel, chunks) in [(false, 3), (true, 2)] {
        let mut location = reg.start_upload("app");
        let mut all = Vec::new();
        for i in 0..chunks {
            let chunk = vec![i as u8; 1000];
            let start = all.len();
            all.extend_from_slice(&chunk);
            let resp = reg
                .req(Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{}", all.len() - 1))
                .body(chunk)
                .send()
                .unwrap();
            assert_eq!(resp.status(), 202);
            location = header(&resp, "location");
        }
        let resp = if cancel {
            reg.req(Method::DELETE, &location).send().unwrap()
        } else {
            let digest = oci_storage_tests::sha256(&all);
            reg.req(
                Method::PUT,
                &with_query(&location, &format!("digest={digest}")),
            )
            .send()
            .unwrap()
        };
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    let data = reg.server.data_dir();
    let left: Vec<String> = tree(&data)
        .into_iter()
        .filter(|p| p.starts_with("uploads") || p.starts_with(".multipart/"))
        .collect();
    assert!(left.is_empty(), "upload sessions left: {left:?}");

    // What a process killed at the wrong moment leaves: an opened multipart upload that was
    // never recorded, a lock sidecar, a temporary file, empty directories.
    let orphan = data.join(".multipart/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::create_dir_all(data.join("uploads/gone")).unwrap();
    std::fs::write(data.join("uploads/gone/.state.json.lock"), b"").unwrap();
    std::fs::write(data.join("uploads/gone/.tmp-1234"), b"partial").unwrap();
    for path in [
        orphan.clone(),
        data.join("uploads/gone/.state.json.lock"),
        data.join("uploads/gone/.tmp-1234"),
        data.join("uploads/gone"),
        data.join("uploads"),
    ] {
        age_by_two_hours(&path);
    }
    let before = tree(&data);
    reg.server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (orphan.exists() || data.join("uploads").exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = tree(&data);
    assert!(
        after
            .iter()
            .all(|p| !p.starts_with("uploads") && !p.contains("0123456789abcdef")),
        "before {before:?}\nafter {after:?}"
    );
    // Live data untouched.
    assert!(after.iter().any(|p| p.starts_with("blobs/")), "{after:?}");
    assert!(
        reg.server
            .logs()
            .contains("removed what interrupted writes left behind")
    );
}
