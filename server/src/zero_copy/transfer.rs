//! The file ranges a connection has mapped for sending, and the table through which a
//! response finds its connection (poem gives a handler the connection's addresses, not the
//! connection).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// How much is probed for being in the page cache at once (see [`Step::cached`]), and so
/// the most one `sendfile` is asked for. Larger windows measured faster for one stream on
/// loopback (16 MiB: 3.7 GiB/s, 4 MiB: 3.2, 1 MiB: 2.7, medians of 10), as each call then
/// takes whatever the socket has room for.
const PROBE_WINDOW: u64 = 16 << 20;

/// One connection's mapped ranges (usually none or one).
#[derive(Debug, Default)]
pub(super) struct Slot {
    regions: Mutex<Vec<Region>>,
    /// Whether `regions` may be non-empty: writes of other responses skip the lock.
    busy: AtomicBool,
}

/// A mapped range of a file: `len` bytes at address `base` are the file's from `offset`.
#[derive(Debug)]
struct Region {
    id: u64,
    base: usize,
    len: usize,
    file: Arc<File>,
    offset: u64,
    /// Bytes of the region before this one were found in the page cache.
    cached_until: usize,
}

impl Region {
    fn holds(&self, slice: &[u8]) -> bool {
        let at = slice.as_ptr() as usize;
        !slice.is_empty() && at >= self.base && at + slice.len() <= self.base + self.len
    }
}

/// What to send for a slice of a mapped region.
#[derive(Debug)]
pub(super) struct Step {
    pub file: Arc<File>,
    pub at: u64,
    pub count: usize,
    /// Whether the bytes are in the page cache, so that `sendfile` will not wait for the disk
    /// and may run on the async worker. Probed once per [`PROBE_WINDOW`] by reading its first
    /// and last bytes with `RWF_NOWAIT`: the kernel reads ahead in order, so both ends cached
    /// means the rest almost always is.
    pub cached: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Region>> {
        self.regions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a mapped region; answers its id for [`Slot::forget`].
    pub(super) fn remember(&self, base: usize, len: usize, file: Arc<File>, offset: u64) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut regions = self.lock();
        regions.push(Region {
            id,
            base,
            len,
            file,
            offset,
            cached_until: 0,
        });
        self.busy.store(true, Ordering::Release);
        id
    }

    /// Forgets a region (before it is unmapped).
    pub(super) fn forget(&self, id: u64) {
        let mut regions = self.lock();
        regions.retain(|r| r.id != id);
        self.busy.store(!regions.is_empty(), Ordering::Release);
    }

    /// Whether `slice` lies in a mapped region.
    pub(super) fn is_mapped(&self, slice: &[u8]) -> bool {
        self.busy.load(Ordering::Acquire) && self.lock().iter().any(|r| r.holds(slice))
    }

    /// What to send for `slice` if it lies in a mapped region.
    pub(super) fn step(&self, slice: &[u8]) -> Option<Step> {
        if !self.busy.load(Ordering::Acquire) {
            return None;
        }
        let at = slice.as_ptr() as usize;
        let mut regions = self.lock();
        let r = regions.iter_mut().find(|r| r.holds(slice))?;
        let start = at - r.base;
        let mut count = slice.len();
        if start >= r.cached_until {
            let probe_end = (start as u64 + PROBE_WINDOW).min(r.len as u64);
            if is_cached(&r.file, r.offset + start as u64)
                && is_cached(&r.file, r.offset + probe_end - 1)
            {
                r.cached_until = probe_end as usize;
            }
        }
        let cached = start < r.cached_until;
        if cached {
            count = count.min(r.cached_until - start);
        }
        Some(Step {
            file: r.file.clone(),
            at: r.offset + start as u64,
            count,
            cached,
        })
    }
}

/// Whether the byte at `at` is in the page cache. A file system that cannot say (no
/// `RWF_NOWAIT`) gets every send on the blocking pool: slower, never blocking a worker.
fn is_cached(file: &File, at: u64) -> bool {
    let mut byte = [0u8; 1];
    let read = rustix::io::preadv2(
        file,
        &mut [io::IoSliceMut::new(&mut byte)],
        at,
        rustix::io::ReadWriteFlags::NOWAIT,
    );
    read.is_ok()
}

type Addresses = (SocketAddr, SocketAddr);

/// The slots of the live plain-text connections, by (local, remote) address.
static CONNECTIONS: LazyLock<Mutex<HashMap<Addresses, Arc<Slot>>>> =
    LazyLock::new(Default::default);

fn connections() -> std::sync::MutexGuard<'static, HashMap<Addresses, Arc<Slot>>> {
    CONNECTIONS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection's entry in the table, removed when the connection is dropped.
#[derive(Debug)]
pub(super) struct Registration {
    addresses: Addresses,
    pub(super) slot: Arc<Slot>,
}

impl Registration {
    pub(super) fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        let slot = Arc::new(Slot::default());
        connections().insert((local, remote), slot.clone());
        Self {
            addresses: (local, remote),
            slot,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = connections();
        // A new connection from the same port may have taken the entry already.
        if table
            .get(&self.addresses)
            .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
        {
            table.remove(&self.addresses);
        }
    }
}

/// The slot of the connection between these addresses, if it is a registered one.
pub(super) fn slot_of(local: SocketAddr, remote: SocketAddr) -> Option<Arc<Slot>> {
    connections().get(&(local, remote)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file(len: usize) -> Arc<File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7; len]).unwrap();
        Arc::new(f)
    }

    #[test]
    fn only_slices_of_remembered_regions_are_sent_from_files() {
        let slot = Slot::default();
        let memory = vec![0u8; 100];
        assert!(slot.step(&memory).is_none(), "nothing remembered");
        let id = slot.remember(memory.as_ptr() as usize + 10, 50, file(1000), 500);
        assert!(slot.is_mapped(&memory[10..60]) && slot.is_mapped(&memory[59..60]));
        assert!(!slot.is_mapped(&memory[9..60]) && !slot.is_mapped(&memory[10..10]));
        let step = slot.step(&memory[10..60]).unwrap();
        assert_eq!((step.at, step.count), (500, 50));
        assert!(step.cached, "a file just written is in the page cache");
        let step = slot.step(&memory[30..40]).unwrap();
        assert_eq!((step.at, step.count), (520, 10));
        assert!(
            slot.step(&memory[0..20]).is_none(),
            "starts before the region"
        );
        assert!(
            slot.step(&memory[50..61]).is_none(),
            "ends after the region"
        );
        assert!(slot.step(&memory[10..10]).is_none(), "empty");
        slot.forget(id);
        assert!(slot.step(&memory[10..60]).is_none(), "forgotten");
        assert!(!slot.is_mapped(&memory[10..60]));
    }

    #[test]
    fn the_table_forgets_a_connection_when_it_goes() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let remote: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let first = Registration::new(local, remote);
        assert!(Arc::ptr_eq(&slot_of(local, remote).unwrap(), &first.slot));
        // The same addresses again (a reused port) before the old connection is dropped.
        let second = Registration::new(local, remote);
        drop(first);
        assert!(Arc::ptr_eq(&slot_of(local, remote).unwrap(), &second.slot));
        drop(second);
        assert!(slot_of(local, remote).is_none());
    }
}
