//! The body of a blob download: the file's range mapped for the connection to send with
//! `sendfile` when it can, the storage's stream otherwise.

use std::fs::File;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use oci_storage_core::GetResult;
use poem::http::Version;
use poem::{Body, Request};

use super::mapping;
use super::transfer::{self, Slot};

/// The body answering `req` with `read`: sent with `sendfile(2)` when the storage offers the
/// file and `req` came on a registered HTTP/1 connection, streamed from storage otherwise.
pub fn blob_body(req: &Request, read: GetResult) -> Body {
    // HTTP/2 frames are not known to pass bodies by reference: a copy of the map would read
    // the whole blob into memory (correct, but not small).
    let http1 = matches!(req.version(), Version::HTTP_11 | Version::HTTP_10);
    let slot = match (
        req.local_addr().as_socket_addr(),
        req.remote_addr().as_socket_addr(),
    ) {
        (Some(local), Some(remote)) if http1 => transfer::slot_of(*local, *remote),
        _ => None,
    };
    match (read.file, slot) {
        (Some(file), Some(slot)) if !read.range.is_empty() => Body::from(BoxBody::new(FileBody {
            slot,
            file: Some(file),
            range: read.range,
            streaming: false,
            stream: Body::from_bytes_stream(read.body).into(),
        })),
        _ => Body::from_bytes_stream(read.body),
    }
}

/// Maps the range when hyper first polls it (a body hyper never polls, as for HEAD, maps
/// nothing) and yields it as one chunk; if mapping fails, yields the storage's stream
/// instead. The stream stays unpolled until the body is dropped otherwise, so whatever it
/// holds (the proxy cache's read guard) lasts until hyper has taken the last chunk, which
/// may be before it is all sent; the open file keeps the bytes for the rest.
struct FileBody {
    slot: Arc<Slot>,
    /// Until the first poll.
    file: Option<Arc<File>>,
    range: Range<u64>,
    streaming: bool,
    stream: BoxBody<Bytes, std::io::Error>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.streaming {
            return Pin::new(&mut self.stream).poll_frame(cx);
        }
        let Some(file) = self.file.take() else {
            return Poll::Ready(None);
        };
        match mapping::map(&file, self.range.clone(), &self.slot) {
            Ok(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Err(e) => {
                tracing::debug!(error = %e, "could not map a blob file; streaming it");
                self.streaming = true;
                Pin::new(&mut self.stream).poll_frame(cx)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.range.end - self.range.start)
    }
}
