//! Accepted TCP connections: Nagle's algorithm off, and mapped blob ranges sent from files.
//!
//! Nagle: with it on, the last, short segment of a response waits until the client
//! acknowledges the previous ones, and clients delay their acknowledgements (40 ms on Linux):
//! under the soak, ranged blob GETs had a p99 of 50 ms for that alone.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use oci_storage_config::Sendfile;

use super::transfer::{Registration, Step};

/// Wraps a TCP acceptor. Its connections take part in zero-copy transfers as `sendfile`
/// says; give anything but `Never` only where nothing sits between hyper and the socket (no
/// TLS).
#[derive(Debug)]
pub struct Acceptor<A> {
    inner: A,
    sendfile: Sendfile,
}

impl<A> Acceptor<A> {
    pub fn new(inner: A, sendfile: Sendfile) -> Self {
        Self { inner, sendfile }
    }

    /// Whether a connection from `remote` to `local` sends blobs with `sendfile`. A client on
    /// this host reads what it receives cold from memory when the registry does not copy it
    /// (a copy leaves it in the CPU's cache): on loopback, curl downloaded at 2.3–3.0 GiB/s
    /// that way against 3.2–4.4 GiB/s copied (docs/BENCHMARKS.md, Downloads).
    fn sends_files(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        match self.sendfile {
            Sendfile::Always => true,
            Sendfile::Never => false,
            Sendfile::Auto => !(remote.ip().is_loopback() || remote.ip() == local.ip()),
        }
    }
}

impl<A: poem::listener::Acceptor<Io = TcpStream>> poem::listener::Acceptor for Acceptor<A> {
    type Io = Connection;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Connection, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not turn off Nagle's algorithm for a connection");
        }
        // The connection's own address, not the listener's (0.0.0.0 when bound to every
        // interface): it decides `auto`, and keys the table requests look the connection up in.
        let local = match stream.local_addr() {
            Ok(address) => LocalAddr(poem::Addr::SocketAddr(address)),
            Err(_) => local,
        };
        let registration = match (local.as_socket_addr(), remote.as_socket_addr()) {
            (Some(l), Some(r)) if self.sends_files(*l, *r) => Some(Registration::new(*l, *r)),
            _ => None,
        };
        let connection = Connection {
            stream,
            registration,
            disk_send: None,
            socket_for_pool: None,
        };
        Ok((connection, local, remote, scheme))
    }
}

/// A TCP connection that sends mapped blob ranges from their files.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    registration: Option<Registration>,
    /// A `sendfile` running on the blocking pool because its bytes must come from the disk,
    /// with the address of the slice it sends.
    disk_send: Option<(JoinHandle<io::Result<usize>>, usize)>,
    /// A duplicate of the socket for the blocking pool: it keeps the socket open (its
    /// number cannot be reused by another connection) until the pool is done with it.
    socket_for_pool: Option<Arc<OwnedFd>>,
}

impl Connection {
    fn is_mapped(&self, slice: &[u8]) -> bool {
        self.registration
            .as_ref()
            .is_some_and(|r| r.slot.is_mapped(slice))
    }

    /// What to send from a file for `slice`, if it is part of a mapped blob range.
    fn step(&self, slice: &[u8]) -> Option<Step> {
        self.registration.as_ref()?.slot.step(slice)
    }

    /// Sends the file bytes of `mapped`, a slice of a mapped blob range.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, mapped: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            if let Some((mut task, started_for)) = self.disk_send.take() {
                // hyper retries the very bytes it was told were pending; anything else would
                // follow bytes already sent for another position.
                if started_for != mapped.as_ptr() as usize {
                    return Poll::Ready(Err(io::Error::other(
                        "a different write while a file send was in progress",
                    )));
                }
                let Poll::Ready(sent) = Pin::new(&mut task).poll(cx) else {
                    self.disk_send = Some((task, started_for));
                    return Poll::Pending;
                };
                match sent.map_err(io::Error::other)? {
                    Ok(n) => {
                        crate::metrics::get().sendfile_bytes("disk", n);
                        return Poll::Ready(Ok(n));
                    }
                    // The socket filled up. Its readiness is cleared only if it is still
                    // full now: an acknowledgement that freed room since the pool's attempt
                    // was its one wake-up (edge-triggered), and clearing it would wait forever.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let _ = self.stream.try_io(Interest::WRITABLE, || {
                            if is_writable(self.stream.as_fd())? {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        });
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            ready!(self.stream.poll_write_ready(cx))?;
            let Some(step) = self.step(mapped) else {
                return Poll::Ready(Err(io::Error::other(
                    "a mapped blob range went away while being sent",
                )));
            };
            if !step.cached {
                let socket = self.socket_for_pool()?;
                let task = tokio::task::spawn_blocking(move || send_file(socket.as_fd(), &step));
                self.disk_send = Some((task, mapped.as_ptr() as usize));
                continue;
            }
            match self
                .stream
                .try_io(Interest::WRITABLE, || send_file(self.stream.as_fd(), &step))
            {
                Ok(n) => {
                    crate::metrics::get().sendfile_bytes("page_cache", n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn socket_for_pool(&mut self) -> io::Result<Arc<OwnedFd>> {
        if self.socket_for_pool.is_none() {
            self.socket_for_pool = Some(Arc::new(self.stream.as_fd().try_clone_to_owned()?));
        }
        Ok(self.socket_for_pool.clone().expect("set above"))
    }
}

/// Whether the socket has room to write, now.
fn is_writable(socket: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
    let mut fds = [rustix::event::PollFd::new(
        &socket,
        rustix::event::PollFlags::OUT,
    )];
    let ready = rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default()))?;
    Ok(ready > 0 && fds[0].revents().contains(rustix::event::PollFlags::OUT))
}

/// One `sendfile(2)` of `step` (the socket is non-blocking: it sends what fits).
fn send_file(socket: std::os::fd::BorrowedFd<'_>, step: &Step) -> io::Result<usize> {
    let mut offset = step.at;
    let n = rustix::fs::sendfile(socket, &*step.file, Some(&mut offset), step.count)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ended before the range being sent",
        ));
    }
    Ok(n)
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Plain bytes are written as they are; a mapped blob range is sent from its file. Bytes
    /// before it (the response's head) go first, and the file's follow in the same call when
    /// the socket takes them.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(first) = bufs.iter().position(|b| this.is_mapped(b)) else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        };
        let mapped: &[u8] = &bufs[first];
        if first == 0 {
            return this.poll_send_file(cx, mapped);
        }
        let plain = &bufs[..first];
        let written = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, plain))?;
        if written < plain.iter().map(|b| b.len()).sum() {
            return Poll::Ready(Ok(written));
        }
        match this.poll_send_file(cx, mapped) {
            Poll::Ready(Ok(sent)) => Poll::Ready(Ok(written + sent)),
            // Reported by the next call, which starts at the mapped range.
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(Ok(written)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then queues body chunks by reference (rather than copying them into its own
        // buffer), which is what lets mapped ranges reach `poll_write_vectored` as they are.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
