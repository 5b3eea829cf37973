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
    let status = answer_to_login_post(
        &server.host,
        &format!("Content-Length: {}", 64 * 1024 * 1024),
        &["username=".to_owned()],
    );
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // The same without a declared length (chunked): cut off at the bound.
    let chunk = format!("2000\r\n{}\r\n", "a".repeat(0x2000));
    let status = answer_to_login_post(&server.host, "Transfer-Encoding: chunked", &vec![chunk; 8]);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

/// The first bytes of the answer to a raw `POST /ui/login` with `framing` (a length or chunked
/// header) and `parts` of body, written while the server may already have answered.
fn answer_to_login_post(host: &str, framing: &str, parts: &[String]) -> String {
    let mut socket = TcpStream::connect(host).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "POST /ui/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
    )
    .unwrap();
    for part in parts {
        // The server may answer and stop reading before all of it is written.
        let _ = socket.write_all(part.as_bytes());
    }
    let mut answer = [0u8; 64];
    let n = socket.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}
