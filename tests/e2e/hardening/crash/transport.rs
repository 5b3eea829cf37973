//! Requests to a server that is killed at random moments, and which of their failures a kill
//! explains: a transport error counts as a crash only when the server was killed while the
//! request was in flight; any other is a failure of the test.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use oci_storage_tests::{PASSWORD, USER};
use reqwest::Method;
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;

/// The server as clients see it: how often it was killed, and its URL while it is up.
#[derive(Default)]
pub struct Target {
    now: Mutex<(u64, Option<String>)>,
    up: Condvar,
    /// Clients finish the image they are pushing, then stop.
    pub stop: AtomicBool,
    /// A client failed: stop killing.
    pub failed: AtomicBool,
}

impl Target {
    /// The kill count and the URL of the running server (waits while it is down).
    fn current(&self) -> Result<(u64, String), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut now = self.now.lock().unwrap();
        loop {
            if let Some(url) = &now.1 {
                return Ok((now.0, url.clone()));
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or("the server did not come back within 120 s")?;
            now = self.up.wait_timeout(now, left).unwrap().0;
        }
    }

    fn kills(&self) -> u64 {
        self.now.lock().unwrap().0
    }

    /// Marks the server down (before it is killed, so every request it leaves unanswered
    /// sees a higher kill count than when it was sent).
    pub fn going_down(&self) {
        let mut now = self.now.lock().unwrap();
        now.0 += 1;
        now.1 = None;
    }

    pub fn back_up(&self, url: &str) {
        self.now.lock().unwrap().1 = Some(url.to_owned());
        self.up.notify_all();
    }
}

/// What came back for a request.
pub enum Sent {
    Answer(Answer),
    /// The server was killed while the request was in flight.
    Killed,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }

    /// The answer has `status`, or an error naming `what` was sent.
    pub fn expect(&self, status: u16, what: &str) -> Result<(), String> {
        if self.status == status {
            Ok(())
        } else {
            Err(format!(
                "{what}: expected {status}, got {}",
                self.describe()
            ))
        }
    }
}

/// One client's way to the target, as the test user.
pub struct Connection {
    target: Arc<Target>,
    client: Client,
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            client: http_client(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends once, to the server running now (waiting while it is down): its answer, or
    /// `Killed` when it died meanwhile.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Sent, String> {
        let (kills, base) = self.target.current()?;
        let mut request = self
            .client
            .request(method.clone(), format!("{base}{path}"))
            .basic_auth(USER, Some(PASSWORD));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let answer = request.send().and_then(|resp| {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes()?.to_vec();
            Ok(Answer {
                status,
                headers,
                body,
            })
        });
        match answer {
            Ok(answer) => Ok(Sent::Answer(answer)),
            Err(_) if self.target.kills() > kills => Ok(Sent::Killed),
            Err(e) => Err(format!(
                "{method} {path}: transport error, and the server was not killed: {e}"
            )),
        }
    }
}

pub fn http_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        // Well below the server's idle limit: a kept-alive connection the server closes
        // while a request goes out would look like a crash.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}
