//! MVCC micro-benchmark: put, update, get and range throughput and heap bytes per key.
//!
//! Run: `cargo run --release -p stead-core --example mvcc_bench -- [KEYS] [VALUE_BYTES]`
//! (defaults: 1,000,000 keys of 16 bytes, 64-byte values). It measures the in-memory store alone,
//! single-threaded: no raft, no WAL, no network. Heap use comes from a counting allocator, so it
//! is exact, not estimated. This is a command, not a test: nothing asserts on timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use stead_core::api::{PutRequest, RangeRequest};
use stead_core::mvcc::KvStore;

/// Wraps the system allocator and counts live heap bytes.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the same arguments; the counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn key(index: usize) -> Vec<u8> {
    format!("k{index:015}").into_bytes()
}

/// A deterministic permutation-ish walk over `0..n` (no RNG crate needed here).
fn scrambled(step: usize, n: usize) -> usize {
    step.wrapping_mul(2_654_435_761) % n
}

/// Resident set size from /proc (Linux), to show what malloc's own overhead adds.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn rate(count: usize, seconds: f64) -> String {
    format!("{:>12.0} ops/s", count as f64 / seconds)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().map_or(1_000_000, |a| a.parse().expect("KEYS is a number"));
    let value_bytes: usize =
        args.next().map_or(64, |a| a.parse().expect("VALUE_BYTES is a number"));
    let value = vec![b'v'; value_bytes];
    println!("stead mvcc bench: {keys} keys of 16 bytes, {value_bytes}-byte values, one thread");

    let heap_before = LIVE_BYTES.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    let mut store = KvStore::new();
    let mut request = PutRequest { value: value.clone(), ..PutRequest::default() };
    let start = Instant::now();
    for index in 0..keys {
        request.key = key(index);
        store.put(&request, |_| true).expect("put");
    }
    let put_seconds = start.elapsed().as_secs_f64();
    let heap = LIVE_BYTES.load(Ordering::Relaxed) - heap_before;
    let payload = keys * (16 + value_bytes);
    println!("put (new keys)        {}", rate(keys, put_seconds));
    println!(
        "heap per key          {:>12.1} bytes ({:.1} of key and value, {:.1} of overhead)",
        heap as f64 / keys as f64,
        payload as f64 / keys as f64,
        (heap - payload) as f64 / keys as f64
    );
    let rss = rss_bytes().saturating_sub(rss_before);
    println!(
        "resident per key      {:>12.1} bytes (heap plus malloc's overhead)",
        rss as f64 / keys as f64
    );

    let start = Instant::now();
    for step in 0..keys {
        request.key = key(scrambled(step, keys));
        store.put(&request, |_| true).expect("put");
    }
    println!("put (update, random)  {}", rate(keys, start.elapsed().as_secs_f64()));

    let mut get = RangeRequest::default();
    let start = Instant::now();
    for step in 0..keys {
        get.key = key(scrambled(step, keys));
        assert_eq!(store.range(&get).expect("get").kvs.len(), 1);
    }
    println!("get (one key, random) {}", rate(keys, start.elapsed().as_secs_f64()));

    let ranges = (keys / 100).max(1);
    let mut range = RangeRequest::default();
    let start = Instant::now();
    for step in 0..ranges {
        let first = scrambled(step, keys - 100.min(keys - 1));
        range.key = key(first);
        range.range_end = key(first + 100);
        store.range(&range).expect("range");
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("range (100 keys)      {}", rate(ranges, seconds));

    let mut history_read = RangeRequest { revision: 1 + keys as i64, ..RangeRequest::default() };
    let start = Instant::now();
    for step in 0..keys {
        history_read.key = key(scrambled(step, keys));
        store.range(&history_read).expect("historical get");
    }
    println!("get (historical rev)  {}", rate(keys, start.elapsed().as_secs_f64()));

    let heap_with_history = LIVE_BYTES.load(Ordering::Relaxed) - heap_before;
    let start = Instant::now();
    store.compact(store.current_revision()).expect("compact");
    let compact_ms = start.elapsed().as_secs_f64() * 1000.0;
    let heap_after = LIVE_BYTES.load(Ordering::Relaxed) - heap_before;
    println!(
        "compact all history   {compact_ms:>12.1} ms (heap {:.1} -> {:.1} bytes per key)",
        heap_with_history as f64 / keys as f64,
        heap_after as f64 / keys as f64
    );
}
