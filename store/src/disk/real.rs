//! `RealDisk`: the [`Disk`] trait on the real file system (std::fs), under one root directory.
//!
//! Open file handles are cached per path, so appending to a WAL segment does not reopen it.
//! `sync` is fdatasync, as etcd uses for WAL segments. `sync_dir` fsyncs the directory itself.
//! `allocate` uses `posix_fallocate` where the platform has it. One directory below the root
//! may be mounted elsewhere (etcd's `--wal-dir`).

use super::Disk;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The real file system below `root`.
#[derive(Debug)]
pub struct RealDisk {
    root: PathBuf,
    /// A relative directory that lives elsewhere, and where.
    mount: Option<(PathBuf, PathBuf)>,
    open: BTreeMap<PathBuf, File>,
}

impl RealDisk {
    /// A disk rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(RealDisk { root, mount: None, open: BTreeMap::new() })
    }

    /// The same disk, with the relative directory `dir` (and everything below it) at `target`
    /// instead of under the root.
    pub fn with_mount(mut self, dir: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        self.mount = Some((dir.into(), target.into()));
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the relative `path` is on the real file system.
    fn full(&self, path: &Path) -> PathBuf {
        if let Some((dir, target)) = &self.mount {
            if let Ok(rest) = path.strip_prefix(dir) {
                return target.join(rest);
            }
        }
        self.root.join(path)
    }

    /// A handle of its own on the file at `path` (for syncing it from another thread).
    pub fn shared_file(&mut self, path: &Path) -> io::Result<File> {
        self.file(path)?.try_clone()
    }

    fn file(&mut self, path: &Path) -> io::Result<&File> {
        if !self.open.contains_key(path) {
            let file = OpenOptions::new().read(true).write(true).open(self.full(path))?;
            self.open.insert(path.to_path_buf(), file);
        }
        Ok(&self.open[path])
    }
}

/// A clone shares the directory, not the cached file handles (each opens its own).
impl Clone for RealDisk {
    fn clone(&self) -> Self {
        RealDisk { root: self.root.clone(), mount: self.mount.clone(), open: BTreeMap::new() }
    }
}

impl Disk for RealDisk {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(self.full(dir))
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.full(dir))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.extend(entry.file_name().to_str().map(str::to_owned));
            }
        }
        names.sort();
        Ok(names)
    }

    fn create(&mut self, path: &Path) -> io::Result<()> {
        let file =
            OpenOptions::new().read(true).write(true).create_new(true).open(self.full(path))?;
        self.open.insert(path.to_path_buf(), file);
        Ok(())
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        self.full(path).try_exists()
    }

    fn len(&mut self, path: &Path) -> io::Result<u64> {
        Ok(self.file(path)?.metadata()?.len())
    }

    fn read_at(&mut self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file(path)?.read_at(buf, offset)
    }

    fn write_at(&mut self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file(path)?.write_all_at(data, offset)
    }

    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()> {
        self.file(path)?.set_len(len)
    }

    fn allocate(&mut self, path: &Path, len: u64) -> io::Result<()> {
        let file = self.file(path)?;
        if file.metadata()?.len() >= len {
            return Ok(());
        }
        allocate(file, len)
    }

    fn sync(&mut self, path: &Path) -> io::Result<()> {
        self.file(path)?.sync_data()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(self.full(from), self.full(to))?;
        self.open.remove(to);
        if let Some(file) = self.open.remove(from) {
            self.open.insert(to.to_path_buf(), file);
        }
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.open.remove(path);
        fs::remove_file(self.full(path))
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(self.full(dir))?.sync_all()
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // One FFI call; see the SAFETY note.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::other("allocation too large"))?;
    // SAFETY: the descriptor is open for writing for the duration of the call.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        // File systems without fallocate support: fall back to extending the file.
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len as u64),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

#[cfg(not(target_os = "linux"))]
fn allocate(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_on_the_real_file_system() {
        let root = std::env::temp_dir().join(format!("stead-realdisk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mut disk = RealDisk::new(&root).unwrap();
        let dir = Path::new("wal");
        disk.create_dir_all(dir).unwrap();
        let file = dir.join("a");
        disk.create(&file).unwrap();
        assert!(disk.create(&file).is_err(), "create refuses an existing file");
        disk.allocate(&file, 64).unwrap();
        disk.write_at(&file, 3, b"abc").unwrap();
        disk.sync(&file).unwrap();
        assert_eq!(disk.len(&file).unwrap(), 64);
        let mut buf = [0; 6];
        assert_eq!(disk.read_at(&file, 0, &mut buf).unwrap(), 6);
        assert_eq!(&buf, b"\0\0\0abc");
        disk.rename(&file, &dir.join("b")).unwrap();
        disk.sync_dir(dir).unwrap();
        assert_eq!(disk.list(dir).unwrap(), ["b"]);
        super::super::write_atomically(&mut disk, &dir.join("c"), b"whole").unwrap();
        assert_eq!(super::super::read_all(&mut disk, &dir.join("c")).unwrap(), b"whole");
        disk.remove(&dir.join("b")).unwrap();
        assert_eq!(disk.list(dir).unwrap(), ["c"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_mounted_directory_lives_elsewhere() {
        let base =
            std::env::temp_dir().join(format!("stead-realdisk-mount-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let mut disk =
            RealDisk::new(base.join("data")).unwrap().with_mount("member/wal", base.join("wal"));
        let file = Path::new("member/wal/0.wal");
        disk.create_dir_all(Path::new("member/wal")).unwrap();
        disk.create(file).unwrap();
        disk.write_at(file, 0, b"x").unwrap();
        disk.sync_dir(Path::new("member/wal")).unwrap();
        assert!(base.join("wal/0.wal").exists() && !base.join("data/member/wal").exists());
        assert_eq!(disk.clone().list(Path::new("member/wal")).unwrap(), ["0.wal"]);
        assert_eq!(disk.full(Path::new("member/snap")), base.join("data/member/snap"));
        fs::remove_dir_all(&base).unwrap();
    }
}
