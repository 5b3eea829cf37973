//! Helpers shared by the benchmark binaries: command-line values, and deterministic blob
//! content streamed without holding it in memory.

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::Digest as _;

pub const MIB: u64 = 1024 * 1024;

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Deterministic blob content: a 1 MiB pseudo-random block, with each MiB's first 8 bytes
/// replaced by its index and the seed, so that blobs of different seeds differ.
pub fn block(seed: u64, index: u64) -> Bytes {
    thread_local! {
        static BASE: Vec<u8> = {
            let mut x: u64 = 0x9e3779b97f4a7c15;
            (0..MIB as usize / 8).flat_map(|_| {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                x.to_le_bytes()
            }).collect()
        };
    }
    BASE.with(|base| {
        let mut b = base.clone();
        b[..8].copy_from_slice(&(index ^ (seed << 40)).to_le_bytes());
        Bytes::from(b)
    })
}

pub fn blob_digest(seed: u64, mib: u64) -> String {
    let mut h = sha2::Sha256::new();
    for i in 0..mib {
        h.update(block(seed, i));
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

pub fn blob_stream(
    seed: u64,
    from_mib: u64,
    to_mib: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(from_mib..to_mib).map(move |i| Ok(block(seed, i)))
}
