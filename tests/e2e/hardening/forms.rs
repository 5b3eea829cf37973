//! Web forms: small bodies only, and a form that cannot be read gets the same 403 page as a
//! wrong CSRF token.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn forms_without_a_token_get_403_and_huge_forms_413_without_being_read() {
    let server = crate::server();
    let client = server.client();
    for (path, body) in [
        ("/ui/login", "username=admin&password=x"),
        ("/ui/logout", ""),
        ("/ui/tag/delete", "repository=a&tag=b"),
        ("/ui/chart/delete", "%ZZ=not-even-decodable"),
    ] {
        let resp = client
            .post(server.at(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let page = resp.text().unwrap();
        assert!(
            page.contains("did not come from this site"),
            "{path}: {page}"
        );
    }

    // A 64 MiB login form: refused from its declared length, before the body is read.
    let started = Instant::now();
    let mut socket = TcpStream::connect(&server.host).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "POST /ui/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\nusername=",
        server.host,
        64 * 1024 * 1024
    )
    .unwrap();
    let mut answer = [0u8; 64];
    let n = socket.read(&mut answer).unwrap();
    let status_line = String::from_utf8_lossy(&answer[..n]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The same without a declared length (chunked): cut off at the bound.
    let mut socket = TcpStream::connect(&server.host).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "POST /ui/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.host
    )
    .unwrap();
    for _ in 0..8 {
        // The server may answer and stop reading before all of it is written.
        let _ = write!(socket, "2000\r\n{}\r\n", "a".repeat(0x2000));
    }
    let n = socket.read(&mut answer).unwrap();
    let status_line = String::from_utf8_lossy(&answer[..n]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}
