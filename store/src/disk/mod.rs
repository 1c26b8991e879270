//! The `Disk` trait: the only way stead touches files, so a simulated disk can stand in for the
//! real one and crash at any point.
//!
//! The trait is path-based and synchronous. Paths are relative to the disk's root. Durability
//! follows POSIX, strictly: file data is durable only after [`Disk::sync`]. Creating, renaming
//! and removing a file are durable only after [`Disk::sync_dir`]. [`MemDisk`] enforces exactly
//! that at a crash; [`RealDisk`] relies on the kernel for it.

mod mem;
mod real;

pub use mem::{FaultKind, MemDisk};
pub use real::RealDisk;

use std::io;
use std::path::{Path, PathBuf};

/// File-system operations, relative to a root directory.
pub trait Disk {
    /// Creates `dir` and its parents if missing (durable after `sync_dir` of the parent).
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir`, sorted.
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates an empty file; fails if it exists.
    fn create(&mut self, path: &Path) -> io::Result<()>;
    /// Whether a file exists.
    fn exists(&mut self, path: &Path) -> io::Result<bool>;
    /// The file's length in bytes.
    fn len(&mut self, path: &Path) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&mut self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&mut self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Sets the file's length: truncates, or extends with zeros.
    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()>;
    /// Reserves space so that the file is at least `len` bytes (zeros), failing with
    /// `StorageFull` when the disk has no room (etcd preallocates WAL segments this way).
    fn allocate(&mut self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync(&mut self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&mut self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in `dir` durable.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
}

/// Reads a whole file.
pub fn read_all(disk: &mut dyn Disk, path: &Path) -> io::Result<Vec<u8>> {
    let len = disk.len(path)?;
    let len = usize::try_from(len).map_err(|_| io::Error::other("file larger than memory"))?;
    let mut data = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let read = disk.read_at(path, filled as u64, &mut data[filled..])?;
        if read == 0 {
            data.truncate(filled);
            break;
        }
        filled += read;
    }
    Ok(data)
}

/// Writes a file atomically and durably: a temporary file is written and synced, renamed over
/// `path`, and the directory synced. After a crash the file holds either its old content (or is
/// absent) or all of `data`, never a mix.
pub fn write_atomically(disk: &mut dyn Disk, path: &Path, data: &[u8]) -> io::Result<()> {
    let temporary = temporary_path(path);
    if disk.exists(&temporary)? {
        disk.remove(&temporary)?;
    }
    let written = disk
        .create(&temporary)
        .and_then(|()| disk.write_at(&temporary, 0, data))
        .and_then(|()| disk.sync(&temporary));
    if let Err(error) = written {
        // Give back what a write the disk refused (a full disk) took.
        let _ = disk.remove(&temporary);
        return Err(error);
    }
    disk.rename(&temporary, path)?;
    disk.sync_dir(parent(path))
}

/// The name a file takes while it is written by [`write_atomically`].
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The directory holding `path` (the root for a bare name).
pub fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}
