//! Blob downloads sent with `sendfile(2)` (server/src/zero_copy): exact bytes for whole and
//! ranged GETs on one keep-alive connection, with the counters showing which path the bytes
//! took; a client leaving mid-transfer; a blob deleted while it is being sent; a file out of
//! the page cache; and the stream path where sendfile does not apply (TLS, HTTP/2, `never`,
//! and `auto` for a client on this host). Always on fs: the fast path is the fs backend's.
//! The tests' clients are on loopback, so the fast path needs `server.sendfile: always`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use oci_storage_tests::{PASSWORD, Server, USER, config_with_storage, eventually, run_ok, sha256};

use crate::protocol::{Reg, basic_auth_value, pseudo_random};

const FS: &str = "storage:\n  type: fs\n  fs:\n    path: data\n";
const ALWAYS: &str = "server:\n  sendfile: always\n";

/// fs storage, the test user, and `extra` YAML.
fn config(extra: &str) -> String {
    format!("{}{extra}", config_with_storage(FS))
}
const MIB: usize = 1 << 20;

/// `oci_storage_sendfile_bytes_total` by `read`: (page_cache, disk).
fn sendfile_bytes(reg: &Reg) -> (u64, u64) {
    let text = reg.get("/metrics").text().unwrap();
    let value = |read: &str| {
        let prefix = format!("oci_storage_sendfile_bytes_total{{read=\"{read}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
            .parse()
            .unwrap()
    };
    (value("page_cache"), value("disk"))
}

/// The stored file of a blob in an fs registry.
fn blob_file(server: &Server, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    server.data_dir().join("blobs/sha256").join(hex)
}

/// Whether the server process holds `path` open or mapped.
fn holds(server: &Server, path: &PathBuf) -> bool {
    let pid = server.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| &target == path);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    open || maps.contains(path.to_str().unwrap())
}

#[test]
fn whole_and_ranged_downloads_are_sent_from_the_file() {
    let reg = Reg::with(Server::start_with(crate::BIN, &config(ALWAYS), &[]));
    // Over two of the 16 MiB windows probed for the page cache.
    let blob = pseudo_random(1, 33 * MIB + 123);
    let digest = reg.push_blob("zc/ranges", &blob);
    let path = format!("/v2/zc/ranges/blobs/{digest}");
    let len = blob.len();
    let (before, _) = sendfile_bytes(&reg);

    let resp = reg.get(&path);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], len.to_string().as_str());
    assert!(
        resp.bytes().unwrap() == blob,
        "the whole blob, byte for byte"
    );
    let mut served = len as u64;

    // Ranges of every shape, with other answers between them on the same connection.
    let window = 16 * MIB;
    let ranges = [
        ("bytes=0-0".to_owned(), 0..1),
        ("bytes=1-1".to_owned(), 1..2),
        (format!("bytes={}-{}", len - 1, len - 1), len - 1..len),
        (
            format!("bytes={}-{}", window - 10, window + 10),
            window - 10..window + 11,
        ),
        (format!("bytes=123-{}", len - 1), 123..len),
        ("bytes=-100".to_owned(), len - 100..len),
        (format!("bytes={}-", 17 * MIB), 17 * MIB..len),
        (format!("bytes=7-{}", len * 2), 7..len),
    ];
    for (header, want) in ranges {
        let resp = reg
            .req(reqwest::Method::GET, &path)
            .header("range", &header)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 206, "{header}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {}-{}/{len}", want.start, want.end - 1).as_str(),
            "{header}"
        );
        let got = resp.bytes().unwrap();
        assert!(got == blob[want.clone()], "bytes of {header}");
        served += want.len() as u64;
        let head = reg.head(&path);
        assert_eq!(head.headers()["content-length"], len.to_string().as_str());
        assert!(head.bytes().unwrap().is_empty());
        assert_eq!(reg.get("/v2/").status(), 200);
    }
    let (after, _) = sendfile_bytes(&reg);
    assert_eq!(after - before, served, "every byte went by sendfile, once");
}

/// Sends a GET for `path` on a raw connection and reads the head and `body_bytes` of the body.
fn start_raw_download(server: &Server, path: &str, body_bytes: usize) -> TcpStream {
    let mut conn = TcpStream::connect(server.host.as_str()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        server.host,
        basic_auth_value(USER, PASSWORD)
    );
    conn.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let head_end = loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got[..head_end])
    );
    let mut body = got.len() - head_end;
    while body < body_bytes {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        body += n;
    }
    conn
}

#[test]
fn a_client_leaving_mid_download_frees_the_file() {
    let server = Server::start_with(crate::BIN, &config(ALWAYS), &[]);
    let reg = Reg::with(server);
    let blob = pseudo_random(2, 64 * MIB);
    let digest = reg.push_blob("zc/leave", &blob);
    let path = format!("/v2/zc/leave/blobs/{digest}");
    let file = blob_file(&reg.server, &digest);
    let (before, _) = sendfile_bytes(&reg);

    let conn = start_raw_download(&reg.server, &path, MIB);
    assert!(
        holds(&reg.server, &file),
        "the file is open while it is being sent"
    );
    drop(conn);
    eventually(
        "the server to let go of the file",
        Duration::from_secs(20),
        || !holds(&reg.server, &file),
    );
    let (after, _) = sendfile_bytes(&reg);
    assert!(after > before, "sent with sendfile");
    assert!(
        after - before < blob.len() as u64,
        "the transfer stopped early"
    );

    // The registry goes on serving it, whole.
    assert!(reg.get(&path).bytes().unwrap() == blob);
}

#[test]
fn a_blob_deleted_while_being_sent_arrives_whole() {
    let reg = Reg::with(Server::start_with(crate::BIN, &config(ALWAYS), &[]));
    let blob = pseudo_random(3, 64 * MIB);
    let digest = reg.push_blob("zc/deleted", &blob);
    let path = format!("/v2/zc/deleted/blobs/{digest}");
    let file = blob_file(&reg.server, &digest);

    let mut resp = reg.get(&path);
    assert_eq!(resp.status(), 200);
    let mut got = vec![0; MIB];
    resp.read_exact(&mut got).unwrap();
    // The registry forgets it and the content goes, as when garbage collection empties its
    // trash, while most of the blob is still to be sent.
    assert_eq!(reg.delete(&path).status(), 202);
    std::fs::remove_file(&file).unwrap();
    resp.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), blob.len());
    assert!(got == blob, "the open file keeps its bytes");
    assert_eq!(reg.get(&path).status(), 404);
    let (sent, _) = sendfile_bytes(&reg);
    assert_eq!(sent, blob.len() as u64, "sent with sendfile");
}

/// Reads one response (Content-Length framed) from `reader`; answers its status and body.
fn read_response(reader: &mut impl std::io::BufRead) -> (String, Vec<u8>) {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut len = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (status.trim_end().to_owned(), body)
}

#[test]
fn pipelined_and_http10_requests_get_their_own_bytes() {
    let reg = Reg::with(Server::start_with(crate::BIN, &config(ALWAYS), &[]));
    let blob = pseudo_random(6, 3 * MIB + 5);
    let digest = reg.push_blob("zc/pipelined", &blob);
    let path = format!("/v2/zc/pipelined/blobs/{digest}");
    let auth = basic_auth_value(USER, PASSWORD);
    let (before, _) = sendfile_bytes(&reg);

    // Three requests written at once on one connection: a range, the whole blob, a suffix.
    let request = |range: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: registry\r\nAuthorization: {auth}\r\n{range}\r\n")
    };
    let mut conn = TcpStream::connect(reg.server.host.as_str()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let requests = [
        request("Range: bytes=10-99\r\n"),
        request(""),
        request("Range: bytes=-7\r\n"),
    ];
    conn.write_all(requests.concat().as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(conn);
    let len = blob.len();
    for (want_status, want) in [
        ("HTTP/1.1 206 Partial Content", &blob[10..100]),
        ("HTTP/1.1 200 OK", &blob[..]),
        ("HTTP/1.1 206 Partial Content", &blob[len - 7..]),
    ] {
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, want_status);
        assert!(body == want, "{status}: the bytes of its own request");
    }

    // HTTP/1.0: one answer, then the server closes the connection.
    let mut conn = TcpStream::connect(reg.server.host.as_str()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(format!("GET {path} HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        answer.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&answer[..head_end])
    );
    assert!(answer[head_end..] == blob[..]);

    let (after, _) = sendfile_bytes(&reg);
    assert_eq!(
        after - before,
        (90 + len + 7 + len) as u64,
        "all of it with sendfile"
    );
}

#[test]
fn a_blob_out_of_the_page_cache_is_read_on_the_blocking_pool() {
    let reg = Reg::with(Server::start_with(crate::BIN, &config(ALWAYS), &[]));
    let blob = pseudo_random(4, 16 * MIB);
    let digest = reg.push_blob("zc/cold", &blob);
    let file = blob_file(&reg.server, &digest);
    // Written and fsynced, so clean: dropping it from the page cache is allowed.
    let file_arg = format!("if={}", file.display());
    run_ok(Command::new("dd").args([file_arg.as_str(), "iflag=nocache", "count=0", "status=none"]));
    let resident = run_ok(
        Command::new("fincore")
            .args(["--noheadings", "--bytes", "--output", "res"])
            .arg(&file),
    );
    assert_eq!(resident.trim(), "0", "the blob is out of the page cache");
    let (cached_before, disk_before) = sendfile_bytes(&reg);

    let got = reg
        .get(&format!("/v2/zc/cold/blobs/{digest}"))
        .bytes()
        .unwrap();
    assert!(got == blob);
    let (cached_after, disk_after) = sendfile_bytes(&reg);
    assert!(
        disk_after > disk_before,
        "read from the disk, off the async workers"
    );
    assert_eq!(
        cached_after - cached_before + disk_after - disk_before,
        blob.len() as u64
    );
}

#[test]
fn downloads_stream_where_sendfile_does_not_apply() {
    let blob = pseudo_random(5, 3 * MIB + 7);
    let digest = sha256(&blob);

    // Turned off, and by default to a client on this host.
    for extra in ["server:\n  sendfile: never\n", ""] {
        let reg = Reg::with(Server::start_with(crate::BIN, &config(extra), &[]));
        reg.push_blob("zc/off", &blob);
        assert!(
            reg.get(&format!("/v2/zc/off/blobs/{digest}"))
                .bytes()
                .unwrap()
                == blob
        );
        assert_eq!(sendfile_bytes(&reg), (0, 0), "{extra}");
    }

    // HTTP/2 (cleartext, prior knowledge).
    let reg = Reg::with(Server::start_with(crate::BIN, &config(ALWAYS), &[]));
    reg.push_blob("zc/h2", &blob);
    let out = reg.server.scratch("h2.blob");
    let user = format!("{USER}:{PASSWORD}");
    run_ok(
        Command::new("curl")
            .args(["-sSf", "--http2-prior-knowledge", "-u", &user, "-o"])
            .arg(&out)
            .arg(reg.server.at(&format!("/v2/zc/h2/blobs/{digest}"))),
    );
    assert!(std::fs::read(&out).unwrap() == blob);
    assert_eq!(sendfile_bytes(&reg), (0, 0));

    // TLS.
    let certs = tempfile::tempdir().unwrap();
    crate::tls::certificates(certs.path());
    let tls_config = format!(
        "{}server:\n  sendfile: always\n  tls:\n    cert: {}\n    key: {}\n",
        config_with_storage(FS),
        certs.path().join("server.crt").display(),
        certs.path().join("server.key").display()
    );
    let server = Server::start_with(crate::BIN, &tls_config, &[]);
    let ca = certs.path().join("ca.crt");
    let curl = |args: &[&str], out: &PathBuf, path: &str| {
        run_ok(
            Command::new("curl")
                .args(["-sSf", "--cacert"])
                .arg(&ca)
                .args(["-u", &user])
                .args(args)
                .arg("-o")
                .arg(out)
                .arg(server.at(path)),
        )
    };
    let upload = server.scratch("upload.blob");
    std::fs::write(&upload, &blob).unwrap();
    let ignored = server.scratch("answer");
    curl(
        &[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", upload.display()),
            "-H",
            "content-type: application/octet-stream",
        ],
        &ignored,
        &format!("/v2/zc/tls/blobs/uploads/?digest={digest}"),
    );
    let out = server.scratch("tls.blob");
    curl(&[], &out, &format!("/v2/zc/tls/blobs/{digest}"));
    assert!(std::fs::read(&out).unwrap() == blob);
    let metrics = server.scratch("metrics");
    curl(&[], &metrics, "/metrics");
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        metrics.contains("oci_storage_sendfile_bytes_total{read=\"page_cache\"} 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("oci_storage_sendfile_bytes_total{read=\"disk\"} 0\n"));
}
