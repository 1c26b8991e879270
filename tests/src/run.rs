//! One seeded run: start a cluster, run the clients, let the nemesis loose, heal, settle, and
//! hold what the clients saw to etcd's guarantees ([`crate::verdict`]) and the members to
//! convergence: every member holds the same history, revisions 2..=last each present, and the
//! same HashKV.
//!
//! A run prints its seed and a one-line verdict. A failing run keeps its folder: the history,
//! the fault timeline, the violations and every member's log.

use crate::cluster::Cluster;
use crate::member::Flavor;
use crate::nemesis::Nemesis;
use crate::recorder::Recorder;
use crate::verdict::{judge, Observed};
use crate::workload::{kv_client, lease_client, watcher, Clients};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stead_core::api::Event;
use stead_net::convert::kv::event_from_pb as event;
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::lease_client::LeaseClient;
use stead_sim::check::Violation;
use stead_sim::FaultRecord;

/// The founding members of every run (one watcher and the clients' connections each).
const FOUNDERS: usize = 3;
/// Hosts kept for learners that membership churn adds.
const SPARE_HOSTS: usize = 4;

/// What a run does.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What the members run.
    pub flavor: Flavor,
    /// The seed of the fault schedule and the clients' choices.
    pub seed: u64,
    /// How long the nemesis works.
    pub duration: Duration,
    /// Key-value clients.
    pub kv_clients: usize,
    /// Lease clients.
    pub lease_clients: usize,
    /// Where runs keep their folders.
    pub root: PathBuf,
    /// Keep the folder of a run that passed too.
    pub keep: bool,
}

/// What a run found.
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// What the members ran.
    pub flavor: &'static str,
    /// Operations: (acknowledged, failed, unknown).
    pub ops: (usize, usize, usize),
    /// Watch events received, lease lives recorded.
    pub watched: usize,
    /// Leases the lease clients went through.
    pub leases: usize,
    /// Faults applied, by kind.
    pub faults: Vec<(&'static str, usize)>,
    /// Errors client calls got, by message.
    pub errors: std::collections::BTreeMap<String, usize>,
    /// Every broken guarantee.
    pub violations: Vec<Violation>,
    /// The run's folder (kept when it failed or was asked to).
    pub dir: PathBuf,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Report {
    /// `seed N flavor: PASS|FAIL ...` on one line.
    pub fn verdict(&self) -> String {
        let (ok, failed, unknown) = self.ops;
        let faults: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let verdict = if self.violations.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL ({} violations, see {})", self.violations.len(), self.dir.display())
        };
        format!(
            "seed {} {}: {verdict}; ops {ok} ok / {failed} failed / {unknown} unknown, {} watch \
             events, {} leases; faults: {}; {:.0} s",
            self.seed,
            self.flavor,
            self.watched,
            self.leases,
            faults.join(", "),
            self.seconds
        )
    }
}

/// Runs one seed.
pub async fn run(settings: &Settings) -> Result<Report, String> {
    let began = std::time::Instant::now();
    let dir = settings.root.join(format!("{}-seed{}", settings.flavor.name(), settings.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cluster = Cluster::new(settings.flavor.clone(), FOUNDERS, SPARE_HOSTS, &dir)?;
    cluster.start()?;
    cluster.wait_for_leader(Duration::from_secs(30)).await?;

    let recorder = Arc::new(Recorder::new());
    let channels: Vec<_> = (0..FOUNDERS).map(|i| cluster.channel(i)).collect();
    let writers = Clients { channels, recorder: recorder.clone(), stop: Arc::default() };
    let watchers = Clients { stop: Arc::new(AtomicBool::new(false)), ..writers.clone() };
    let mut tasks = Vec::new();
    for client in 0..settings.kv_clients {
        tasks.push(tokio::spawn(kv_client(writers.clone(), client, settings.seed)));
    }
    for client in 0..settings.lease_clients {
        tasks.push(tokio::spawn(lease_client(writers.clone(), client, settings.seed)));
    }
    let watching: Vec<_> =
        (0..FOUNDERS).map(|w| tokio::spawn(watcher(watchers.clone(), w))).collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut nemesis = Nemesis::new(settings.seed, FOUNDERS, began);
    nemesis.run(&mut cluster, settings.duration).await;
    nemesis.heal(&mut cluster)?;
    let faults_stopped = recorder.now();
    let mut violations = Vec::new();
    if let Err(error) = cluster.wait_for_leader(Duration::from_secs(30)).await {
        violations.push(Violation::new("liveness", format!("after healing: {error}")));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    writers.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    }

    drain_leases(&mut cluster, &mut violations).await;
    let last = settle(&mut cluster, &mut violations).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while recorder.slowest_open_session().is_some_and(|r| r < last)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watchers.stop.store(true, Ordering::SeqCst);
    for task in watching {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    nemesis.note_crashes(&mut cluster);
    violations.extend(nemesis.crashes.iter().map(|c| Violation::new("crash", c.clone())));
    violations.extend(nemesis.refused.iter().map(|r| Violation::new("not-leader", r.clone())));
    let events = final_log(&cluster, last, &mut violations).await;
    let leases = granted_leases(&mut cluster).await.unwrap_or_default();
    let end = recorder.now();
    let (history, lives, sessions) = recorder.finish(last);
    let observed = Observed {
        history: &history,
        lives: &lives,
        sessions: &sessions,
        events: &events,
        end,
        faults_stopped,
        leases,
    };
    violations.extend(judge(&observed));
    // etcd never refuses a client `not leader` for what the clients send: followers forward.
    let errors = recorder.errors();
    for (message, count) in errors.iter().filter(|(m, _)| m.contains("not leader")) {
        violations.push(Violation::new("not-leader", format!("{count} calls got {message}")));
    }

    let report = Report {
        seed: settings.seed,
        flavor: settings.flavor.name(),
        ops: history.tally(),
        watched: sessions.iter().map(|s| s.events.len()).sum(),
        leases: lives.len(),
        faults: nemesis.counts(),
        errors,
        violations,
        dir: dir.clone(),
        seconds: began.elapsed().as_secs_f64(),
    };
    let mut history_text = String::new();
    for (id, op) in history.ops.iter().enumerate() {
        let _ = writeln!(history_text, "{id} {op:?}");
    }
    write(&dir, "history.txt", &history_text);
    write(&dir, "faults.txt", &timeline(&nemesis.timeline));
    let log: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    write(&dir, "final-log.txt", &log.join("\n"));
    let errors: Vec<String> = report.errors.iter().map(|(m, n)| format!("{n:>6}  {m}")).collect();
    write(&dir, "errors.txt", &errors.join("\n"));
    let found: Vec<String> =
        report.violations.iter().map(|v| format!("{}: {}", v.check, v.detail)).collect();
    write(&dir, "violations.txt", &found.join("\n"));
    drop(cluster); // stops the members and unmounts their data dirs
    if report.violations.is_empty() && !settings.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}

/// Waits until every running member applied the same last revision; that revision.
async fn settle(cluster: &mut Cluster, violations: &mut Vec<Violation>) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut revisions = Vec::new();
        for i in cluster.live() {
            let status = cluster.status(i).await;
            revisions.push(status.and_then(|s| s.header).map_or(-1, |h| h.revision));
        }
        let first = revisions.first().copied().unwrap_or(-1);
        if first > 0 && revisions.iter().all(|&r| r == first) {
            return first;
        }
        if tokio::time::Instant::now() >= deadline {
            let detail = format!("members did not converge: revisions {revisions:?}");
            violations.push(Violation::new("convergence", detail));
            return revisions.into_iter().max().unwrap_or(1);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The history every running member holds, which must be one and the same, with every
/// revision 2..=last present; and equal HashKV everywhere.
async fn final_log(cluster: &Cluster, last: i64, violations: &mut Vec<Violation>) -> Vec<Event> {
    let mut logs = Vec::new();
    let mut hashes = Vec::new();
    for i in 0..FOUNDERS {
        match cluster.events(i, last).await {
            Ok(events) => logs.push((i, events.into_iter().map(event).collect::<Vec<_>>())),
            Err(error) => violations.push(Violation::new("convergence", format!("m{i}: {error}"))),
        }
        match cluster.hash_kv(i, last).await {
            Ok((hash, _)) => hashes.push((i, hash)),
            Err(error) => {
                violations.push(Violation::new("convergence", format!("m{i} hashkv: {error}")))
            }
        }
    }
    if hashes.windows(2).any(|w| w[0].1 != w[1].1) {
        violations.push(Violation::new("convergence", format!("HashKV differs: {hashes:x?}")));
    }
    let Some((_, events)) = logs.first().cloned() else { return Vec::new() };
    for (i, other) in &logs[1..] {
        if *other != events {
            let detail = format!("m{i}'s history differs from m{}'s", logs[0].0);
            violations.push(Violation::new("convergence", detail));
        }
    }
    let revisions: std::collections::BTreeSet<i64> =
        events.iter().map(|e| e.kv.mod_revision).collect();
    let monotonic = events.windows(2).all(|w| w[0].kv.mod_revision <= w[1].kv.mod_revision);
    if !monotonic || revisions.len() as i64 != last - 1 || revisions.first() != Some(&2) {
        let detail = format!("revisions not 2..={last} in order ({} distinct)", revisions.len());
        violations.push(Violation::new("revisions", detail));
    }
    events
}

/// The leases the leader holds (`None`: no leader answered).
async fn granted_leases(cluster: &mut Cluster) -> Option<Vec<i64>> {
    let (leader, _) = cluster.leader().await?;
    let mut client = LeaseClient::new(cluster.channel(leader));
    let answer = client.lease_leases(pb::LeaseLeasesRequest {}).await.ok()?;
    Some(answer.into_inner().leases.iter().map(|l| l.id).collect())
}

/// Waits until every lease is gone: the lease clients revoked or abandoned theirs when they
/// stopped (a grant whose answer was lost made one nobody knows of), and an abandoned lease
/// expires within its TTL plus an election timeout. After that nothing writes any more, so
/// the final log is final. Leases still there after 30 s are a liveness violation.
async fn drain_leases(cluster: &mut Cluster, violations: &mut Vec<Violation>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let leases = granted_leases(cluster).await;
        if leases.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let detail = format!("leases never expired after the clients left: {leases:x?}");
            violations.push(Violation::new("liveness", detail));
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn timeline(faults: &[FaultRecord]) -> String {
    let lines = faults.iter().map(|f| format!("{:>8} ms  {}  {}", f.at_ms, f.label, f.what));
    lines.collect::<Vec<_>>().join("\n")
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    let _ = std::fs::write(dir.join(name), text);
}
