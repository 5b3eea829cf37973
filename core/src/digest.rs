//! Content digests (`sha256:…`, `sha512:…`): parsing, hashing, and a stream adapter that
//! hashes bytes as they flow and fails the stream when the content is not what was promised.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use sha2::Digest as _;

use crate::storage::ByteStream;

/// The digest algorithms the registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Self::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Self::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Digest of a buffer held in memory.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finish()
    }
}

impl FromStr for DigestAlgorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        match s {
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest must look like <algorithm>:<hex>")]
    Malformed,
    #[error("unsupported digest algorithm {0:?} (sha256 and sha512 are supported)")]
    UnsupportedAlgorithm(String),
    #[error("{algorithm} digests have {expected} lowercase hex characters")]
    BadEncoding {
        algorithm: &'static str,
        expected: usize,
    },
}

/// A validated digest: a supported algorithm and its lowercase hex encoding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The hex encoding, safe to use as a storage key segment.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let (algorithm, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if algorithm.is_empty() || hex.is_empty() {
            return Err(DigestError::Malformed);
        }
        let algorithm: DigestAlgorithm = algorithm.parse()?;
        let valid = hex.len() == algorithm.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(DigestError::BadEncoding {
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hash for one algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha256(_) => "Hasher(sha256)",
            Self::Sha512(_) => "Hasher(sha512)",
        })
    }
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize())),
            Self::Sha512(h) => (DigestAlgorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// What a [`hashing_stream`] saw once it ended.
#[derive(Debug, Clone)]
pub struct StreamOutcome {
    pub digest: Digest,
    pub size: u64,
    /// The hash state after the last byte, to continue hashing a later chunk.
    pub state: Hasher,
}

/// Shared cell filled by a [`hashing_stream`] when its input ends cleanly.
pub type OutcomeCell = Arc<Mutex<Option<StreamOutcome>>>;

/// The error a [`hashing_stream`] yields when content does not match what was promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentMismatch {
    #[error("content digest {actual} does not match {expected}")]
    Digest { expected: Digest, actual: Digest },
    #[error("content is {actual} bytes, expected {expected}")]
    Size { expected: u64, actual: u64 },
    #[error("content exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// What a [`hashing_stream`] must check.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    pub max_size: Option<u64>,
}

/// Hashes `input` as it flows, starting from `hasher` (which may already hold earlier bytes,
/// `already` of them). When the input ends, records the outcome in the returned cell and, if it
/// breaks `expect`, yields a final `InvalidData` error wrapping [`ContentMismatch`] instead of
/// ending cleanly — so a [`Storage`](crate::Storage) write of this stream never commits.
pub fn hashing_stream(
    input: ByteStream,
    hasher: Hasher,
    already: u64,
    expect: Expectation,
) -> (ByteStream, OutcomeCell) {
    let cell: OutcomeCell = Arc::new(Mutex::new(None));
    let state = HashState {
        input,
        hasher: Some(hasher),
        size: already,
        expect,
        cell: cell.clone(),
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        let hasher = st.hasher.as_mut()?;
        match st.input.next().await {
            Some(Ok(chunk)) => {
                st.size += chunk.len() as u64;
                if let Some(limit) = st.expect.max_size.filter(|l| st.size > *l) {
                    st.hasher = None;
                    return Some((Err(mismatch(ContentMismatch::TooLarge { limit })), st));
                }
                hasher.update(&chunk);
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.hasher = None;
                Some((Err(e), st))
            }
            None => {
                let state = st.hasher.take()?;
                let digest = state.clone().finish();
                let outcome = StreamOutcome {
                    digest: digest.clone(),
                    size: st.size,
                    state,
                };
                *st.cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                let problem = match (&st.expect.digest, st.expect.size) {
                    (Some(expected), _) if *expected != digest => Some(ContentMismatch::Digest {
                        expected: expected.clone(),
                        actual: digest,
                    }),
                    (_, Some(expected)) if expected != st.size => Some(ContentMismatch::Size {
                        expected,
                        actual: st.size,
                    }),
                    _ => None,
                };
                problem.map(|p| (Err(mismatch(p)), st))
            }
        }
    });
    (Box::pin(stream), cell)
}

struct HashState {
    input: ByteStream,
    hasher: Option<Hasher>,
    size: u64,
    expect: Expectation,
    cell: OutcomeCell,
}

fn mismatch(m: ContentMismatch) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m)
}

/// `input` checked to be exactly the content `digest` names, `size` bytes long: it fails at
/// the first byte past `size`, or at its end on a wrong digest or a short read (so a storage
/// write of it never commits wrong content).
pub fn verified_stream(input: ByteStream, digest: &Digest, size: u64) -> ByteStream {
    hashing_stream(
        input,
        digest.algorithm().hasher(),
        0,
        Expectation {
            digest: Some(digest.clone()),
            size: Some(size),
            max_size: Some(size),
        },
    )
    .0
}

/// Finds a [`ContentMismatch`] inside an error produced by a [`hashing_stream`].
pub fn content_mismatch(err: &std::io::Error) -> Option<&ContentMismatch> {
    err.get_ref()?.downcast_ref::<ContentMismatch>()
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(DigestAlgorithm::Sha256.digest(b""), d);
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("md5:abc".parse::<Digest>().is_err());
        assert!(EMPTY_SHA256.to_uppercase().parse::<Digest>().is_err());
        assert!("sha256".parse::<Digest>().is_err());
        let d512 = DigestAlgorithm::Sha512.digest(b"x");
        assert_eq!(d512.to_string().parse::<Digest>().unwrap(), d512);
    }

    #[tokio::test]
    async fn hashing_stream_fails_on_mismatch() {
        let input = crate::storage::bytes_stream(Bytes::from_static(b"hello"));
        let wrong = DigestAlgorithm::Sha256.digest(b"other");
        let (mut s, cell) = hashing_stream(
            input,
            DigestAlgorithm::Sha256.hasher(),
            0,
            Expectation {
                digest: Some(wrong),
                ..Default::default()
            },
        );
        assert_eq!(
            s.next().await.unwrap().unwrap(),
            Bytes::from_static(b"hello")
        );
        let err = s.next().await.unwrap().unwrap_err();
        assert!(matches!(
            content_mismatch(&err),
            Some(ContentMismatch::Digest { .. })
        ));
        assert!(s.next().await.is_none());
        assert_eq!(cell.lock().unwrap().as_ref().unwrap().size, 5);
    }

    #[tokio::test]
    async fn hashing_stream_enforces_limit() {
        let input = crate::storage::bytes_stream(Bytes::from_static(b"hello"));
        let (mut s, cell) = hashing_stream(
            input,
            DigestAlgorithm::Sha256.hasher(),
            0,
            Expectation {
                max_size: Some(4),
                ..Default::default()
            },
        );
        let err = s.next().await.unwrap().unwrap_err();
        assert!(matches!(
            content_mismatch(&err),
            Some(ContentMismatch::TooLarge { limit: 4 })
        ));
        assert!(cell.lock().unwrap().is_none());
    }
}
