//! Segment files: the small messages of one batch, back to back in one file, written once and
//! synced once before the batch's rows (which point at byte ranges of it) commit.
//!
//! Why direct I/O: a buffered write copies every byte into page-cache pages the kernel has to
//! find first, and on a virtual machine fresh pages are expensive (each one a fault in the
//! hypervisor when the host took it back). Measured on the 2-core development VM, 123 MB of mail
//! took 0.25 s of CPU in that copy for a first write and 0.02 s for a rewrite of pages already
//! held; with O_DIRECT the disk reads the bytes from one reused, page-aligned buffer instead and
//! the copy disappears from the profile (the bytes have to reach the disk anyway: the segment is
//! fsynced before its batch commits). The page cache is of no use here either: segments are read
//! again only when somebody opens a message.
//!
//! File systems without O_DIRECT (tmpfs, some network and FUSE file systems) get the buffered
//! write, which is equally durable.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

/// Direct I/O wants buffer addresses, lengths and file offsets in multiples of the logical
/// block size; 4096 covers every common device.
const ALIGN: usize = 4096;
/// How much is copied into the aligned buffer before each write.
const CHUNK: usize = 4 * 1024 * 1024;

/// Writes `parts` back to back into a new file at `path` and syncs it (data and size).
pub(crate) fn write(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        match write_direct(path, parts) {
            Ok(()) => return Ok(()),
            // The file system refuses direct I/O: write it through the page cache instead.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %path.display(), "no direct I/O here; writing the segment through the page cache");
            }
            Err(e) => return Err(e),
        }
    }
    write_buffered(path, parts)
}

#[cfg(target_os = "linux")]
fn write_direct(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut buf = AlignedBuf::take();
    let block = buf.as_mut();
    let mut fill = 0;
    let mut total = 0u64;
    for part in parts {
        let mut rest = *part;
        total += rest.len() as u64;
        while !rest.is_empty() {
            let n = (CHUNK - fill).min(rest.len());
            block[fill..fill + n].copy_from_slice(&rest[..n]);
            fill += n;
            rest = &rest[n..];
            if fill == CHUNK {
                write_block(&mut f, &block[..CHUNK])?;
                fill = 0;
            }
        }
    }
    if fill > 0 {
        // The last block is padded to the alignment, then the file is cut back to its length.
        let padded = fill.next_multiple_of(ALIGN);
        block[fill..padded].fill(0);
        write_block(&mut f, &block[..padded])?;
    }
    buf.give_back();
    f.set_len(total)?;
    f.sync_all()
}

/// One aligned block; a short write would leave the next offset unaligned, so it is an error
/// (EINVAL, which sends the caller to the buffered path) rather than a retry.
#[cfg(target_os = "linux")]
fn write_block(f: &mut File, block: &[u8]) -> io::Result<()> {
    loop {
        match f.write(block) {
            Ok(n) if n == block.len() => return Ok(()),
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn write_buffered(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut f = File::create(path)?;
    // Straight from the messages' own buffers (writev), no copy into one big buffer.
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = bufs.len().min(1024);
        match f.write_vectored(&bufs[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut bufs, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    f.sync_all()
}

/// A page-aligned buffer of `CHUNK` bytes. Kept in a small pool so its pages stay mapped
/// between batches (a freshly mapped buffer would cost the faults that direct I/O avoids).
struct AlignedBuf(NonNull<u8>);

// SAFETY: the buffer is plain memory owned by this value alone.
unsafe impl Send for AlignedBuf {}

static POOL: Mutex<Vec<AlignedBuf>> = Mutex::new(Vec::new());

impl AlignedBuf {
    fn layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(CHUNK, ALIGN).expect("valid layout")
    }

    fn take() -> AlignedBuf {
        if let Some(b) = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return b;
        }
        let layout = Self::layout();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        match NonNull::new(ptr) {
            Some(p) => AlignedBuf(p),
            None => std::alloc::handle_alloc_error(layout),
        }
    }

    fn give_back(self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 2 {
            pool.push(self);
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: CHUNK bytes were allocated for this pointer and nobody else refers to them.
        // The bytes may be uninitialised only before the first use; u8 has no invalid values
        // and every byte written out is written here first.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), CHUNK) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `take` with the same layout.
        unsafe { std::alloc::dealloc(self.0.as_ptr(), Self::layout()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_written_back_to_back_at_any_length() {
        let dir = tempfile::tempdir().unwrap();
        // Crosses a chunk boundary and ends off the alignment.
        let a = vec![b'a'; CHUNK - 10];
        let b = b"0123456789abcdef".to_vec();
        let c = vec![b'c'; 5000];
        let path = dir.path().join("x.seg");
        write(&path, &[&a, &b, &[], &c]).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), a.len() + b.len() + c.len());
        assert_eq!(&got[..a.len()], &a[..]);
        assert_eq!(&got[a.len()..a.len() + 16], &b[..]);
        assert_eq!(&got[a.len() + 16..], &c[..]);
        // Rewriting (a retried batch) replaces the file.
        write(&path, &[b"short"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        write_buffered(&path, &[b"one", b"two"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"onetwo");
    }
}
