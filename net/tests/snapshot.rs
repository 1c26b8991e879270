//! Backups across stead and etcd 3.4: a loaded etcd's `etcdctl snapshot save` restored with
//! `stead snapshot restore` into a 3-member stead cluster, and the way back with etcd's own
//! `snapshot restore`; after each move every read a client can make (ranges at several
//! revisions, a watch from the past, leases, auth) answers as at the source. Also a stead
//! backup taken under write load, and bad backups refused with nothing left behind. CI installs
//! `etcd-server` and `etcd-client`; without them these tests fail rather than pass vacuously.

// Real processes and real sockets: nothing to simulate.
#![cfg(not(madsim))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::kv_client::KvClient;
use stead_net::proto::etcdserverpb::lease_client::LeaseClient;
use stead_net::proto::etcdserverpb::maintenance_client::MaintenanceClient;

const STEAD: &str = env!("CARGO_BIN_EXE_stead");

fn free_port() -> u16 {
    common::free_port(50_000)
}

/// A member's name, URLs and data dir.
#[derive(Clone)]
struct Place {
    name: String,
    client: String,
    peer: String,
    dir: PathBuf,
}

fn places(root: &Path, names: &[&str]) -> Vec<Place> {
    names
        .iter()
        .map(|name| Place {
            name: name.to_string(),
            client: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
            dir: root.join(name),
        })
        .collect()
}

fn initial(places: &[Place]) -> String {
    places.iter().map(|p| format!("{}={}", p.name, p.peer)).collect::<Vec<_>>().join(",")
}

fn endpoints(places: &[Place]) -> String {
    places.iter().map(|p| p.client.clone()).collect::<Vec<_>>().join(",")
}

/// Starts `binary` for every place (data dirs made by a restore are used as they are).
fn start(binary: &str, places: &[Place]) -> Vec<Child> {
    places
        .iter()
        .map(|p| {
            let log = std::fs::File::create(p.dir.with_extension("log")).expect("a log");
            Command::new(binary)
                .args(["--name", &p.name, "--data-dir", p.dir.to_str().expect("utf-8")])
                .args(["--listen-client-urls", &p.client, "--advertise-client-urls", &p.client])
                .args(["--listen-peer-urls", &p.peer, "--initial-advertise-peer-urls", &p.peer])
                .args(["--initial-cluster", &initial(places)])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{binary} starts (CI installs etcd-server): {e}"))
        })
        .collect()
}

fn stop(children: Vec<Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// etcdctl's stdout and its `Error:` lines.
fn etcdctl(endpoints: &str, args: &[&str]) -> String {
    let output = common::etcdctl(endpoints)
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("etcdctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), errors.join("\n"))
}

fn wait_serving(endpoints: &str) {
    common::eventually(Duration::from_secs(30), || {
        match etcdctl(endpoints, &["--user", "root:rootpw", "get", "probe"]).starts_with("Error") {
            false => Ok(()),
            true => Err(format!("{endpoints} never served")),
        }
    });
}

/// `stead snapshot ...`.
fn stead_snapshot(args: &[&str]) -> Output {
    Command::new(STEAD).arg("snapshot").args(args).output().expect("stead runs")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

/// Loads a cluster with what a backup must carry: keys with several versions, deletions, a
/// compaction, leases with keys, then users and roles with auth enabled. Returns the
/// compaction revision.
fn load(endpoint: &str) -> i64 {
    let channel = async {
        tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .expect("a URL")
            .connect()
            .await
            .expect("connects")
    };
    let compacted = runtime().block_on(async {
        let channel = channel.await;
        let mut kv = KvClient::new(channel.clone());
        let put = |key: String, value: String, lease: i64| pb::PutRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            lease,
            ..Default::default()
        };
        for round in 0..4 {
            for i in 0..60 {
                let request = put(format!("key/{i:03}"), format!("v{round}-{i}"), 0);
                kv.put(request).await.expect("put");
            }
            let gone = format!("key/{:03}", round * 7);
            let delete = pb::DeleteRangeRequest { key: gone.into_bytes(), ..Default::default() };
            kv.delete_range(delete).await.expect("delete");
        }
        let revision = kv
            .range(pb::RangeRequest { key: b"key/000".to_vec(), ..Default::default() })
            .await
            .expect("range")
            .into_inner()
            .header
            .expect("a header")
            .revision;
        let compacted = revision - 70;
        let compact = pb::CompactionRequest { revision: compacted, physical: true };
        kv.compact(compact).await.expect("compact");
        let mut leases = LeaseClient::new(channel);
        for ttl in [600, 900] {
            let grant = pb::LeaseGrantRequest { ttl, id: 0 };
            let lease = leases.lease_grant(grant).await.expect("grant").into_inner().id;
            for i in 0..3 {
                kv.put(put(format!("leased/{ttl}/{i}"), "l".into(), lease)).await.expect("put");
            }
        }
        for i in 0..20 {
            kv.put(put(format!("app/{i:02}"), format!("a{i}"), 0)).await.expect("put");
        }
        compacted
    });
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "app"],
        &["role", "grant-permission", "app", "readwrite", "app/", "--prefix"],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        let said = etcdctl(endpoint, args);
        assert!(!said.contains("Error"), "{args:?}: {said}");
    }
    compacted
}

/// What a client can read, as text with what differs by nature masked (cluster and member
/// ids, raft terms, remaining TTLs).
fn reads(endpoint: &str, compacted: i64) -> String {
    let root = ["--user", "root:rootpw"];
    let as_root = |args: &[&str]| etcdctl(endpoint, &[&root[..], args].concat());
    let current: i64 = {
        let json = as_root(&["get", "key/001", "-w", "json"]);
        let at = json.find("\"revision\":").expect("a revision") + 11;
        json[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let mut out = format!("current revision {current}\n");
    for revision in [compacted - 1, compacted, compacted + 1, (compacted + current) / 2, current] {
        let json = as_root(&["get", "", "--from-key", &format!("--rev={revision}"), "-w", "json"]);
        let kvs = json.find("\"kvs\"").map_or(json.as_str(), |at| &json[at..]);
        out.push_str(&format!("range at {revision}: {kvs}\n"));
    }
    // etcd lists leases in no particular order (a Go map's).
    let listed = as_root(&["lease", "list"]);
    let mut leases: Vec<&str> = listed.lines().collect();
    if leases.len() > 1 {
        leases[1..].sort();
    }
    out.push_str(&format!("{}\n", leases.join("\n")));
    for id in leases.iter().skip(1) {
        let ttl = as_root(&["lease", "timetolive", id, "--keys"]);
        let remaining = ttl.find("remaining(").map_or(ttl.len(), |at| at + 10);
        let rest = ttl[remaining..].trim_start_matches(|c: char| c.is_ascii_digit());
        // etcd lists a lease's keys in no particular order (a Go map's).
        let rest = match rest.split_once("keys([") {
            Some((head, tail)) => {
                let (list, end) = tail.split_once("])").unwrap_or((tail, ""));
                let mut keys: Vec<&str> = list.split(' ').collect();
                keys.sort();
                format!("{head}keys([{}]){end}", keys.join(" "))
            }
            None => rest.to_string(),
        };
        out.push_str(&format!("{}#{rest}", &ttl[..remaining]));
    }
    // Deleting keys that do not exist checks write permission without a new revision.
    for args in [&["get", "app/03"][..], &["del", "app/none"], &["get", "key/001"], &["del", "x"]] {
        let said = etcdctl(endpoint, &[&["--user", "alice:alicepw"][..], args].concat());
        out.push_str(&format!("alice {args:?}: {said}\n"));
    }
    out.push_str(&format!("users: {}", as_root(&["user", "list"])));
    out.push_str(&format!("watch from {}:\n{}", compacted + 1, watch(endpoint, compacted + 1)));
    out
}

/// Fails with the first line that differs (the transcripts are long).
fn same(got: &str, expected: &str, what: &str) {
    for (n, (a, b)) in got.lines().zip(expected.lines()).enumerate() {
        if a != b {
            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let from = at.saturating_sub(150);
            let cut = |s: &str| s.get(from..(at + 150).min(s.len())).unwrap_or(s).to_string();
            panic!("{what}: line {n} differs at {at}:\n got: …{}\nwant: …{}", cut(a), cut(b));
        }
    }
    assert_eq!(got.lines().count(), expected.lines().count(), "{what}: {got}");
}

/// The events a watch of every key from `revision` delivers.
fn watch(endpoint: &str, revision: i64) -> String {
    let mut command = common::etcdctl(endpoint);
    command.args(["--user", "root:rootpw", "watch", "", "--prefix", &format!("--rev={revision}")]);
    common::output_until_quiet(command)
}

fn restore_with_stead(backup: &Path, places: &[Place]) {
    for place in places {
        let restored = stead_snapshot(&[
            "restore",
            backup.to_str().expect("utf-8"),
            "--name",
            &place.name,
            "--data-dir",
            place.dir.to_str().expect("utf-8"),
            "--initial-cluster",
            &initial(places),
            "--initial-advertise-peer-urls",
            &place.peer,
        ]);
        let said = String::from_utf8_lossy(&restored.stderr);
        assert!(restored.status.success(), "stead snapshot restore: {said}");
    }
}

fn restore_with_etcdctl(backup: &Path, places: &[Place]) {
    for place in places {
        let restored = common::etcdctl("127.0.0.1:1")
            .args(["snapshot", "restore", backup.to_str().expect("utf-8")])
            .args(["--name", &place.name, "--data-dir", place.dir.to_str().expect("utf-8")])
            .args(["--initial-cluster", &initial(places)])
            .args(["--initial-advertise-peer-urls", &place.peer])
            .output()
            .expect("etcdctl runs");
        let said = String::from_utf8_lossy(&restored.stderr);
        assert!(restored.status.success(), "etcdctl snapshot restore: {said}");
    }
}

/// `etcdctl snapshot status` and `stead snapshot status` agree in every output format.
fn same_status(backup: &Path) -> String {
    let file = backup.to_str().expect("utf-8");
    let mut json = String::new();
    for format in ["simple", "json", "table"] {
        let theirs = common::etcdctl("127.0.0.1:1")
            .args(["snapshot", "status", file, "-w", format])
            .output()
            .expect("etcdctl runs");
        let ours = stead_snapshot(&["status", file, "-w", format]);
        let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
        assert!(!theirs.is_empty(), "etcdctl read the backup");
        assert_eq!(String::from_utf8_lossy(&ours.stdout), theirs, "status -w {format}");
        if format == "json" {
            json = theirs;
        }
    }
    json
}

#[test]
fn backups_move_from_etcd_to_stead_and_back_to_etcd() {
    let root = common::fresh_dir("snap-cross");
    let source = places(&root, &["e1"]);
    let etcd = start("etcd", &source);
    common::eventually(Duration::from_secs(20), || {
        match etcdctl(&source[0].client, &["put", "probe", "p"]) {
            said if said == "OK\n" => Ok(()),
            said => Err(format!("etcd never served: {said}")),
        }
    });
    let compacted = load(&source[0].client);
    let expected = reads(&source[0].client, compacted);
    assert!(expected.contains("found 2 leases"), "{expected}");
    assert!(expected.contains("alice [\"del\", \"app/none\"]: 0"), "{expected}");
    assert!(expected.contains("alice [\"del\", \"x\"]: Error: etcdserver: permission denied"));
    assert!(expected.contains("alice [\"get\", \"key/001\"]: Error: etcdserver: permission denied"));
    assert!(expected.contains("mvcc: required revision has been compacted"), "{expected}");
    let from_etcd = root.join("etcd.snap");
    let saved = etcdctl(
        &source[0].client,
        &["--user", "root:rootpw", "snapshot", "save", from_etcd.to_str().expect("utf-8")],
    );
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    stop(etcd);
    same_status(&from_etcd);
    // etcd's live database file, as it lies in a stopped member's data dir.
    let raw = source[0].dir.join("member").join("snap").join("db");
    same_status(&raw);
    let raw_place = places(&root, &["raw"]);
    let raw_file = raw.to_str().expect("utf-8");
    let refused = stead_snapshot(&["restore", raw_file, "--data-dir", "/nonexistent/x"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--skip-hash-check=false"));
    let restored = stead_snapshot(&[
        "restore",
        raw_file,
        "--skip-hash-check",
        "--name",
        "raw",
        "--data-dir",
        raw_place[0].dir.to_str().expect("utf-8"),
        "--initial-cluster",
        &initial(&raw_place),
        "--initial-advertise-peer-urls",
        &raw_place[0].peer,
    ]);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let raw_member = start(STEAD, &raw_place);
    wait_serving(&raw_place[0].client);
    same(&reads(&raw_place[0].client, compacted), &expected, "etcd's member/snap/db → stead");
    stop(raw_member);

    // etcd → stead: three members from one backup.
    let stead_places = places(&root, &["s1", "s2", "s3"]);
    restore_with_stead(&from_etcd, &stead_places);
    let stead = start(STEAD, &stead_places);
    wait_serving(&endpoints(&stead_places));
    same(&reads(&stead_places[1].client, compacted), &expected, "etcd → stead");

    // stead → etcd, with etcd's own tools.
    let from_stead = root.join("stead.snap");
    let saved = etcdctl(
        &stead_places[0].client,
        &["--user", "root:rootpw", "snapshot", "save", from_stead.to_str().expect("utf-8")],
    );
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let expected = reads(&stead_places[0].client, compacted);
    stop(stead);
    let status = same_status(&from_stead);
    assert!(status.starts_with("{\"hash\":"), "{status}");
    let back = places(&root, &["b1", "b2", "b3"]);
    restore_with_etcdctl(&from_stead, &back);
    let etcd = start("etcd", &back);
    wait_serving(&endpoints(&back));
    same(&reads(&back[2].client, compacted), &expected, "stead → etcd");
    // etcd writes into the file stead wrote, and rewrites it whole (defragment).
    let all = endpoints(&back);
    let root_user = ["--user", "root:rootpw"];
    let wrote = etcdctl(&all, &[&root_user[..], &["put", "after/restore", "x"]].concat());
    assert_eq!(wrote, "OK\n");
    let defrag = etcdctl(&all, &[&root_user[..], &["defrag"]].concat());
    assert!(defrag.contains("Finished defragmenting"), "{defrag}");
    let read =
        etcdctl(&all, &[&root_user[..], &["get", "after/restore", "--print-value-only"]].concat());
    assert_eq!(read, "x\n");
    stop(etcd);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_backup_under_write_load_restores_to_the_same_history() {
    let root = common::fresh_dir("snap-load");
    let source = places(&root, &["a"]);
    let stead = start(STEAD, &source);
    let endpoint = source[0].client.clone();
    common::eventually(Duration::from_secs(20), || match etcdctl(&endpoint, &["put", "k", "v"]) {
        said if said == "OK\n" => Ok(()),
        said => Err(said),
    });
    let backup = root.join("under-load.snap");
    let (revision, source_hash) = runtime().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .expect("a URL")
            .connect()
            .await
            .expect("connects");
        let writer = {
            let mut kv = KvClient::new(channel.clone());
            tokio::spawn(async move {
                for i in 0..3000u32 {
                    let key = format!("load/{:04}", i % 500).into_bytes();
                    let put = pb::PutRequest { key, value: vec![b'x'; 100], ..Default::default() };
                    if kv.put(put).await.is_err() {
                        break;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let file = backup.to_str().expect("utf-8").to_string();
        let saved = tokio::task::spawn_blocking(move || {
            stead_snapshot(&["save", &file, "--endpoints", &endpoint])
        })
        .await
        .expect("save runs");
        assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
        writer.await.expect("the writer ends");
        let status = backup_status(&backup);
        let mut maintenance = MaintenanceClient::new(channel);
        let hash = maintenance
            .hash_kv(pb::HashKvRequest { revision: status })
            .await
            .expect("hashkv")
            .into_inner()
            .hash;
        (status, hash)
    });
    assert!(revision > 100, "the backup caught the load midway: revision {revision}");
    stop(stead);

    let restored = places(&root, &["r"]);
    restore_with_stead(&backup, &restored);
    let stead = start(STEAD, &restored);
    let endpoint = restored[0].client.clone();
    let restored_hash = runtime().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(endpoint)
            .expect("a URL")
            .connect_timeout(Duration::from_secs(1));
        let mut answer = None;
        for _ in 0..100 {
            if let Ok(channel) = channel.connect().await {
                let request = pb::HashKvRequest { revision };
                if let Ok(hash) = MaintenanceClient::new(channel).hash_kv(request).await {
                    answer = Some(hash.into_inner());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        answer.expect("the restored member answers HashKV")
    });
    assert_eq!(restored_hash.hash, source_hash, "HashKV at revision {revision}");
    assert_eq!(restored_hash.header.expect("a header").revision, revision);
    stop(stead);
    let _ = std::fs::remove_dir_all(&root);
}

/// The revision `stead snapshot status -w json` reports.
fn backup_status(backup: &Path) -> i64 {
    let status = stead_snapshot(&["status", backup.to_str().expect("utf-8"), "-w", "json"]);
    let json = String::from_utf8_lossy(&status.stdout);
    let at = json.find("\"revision\":").expect("a revision") + 11;
    json[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn bad_backups_and_bad_targets_are_refused_and_nothing_is_left_behind() {
    let root = common::fresh_dir("snap-bad");
    let source = places(&root, &["a"]);
    let stead = start(STEAD, &source);
    common::eventually(Duration::from_secs(20), || {
        match etcdctl(&source[0].client, &["put", "k", "v"]) {
            said if said == "OK\n" => Ok(()),
            said => Err(said),
        }
    });
    let good = root.join("good.snap");
    let saved = stead_snapshot(&["save", good.to_str().unwrap(), "--endpoints", &source[0].client]);
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
    stop(stead);
    let bytes = std::fs::read(&good).expect("the backup");
    let write = |name: &str, bytes: &[u8]| {
        let path = root.join(name);
        std::fs::write(&path, bytes).expect("written");
        path
    };
    let mut flipped = bytes.clone();
    flipped[2 * 4096 + 100] ^= 0x40;
    let raw_db = &bytes[..bytes.len() - 32];
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (write("truncated.snap", &bytes[..bytes.len() - 5000]), vec![], "snapshot missing hash"),
        (write("flipped.snap", &flipped), vec![], "expected sha256 "),
        (write("raw.db", raw_db), vec![], "snapshot missing hash but --skip-hash-check=false"),
        (write("text.snap", &[b'x'; 8224]), vec!["--skip-hash-check"], "not a bbolt database"),
        (write("cut.db", &raw_db[..raw_db.len() - 4096]), vec!["--skip-hash-check"], "truncated"),
        (good.clone(), vec!["--name", "zz"], "--initial-cluster has no member named \"zz\""),
    ];
    for (file, extra, complaint) in cases {
        let target = root.join("target");
        let mut args =
            vec!["restore", file.to_str().unwrap(), "--data-dir", target.to_str().unwrap()];
        args.extend(extra.iter().copied());
        if !extra.contains(&"--name") {
            args.extend(["--name", "a", "--initial-cluster", "a=http://localhost:2380"]);
        }
        let restored = stead_snapshot(&args);
        let said = String::from_utf8_lossy(&restored.stderr);
        assert!(!restored.status.success(), "{file:?} must be refused");
        assert!(said.contains(complaint), "{file:?}: {complaint:?} in {said}");
        assert!(!target.exists(), "nothing written for {file:?}");
    }
    // A raw database restores with --skip-hash-check; an existing data dir is refused.
    let raw = root.join("raw.db");
    let target = root.join("from-raw");
    let args = ["restore", raw.to_str().unwrap(), "--skip-hash-check", "--data-dir"];
    let restored = stead_snapshot(&[&args[..], &[target.to_str().unwrap()]].concat());
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let again = stead_snapshot(&[
        "restore",
        good.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && said.contains("exists"), "{said}");
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .expect("the dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("restoring"))
        .collect();
    assert!(leftovers.is_empty(), "no staging dirs left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&root);
}
