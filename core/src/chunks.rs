//! Cutting a [`ByteStream`] into fixed-size chunks, for object stores whose uploads need each
//! request's length up front (S3 parts, GCS resumable chunks). Memory is bounded by one chunk.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::ByteStream;

/// Part-sized buffers kept for reuse. Allocating and freeing buffers of megabytes from many
/// threads made glibc's malloc keep the freed memory in per-thread arenas, so resident memory
/// crept up with the bytes pushed; recycling a few buffers keeps it flat.
static SPARE_BUFFERS: Mutex<Vec<BytesMut>> = Mutex::new(Vec::new());
/// Most buffers kept.
const MAX_SPARE_BUFFERS: usize = 8;
/// Smaller buffers are not worth keeping.
const MIN_RECYCLED_CAPACITY: usize = 1024 * 1024;

/// A buffer of at least `size` bytes of capacity, recycled when one is at hand.
fn take_buffer(size: usize) -> BytesMut {
    let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(|p| p.into_inner());
    match spare
        .iter()
        .position(|b| b.capacity() >= size && b.capacity() <= size.saturating_mul(2))
    {
        Some(i) => spare.swap_remove(i),
        None => BytesMut::with_capacity(size),
    }
}

/// Hands a chunk back once it has been sent: its buffer is reused if nothing else holds it.
pub fn recycle(chunk: Bytes) {
    if let Ok(mut buffer) = chunk.try_into_mut()
        && buffer.capacity() >= MIN_RECYCLED_CAPACITY
    {
        buffer.clear();
        let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < MAX_SPARE_BUFFERS {
            spare.push(buffer);
        }
    }
}

/// Reads a stream as chunks of exactly `size` bytes; only the last one may be shorter.
pub struct Chunker {
    body: ByteStream,
    size: usize,
    /// Bytes received beyond the previous chunk.
    carry: Bytes,
    ended: bool,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("size", &self.size)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Chunker {
    pub fn new(body: ByteStream, size: usize) -> Self {
        assert!(size > 0, "chunk size must be positive");
        Self {
            body,
            size,
            carry: Bytes::new(),
            ended: false,
        }
    }

    /// Changes the size of the chunks that follow.
    pub fn set_size(&mut self, size: usize) {
        assert!(size > 0, "chunk size must be positive");
        self.size = size;
    }

    /// The next chunk; `None` once the stream is drained (an empty stream gives `None` at
    /// once). An error of the input stream is passed through.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, std::io::Error> {
        let mut buf = BytesMut::new();
        loop {
            if !self.carry.is_empty() {
                let wanted = self.size - buf.len();
                if buf.is_empty() && self.carry.len() >= wanted {
                    // Whole chunk inside what we hold already: hand it out without copying.
                    return Ok(Some(self.carry.split_to(wanted)));
                }
                if buf.capacity() == 0 {
                    buf = take_buffer(self.size);
                }
                let take = wanted.min(self.carry.len());
                buf.extend_from_slice(&self.carry.split_to(take));
                if buf.len() == self.size {
                    return Ok(Some(buf.freeze()));
                }
            }
            if self.ended {
                return Ok((!buf.is_empty()).then(|| buf.freeze()));
            }
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    if buf.capacity() == 0 && !bytes.is_empty() {
                        // The whole chunk at once (growing by doubling would copy), from a
                        // recycled buffer when possible. Pages not yet written are not
                        // resident, so a small body costs little.
                        buf = take_buffer(self.size);
                    }
                    self.carry = bytes;
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                None => self.ended = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn stream_of(pieces: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, std::io::Error>> =
            pieces.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(stream::iter(items))
    }

    async fn chunks(pieces: &[&'static [u8]], size: usize) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(stream_of(pieces), size);
        let mut out = Vec::new();
        while let Some(chunk) = c.next_chunk().await.unwrap() {
            out.push(chunk.to_vec());
        }
        out
    }

    #[tokio::test]
    async fn cuts_at_exact_sizes_whatever_the_input_pieces() {
        assert_eq!(
            chunks(&[b"ab", b"cdefg", b"", b"h"], 3).await,
            [b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]
        );
        assert_eq!(
            chunks(&[b"abcdefgh"], 4).await,
            [b"abcd".to_vec(), b"efgh".to_vec()]
        );
        assert!(chunks(&[], 4).await.is_empty());
        assert!(chunks(&[b"", b""], 4).await.is_empty());
    }

    #[tokio::test]
    async fn sent_chunks_lend_their_buffers_to_later_ones() {
        let size = 2 * MIN_RECYCLED_CAPACITY;
        let pieces: Vec<Result<Bytes, std::io::Error>> = (0..8)
            .map(|_| Ok(Bytes::from(vec![7u8; size / 4 + 1])))
            .collect();
        let mut c = Chunker::new(Box::pin(stream::iter(pieces)), size);
        let first = c.next_chunk().await.unwrap().unwrap();
        let address = first.as_ptr();
        recycle(first);
        let second = c.next_chunk().await.unwrap().unwrap();
        assert_eq!(second.len(), size);
        assert!(second.iter().all(|b| *b == 7));
        assert_eq!(
            second.as_ptr(),
            address,
            "the first chunk's buffer was reused"
        );
    }

    #[tokio::test]
    async fn passes_input_errors_through() {
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abcd")),
            Err(std::io::Error::other("boom")),
        ];
        let mut c = Chunker::new(Box::pin(stream::iter(items)), 3);
        assert_eq!(c.next_chunk().await.unwrap().unwrap(), &b"abc"[..]);
        assert!(c.next_chunk().await.is_err());
    }
}
