//! A range of a file as `Bytes` backed by a read-only memory map, known to the connection
//! for as long as it is mapped.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::transfer::Slot;

/// Owns the map; forgets it in the connection's slot before unmapping it, so that an address
/// the slot knows is always this map's.
struct Mapped {
    map: memmap2::Mmap,
    slot: Arc<Slot>,
    id: u64,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        self.slot.forget(self.id);
    }
}

/// `range` (non-empty) of `file` as mapped bytes the connection behind `slot` will send
/// with `sendfile`.
pub(super) fn map(file: &Arc<File>, range: Range<u64>, slot: &Arc<Slot>) -> io::Result<Bytes> {
    let len = usize::try_from(range.end - range.start).map_err(io::Error::other)?;
    // SAFETY: the map is read-only and the bytes of a stored blob never change: the fs
    // backend writes a new file and renames it into place, and deletes by unlinking, which
    // leaves an open file's pages in place. Normally nothing reads the map at all (the
    // connection sends from the file); a copy on the way reads it like a file. (A file cut
    // short behind the registry's back would fault such a reader with SIGBUS; `sendfile`
    // reports it as an early end instead.)
    #[allow(unsafe_code)]
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(range.start)
            .len(len)
            .map(&**file)?
    };
    let id = slot.remember(map.as_ptr() as usize, len, file.clone(), range.start);
    Ok(Bytes::from_owner(Mapped {
        map,
        slot: slot.clone(),
        id,
    }))
}
