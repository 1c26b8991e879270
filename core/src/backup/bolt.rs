//! bbolt database files, the format of etcd's backend and of its backups, read and written for
//! the subset etcd 3.4 uses: one level of buckets holding plain keys and values.
//!
//! A file is a run of 4 KiB pages. Pages 0 and 1 are meta pages (the valid one with the higher
//! transaction id wins; each carries an FNV-1a checksum); the meta names the root bucket's root
//! page, whose leaf elements are the top-level buckets. A bucket is a B+tree of branch and leaf
//! pages, or, when small, a leaf page image stored inline in its parent's value. A node larger
//! than a page takes contiguous overflow pages. All integers of the format are little-endian.
//!
//! [`write`] bulk-loads sorted buckets bottom-up the way bbolt's own rules require for a file
//! etcd later writes into (branch keys equal their child's first key, at least two children per
//! branch, small buckets inline) and, like etcd, writes no freelist page. [`read`] checks every
//! offset, page id, checksum and key order, so a truncated or corrupted file is an error with its
//! place, never a panic.

use std::collections::{BTreeMap, BTreeSet};

/// Every top-level bucket (by name) with its keys and values.
pub type Buckets = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The page size stead writes (bbolt's on Linux).
pub const PAGE_SIZE: usize = 4096;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_FLAG: u32 = 0x01;
/// `meta.freelist` when no freelist page is stored (etcd's `NoFreelistSync`).
const NO_FREELIST: u64 = u64::MAX;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
/// How full bulk-loaded pages are (etcd's fill for its key bucket and for defragment).
const FILL: usize = PAGE_SIZE * 9 / 10;
/// A bucket this small (bbolt's `pageSize / 4`) is stored inline in its parent.
const INLINE_MAX: usize = PAGE_SIZE / 4;
/// Deeper trees than this are corrupt (a 4 KiB page holds at least two children).
const DEPTH_MAX: usize = 64;

/// FNV-1a, 64 bits (bbolt's meta checksum).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// A file's meta (the fields stead uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    page_size: usize,
    root: u64,
    pages: u64,
    txid: u64,
}

/// The meta at `offset`, if it is valid.
fn meta_at(bytes: &[u8], offset: usize) -> Result<Meta, String> {
    let field = |at: usize| u64_at(bytes, offset + at).ok_or("cut short");
    let magic = u32_at(bytes, offset + 16).ok_or("cut short")?;
    if magic != MAGIC {
        return Err("not a bbolt meta page (bad magic)".into());
    }
    let version = u32_at(bytes, offset + 20).ok_or("cut short")?;
    if version != VERSION {
        return Err(format!("bbolt version {version}, expected {VERSION}"));
    }
    let checksum = field(72)?;
    if checksum != 0 && checksum != fnv1a(&bytes[offset + 16..offset + 72]) {
        return Err("meta checksum mismatch".into());
    }
    let page_size = u32_at(bytes, offset + 24).ok_or("cut short")? as usize;
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(format!("page size {page_size} is not a bbolt page size"));
    }
    Ok(Meta { page_size, root: field(32)?, pages: field(56)?, txid: field(64)? })
}

/// Reads a bbolt file: every top-level bucket with its keys and values. Bytes past the file's
/// last page (a SHA-256 trailer, preallocated space) are ignored.
pub fn read(bytes: &[u8]) -> Result<Buckets, String> {
    read_sized(bytes).map(|(buckets, _)| buckets)
}

/// [`read`], and the database's size (its pages, as etcd counts it).
pub fn read_sized(bytes: &[u8]) -> Result<(Buckets, usize), String> {
    if bytes.len() < 2 * 512 {
        return Err(format!("not a bbolt database: {} bytes", bytes.len()));
    }
    let first = meta_at(bytes, 0);
    let page_size = first.as_ref().map_or(PAGE_SIZE, |m| m.page_size);
    let second = meta_at(bytes, page_size);
    let meta = match (first, second) {
        (Ok(a), Ok(b)) => {
            if b.txid > a.txid {
                b
            } else {
                a
            }
        }
        (Ok(a), Err(_)) => a,
        (Err(_), Ok(b)) => b,
        (Err(a), Err(b)) => return Err(format!("not a bbolt database: page 0: {a}; page 1: {b}")),
    };
    let needed = usize::try_from(meta.pages)
        .ok()
        .and_then(|pages| pages.checked_mul(meta.page_size))
        .ok_or("the meta page's page count is absurd")?;
    if bytes.len() < needed {
        return Err(format!(
            "truncated: the database has {} pages ({needed} bytes), the file {} bytes",
            meta.pages,
            bytes.len()
        ));
    }
    let mut reader = Reader { bytes: &bytes[..needed], meta, seen: BTreeSet::new() };
    let mut top = Vec::new();
    reader.tree(meta.root, 0, &mut top).map_err(|e| format!("root bucket: {e}"))?;
    let mut buckets = Buckets::new();
    for item in top {
        let name = String::from_utf8_lossy(&item.key).into_owned();
        if item.flags & BUCKET_FLAG == 0 {
            return Err(format!("a plain value {name:?} at the top level"));
        }
        let mut entries = Vec::new();
        reader.bucket(&item.value, &mut entries).map_err(|e| format!("bucket {name:?}: {e}"))?;
        let mut bucket = BTreeMap::new();
        for entry in entries {
            if entry.flags & BUCKET_FLAG != 0 {
                return Err(format!("bucket {name:?}: nested buckets are not etcd's"));
            }
            bucket.insert(entry.key, entry.value);
        }
        buckets.insert(item.key, bucket);
    }
    Ok((buckets, needed))
}

/// One element of a leaf: flags, key and value.
struct Item {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    meta: Meta,
    /// Pages already visited (each may be referenced once).
    seen: BTreeSet<u64>,
}

impl<'a> Reader<'a> {
    /// The items of a bucket value: inline, or a tree at its root page.
    fn bucket(&mut self, value: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
        let root = u64_at(value, 0).ok_or("bucket header cut short")?;
        if root != 0 {
            return self.tree(root, 0, out);
        }
        let page = value.get(BUCKET_HEADER..).ok_or("inline bucket cut short")?;
        match u16_at(page, 8) {
            Some(LEAF) => {
                leaf_items(page, out)?;
                in_order(out, 0)
            }
            _ => Err("inline bucket is not a leaf page".into()),
        }
    }

    /// The items of the tree rooted at page `id`, in order.
    fn tree(&mut self, id: u64, depth: usize, out: &mut Vec<Item>) -> Result<(), String> {
        if depth > DEPTH_MAX {
            return Err("tree too deep (a cycle?)".into());
        }
        let page = self.page(id)?;
        match u16_at(page, 8) {
            Some(LEAF) => {
                let before = out.len();
                leaf_items(page, out).map_err(|e| format!("page {id}: {e}"))?;
                in_order(out, before).map_err(|e| format!("page {id}: {e}"))
            }
            Some(BRANCH) => {
                let count = usize::from(u16_at(page, 10).unwrap_or(0));
                for i in 0..count {
                    let at = HEADER + i * ELEMENT;
                    let child = u64_at(page, at + 8).ok_or(format!("page {id}: element {i}"))?;
                    self.tree(child, depth + 1, out)?;
                }
                Ok(())
            }
            Some(other) => Err(format!("page {id}: type {other:#x} inside a tree")),
            None => Err(format!("page {id}: cut short")),
        }
    }

    /// The bytes of page `id` and its overflow pages; each page is referenced once.
    fn page(&mut self, id: u64) -> Result<&'a [u8], String> {
        let bytes: &'a [u8] = self.bytes;
        if id < 2 || id >= self.meta.pages {
            return Err(format!("page {id} is out of bounds (the file has {})", self.meta.pages));
        }
        let size = self.meta.page_size;
        let start = id as usize * size;
        let header = &bytes[start..start + HEADER];
        if u64_at(header, 0) != Some(id) {
            return Err(format!("page {id} carries the id of another page"));
        }
        let overflow = u64::from(u32_at(header, 12).unwrap_or(0));
        let last = id.checked_add(overflow).filter(|l| *l < self.meta.pages);
        let last = last.ok_or(format!("page {id}: overflow past the end"))?;
        for page in id..=last {
            if !self.seen.insert(page) {
                return Err(format!("page {page} is referenced twice"));
            }
        }
        Ok(&bytes[start..(last as usize + 1) * size])
    }
}

/// The elements of a leaf page image.
fn leaf_items(page: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
    let count = usize::from(u16_at(page, 10).ok_or("header cut short")?);
    for i in 0..count {
        let at = HEADER + i * ELEMENT;
        let bad = || format!("element {i} points outside its page");
        let flags = u32_at(page, at).ok_or_else(bad)?;
        let pos = u32_at(page, at + 4).ok_or_else(bad)? as usize;
        let key_len = u32_at(page, at + 8).ok_or_else(bad)? as usize;
        let value_len = u32_at(page, at + 12).ok_or_else(bad)? as usize;
        let key_at = at.checked_add(pos).ok_or_else(bad)?;
        let value_at = key_at.checked_add(key_len).ok_or_else(bad)?;
        let end = value_at.checked_add(value_len).ok_or_else(bad)?;
        let (key, value) = match (page.get(key_at..value_at), page.get(value_at..end)) {
            (Some(key), Some(value)) => (key, value),
            _ => return Err(bad()),
        };
        if key.is_empty() {
            return Err(format!("element {i} has an empty key"));
        }
        out.push(Item { flags, key: key.to_vec(), value: value.to_vec() });
    }
    Ok(())
}

/// Keys from `from` on are strictly increasing, and follow the one before them.
fn in_order(items: &[Item], from: usize) -> Result<(), String> {
    let start = from.saturating_sub(1);
    match items[start..].windows(2).all(|pair| pair[0].key < pair[1].key) {
        true => Ok(()),
        false => Err("keys out of order".into()),
    }
}

/// Writes `buckets` as a bbolt file (a multiple of the page size).
pub fn write(buckets: &Buckets) -> Vec<u8> {
    let mut file = Pages { bytes: vec![0; 2 * PAGE_SIZE], next: 2 };
    let mut top = Vec::new();
    for (name, entries) in buckets {
        let items: Vec<Node> =
            entries.iter().map(|(k, v)| Node::leaf_item(k.clone(), v.clone(), 0)).collect();
        let value = file.bucket_value(&items);
        top.push(Node::leaf_item(name.clone(), value, BUCKET_FLAG));
    }
    let root = file.tree(&top);
    let pages = file.next;
    for (page, txid) in [(0u64, 1u64), (1, 0)] {
        let meta = meta_page(page, root, pages, txid);
        let at = page as usize * PAGE_SIZE;
        file.bytes[at..at + meta.len()].copy_from_slice(&meta);
    }
    file.bytes
}

fn meta_page(id: u64, root: u64, pages: u64, txid: u64) -> Vec<u8> {
    let mut meta = Vec::with_capacity(80);
    meta.extend_from_slice(&id.to_le_bytes());
    meta.extend_from_slice(&META.to_le_bytes());
    meta.extend_from_slice(&[0; 6]);
    meta.extend_from_slice(&MAGIC.to_le_bytes());
    meta.extend_from_slice(&VERSION.to_le_bytes());
    meta.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    meta.extend_from_slice(&0u32.to_le_bytes());
    for field in [root, 0, NO_FREELIST, pages, txid] {
        meta.extend_from_slice(&field.to_le_bytes());
    }
    let checksum = fnv1a(&meta[16..72]);
    meta.extend_from_slice(&checksum.to_le_bytes());
    meta
}

/// An element to write: a leaf's key and value (with flags), or a branch's first key and child.
struct Node {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    child: u64,
}

impl Node {
    fn leaf_item(key: Vec<u8>, value: Vec<u8>, flags: u32) -> Node {
        Node { flags, key, value, child: 0 }
    }

    fn branch_item(key: Vec<u8>, child: u64) -> Node {
        Node { flags: 0, key, value: Vec::new(), child }
    }

    /// What the element adds to its node's size.
    fn size(&self) -> usize {
        ELEMENT + self.key.len() + self.value.len()
    }
}

/// A node's bytes: header, elements, then keys (and values) packed in order.
fn node_bytes(id: u64, kind: u16, items: &[Node], pages: usize) -> Vec<u8> {
    let mut bytes = vec![0; HEADER + items.len() * ELEMENT];
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[8..10].copy_from_slice(&kind.to_le_bytes());
    bytes[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    bytes[12..16].copy_from_slice(&(pages.saturating_sub(1) as u32).to_le_bytes());
    for (i, item) in items.iter().enumerate() {
        let at = HEADER + i * ELEMENT;
        let pos = (bytes.len() - at) as u32;
        let element = &mut bytes[at..at + ELEMENT];
        if kind == LEAF {
            element[..4].copy_from_slice(&item.flags.to_le_bytes());
            element[4..8].copy_from_slice(&pos.to_le_bytes());
            element[8..12].copy_from_slice(&(item.key.len() as u32).to_le_bytes());
            element[12..16].copy_from_slice(&(item.value.len() as u32).to_le_bytes());
        } else {
            element[..4].copy_from_slice(&pos.to_le_bytes());
            element[4..8].copy_from_slice(&(item.key.len() as u32).to_le_bytes());
            element[8..16].copy_from_slice(&item.child.to_le_bytes());
        }
        bytes.extend_from_slice(&item.key);
        bytes.extend_from_slice(&item.value);
    }
    bytes
}

/// The file being written: pages 0 and 1 reserved for the metas, the rest appended.
struct Pages {
    bytes: Vec<u8>,
    next: u64,
}

impl Pages {
    /// Appends one node (with overflow pages if it needs them); returns its page id.
    fn node(&mut self, kind: u16, items: &[Node]) -> u64 {
        let id = self.next;
        let size = HEADER + items.iter().map(Node::size).sum::<usize>();
        let pages = size.div_ceil(PAGE_SIZE).max(1);
        let bytes = node_bytes(id, kind, items, pages);
        self.bytes.extend_from_slice(&bytes);
        self.bytes.resize((id as usize + pages) * PAGE_SIZE, 0);
        self.next += pages as u64;
        id
    }

    /// A bucket's value: inline when small, else the header of a tree written now.
    fn bucket_value(&mut self, items: &[Node]) -> Vec<u8> {
        let size = HEADER + items.iter().map(Node::size).sum::<usize>();
        let mut value = vec![0; BUCKET_HEADER];
        if size <= INLINE_MAX {
            value.extend_from_slice(&node_bytes(0, LEAF, items, 1));
        } else {
            value[..8].copy_from_slice(&self.tree(items).to_le_bytes());
        }
        value
    }

    /// Writes sorted leaf items as a B+tree; returns its root page.
    fn tree(&mut self, items: &[Node]) -> u64 {
        let mut level: Vec<Node> = Vec::new();
        for group in groups(items, 1) {
            let id = self.node(LEAF, group);
            level.push(Node::branch_item(group[0].key.clone(), id));
        }
        if level.is_empty() {
            return self.node(LEAF, &[]);
        }
        while level.len() > 1 {
            let mut parents = Vec::new();
            for group in groups(&level, 2) {
                let id = self.node(BRANCH, group);
                parents.push(Node::branch_item(group[0].key.clone(), id));
            }
            level = parents;
        }
        level[0].child
    }
}

/// Splits `items` into nodes filled up to [`FILL`], each with at least `min` items (the last
/// one merged into its predecessor if it would have fewer).
fn groups(items: &[Node], min: usize) -> Vec<&[Node]> {
    let mut groups: Vec<&[Node]> = Vec::new();
    let (mut start, mut size) = (0, HEADER);
    for (i, item) in items.iter().enumerate() {
        if i - start >= min && size + item.size() > FILL {
            groups.push(&items[start..i]);
            (start, size) = (i, HEADER);
        }
        size += item.size();
    }
    if start < items.len() {
        match groups.last_mut() {
            Some(last) if items.len() - start < min => {
                let from = items.len() - last.len() - (items.len() - start);
                *last = &items[from..];
            }
            _ => groups.push(&items[start..]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bucket(entries: &[(&[u8], Vec<u8>)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        entries.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect()
    }

    /// Reads the file back and checks its structure as bbolt's `tx.Check` would.
    fn round_trip(buckets: &Buckets) -> Vec<u8> {
        let bytes = write(buckets);
        assert_eq!(bytes.len() % PAGE_SIZE, 0);
        let (read_back, size) = read_sized(&bytes).unwrap();
        assert_eq!(&read_back, buckets);
        assert_eq!(size, bytes.len());
        bytes
    }

    #[test]
    fn empty_small_large_and_huge_buckets_round_trip() {
        let mut buckets = Buckets::new();
        buckets.insert(b"empty".to_vec(), BTreeMap::new());
        buckets.insert(b"small".to_vec(), bucket(&[(b"a", b"1".to_vec()), (b"b", Vec::new())]));
        let many: BTreeMap<Vec<u8>, Vec<u8>> = (0..20_000u32)
            .map(|i| (i.to_be_bytes().to_vec(), vec![7; (i % 300) as usize]))
            .collect();
        buckets.insert(b"many".to_vec(), many);
        buckets.insert(b"huge".to_vec(), bucket(&[(b"big", vec![1; 3 * PAGE_SIZE + 5])]));
        let bytes = round_trip(&buckets);
        // Every page below the high-water mark is used exactly once: no free pages to list.
        let pages = u64_at(&bytes, 56).unwrap();
        assert_eq!(pages as usize * PAGE_SIZE, bytes.len());
    }

    #[test]
    fn branch_keys_are_their_childs_first_key_and_branches_have_two_children() {
        let many: BTreeMap<Vec<u8>, Vec<u8>> =
            (0..50_000u32).map(|i| (i.to_be_bytes().to_vec(), vec![1; 40])).collect();
        let mut buckets = Buckets::new();
        buckets.insert(b"key".to_vec(), many);
        let bytes = write(&buckets);
        let page = |id: usize| &bytes[id * PAGE_SIZE..];
        let first_key = |p: &[u8]| {
            let pos = u32_at(p, HEADER + if u16_at(p, 8) == Some(LEAF) { 4 } else { 0 }).unwrap();
            let len_at = HEADER + if u16_at(p, 8) == Some(LEAF) { 8 } else { 4 };
            let len = u32_at(p, len_at).unwrap() as usize;
            p[HEADER + pos as usize..HEADER + pos as usize + len].to_vec()
        };
        let mut branches = 0;
        for id in 2..bytes.len() / PAGE_SIZE {
            let p = page(id);
            if u64_at(p, 0) != Some(id as u64) || u16_at(p, 8) != Some(BRANCH) {
                continue;
            }
            branches += 1;
            let count = usize::from(u16_at(p, 10).unwrap());
            assert!(count >= 2, "page {id} has {count} children");
            for i in 0..count {
                let at = HEADER + i * ELEMENT;
                let pos = u32_at(p, at).unwrap() as usize;
                let len = u32_at(p, at + 4).unwrap() as usize;
                let child = u64_at(p, at + 8).unwrap() as usize;
                assert_eq!(p[at + pos..at + pos + len], first_key(page(child))[..]);
            }
        }
        assert!(branches > 1, "a multi-level tree");
    }

    #[test]
    fn damage_is_an_error_with_its_place_never_a_panic() {
        let mut buckets = Buckets::new();
        let many: BTreeMap<Vec<u8>, Vec<u8>> =
            (0..3000u32).map(|i| (i.to_be_bytes().to_vec(), vec![3; 50])).collect();
        buckets.insert(b"key".to_vec(), many);
        let bytes = write(&buckets);
        let truncated = read(&bytes[..bytes.len() - PAGE_SIZE]).unwrap_err();
        assert!(truncated.starts_with("truncated:"), "{truncated}");
        assert!(read(b"not a database at all, just some text").is_err());
        let mut both_metas = bytes.clone();
        both_metas[20] ^= 1;
        both_metas[PAGE_SIZE + 20] ^= 1;
        assert!(read(&both_metas).unwrap_err().starts_with("not a bbolt database"));
        let mut one_meta = bytes.clone();
        one_meta[40] ^= 0xff;
        assert_eq!(read(&one_meta).unwrap(), buckets, "the other meta page still serves");
        // Flip bytes all over the data pages: each read fails cleanly or reads something.
        for at in (2 * PAGE_SIZE..bytes.len()).step_by(97) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            let _ = read(&damaged);
        }
    }

    proptest! {
        #[test]
        fn any_buckets_read_back_as_written(
            buckets in proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 1..12),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 1..40),
                    proptest::collection::vec(any::<u8>(), 0..600),
                    0..120,
                ),
                0..5,
            )
        ) {
            round_trip(&buckets);
        }
    }
}
