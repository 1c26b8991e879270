//! `stead-sim`: run seeded chaos scenarios and replay any seed bit for bit.
//!
//! - `stead-sim run <scenario-file> --seeds A..B [--jobs N] [--check-determinism]`: one line
//!   per failing seed (`seed=N`, the failed check, the replay command), then `N passed, M
//!   failed`, and the simulated seconds per wall-clock second. Exit status 0 only if every seed
//!   passed. Each seed runs single-threaded and deterministically; `--jobs` only spreads
//!   independent seeds over worker threads, and results are reported in seed order.
//! - `stead-sim replay <scenario-file> --seed N [--trace FILE]`: re-runs one seed, optionally
//!   writing its event trace as JSON lines, and prints `trace-hash: <hex>` and the verdict.
//! - `stead-sim list [DIR]`: the scenario catalog (default `scenarios/`), one line each: the
//!   file and its description.
//! - `stead-sim shrink <scenario-file> --seed N [--max-runs R] [--out FILE]`: reduces a failing
//!   seed's faults and workload to a smaller run that fails the same check, and prints it (or
//!   writes it to FILE) as a scenario file that replays with the same seed.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use stead_sim::scenario::Scenario;
use stead_sim::{run_seed, SeedResult};

#[derive(Parser)]
#[command(name = "stead-sim", about = "stead's deterministic simulator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario over a range of seeds.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Seeds to run, `A..B` (B excluded) or one number.
        #[arg(long, default_value = "0..10")]
        seeds: String,
        /// Run each seed twice and fail on any difference in the trace hash.
        #[arg(long)]
        check_determinism: bool,
        /// Seeds run at once (each on its own thread).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Re-run one seed.
    Replay {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Write the event trace here, one JSON line per event.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Reduce a failing seed to a smaller scenario that fails the same check.
    Shrink {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Give up after this many runs (keeping the smallest failure found).
        #[arg(long, default_value_t = 400)]
        max_runs: usize,
        /// Write the shrunk scenario here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the scenarios of a directory with their descriptions.
    List {
        /// The directory.
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("--seeds takes A..B or N, not {text:?}");
    match text.split_once("..") {
        Some((a, b)) => Ok(a.parse().map_err(|_| bad())?..b.parse().map_err(|_| bad())?),
        None => {
            let seed: u64 = text.parse().map_err(|_| bad())?;
            Ok(seed..seed + 1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panicking seed is reported as a failed seed; keep the default report short, unless
    // RUST_BACKTRACE asks for where it happened.
    let backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("stead-sim: panic: {info}");
        if backtrace {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let result = match cli.command {
        Command::Run { scenario, seeds, check_determinism, jobs } => {
            run(&scenario, &seeds, check_determinism, jobs)
        }
        Command::Replay { scenario, seed, trace } => replay(&scenario, seed, trace),
        Command::List { dir } => list(&dir),
        Command::Shrink { scenario, seed, max_runs, out } => shrink(&scenario, seed, max_runs, out),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("stead-sim: {error}");
            ExitCode::from(2)
        }
    }
}

/// Prints every scenario file of `dir` with its description; fails on a file that does not
/// parse, naming it.
fn list(dir: &Path) -> Result<bool, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let width = files.iter().map(|f| f.display().to_string().len()).max().unwrap_or(0);
    for file in &files {
        let scenario = Scenario::from_file(file)?;
        let name = file.display().to_string();
        println!("{name:width$}  {}", scenario.description);
    }
    println!("{} scenarios", files.len());
    Ok(true)
}

/// Runs one seed (twice, comparing trace hashes, with `check_determinism`).
fn run_one(scenario: &Scenario, seed: u64, check_determinism: bool) -> SeedResult {
    let mut result = run_seed(scenario, seed, None);
    if check_determinism {
        let again = run_seed(scenario, seed, None);
        if again.trace_hash != result.trace_hash {
            let detail =
                format!("trace hash {:08x} then {:08x}", result.trace_hash, again.trace_hash);
            result.violations.push(stead_sim::check::Violation::new("determinism", detail));
        }
    }
    result
}

/// Runs the seeds on `jobs` worker threads; returns the results in seed order.
fn run_all(
    scenario: &Scenario,
    seeds: Vec<u64>,
    check_determinism: bool,
    jobs: usize,
) -> Vec<(u64, SeedResult)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, seeds.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(index) else { break };
                let result = run_one(scenario, seed, check_determinism);
                results
                    .lock()
                    .expect("no worker panics while holding the lock")
                    .push((seed, result));
            });
        }
    });
    let mut results = results.into_inner().expect("workers are done");
    results.sort_by_key(|(seed, _)| *seed);
    results
}

fn run(path: &Path, seeds: &str, check_determinism: bool, jobs: usize) -> Result<bool, String> {
    let scenario = Scenario::from_file(path)?;
    let seeds: Vec<u64> = parse_seeds(seeds)?.collect();
    let started = Instant::now();
    let (mut passed, mut failed, mut simulated) = (0u64, 0u64, 0.0f64);
    for (seed, result) in run_all(&scenario, seeds, check_determinism, jobs) {
        simulated += result.simulated_seconds;
        if result.violations.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            report_failure(path, seed, &result);
        }
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    println!("simulated {simulated:.0} s in {wall:.1} s of wall time ({:.0}x)", simulated / wall);
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn report_failure(path: &Path, seed: u64, result: &SeedResult) {
    let first = &result.violations[0];
    println!(
        "seed={seed} check={} ({} violations): {}\n  replay: stead-sim replay {} --seed {seed}",
        first.check,
        result.violations.len(),
        first.detail,
        path.display()
    );
}

fn shrink(path: &Path, seed: u64, max_runs: usize, out: Option<PathBuf>) -> Result<bool, String> {
    let scenario = Scenario::from_file(path)?;
    let started = Instant::now();
    let mut progress = |step: &str| eprintln!("shrink: {step}");
    let shrunk = stead_sim::shrink::shrink(&scenario, seed, max_runs, &mut progress)?;
    let text = stead_sim::shrink::to_scenario_file(&shrunk, &path.display().to_string(), seed)?;
    eprintln!(
        "shrink: {} of {} faults kept, {} runs in {:.1} s",
        shrunk.faults_after.len(),
        shrunk.faults_before,
        shrunk.runs,
        started.elapsed().as_secs_f64()
    );
    match out {
        Some(file) => {
            std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
            eprintln!(
                "shrink: wrote {}; replay: stead-sim replay {} --seed {seed}",
                file.display(),
                file.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(true)
}

fn replay(path: &Path, seed: u64, trace: Option<PathBuf>) -> Result<bool, String> {
    let scenario = Scenario::from_file(path)?;
    let writer: Option<Box<dyn std::io::Write>> = match &trace {
        Some(file) => {
            let file =
                std::fs::File::create(file).map_err(|e| format!("{}: {e}", file.display()))?;
            Some(Box::new(std::io::BufWriter::new(file)))
        }
        None => None,
    };
    let result = run_seed(&scenario, seed, writer);
    println!("trace-hash: {:08x}", result.trace_hash);
    let (acknowledged, failed, unknown) = result.ops;
    println!("operations: {acknowledged} acknowledged, {failed} failed, {unknown} unknown");
    if result.violations.is_empty() {
        println!("verdict: pass");
        return Ok(true);
    }
    for violation in &result.violations {
        println!("violation: {}: {}", violation.check, violation.detail);
    }
    println!("verdict: fail");
    Ok(false)
}
