//! The data dir lock: one process per data dir, as etcd locks its WAL. A second `stead` on the
//! same directory is refused with a clear error instead of both writing one WAL.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Held for as long as the member runs; the lock goes with the file descriptor.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `dir`, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, String> {
        let path = dir.join("stead.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            return Err(format!(
                "{}: the data dir is in use by another process (could not lock {})",
                dir.display(),
                path.display()
            ));
        }
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_data_dir_is_refused() {
        let dir = std::env::temp_dir().join(format!("stead-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = DataDirLock::acquire(&dir).expect("the first lock");
        let second = DataDirLock::acquire(&dir).err().expect("refused");
        assert!(second.contains("in use by another process"), "{second}");
        drop(held);
        assert!(DataDirLock::acquire(&dir).is_ok(), "free again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
