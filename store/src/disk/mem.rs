//! `MemDisk`: an in-memory disk that loses, keeps or tears unsynced data at a crash, as its
//! caller decides, and fails operations on request.
//!
//! The crash model, per file: the data as of its last `sync`, plus a prefix of the writes made
//! since (in order), the last of which may be torn (only a prefix of its bytes kept). Per disk:
//! the namespace as of the last `sync_dir`, plus a prefix of the creations, renames and removals
//! made since. (A `sync_dir` of any directory commits every pending name change, as a journaling
//! file system's single journal does. Directories themselves are durable once created.) Every
//! choice comes from a chooser the caller passes to [`MemDisk::crash`]. The simulator passes its
//! seeded RNG; tests pass an enumerator to try every outcome.

use super::Disk;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Which operation an injected fault makes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// The next `read_at` fails with EIO.
    Read,
    /// The next `write_at`, `set_len` or `allocate` fails with EIO, writing nothing.
    Write,
    /// The next `sync` or `sync_dir` fails with EIO; the data stays unsynced.
    Sync,
}

/// A name change not yet made durable by `sync_dir`.
#[derive(Clone, Debug)]
enum NameChange {
    Create(PathBuf, u64),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
}

/// A data change not yet made durable by `sync`.
#[derive(Clone, Debug)]
enum DataChange {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl DataChange {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            DataChange::Write { offset, data } => {
                let (start, end) = (*offset as usize, *offset as usize + data.len());
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(data);
            }
            DataChange::SetLen(len) => content.resize(*len as usize, 0),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<DataChange>,
}

#[derive(Clone, Debug, Default)]
struct State {
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending_names: Vec<NameChange>,
    directories: BTreeSet<PathBuf>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    capacity_bytes: Option<u64>,
    faults: VecDeque<FaultKind>,
    writes: u64,
    syncs: u64,
}

/// An in-memory [`Disk`] with crash semantics. Clones share the same disk.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    state: Arc<Mutex<State>>,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

impl MemDisk {
    /// An empty disk with unlimited room.
    pub fn new() -> Self {
        MemDisk::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An independent copy of this disk as it is now (clones share one disk; forks do not),
    /// so one state can be crashed many different ways.
    pub fn fork(&self) -> MemDisk {
        MemDisk { state: Arc::new(Mutex::new(self.state().clone())) }
    }

    /// Limits the total bytes of all files; writes beyond fail with ENOSPC.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state().capacity_bytes = bytes;
    }

    /// Makes the next operation of `kind` fail with EIO (faults queue up in order).
    pub fn inject(&self, kind: FaultKind) {
        self.state().faults.push_back(kind);
    }

    /// The bytes all files hold now.
    pub fn used_bytes(&self) -> u64 {
        self.state().inodes.values().map(|inode| inode.current.len() as u64).sum()
    }

    /// Drops every injected fault not yet triggered.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// How many writes (`write_at`, `set_len`, `allocate`) and syncs (`sync`, `sync_dir`) ran.
    pub fn counters(&self) -> (u64, u64) {
        let state = self.state();
        (state.writes, state.syncs)
    }

    /// How many unsynced data and name changes a crash now could lose.
    pub fn unsynced_changes(&self) -> usize {
        let state = self.state();
        state.pending_names.len() + state.inodes.values().map(|i| i.pending.len()).sum::<usize>()
    }

    /// Simulates a power loss and reboot. For each decision, `choose(n)` must return a number
    /// in `0..n`: first how many pending name changes survive, then, per file with unsynced data
    /// (in the surviving namespace, in creation order), how many of its writes survive and, if one
    /// is cut, how many bytes of it survive. Everything that survives becomes durable.
    pub fn crash(&self, choose: &mut dyn FnMut(usize) -> usize) {
        let mut state = self.state();
        let kept_names = pick(choose, state.pending_names.len() + 1);
        let mut names = state.durable_names.clone();
        for change in &state.pending_names[..kept_names] {
            apply_name_change(&mut names, change);
        }
        let mut inodes = BTreeMap::new();
        for inode_id in names.values().copied().collect::<BTreeSet<u64>>() {
            let inode = &state.inodes[&inode_id];
            let content = survive(inode, choose);
            let inode = Inode { durable: content.clone(), current: content, pending: Vec::new() };
            inodes.insert(inode_id, inode);
        }
        state.durable_names = names.clone();
        state.names = names;
        state.pending_names.clear();
        state.inodes = inodes;
    }

    fn take_fault(state: &mut State, kind: FaultKind) -> io::Result<()> {
        if state.faults.front() == Some(&kind) {
            state.faults.pop_front();
            return Err(eio());
        }
        Ok(())
    }

    /// Applies a data change to a file, checking faults and room first.
    fn change(&mut self, path: &Path, change: DataChange) -> io::Result<()> {
        let mut state = self.state();
        MemDisk::take_fault(&mut state, FaultKind::Write)?;
        let inode_id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        let old_len = state.inodes[&inode_id].current.len() as u64;
        let new_len = match &change {
            DataChange::Write { offset, data } => old_len.max(offset + data.len() as u64),
            DataChange::SetLen(len) => *len,
        };
        let total: u64 = state.inodes.values().map(|i| i.current.len() as u64).sum();
        if let Some(capacity) = state.capacity_bytes {
            if new_len > old_len && total - old_len + new_len > capacity {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        state.writes += 1;
        let inode = state.inodes.get_mut(&inode_id).expect("named inode exists");
        change.apply(&mut inode.current);
        inode.pending.push(change);
        Ok(())
    }
}

/// `choose(n)`, clamped into `0..n` so a careless chooser cannot break the disk.
fn pick(choose: &mut dyn FnMut(usize) -> usize, options: usize) -> usize {
    choose(options).min(options - 1)
}

/// The content of a file after a crash: durable data plus a prefix of its changes, the last
/// possibly torn.
fn survive(inode: &Inode, choose: &mut dyn FnMut(usize) -> usize) -> Vec<u8> {
    let mut content = inode.durable.clone();
    if inode.pending.is_empty() {
        return content;
    }
    let kept = pick(choose, inode.pending.len() + 1);
    for change in &inode.pending[..kept] {
        change.apply(&mut content);
    }
    if let Some(DataChange::Write { offset, data }) = inode.pending.get(kept) {
        if data.len() > 1 {
            let torn = pick(choose, data.len());
            DataChange::Write { offset: *offset, data: data[..torn].to_vec() }.apply(&mut content);
        }
    }
    content
}

fn apply_name_change(names: &mut BTreeMap<PathBuf, u64>, change: &NameChange) {
    match change {
        NameChange::Create(path, inode) => {
            names.insert(path.clone(), *inode);
        }
        NameChange::Rename(from, to) => {
            if let Some(inode) = names.remove(from) {
                names.insert(to.clone(), inode);
            }
        }
        NameChange::Remove(path) => {
            names.remove(path);
        }
    }
}

impl Disk for MemDisk {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            state.directories.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !dir.as_os_str().is_empty() && !state.directories.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = state.names.keys().filter(|path| super::parent(path) == dir);
        let names = in_dir.filter_map(|path| path.file_name()?.to_str().map(str::to_owned));
        Ok(names.collect())
    }

    fn create(&mut self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        let dir = super::parent(path);
        if !dir.as_os_str().is_empty() && !state.directories.contains(dir) {
            return Err(not_found(dir));
        }
        if state.names.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()));
        }
        let inode = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(inode, Inode::default());
        state.names.insert(path.to_path_buf(), inode);
        state.pending_names.push(NameChange::Create(path.to_path_buf(), inode));
        Ok(())
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        Ok(self.state().names.contains_key(path))
    }

    fn len(&mut self, path: &Path) -> io::Result<u64> {
        let state = self.state();
        let inode = state.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(state.inodes[inode].current.len() as u64)
    }

    fn read_at(&mut self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.state();
        MemDisk::take_fault(&mut state, FaultKind::Read)?;
        let inode = state.names.get(path).ok_or_else(|| not_found(path))?;
        let content = &state.inodes[inode].current;
        let start = (offset as usize).min(content.len());
        let count = buf.len().min(content.len() - start);
        buf[..count].copy_from_slice(&content[start..start + count]);
        Ok(count)
    }

    fn write_at(&mut self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        self.change(path, DataChange::Write { offset, data: data.to_vec() })
    }

    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()> {
        self.change(path, DataChange::SetLen(len))
    }

    fn allocate(&mut self, path: &Path, len: u64) -> io::Result<()> {
        if self.len(path)? >= len {
            return Ok(());
        }
        self.change(path, DataChange::SetLen(len))
    }

    fn sync(&mut self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        MemDisk::take_fault(&mut state, FaultKind::Sync)?;
        let inode_id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        state.syncs += 1;
        let inode = state.inodes.get_mut(&inode_id).expect("named inode exists");
        // Durable data plus the pending changes is the current content; replaying just the
        // changes costs what was written, not the file's size.
        for change in std::mem::take(&mut inode.pending) {
            change.apply(&mut inode.durable);
        }
        debug_assert_eq!(inode.durable, inode.current);
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        if let Some(replaced) = state.names.insert(to.to_path_buf(), inode) {
            forget_if_unnamed(&mut state, replaced);
        }
        state.pending_names.push(NameChange::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        let inode = state.names.remove(path).ok_or_else(|| not_found(path))?;
        forget_if_unnamed(&mut state, inode);
        state.pending_names.push(NameChange::Remove(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        MemDisk::take_fault(&mut state, FaultKind::Sync)?;
        if !dir.as_os_str().is_empty() && !state.directories.contains(dir) {
            return Err(not_found(dir));
        }
        state.syncs += 1;
        state.durable_names = state.names.clone();
        state.pending_names.clear();
        Ok(())
    }
}

/// Drops an inode's data once no name, current or durable, refers to it, so a crash cannot
/// bring back a file whose durable name still points at it.
fn forget_if_unnamed(state: &mut State, inode: u64) {
    let named = state.names.values().chain(state.durable_names.values()).any(|&i| i == inode);
    let pending =
        state.pending_names.iter().any(|c| matches!(c, NameChange::Create(_, i) if *i == inode));
    if !named && !pending {
        state.inodes.remove(&inode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    /// A disk with one durable file `f` holding "durable", then an unsynced write of "-more".
    fn disk_with_pending_write() -> MemDisk {
        let mut disk = MemDisk::new();
        disk.create(&path("f")).unwrap();
        disk.write_at(&path("f"), 0, b"durable").unwrap();
        disk.sync(&path("f")).unwrap();
        disk.sync_dir(&path("")).unwrap();
        disk.write_at(&path("f"), 7, b"-more").unwrap();
        disk
    }

    fn content(disk: &mut MemDisk, name: &str) -> Vec<u8> {
        super::super::read_all(disk, &path(name)).unwrap()
    }

    #[test]
    fn a_crash_keeps_synced_data_and_chooses_for_the_rest() {
        for (choices, expected) in [
            (vec![0, 0, 0], &b"durable"[..]),
            (vec![0, 1], &b"durable-more"[..]),
            (vec![0, 0, 3], &b"durable-mo"[..]),
        ] {
            let mut disk = disk_with_pending_write();
            let mut choices = choices.into_iter();
            disk.crash(&mut |_| choices.next().unwrap_or(0));
            assert_eq!(content(&mut disk, "f"), expected);
            assert_eq!(disk.unsynced_changes(), 0, "what survives is durable");
        }
    }

    #[test]
    fn unsynced_names_may_vanish_and_synced_ones_stay() {
        let mut disk = MemDisk::new();
        disk.create(&path("a")).unwrap();
        disk.sync_dir(&path("")).unwrap();
        disk.create(&path("b")).unwrap();
        disk.rename(&path("a"), &path("c")).unwrap();
        let mut lose_all = |_| 0;
        disk.crash(&mut lose_all);
        assert_eq!(disk.list(&path("")).unwrap(), ["a"]);
        disk.create(&path("b")).unwrap();
        disk.rename(&path("a"), &path("c")).unwrap();
        let mut keep_first = |n: usize| if n == 3 { 1 } else { 0 };
        disk.crash(&mut keep_first);
        assert_eq!(disk.list(&path("")).unwrap(), ["a", "b"]);
    }

    #[test]
    fn a_removed_file_comes_back_if_the_removal_was_not_synced() {
        let mut disk = disk_with_pending_write();
        disk.sync(&path("f")).unwrap();
        disk.remove(&path("f")).unwrap();
        disk.crash(&mut |_| 0);
        assert_eq!(content(&mut disk, "f"), b"durable-more");
    }

    #[test]
    fn injected_faults_and_full_disks_fail_without_changing_anything() {
        let mut disk = disk_with_pending_write();
        disk.inject(FaultKind::Write);
        assert_eq!(disk.write_at(&path("f"), 0, b"X").unwrap_err().raw_os_error(), Some(libc::EIO));
        disk.inject(FaultKind::Sync);
        assert!(disk.sync(&path("f")).is_err());
        assert_eq!(disk.unsynced_changes(), 1, "a failed sync syncs nothing");
        disk.inject(FaultKind::Read);
        assert!(disk.read_at(&path("f"), 0, &mut [0; 4]).is_err());
        disk.set_capacity(Some(14));
        let full = disk.write_at(&path("f"), 12, b"abc").unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        disk.write_at(&path("f"), 12, b"ab").unwrap();
        assert_eq!(content(&mut disk, "f"), b"durable-moreab");
    }

    #[test]
    fn files_need_their_directory() {
        let mut disk = MemDisk::new();
        assert_eq!(disk.create(&path("wal/x")).unwrap_err().kind(), io::ErrorKind::NotFound);
        disk.create_dir_all(&path("data/wal")).unwrap();
        disk.create(&path("data/wal/x")).unwrap();
        assert_eq!(disk.list(&path("data/wal")).unwrap(), ["x"]);
        assert!(disk.list(&path("data")).unwrap().is_empty());
    }
}
