//! Members restart from the real store: a cluster of hosts (node + WAL + snapshot files on a
//! crashable MemDisk) takes writes while members lose power at random points. Each crashed member
//! recovers from its newest snapshot and its WAL and rejoins, and at the end every member holds
//! every acknowledged write. Snapshots every 20 entries and 2 KiB WAL segments make snapshot
//! files, markers, segment cuts and releases all part of the run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use stead_core::api::{Error, PutRequest, RangeRequest, Request, Response};
use stead_core::node::{Input, NodeConfig, Output};
use stead_core::time::{Duration, Instant};
use stead_sim::host::{Host, HostError};
use stead_store::disk::MemDisk;
use stead_store::wal::WalConfig;

const WAL: WalConfig = WalConfig { segment_bytes: 2048 };
const STEP: Duration = Duration::from_millis(5);

struct Cluster {
    wal: WalConfig,
    hosts: BTreeMap<u64, Option<Host>>,
    disks: BTreeMap<u64, MemDisk>,
    queue: VecDeque<(u64, raft_proto::eraftpb::Message)>,
    answers: BTreeMap<u64, Result<Response, Error>>,
    now: Instant,
    next_client: u64,
}

fn config(id: u64) -> NodeConfig {
    let mut config = NodeConfig::new(id, vec![1, 2, 3], 500 + id);
    (config.snapshot_count, config.snapshot_catch_up_entries) = (20, 5);
    config
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with_wal(WAL)
    }

    fn with_wal(wal: WalConfig) -> Cluster {
        let mut cluster = Cluster {
            wal,
            hosts: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: VecDeque::new(),
            answers: BTreeMap::new(),
            now: Instant::ZERO,
            next_client: 0,
        };
        for id in 1..=3 {
            let disk = MemDisk::new();
            let host = Host::create(config(id), disk.clone(), wal, cluster.now).expect("create");
            cluster.disks.insert(id, disk);
            cluster.hosts.insert(id, Some(host));
        }
        cluster
    }

    fn input(&mut self, id: u64, input: Input) {
        let Some(Some(host)) = self.hosts.get_mut(&id) else { return };
        for output in host.handle_synced(input).expect("the store works") {
            match output {
                Output::Send { to, message } => self.queue.push_back((to, message)),
                Output::Respond { id, result } => {
                    self.answers.insert(id, result);
                }
                other => unreachable!("the host keeps {other:?}"),
            }
        }
    }

    fn step(&mut self) {
        self.now = self.now + STEP;
        for id in 1..=3 {
            self.input(id, Input::Tick { now: self.now });
        }
        for _ in 0..10_000 {
            let Some((to, message)) = self.queue.pop_front() else { break };
            self.input(to, Input::Message(message));
        }
    }

    fn leader(&self) -> Option<u64> {
        self.hosts
            .iter()
            .find_map(|(id, h)| h.as_ref().filter(|h| h.node().is_leader()).map(|_| *id))
    }

    fn request(&mut self, to: u64, request: Request) -> Option<Result<Response, Error>> {
        self.next_client += 1;
        let client = self.next_client;
        self.input(to, Input::Client { id: client, credential: None, request });
        for _ in 0..2000 {
            if let Some(answer) = self.answers.remove(&client) {
                return Some(answer);
            }
            self.step();
        }
        None
    }

    /// Power loss: the host stops and its disk keeps what the crash choices allow.
    fn power_loss(&mut self, id: u64, rng: &mut ChaCha8Rng) {
        self.hosts.insert(id, None);
        self.disks[&id].crash(&mut |options| rng.gen_range(0..options));
    }

    /// Recovers a host from its disk; returns the snapshot index it started from.
    fn recover(&mut self, id: u64) -> Option<u64> {
        let host = Host::recover(config(id), self.disks[&id].clone(), self.wal, self.now)
            .expect("recovers");
        let started_from = host.started_from();
        self.hosts.insert(id, Some(host));
        started_from
    }
}

#[test]
fn members_that_lose_power_recover_from_disk_and_keep_every_acknowledged_write() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut cluster = Cluster::new();
    let mut acknowledged = BTreeMap::new();
    let mut from_snapshot = 0;
    for n in 0..150u64 {
        if n % 30 == 29 {
            let victim = rng.gen_range(1..=3);
            cluster.power_loss(victim, &mut rng);
            for _ in 0..rng.gen_range(0..100) {
                cluster.step();
            }
            from_snapshot += usize::from(cluster.recover(victim).is_some());
        }
        let Some(leader) = (0..2000).find_map(|_| {
            cluster.step();
            cluster.leader()
        }) else {
            panic!("no leader at write {n}");
        };
        let put = PutRequest {
            key: format!("k{n}").into_bytes(),
            value: format!("v{n}").into_bytes(),
            ..Default::default()
        };
        if let Some(Ok(_)) = cluster.request(leader, Request::Put(put)) {
            acknowledged.insert(format!("k{n}"), format!("v{n}"));
        }
    }
    assert!(acknowledged.len() >= 140, "most writes are acknowledged: {}", acknowledged.len());
    assert!(from_snapshot >= 3, "recoveries started from snapshots: {from_snapshot} of 5");
    for host in cluster.hosts.values().flatten() {
        assert!(host.wal_segments() >= 2, "segments were cut");
    }
    for _ in 0..2000 {
        cluster.step();
    }
    let hashes: Vec<u32> =
        cluster.hosts.values().map(|h| h.as_ref().unwrap().node().kv().hash()).collect();
    assert!(hashes.iter().all(|&h| h == hashes[0]), "members converge: {hashes:?}");
    for id in 1..=3 {
        let everything = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            serializable: true,
            ..Default::default()
        };
        let Some(Ok(Response::Range(range))) = cluster.request(id, Request::Range(everything))
        else {
            panic!("member {id} answers");
        };
        let held: BTreeMap<String, String> = range
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key.clone()).unwrap(),
                    String::from_utf8(kv.value.clone()).unwrap(),
                )
            })
            .collect();
        for (key, value) in &acknowledged {
            assert_eq!(held.get(key), Some(value), "member {id} lost acknowledged {key}");
        }
    }
}

/// Puts `from..to` through the leader; returns the keys acknowledged.
fn put_range(cluster: &mut Cluster, from: u64, to: u64) -> BTreeMap<String, String> {
    let mut acknowledged = BTreeMap::new();
    for n in from..to {
        let leader = (0..2000)
            .find_map(|_| {
                cluster.step();
                cluster.leader()
            })
            .expect("a leader");
        let (key, value) = (format!("k{n}"), format!("v{n}"));
        let put = PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            ..Default::default()
        };
        if let Some(Ok(_)) = cluster.request(leader, Request::Put(put)) {
            acknowledged.insert(key, value);
        }
    }
    acknowledged
}

#[test]
fn a_full_disk_skips_a_snapshot_and_loses_nothing() {
    // Segments large enough that no segment is cut while the disk is full: the WAL writes
    // into preallocated space, and only the snapshot files need room.
    let mut cluster = Cluster::with_wal(WalConfig { segment_bytes: 1 << 20 });
    let mut acknowledged = put_range(&mut cluster, 0, 10);
    let disk = cluster.disks[&3].clone();
    let snapshots = |disk: &MemDisk| {
        let mut disk = disk.clone();
        stead_store::disk::Disk::list(&mut disk, std::path::Path::new("member/snap"))
            .map(|names| names.iter().filter(|n| n.ends_with(".snap")).count())
            .unwrap_or(0)
    };
    let before = snapshots(&disk);
    disk.set_capacity(Some(disk.used_bytes()));
    // 60 writes: two snapshots due (every 20 entries), both refused room; member 3 serves on.
    acknowledged.extend(put_range(&mut cluster, 10, 70));
    assert_eq!(snapshots(&disk), before, "no snapshot file fit on the full disk");
    assert!(cluster.hosts[&3].is_some(), "member 3 kept running");
    disk.set_capacity(None);
    acknowledged.extend(put_range(&mut cluster, 70, 110));
    assert!(snapshots(&disk) > before, "a snapshot is saved once there is room again");
    assert!(acknowledged.len() >= 100, "most writes are acknowledged: {}", acknowledged.len());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    cluster.power_loss(3, &mut rng);
    cluster.recover(3);
    for _ in 0..2000 {
        cluster.step();
    }
    let everything =
        RangeRequest { key: vec![0], range_end: vec![0], serializable: true, ..Default::default() };
    let Some(Ok(Response::Range(range))) = cluster.request(3, Request::Range(everything)) else {
        panic!("member 3 answers");
    };
    let held: BTreeMap<String, String> = range
        .kvs
        .iter()
        .map(|kv| {
            (String::from_utf8_lossy(&kv.key).into(), String::from_utf8_lossy(&kv.value).into())
        })
        .collect();
    for (key, value) in &acknowledged {
        assert_eq!(held.get(key), Some(value), "member 3 lost acknowledged {key}");
    }
}

#[test]
fn a_data_dir_of_another_member_is_refused() {
    let disk = MemDisk::new();
    let mut host = Host::create(config(1), disk.clone(), WAL, Instant::ZERO).unwrap();
    host.handle_synced(Input::Tick { now: Instant::ZERO }).unwrap();
    let error = Host::recover(config(2), disk, WAL, Instant::ZERO).err().expect("refused");
    assert!(matches!(error, HostError::DataDir(_)), "{error}");
    assert!(error.to_string().contains("belongs to member 1, not 2"), "{error}");
}

#[test]
fn a_member_restored_from_a_backup_restarts_from_its_data_dir() {
    // A one-member cluster writes, and its backup seeds a new member's data dir.
    let disk = MemDisk::new();
    let config = NodeConfig::new(1, vec![1], 9);
    let mut source = Host::create(config, disk, WAL, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    let mut backup = None;
    for step in 0..500u64 {
        now = now + STEP;
        let mut outputs = source.handle_synced(Input::Tick { now }).unwrap();
        let request = match step {
            301..=400 if step % 10 == 0 => {
                let key = format!("k{step}").into_bytes();
                Request::Put(PutRequest { key, value: b"v".to_vec(), ..Default::default() })
            }
            450 => Request::Maintenance(stead_core::api::MaintenanceRequest::Snapshot),
            _ => continue,
        };
        let input = Input::Client { id: step, credential: None, request };
        outputs.extend(source.handle_synced(input).unwrap());
        for output in outputs {
            if let Output::Respond { result: Ok(Response::Snapshot(snapshot)), .. } = output {
                backup = Some(snapshot.blob);
            }
        }
    }
    let backup = backup.expect("a backup");
    let hash = source.node().kv().hash();
    assert!(source.node().kv().current_revision() > 5, "the source wrote");

    let config = NodeConfig::new(7, vec![7], 3);
    let node =
        stead_core::node::Node::from_backup(config.clone(), Instant::ZERO, &backup, false).unwrap();
    let disk = MemDisk::new();
    let mut restored = Host::create_from(node, disk.clone(), WAL).unwrap();
    restored.flush().unwrap();
    assert!(!restored.unsynced(), "the starting point is synced");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    disk.crash(&mut |n| rng.gen_range(0..n));
    let recovered = Host::recover(config, disk, WAL, Instant::ZERO).unwrap();
    assert_eq!(recovered.node().kv().hash(), hash, "the restored key space survives a restart");
}
