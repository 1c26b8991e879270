//! The nemesis: a seeded schedule of real faults against a running cluster, each recorded in
//! the fault timeline.
//!
//! - `kill`: `kill -9` a member (often the leader), restart it from its data dir 1-3 s later;
//! - `pause`: `SIGSTOP` for 1.5-3 s, longer than the election timeout, then `SIGCONT`;
//! - `partition`: cut a member off from every other (or one pair of members) for 2-4 s;
//! - `transfer`: a leader-transfer storm, three MoveLeader calls to random voters;
//! - `churn`: add a learner on a spare host, start it, promote it through a follower (which
//!   must take it to the leader, never answer `not leader`), remove it, stop it;
//! - `disk-full`: fill a member's data dir to the last byte for 3 s, then free it and
//!   restart the member if the full disk stopped it (as it stops etcd).
//!
//! Faults take turns with quiet spells of 0.5-1.5 s. [`Nemesis::heal`] ends them all.

use crate::cluster::Cluster;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use stead_sim::FaultRecord;

/// The kinds of fault, by name.
pub const KINDS: [&str; 6] = ["kill", "pause", "partition", "transfer", "churn", "disk-full"];

/// The fault schedule of one run.
pub struct Nemesis {
    rng: ChaCha8Rng,
    founders: usize,
    /// Every fault applied, in order.
    pub timeline: Vec<FaultRecord>,
    /// Founding members whose process ended by itself, outside a full disk: how and when.
    pub crashes: Vec<String>,
    /// Requests a follower must take to the leader that it refused with `not leader`.
    pub refused: Vec<String>,
    counts: [usize; KINDS.len()],
    start: std::time::Instant,
}

impl Nemesis {
    /// A schedule from `seed` for a cluster of `founders` members, timed from `start`.
    pub fn new(seed: u64, founders: usize, start: std::time::Instant) -> Nemesis {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let (timeline, crashes, refused) = (Vec::new(), Vec::new(), Vec::new());
        Nemesis { rng, founders, timeline, crashes, refused, counts: [0; KINDS.len()], start }
    }

    /// How many faults of each kind were applied.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        KINDS.iter().copied().zip(self.counts).collect()
    }

    fn record(&mut self, kind: usize, what: String) {
        let at_ms = self.start.elapsed().as_millis() as u64;
        self.record_at(kind, at_ms, what);
    }

    fn record_at(&mut self, kind: usize, at_ms: u64, what: String) {
        let label = format!("{}#{}", KINDS[kind], self.counts[kind]);
        self.counts[kind] += 1;
        tracing_line(&label, at_ms, &what);
        self.timeline.push(FaultRecord { label, at_ms, what });
    }

    fn pause_for(&mut self, from_ms: u64, to_ms: u64) -> Duration {
        Duration::from_millis(self.rng.gen_range(from_ms..to_ms))
    }

    /// Applies faults for `duration`.
    pub async fn run(&mut self, cluster: &mut Cluster, duration: Duration) {
        let until = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < until {
            let quiet = self.pause_for(500, 1500);
            tokio::time::sleep(quiet).await;
            self.note_crashes(cluster);
            let kind = self.rng.gen_range(0..KINDS.len());
            if let Err(error) = self.apply(cluster, kind).await {
                self.record(kind, format!("could not finish: {error}"));
            }
        }
    }

    /// A founding member to hit: the leader half of the time.
    async fn target(&mut self, cluster: &mut Cluster) -> usize {
        if self.rng.gen_bool(0.5) {
            if let Some((leader, _)) = cluster.leader().await {
                if leader < self.founders {
                    return leader;
                }
            }
        }
        self.rng.gen_range(0..self.founders)
    }

    async fn apply(&mut self, cluster: &mut Cluster, kind: usize) -> Result<(), String> {
        match KINDS[kind] {
            "kill" => {
                let victim = self.target(cluster).await;
                cluster.members[victim].kill();
                let down = self.pause_for(1000, 3000);
                self.record(kind, format!("kill -9 m{victim}, restart after {down:?}"));
                tokio::time::sleep(down).await;
                cluster.restart(victim)
            }
            "pause" => {
                let victim = self.target(cluster).await;
                let stopped = self.pause_for(1500, 3000);
                cluster.members[victim].pause();
                self.record(kind, format!("SIGSTOP m{victim} for {stopped:?}"));
                tokio::time::sleep(stopped).await;
                cluster.members[victim].resume();
                Ok(())
            }
            "partition" => {
                let victim = self.target(cluster).await;
                let held = self.pause_for(2000, 4000);
                let others: Vec<usize> = (0..self.founders).filter(|&m| m != victim).collect();
                let cut = if self.rng.gen_bool(0.3) {
                    vec![*others.choose(&mut self.rng).expect("three founders")]
                } else {
                    others
                };
                for &other in &cut {
                    cluster.network().cut(victim, other)?;
                }
                self.record(kind, format!("cut m{victim} from {cut:?} for {held:?}"));
                tokio::time::sleep(held).await;
                cluster.network().heal()
            }
            "transfer" => {
                let mut moves = Vec::new();
                for _ in 0..3 {
                    let Some((leader, _)) = cluster.leader().await else { continue };
                    let voters = cluster.member_list(leader).await?;
                    let ids: Vec<u64> =
                        voters.iter().filter(|m| !m.is_learner).map(|m| m.id).collect();
                    let target = *ids.choose(&mut self.rng).ok_or("no voters")?;
                    let outcome = cluster.move_leader(leader, target).await;
                    moves.push(format!(
                        "m{leader}->{target:x}: {}",
                        outcome.err().unwrap_or("ok".into())
                    ));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                self.record(kind, format!("leader transfers {}", moves.join(", ")));
                Ok(())
            }
            "churn" => {
                let via = self.rng.gen_range(0..self.founders);
                let at_ms = self.start.elapsed().as_millis() as u64;
                let (learner, id) = cluster.add_learner(via).await?;
                let added = format!("member add m{learner} ({id:x}) as a learner via m{via}");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                let mut promoted = Err(String::new());
                while promoted.is_err() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    // Through a follower: it must take the promotion to the leader.
                    let leader = cluster.leader().await.map(|(i, _)| i);
                    let followers: Vec<usize> =
                        (0..self.founders).filter(|&i| Some(i) != leader).collect();
                    let via = *followers.choose(&mut self.rng).expect("a follower");
                    promoted = cluster.promote(via, id).await;
                    if let Err(error) = &promoted {
                        if error.contains("not leader") {
                            self.refused.push(format!("member promote via m{via}: {error}"));
                        }
                    }
                }
                let outcome = promoted.err().unwrap_or("promoted".into());
                tokio::time::sleep(self.pause_for(500, 1500)).await;
                let via = self.rng.gen_range(0..self.founders);
                let removed = cluster.remove(via, id).await;
                cluster.members[learner].kill();
                let removed = removed.err().unwrap_or("removed".into());
                self.record_at(kind, at_ms, format!("{added}; {outcome}; {removed}; stopped"));
                Ok(())
            }
            "disk-full" => {
                let victim = self.target(cluster).await;
                cluster.members[victim].fill_disk()?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                cluster.members[victim].free_disk();
                // A member stops on a full disk, as etcd does: not a crash.
                let stopped = cluster.members[victim].exited();
                let what = match &stopped {
                    Some(how) => format!("member stopped: {how}"),
                    None => "member kept running".into(),
                };
                self.record(kind, format!("m{victim}'s disk full for 3s ({what})"));
                cluster.restart(victim)
            }
            _ => unreachable!("every kind is handled"),
        }
    }

    /// Ends every fault: partitions healed, paused members resumed, stopped founders restarted,
    /// disks freed.
    pub fn heal(&mut self, cluster: &mut Cluster) -> Result<(), String> {
        self.note_crashes(cluster);
        cluster.network().heal()?;
        for i in 0..self.founders {
            cluster.members[i].free_disk();
            if cluster.members[i].paused() {
                cluster.members[i].resume();
            }
            cluster.restart(i)?;
        }
        Ok(())
    }
}

impl Nemesis {
    /// Records founding members whose process ended by itself.
    pub fn note_crashes(&mut self, cluster: &mut Cluster) {
        for i in 0..self.founders {
            if let Some(how) = cluster.members[i].exited() {
                let at = self.start.elapsed().as_secs_f64();
                self.crashes
                    .push(format!("m{i} ended by itself ({how}) by {at:.1} s; see its log"));
            }
        }
    }
}

/// Faults are printed as they happen, so a long soak shows progress.
fn tracing_line(label: &str, at_ms: u64, what: &str) {
    eprintln!("  [{:>6.1}s] {label}: {what}", at_ms as f64 / 1000.0);
}
