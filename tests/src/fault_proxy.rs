//! A fault-injecting TCP proxy to put in front of a real store (an object store, an upstream
//! registry): it forwards real bytes both ways until told to fail, and can at any moment refuse
//! connections (the store is down), accept and close them, answer `503` to every request, stall
//! (hold every byte), or cut every connection once a number of response bytes went through.
//!
//! ```no_run
//! use oci_storage_tests::fault_proxy::{Fault, FaultProxy};
//! let proxy = FaultProxy::in_front_of("http://127.0.0.1:8333");
//! // Configure the registry with `proxy.endpoint()` instead of the store's address, then:
//! proxy.set(Fault::Refuse); // the store is gone
//! proxy.set(Fault::Pass); // and back
//! ```
//!
//! Plain threads and blocking sockets: a stalled or cut connection must not depend on the
//! runtime of the code under test.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Nothing listens: connections are refused (the store process is gone).
    Refuse,
    /// Connections are accepted and closed at once.
    Close,
    /// Every request is read and answered `503 Service Unavailable`.
    Unavailable,
    /// Connections are accepted and bytes are read, but nothing is forwarded until the fault
    /// changes (a hung store); then held traffic goes on, or is cut.
    Stall,
}

/// A TCP proxy in front of a real store, on a loopback port of its own. Dropping it cuts every
/// connection and stops listening.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts forwarding to `store` (in [`Fault::Pass`]).
    pub fn start(store: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        thread::spawn(move || accept_loop(Some(listener), addr, store, &shared));
        Self {
            endpoint: format!("http://{addr}"),
            state,
        }
    }

    /// Starts forwarding to the store at `http://HOST:PORT` (a store's `endpoint`).
    pub fn in_front_of(store_endpoint: &str) -> Self {
        let addr = store_endpoint
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("{store_endpoint} is not http://IP:PORT: {e}"));
        Self::start(addr)
    }

    /// `http://127.0.0.1:PORT`: what the code under test is to use as the store's address.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.state.fault()
    }

    /// Switches the fault; every fault but `Pass` and `Stall` also cuts the live connections
    /// (the store went away under them).
    pub fn set(&self, fault: Fault) {
        self.state.set(fault);
        if !matches!(fault, Fault::Pass | Fault::Stall) {
            self.state.cut_all();
        }
    }

    /// Lets `bytes` more response bytes through, then the store dies: connections are cut
    /// and the fault becomes [`Fault::Refuse`].
    pub fn cut_after(&self, bytes: u64) {
        let at = self.state.downstream.load(Ordering::SeqCst) + bytes;
        *self.state.cut_at.lock().unwrap() = Some(at);
    }

    /// Connections (or pieces of traffic) a stall holds right now.
    pub fn stalled(&self) -> u64 {
        self.state.stalled.load(Ordering::SeqCst)
    }

    /// Requests answered `503` by [`Fault::Unavailable`] so far.
    pub fn unavailable_answers(&self) -> u64 {
        self.state.unavailable.load(Ordering::SeqCst)
    }

    /// Forwards at most `bytes_per_second` to the store from now on, over all connections
    /// (a slow link: a run lasts long enough to be watched).
    pub fn limit_to_store(&self, bytes_per_second: u64) {
        let start = (Instant::now(), self.state.upstream.load(Ordering::SeqCst));
        *self.state.to_store_limit.lock().unwrap() = Some((bytes_per_second, start.0, start.1));
    }

    /// Bytes forwarded to the store so far.
    pub fn bytes_to_store(&self) -> u64 {
        self.state.upstream.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the store so far.
    pub fn bytes_from_store(&self) -> u64 {
        self.state.downstream.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.changed.notify_all();
        self.state.cut_all();
    }
}

/// What the proxy's threads share.
#[derive(Debug, Default)]
struct State {
    /// `None` until a fault is set: [`Fault::Pass`].
    fault: Mutex<Option<Fault>>,
    changed: Condvar,
    /// Live forwarded connections (id, registry side, store side), to cut them.
    live: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    /// Bytes forwarded from the store.
    downstream: AtomicU64,
    /// Bytes forwarded to the store.
    upstream: AtomicU64,
    /// When set: once `downstream` reaches it, every connection is cut and the store refuses.
    cut_at: Mutex<Option<u64>>,
    /// Set by [`FaultProxy::limit_to_store`]: (bytes per second, since, `upstream` then).
    to_store_limit: Mutex<Option<(u64, Instant, u64)>>,
    stalled: AtomicU64,
    unavailable: AtomicU64,
    closed: AtomicBool,
}

impl State {
    fn fault(&self) -> Fault {
        self.fault.lock().unwrap().unwrap_or(Fault::Pass)
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some(fault);
        self.changed.notify_all();
    }

    /// Shuts every forwarded connection down (both sides), so blocked pumps wake up.
    fn cut_all(&self) {
        for (_, a, b) in self.live.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Sleeps until `forwarded` bytes to the store are within the limit, if one is set. Time
    /// without traffic earns no credit: a window more than 100 ms behind starts again now.
    fn hold_to_limit(&self, forwarded: u64) {
        let mut limit = self.to_store_limit.lock().unwrap();
        let Some((rate, since, at_start)) = *limit else {
            return;
        };
        let now = Instant::now();
        let due = since + Duration::from_secs_f64((forwarded - at_start) as f64 / rate as f64);
        if due + Duration::from_millis(100) < now {
            *limit = Some((rate, now, forwarded));
            return;
        }
        drop(limit);
        thread::sleep(due.saturating_duration_since(now));
    }

    /// Blocks while the store stalls; answers the fault that ended the stall.
    fn wait_out_stall(&self) -> Fault {
        let mut fault = self.fault.lock().unwrap();
        if fault.unwrap_or(Fault::Pass) == Fault::Stall {
            self.stalled.fetch_add(1, Ordering::SeqCst);
            while fault.unwrap_or(Fault::Pass) == Fault::Stall
                && !self.closed.load(Ordering::SeqCst)
            {
                fault = self.changed.wait(fault).unwrap();
            }
            self.stalled.fetch_sub(1, Ordering::SeqCst);
        }
        fault.unwrap_or(Fault::Pass)
    }
}

/// Accepts connections while the store is "up"; under [`Fault::Refuse`] it closes the
/// listening socket (so connecting fails with ECONNREFUSED) and binds the port again after.
fn accept_loop(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    store: SocketAddr,
    state: &Arc<State>,
) {
    let mut rebind_deadline = None;
    while !state.closed.load(Ordering::SeqCst) {
        if state.fault() == Fault::Refuse {
            listener = None;
            rebind_deadline = None;
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        let Some(l) = &listener else {
            // Back up, on the same port (std sets SO_REUSEADDR).
            match TcpListener::bind(addr) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                Err(e) => {
                    let deadline =
                        *rebind_deadline.get_or_insert(Instant::now() + Duration::from_secs(30));
                    assert!(
                        Instant::now() < deadline,
                        "proxy cannot listen on {addr}: {e}"
                    );
                    thread::sleep(Duration::from_millis(20));
                }
            }
            continue;
        };
        // Non-blocking, so a fault change is noticed without a connection arriving.
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                let state = state.clone();
                thread::spawn(move || serve(conn, store, &state));
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// One connection from the client, handled by the fault in force when it arrived.
fn serve(conn: TcpStream, store: SocketAddr, state: &Arc<State>) {
    match state.wait_out_stall() {
        Fault::Pass => forward(conn, store, state),
        Fault::Unavailable => answer_unavailable(conn, state),
        Fault::Refuse | Fault::Close | Fault::Stall => {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// Reads a request (headers and a `Content-Length` body, so the client is not cut off while
/// still sending) and answers it with 503, as S3 does when overloaded.
fn answer_unavailable(mut conn: TcpStream, state: &State) {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + body_len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>injected by the test proxy</Message></Error>";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    state.unavailable.fetch_add(1, Ordering::SeqCst);
    let _ = conn.write_all(answer.as_bytes());
    let _ = conn.shutdown(Shutdown::Both);
}

/// Connects to the store and pumps both ways until either side closes or a fault cuts them.
fn forward(conn: TcpStream, store: SocketAddr, state: &Arc<State>) {
    let Ok(upstream) = TcpStream::connect(store) else {
        let _ = conn.shutdown(Shutdown::Both);
        return;
    };
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    state
        .live
        .lock()
        .unwrap()
        .push((id, conn.try_clone().unwrap(), upstream.try_clone().unwrap()));
    let (c2, u2) = (conn.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up_state = state.clone();
    let up = thread::spawn(move || pump(c2, u2, &up_state, false));
    pump(upstream, conn, state, true);
    let _ = up.join();
    state.live.lock().unwrap().retain(|(i, _, _)| *i != id);
}

/// Copies `from` → `to`, holding the bytes while the store stalls and stopping (cutting both
/// sides) when it goes away or, `downstream`, when a [`FaultProxy::cut_after`] point is reached.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &State, downstream: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state.wait_out_stall() != Fault::Pass {
            break;
        }
        let (send, cut) = if downstream {
            take_until_cut(state, n)
        } else {
            (n, false)
        };
        if to.write_all(&buf[..send]).is_err() {
            break;
        }
        let counter = if downstream {
            &state.downstream
        } else {
            &state.upstream
        };
        let total = counter.fetch_add(send as u64, Ordering::SeqCst) + send as u64;
        if !downstream {
            state.hold_to_limit(total);
        }
        if cut {
            state.set(Fault::Refuse);
            state.cut_all();
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Of `n` bytes read from the store, how many may go on, and whether the cut point is reached
/// with them (which disarms it).
fn take_until_cut(state: &State, n: usize) -> (usize, bool) {
    let mut cut_at = state.cut_at.lock().unwrap();
    let before = state.downstream.load(Ordering::SeqCst);
    match *cut_at {
        Some(at) if before + n as u64 >= at => {
            *cut_at = None;
            ((at - before) as usize, true)
        }
        _ => (n, false),
    }
}
