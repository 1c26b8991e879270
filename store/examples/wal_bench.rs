//! WAL group-commit benchmark on the real disk.
//!
//! Run: `cargo run --release -p stead-store --example wal_bench -- [DIR] [SECONDS_PER_CASE]`
//! (defaults: `./wal-bench.tmp`, 3 seconds). For batches of 1, 16 and 256 entries of 256 bytes
//! (as if that many proposers' entries were waiting when the WAL synced), it appends a batch
//! and syncs, again and again, and reports entries/s, fsyncs/s and the mean fsync latency.
//! The directory is removed afterwards. This is a command, not a test: nothing asserts on timings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stead_store::disk::RealDisk;
use stead_store::wal::{Wal, WalConfig};
use stead_store::Entry;

const ENTRY_BYTES: usize = 256;

fn run_case(dir: &Path, batch: usize, budget: Duration) -> (f64, f64, f64) {
    let disk = RealDisk::new(dir).expect("bench dir");
    let mut wal =
        Wal::create(disk, Path::new("wal"), b"bench", WalConfig::default()).expect("create");
    let payload = vec![7u8; ENTRY_BYTES];
    let (mut index, mut syncs) = (0u64, 0u64);
    let mut sync_time = Duration::ZERO;
    let start = Instant::now();
    while start.elapsed() < budget {
        let entries: Vec<Entry> = (0..batch)
            .map(|_| {
                index += 1;
                Entry { index, term: 1, data: payload.clone().into(), ..Entry::default() }
            })
            .collect();
        wal.append(None, &entries).expect("append");
        let before = Instant::now();
        wal.sync().expect("sync");
        sync_time += before.elapsed();
        syncs += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mean_sync_us = sync_time.as_secs_f64() * 1e6 / syncs as f64;
    (index as f64 / seconds, syncs as f64 / seconds, mean_sync_us)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "wal-bench.tmp".into()));
    let seconds: f64 = args.next().map_or(3.0, |a| a.parse().expect("SECONDS is a number"));
    println!(
        "stead WAL bench: {ENTRY_BYTES}-byte entries, one append + fdatasync per batch, in {}",
        dir.display()
    );
    println!("{:>8} {:>14} {:>12} {:>16}", "batch", "entries/s", "fsyncs/s", "mean fsync (us)");
    for batch in [1, 16, 256] {
        let _ = std::fs::remove_dir_all(&dir);
        let (entries, syncs, mean) = run_case(&dir, batch, Duration::from_secs_f64(seconds));
        println!("{batch:>8} {entries:>14.0} {syncs:>12.0} {mean:>16.1}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
