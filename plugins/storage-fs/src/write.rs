//! Streaming a request body into a file.
//!
//! Received chunks are handed to the blocking pool in batches of about [`WRITE_BATCH`] bytes
//! and written where they are, with positioned writes: nothing is copied on the way (tokio's
//! `File` behind a `BufWriter` copied every byte twice and held two 1 MiB buffers per write,
//! even for a 100-byte record).

use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use oci_storage_core::{ByteStream, StorageError};

use crate::{io_error, join_error};

/// Bytes gathered before each hand-off to the blocking pool: few system calls per MiB,
/// while a write holds at most this much of its body in memory.
const WRITE_BATCH: usize = 1024 * 1024;

/// Writes `body` into `file` from `offset` on; answers the number of bytes written. On an
/// error, what was written stays: the caller discards or truncates the file.
pub(crate) async fn write_body(
    file: &Arc<std::fs::File>,
    offset: u64,
    mut body: ByteStream,
    path: &Path,
) -> Result<u64, StorageError> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    let mut at = offset;
    loop {
        let next = body.next().await;
        let ended = next.is_none();
        if let Some(chunk) = next {
            let chunk = chunk.map_err(StorageError::Input)?;
            batched += chunk.len();
            batch.push(chunk);
        }
        if batched >= WRITE_BATCH || (ended && batched > 0) {
            let chunks = std::mem::take(&mut batch);
            let file = file.clone();
            let start = at;
            tokio::task::spawn_blocking(move || {
                let mut at = start;
                for chunk in &chunks {
                    file.write_all_at(chunk, at)?;
                    at += chunk.len() as u64;
                }
                Ok::<_, std::io::Error>(())
            })
            .await
            .map_err(join_error)?
            .map_err(|e| io_error(path, e))?;
            at += batched as u64;
            batched = 0;
        }
        if ended {
            return Ok(at - offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn body(chunks: Vec<std::io::Result<Bytes>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn writes_every_chunk_in_order_from_the_offset() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        file.write_all_at(b"kept", 0).unwrap();
        let big = Bytes::from(vec![7u8; WRITE_BATCH + 10]);
        let chunks = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(big.clone()),
            Ok(Bytes::from_static(b"z")),
        ];
        let n = write_body(&file, 4, body(chunks), Path::new("t"))
            .await
            .unwrap();
        assert_eq!(n, 2 + big.len() as u64 + 1);
        let mut got = Vec::new();
        (&*file).read_to_end(&mut got).unwrap();
        let mut want = b"keptab".to_vec();
        want.extend_from_slice(&big);
        want.push(b'z');
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_input_error_is_reported_as_such() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let chunks = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("client went away")),
        ];
        let err = write_body(&file, 0, body(chunks), Path::new("t"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Input(_)), "{err:?}");
    }

    #[tokio::test]
    async fn an_empty_body_writes_nothing() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        assert_eq!(
            write_body(&file, 0, body(vec![]), Path::new("t"))
                .await
                .unwrap(),
            0
        );
    }
}
