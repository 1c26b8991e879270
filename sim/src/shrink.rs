//! Shrinking a failing seed: the smallest run we can find that still fails the same check.
//!
//! A run numbers every fault occurrence by kind (`crash#0`, `partition#3`, …) and records the
//! ones it applied. A scenario's `keep_faults` applies only the occurrences it names; the others
//! are still drawn but skipped, so the remaining faults keep their times and targets as far as
//! the run allows. Shrinking is delta debugging (Zeller's ddmin) over the applied faults, then a
//! pass over the workload (watchers, lease clients, clients, keys, phase lengths), then ddmin
//! again. A candidate is kept when it fails the same check as the original run; every candidate
//! is a full deterministic run, so the result replays exactly: it is printed as a scenario file
//! with the seed to replay it with.

use crate::check::Violation;
use crate::scenario::Scenario;
use crate::{run_seed, FaultRecord};

/// What shrinking found.
pub struct Shrunk {
    /// The reduced scenario (fails `check` with the same seed).
    pub scenario: Scenario,
    /// The check the original run failed, and the reduced run fails.
    pub check: String,
    /// The reduced run's first violation of that check.
    pub detail: String,
    /// Faults the original run applied.
    pub faults_before: usize,
    /// Faults the reduced run applies.
    pub faults_after: Vec<FaultRecord>,
    /// Runs spent.
    pub runs: usize,
}

/// A workload reduction: its name, and the change (false: nothing left to reduce).
type WorkloadStep = (&'static str, fn(&mut Scenario) -> bool);

/// Tries candidates, counting runs, against the original failure.
struct Shrinker<'a> {
    seed: u64,
    check: String,
    runs: usize,
    max_runs: usize,
    progress: &'a mut dyn FnMut(&str),
}

impl Shrinker<'_> {
    /// Whether `candidate` still fails the same check (false once the budget is spent).
    fn fails(&mut self, candidate: &Scenario) -> bool {
        if self.runs >= self.max_runs {
            return false;
        }
        self.runs += 1;
        let result = run_seed(candidate, self.seed, None);
        result.violations.iter().any(|v| v.check == self.check)
    }

    /// ddmin over the kept faults of `scenario`: returns a scenario keeping a 1-minimal subset
    /// (no single chunk at the final granularity can be removed) that still fails.
    fn minimize_faults(&mut self, scenario: Scenario) -> Scenario {
        let mut kept: Vec<String> = scenario.keep_faults.clone().unwrap_or_default();
        let with = |faults: &[String]| {
            let mut candidate = scenario.clone();
            candidate.keep_faults = Some(faults.to_vec());
            candidate
        };
        let mut chunks = 2;
        while !kept.is_empty() {
            (self.progress)(&format!("{} faults kept, trying {chunks} chunks", kept.len()));
            let size = kept.len().div_ceil(chunks);
            let parts: Vec<Vec<String>> = kept.chunks(size).map(<[String]>::to_vec).collect();
            let mut reduced = false;
            for part in &parts {
                if part.len() < kept.len() && self.fails(&with(part)) {
                    kept = part.clone();
                    chunks = 2;
                    reduced = true;
                    break;
                }
            }
            if !reduced && parts.len() > 1 {
                for part in &parts {
                    let rest: Vec<String> =
                        kept.iter().filter(|f| !part.contains(f)).cloned().collect();
                    if self.fails(&with(&rest)) {
                        kept = rest;
                        chunks = (chunks - 1).max(2);
                        reduced = true;
                        break;
                    }
                }
            }
            if !reduced {
                if chunks >= kept.len() {
                    break;
                }
                chunks = (chunks * 2).min(kept.len());
            }
        }
        if kept.is_empty() || (kept.len() == 1 && self.fails(&with(&[]))) {
            kept.clear();
        }
        with(&kept)
    }

    /// Tries smaller workloads and shorter phases, keeping each step that still fails.
    fn minimize_workload(&mut self, mut scenario: Scenario) -> Scenario {
        let steps: Vec<WorkloadStep> = vec![
            ("no watchers", |s| std::mem::replace(&mut s.watch.watchers, 0) > 0),
            ("no lease clients", |s| std::mem::replace(&mut s.leases.clients, 0) > 0),
            ("one client", |s| std::mem::replace(&mut s.clients, 1) > 1),
            ("two clients", |s| std::mem::replace(&mut s.clients, 2) > 2),
            ("two keys", |s| std::mem::replace(&mut s.keys, 2) > 2),
            ("half the keys", |s| {
                let keys = s.keys;
                s.keys = (keys / 2).max(1);
                s.keys < keys
            }),
            ("a shorter liveness phase", |s| {
                let before = s.liveness_ms;
                s.liveness_ms = (before / 2).max(5_000);
                s.liveness_ms < before
            }),
            ("a shorter safety phase", |s| {
                let before = s.safety_ms;
                s.safety_ms = (before * 3 / 4).max(1_000);
                s.safety_ms < before
            }),
        ];
        for (name, step) in steps {
            // Shortening phases may pay off more than once.
            for _ in 0..4 {
                let mut candidate = scenario.clone();
                if !step(&mut candidate) || candidate.check().is_err() {
                    break;
                }
                (self.progress)(&format!("trying {name}"));
                if !self.fails(&candidate) {
                    break;
                }
                scenario = candidate;
            }
        }
        scenario
    }
}

/// Shrinks the failing run of `scenario` with `seed`, spending at most `max_runs` runs;
/// `progress` hears what is being tried. Fails if the seed passes.
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    max_runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, String> {
    let original = run_seed(scenario, seed, None);
    let Some(first) = original.violations.first() else {
        return Err(format!("seed {seed} passes: nothing to shrink"));
    };
    let check = first.check.to_string();
    let faults_before = original.faults.len();
    (progress)(&format!("seed {seed} fails `{check}` with {faults_before} faults applied"));
    let mut shrinker = Shrinker { seed, check, runs: 1, max_runs, progress };
    let mut current = scenario.clone();
    current.keep_faults = Some(original.faults.iter().map(|f| f.label.clone()).collect());
    if !shrinker.fails(&current) {
        return Err(format!(
            "seed {seed} no longer fails `{}` when only its applied faults are kept",
            shrinker.check
        ));
    }
    current = shrinker.minimize_faults(current);
    current = shrinker.minimize_workload(current);
    current = shrinker.minimize_faults(current);
    let last = run_seed(&current, seed, None);
    let detail = last
        .violations
        .iter()
        .find(|v| v.check == shrinker.check)
        .map(|v: &Violation| v.detail.clone())
        .ok_or("the shrunk scenario stopped failing (a nondeterministic run?)")?;
    Ok(Shrunk {
        scenario: current,
        check: shrinker.check,
        detail,
        faults_before,
        faults_after: last.faults,
        runs: shrinker.runs + 1,
    })
}

/// The shrunk scenario as a file: comments saying where it came from, what fails and which
/// faults remain, then the scenario itself.
pub fn to_scenario_file(shrunk: &Shrunk, source: &str, seed: u64) -> Result<String, String> {
    let body = toml::to_string(&shrunk.scenario).map_err(|e| e.to_string())?;
    let mut text = format!(
        "# Shrunk by `stead-sim shrink {source} --seed {seed}` in {} runs: {} of {} faults \
         kept.\n# Fails `{}`: {}\n# Replay: stead-sim replay <this file> --seed {seed}\n",
        shrunk.runs,
        shrunk.faults_after.len(),
        shrunk.faults_before,
        shrunk.check,
        shrunk.detail.replace('\n', " ")
    );
    text.push_str("# The faults it applies:\n");
    for fault in &shrunk.faults_after {
        text.push_str(&format!("#   {} at {} ms: {}\n", fault.label, fault.at_ms, fault.what));
    }
    text.push('\n');
    text.push_str(&body);
    Ok(text)
}
