//! Cutting a [`ByteStream`] into fixed-size chunks, for object stores whose uploads need each
//! request's length up front (S3 parts, GCS resumable chunks). Memory is bounded by one chunk.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::ByteStream;

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
                        buf.reserve(self.size.min(bytes.len().max(64 * 1024)));
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
