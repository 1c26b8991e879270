//! `stead-chaos`: seeded chaos runs against real processes, by hand.
//!
//! ```sh
//! cargo build --release -p stead-net --bin stead
//! cargo run --release -p stead-tests --bin stead-chaos -- --seeds 1..20 --duration 60
//! cargo run --release -p stead-tests --bin stead-chaos -- --etcd --seeds 1..3   # the control
//! ```
//! Prints one verdict line per seed; exits non-zero if any seed found a violation.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use stead_tests::member::Flavor;
use stead_tests::run::{run, Settings};

/// Seeded chaos runs of the real stead binary (or etcd 3.4) under real faults.
#[derive(Parser)]
struct Args {
    /// Seeds to run: `N` or `FIRST..END` (end excluded).
    #[arg(long, default_value = "1..4")]
    seeds: String,
    /// Seconds of faults per seed.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Run etcd 3.4 (`etcd` on the PATH) instead of stead: the control.
    #[arg(long)]
    etcd: bool,
    /// Key-value clients.
    #[arg(long, default_value_t = 6)]
    kv_clients: usize,
    /// Lease clients.
    #[arg(long, default_value_t = 3)]
    lease_clients: usize,
    /// Where run folders go.
    #[arg(long, default_value = "target/chaos")]
    dir: PathBuf,
    /// Keep the folders of runs that passed.
    #[arg(long)]
    keep: bool,
}

fn seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let number = |s: &str| s.trim().parse::<u64>().map_err(|e| format!("--seeds {text}: {e}"));
    match text.split_once("..") {
        Some((first, end)) => Ok(number(first)?..number(end)?),
        None => number(text).map(|n| n..n + 1),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let outcome = async {
        let flavor = if args.etcd { Flavor::Etcd } else { Flavor::stead()? };
        let mut failed = 0;
        for seed in seeds(&args.seeds)? {
            let settings = Settings {
                flavor: flavor.clone(),
                seed,
                duration: Duration::from_secs(args.duration),
                kv_clients: args.kv_clients,
                lease_clients: args.lease_clients,
                root: args.dir.clone(),
                keep: args.keep,
            };
            let report = run(&settings).await?;
            println!("{}", report.verdict());
            for (message, count) in &report.errors {
                println!("  client errors: {count} x {message}");
            }
            for violation in report.violations.iter().take(20) {
                println!("  {}: {}", violation.check, violation.detail);
            }
            failed += usize::from(!report.violations.is_empty());
        }
        Ok::<usize, String>(failed)
    };
    match outcome.await {
        Ok(0) => {}
        Ok(failed) => {
            eprintln!("{failed} seed(s) found violations");
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("stead-chaos: {error}");
            std::process::exit(2);
        }
    }
}
