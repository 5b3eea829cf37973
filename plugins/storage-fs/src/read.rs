//! Streaming a byte range of a file.
//!
//! Each chunk is read on the blocking pool with a positioned read straight into the buffer
//! that becomes the body chunk, sized to what is left of the range and not zeroed first.
//! tokio's `File` reads into a buffer of its own and copies, and `ReaderStream` reserves its
//! full capacity even for a 4 KiB range: 32 clients reading small ranges held over 130 MiB
//! that way. (The server sends whole files with `sendfile` where it can; this is the path
//! for TLS, HTTP/2 and everything that reads blobs itself.)

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use oci_storage_core::ByteStream;

/// Largest chunk read at once: large enough that a whole-blob download takes few hand-offs to
/// the blocking pool, small enough that many concurrent downloads stay small in memory.
pub(crate) const READ_CHUNK: u64 = 256 * 1024;

/// The bytes of `range` of `file`, in chunks of at most [`READ_CHUNK`]. A file shorter than
/// the range ends the stream with an `UnexpectedEof` error, never with missing bytes.
pub(crate) fn read_range(file: Arc<std::fs::File>, range: Range<u64>) -> ByteStream {
    let end = range.end;
    Box::pin(futures_util::stream::try_unfold(range.start, move |at| {
        let file = file.clone();
        async move {
            if at >= end {
                return Ok(None);
            }
            let len = (end - at).min(READ_CHUNK);
            let chunk = tokio::task::spawn_blocking(move || read_at(&file, at, len as usize))
                .await
                .map_err(std::io::Error::other)??;
            Ok(Some((chunk, at + len)))
        }
    }))
}

/// Exactly `len` bytes of `file` from `at`, read into an uninitialised buffer.
fn read_at(file: &std::fs::File, at: u64, len: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let offset = at + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The capacity may exceed `len`, and so may the last read.
    buf.truncate(len);
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt as _;
    use std::io::Write as _;

    fn file_of(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    async fn collect(stream: ByteStream) -> std::io::Result<(Vec<u8>, Vec<usize>)> {
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        let sizes = chunks.iter().map(Bytes::len).collect();
        Ok((chunks.concat(), sizes))
    }

    #[tokio::test]
    async fn reads_exactly_the_range_in_bounded_chunks() {
        let data: Vec<u8> = (0..READ_CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
        let (got, sizes) = collect(read_range(Arc::new(file_of(&data)), 0..data.len() as u64))
            .await
            .unwrap();
        assert_eq!(got, data);
        assert_eq!(sizes, [READ_CHUNK as usize, READ_CHUNK as usize, 100]);

        let (got, sizes) = collect(read_range(Arc::new(file_of(&data)), 10..4106))
            .await
            .unwrap();
        assert_eq!(got, &data[10..4106]);
        assert_eq!(sizes, [4096], "a small range is one small chunk");

        let (got, _) = collect(read_range(Arc::new(file_of(&data)), 5..5))
            .await
            .unwrap();
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_the_range_is_an_error() {
        let err = collect(read_range(Arc::new(file_of(b"short")), 0..10))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
