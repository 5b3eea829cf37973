//! Accepted TCP connections with Nagle's algorithm off.
//!
//! With it on, the last, short segment of a response waits until the client acknowledges the
//! previous ones, and clients delay their acknowledgements (40 ms on Linux): under the soak,
//! ranged blob GETs had a p99 of 50 ms for that alone. Responses are written in large chunks
//! already, so nothing is gained by coalescing.

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;

/// Wraps a TCP acceptor; every connection it yields has `TCP_NODELAY` set.
#[derive(Debug)]
pub struct NoDelay<A>(pub A);

impl<A: Acceptor<Io = TcpStream>> Acceptor for NoDelay<A> {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "could not turn off Nagle's algorithm for a connection");
        }
        Ok((io, local, remote, scheme))
    }
}
