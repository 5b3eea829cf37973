//! The HTTP server loop: poem's `Server`, without its box around each connection.
//!
//! poem's `Server` turns every connection into a `BoxIo`, which does not write vectored, and
//! hyper then copies every response body into a buffer of its own before writing it: a copy
//! of every byte of every download, and no way for `zero_copy` to see a body as it left the
//! handler. This loop serves poem's endpoint over hyper as poem does (HTTP/1 and HTTP/2 with
//! upgrades, the same HTTP/2 limits, graceful shutdown within a grace period) on the
//! acceptor's own connection type.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::listener::Acceptor;
use poem::{Endpoint, Request};

/// Serves `ep` on the connections `acceptor` yields until `shutdown` completes, then lets the
/// open connections finish their requests for at most `grace`.
pub async fn run(
    mut acceptor: impl Acceptor,
    ep: impl Endpoint + 'static,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let ep = Arc::new(ep);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // poem's settings, except the number of concurrent HTTP/2 streams: hyper's default (200)
    // rather than poem's none.
    builder
        .http2()
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024);
    let graceful = GracefulShutdown::new();
    // Cancels the connections still open when the grace period is over.
    let past_grace = tokio_util::sync::CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = acceptor.accept() => accepted,
        };
        let (io, local, remote, scheme) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: waiting a little keeps this loop from
                // spinning while it lasts (poem's own loop retries at once).
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let ep = ep.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let ep = ep.clone();
            let req = Request::from((req, local.clone(), remote.clone(), scheme.clone()));
            async move {
                let resp = ep.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, std::io::Error>>::from(
                    resp,
                ))
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let past_grace = past_grace.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = past_grace.cancelled() => {}
            }
        });
    }
    drop(acceptor);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("grace period over: closing the connections still open");
        past_grace.cancel();
    }
}
