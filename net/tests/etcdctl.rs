//! End-to-end: a 3-member cluster of the real `stead` binary on loopback ports, driven by the
//! real `etcdctl` (ETCDCTL_API=3, etcd 3.4's). CI installs `etcd-client`; without `etcdctl`
//! these tests fail rather than pass vacuously.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Member {
    name: String,
    client: String,
    peer: String,
    dir: PathBuf,
    process: Option<Child>,
}

struct Cluster {
    members: Vec<Member>,
    initial: String,
    _root: tempdir::TempDir,
}

mod tempdir {
    //! A directory removed when dropped.
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let path = std::env::temp_dir()
                .join(format!("stead-e2e-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path).expect("a temp dir");
            TempDir(path)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    common::free_port(20_000)
}

impl Cluster {
    fn start(tag: &str) -> Cluster {
        let root = tempdir::TempDir::new(tag);
        let members: Vec<Member> = ["a", "b", "c"]
            .iter()
            .map(|name| Member {
                name: name.to_string(),
                client: format!("http://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                dir: root.0.join(name),
                process: None,
            })
            .collect();
        let initial =
            members.iter().map(|m| format!("{}={}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster { members, initial, _root: root };
        for index in 0..3 {
            cluster.launch(index);
        }
        cluster.wait_healthy();
        cluster
    }

    fn launch(&mut self, index: usize) {
        let member = &mut self.members[index];
        let child = Command::new(env!("CARGO_BIN_EXE_stead"))
            .args(["--name", &member.name])
            .args(["--data-dir", member.dir.to_str().expect("utf-8")])
            .args([
                "--listen-client-urls",
                &member.client,
                "--advertise-client-urls",
                &member.client,
            ])
            .args([
                "--listen-peer-urls",
                &member.peer,
                "--initial-advertise-peer-urls",
                &member.peer,
            ])
            .args(["--initial-cluster", &self.initial, "--bcrypt-cost", "4"])
            .stdout(Stdio::null())
            .stderr(log_file(&member.dir))
            .spawn()
            .expect("the stead binary starts");
        member.process = Some(child);
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .map(|m| m.client.trim_start_matches("http://").to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn endpoint(&self, index: usize) -> String {
        self.members[index].client.trim_start_matches("http://").to_string()
    }

    /// Runs etcdctl against `endpoints`; returns its output.
    fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Output {
        common::etcdctl(endpoints)
            .arg("--command-timeout=10s")
            .args(args)
            .output()
            .expect("etcdctl runs (CI installs etcd-client)")
    }

    /// Runs etcdctl and returns stdout, failing the test if it failed.
    fn ok(&self, endpoints: &str, args: &[&str]) -> String {
        let output = self.etcdctl(endpoints, args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs etcdctl expecting failure; returns stderr.
    fn fails(&self, endpoints: &str, args: &[&str]) -> String {
        let output = self.etcdctl(endpoints, args);
        assert!(!output.status.success(), "etcdctl {args:?} should fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.etcdctl(&self.endpoints(), &["endpoint", "health"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default()
                )
            })
            .collect();
        panic!("the cluster did not become healthy\n{}", logs.join("\n"));
    }

    /// The index of the member that leads, from `endpoint status`.
    fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for (index, member) in self.members.iter().enumerate() {
                if member.process.is_none() {
                    continue;
                }
                let out =
                    self.etcdctl(&self.endpoint(index), &["endpoint", "status", "-w", "json"]);
                let text = String::from_utf8_lossy(&out.stdout);
                let field = |name: &str| {
                    text.split(&format!("\"{name}\":")).nth(1).and_then(|rest| {
                        rest.split(|c: char| !c.is_ascii_digit()).next().map(str::to_owned)
                    })
                };
                if field("leader").is_some() && field("leader") == field("member_id") {
                    return index;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no leader");
    }
}

/// Where a member's log goes: next to its data dir.
fn log_file(dir: &std::path::Path) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .expect("a log file");
    Stdio::from(file)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}

#[test]
fn etcdctl_drives_a_three_member_cluster() {
    let cluster = Cluster::start("kv");
    let all = cluster.endpoints();
    let (a, b) = (cluster.endpoint(0), cluster.endpoint(1));
    assert_eq!(cluster.ok(&a, &["put", "app/x", "1"]), "OK\n");
    assert_eq!(cluster.ok(&b, &["put", "app/y", "2"]), "OK\n");
    assert_eq!(cluster.ok(&b, &["get", "app/x"]), "app/x\n1\n", "a write on a is read on b");
    assert_eq!(cluster.ok(&all, &["get", "app/", "--prefix", "--keys-only"]), "app/x\n\napp/y\n\n");
    assert_eq!(
        cluster.ok(
            &all,
            &["get", "app/", "--prefix", "--sort-by=KEY", "--order=DESCEND", "--limit=1"]
        ),
        "app/y\n2\n"
    );
    assert_eq!(cluster.ok(&a, &["get", "app/x", "--rev=2"]), "app/x\n1\n");
    assert_eq!(cluster.ok(&a, &["del", "app/y"]), "1\n");
    let txn = cluster.etcdctl_stdin(
        &a,
        &["txn"],
        "value(\"app/x\") = \"1\"\n\nput app/x 10\n\nput app/x 20\n\n",
    );
    assert_eq!(txn, "SUCCESS\n\nOK\n");
    assert_eq!(cluster.ok(&b, &["get", "app/x", "--print-value-only"]), "10\n");

    // Watch from an old revision with previous values.
    let watched = cluster.timed_watch(&b, &["watch", "app/x", "--rev=3", "--prev-kv"]);
    assert!(watched.contains("PUT\napp/x\n1\napp/x\n10\n"), "watch from revision 3: {watched:?}");

    // Leases, asked of a follower: renewals and TTLs are forwarded to the leader.
    let leader = cluster.leader();
    let follower = cluster.endpoint((leader + 1) % 3);
    let granted = cluster.ok(&follower, &["lease", "grant", "60"]);
    let id = granted.split_whitespace().nth(1).expect("lease <id> granted").to_string();
    assert_eq!(cluster.ok(&follower, &["put", "leased", "v", &format!("--lease={id}")]), "OK\n");
    let ttl = cluster.ok(&follower, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    let kept = cluster.ok(&follower, &["lease", "keep-alive", "--once", &id]);
    assert_eq!(kept, format!("lease {id} keepalived with TTL(60)\n"));
    assert_eq!(cluster.ok(&all, &["lease", "revoke", &id]), format!("lease {id} revoked\n"));
    assert_eq!(cluster.ok(&a, &["get", "leased"]), "", "revoking deletes the key");

    // Compaction and its error.
    assert_eq!(cluster.ok(&a, &["compact", "3"]), "compacted revision 3\n");
    let err = cluster.fails(&a, &["get", "app/x", "--rev=2"]);
    assert!(err.contains("etcdserver: mvcc: required revision has been compacted"), "{err}");

    // Membership and endpoints.
    let members = cluster.ok(&all, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    for member in &cluster.members {
        assert!(
            members.contains(&format!(
                ", started, {}, {}, {}, false",
                member.name, member.peer, member.client
            )),
            "{members}"
        );
    }
    // etcdctl 3.4 prints health to stderr.
    let health = cluster.etcdctl(&all, &["endpoint", "health"]);
    assert!(health.status.success());
    let health = String::from_utf8_lossy(&health.stderr).into_owned();
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let hashes = cluster.ok(&all, &["endpoint", "hashkv"]);
    let values: std::collections::BTreeSet<&str> =
        hashes.lines().filter_map(|l| l.split(", ").nth(1)).collect();
    assert_eq!(values.len(), 1, "every member has the same hash: {hashes}");
    let status = cluster.ok(&all, &["endpoint", "status"]);
    assert!(status.contains("3.4.23") && status.matches(", true, false,").count() == 1, "{status}");

    // A lock, and a leadership hand-over to a follower.
    assert_eq!(cluster.ok(&all, &["lock", "job", "echo", "held"]), "held\n");
    let elected = cluster.timed_watch(&all, &["elect", "pick", "me"]);
    assert!(elected.starts_with("pick/") && elected.ends_with("\nme\n"), "{elected:?}");
    let leader = cluster.leader();
    let target = (leader + 1) % 3;
    let listed = cluster.ok(&cluster.endpoint(target), &["endpoint", "status", "-w", "fields"]);
    let target_id = listed
        .lines()
        .find_map(|l| l.strip_prefix("\"MemberID\" : "))
        .map(|id| format!("{:x}", id.trim().parse::<u64>().expect("an id")))
        .expect("the member id");
    let moved = cluster.ok(&cluster.endpoint(leader), &["move-leader", &target_id]);
    assert!(
        moved.starts_with("Leadership transferred from ") && moved.contains(&target_id),
        "{moved}"
    );
    assert_eq!(cluster.leader(), target, "the follower leads now");

    // Snapshot save gives a file etcdctl accepts.
    let file = cluster._root.0.join("backup.db");
    let saved = cluster.etcdctl(&a, &["snapshot", "save", file.to_str().expect("utf-8")]);
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
    assert!(std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) > 32);
}

#[test]
fn auth_through_etcdctl() {
    let cluster = Cluster::start("auth");
    let a = cluster.endpoint(0);
    let b = cluster.endpoint(1);
    cluster.ok(&a, &["put", "app/k", "v"]);
    cluster.ok(&a, &["user", "add", "root:rootpw"]);
    cluster.ok(&a, &["role", "add", "root"]);
    cluster.ok(&a, &["user", "grant-role", "root", "root"]);
    cluster.ok(&a, &["role", "add", "reader"]);
    cluster.ok(&a, &["role", "grant-permission", "reader", "read", "app/", "--prefix"]);
    cluster.ok(&a, &["user", "add", "alice:alicepw"]);
    cluster.ok(&a, &["user", "grant-role", "alice", "reader"]);
    assert_eq!(cluster.ok(&a, &["auth", "enable"]), "Authentication Enabled\n");
    assert_eq!(cluster.ok(&b, &["--user", "alice:alicepw", "get", "app/k"]), "app/k\nv\n");
    let denied = cluster.fails(&b, &["--user", "alice:alicepw", "put", "app/k", "x"]);
    assert!(denied.contains("etcdserver: permission denied"), "{denied}");
    let wrong = cluster.fails(&b, &["--user", "alice:nope", "get", "app/k"]);
    assert!(
        wrong.contains("etcdserver: authentication failed, invalid user ID or password"),
        "{wrong}"
    );
    let nobody = cluster.fails(&b, &["get", "app/k"]);
    assert!(nobody.contains("etcdserver: user name is empty"), "{nobody}");
    assert_eq!(
        cluster.ok(&a, &["--user", "root:rootpw", "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(cluster.ok(&b, &["put", "app/k", "w"]), "OK\n");
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start("failover");
    let leader = cluster.leader();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let key = format!("k{i}");
        if cluster.etcdctl(&cluster.endpoints(), &["put", &key, "v"]).status.success() {
            acknowledged.push(key);
        }
    }
    cluster.kill(leader);
    let survivors = cluster.endpoints();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut more = 0;
    while Instant::now() < deadline && more < 10 {
        let key = format!("after{more}");
        if cluster.etcdctl(&survivors, &["put", &key, "v"]).status.success() {
            acknowledged.push(key);
            more += 1;
        }
    }
    assert_eq!(more, 10, "the two survivors elect a leader and keep serving");
    cluster.launch(leader);
    let restarted = cluster.endpoint(leader);
    common::eventually(Duration::from_secs(20), || {
        let keys =
            cluster.etcdctl(&restarted, &["get", "", "--prefix", "--keys-only", "--consistency=s"]);
        let text = String::from_utf8_lossy(&keys.stdout).into_owned();
        let missing: Vec<&String> =
            acknowledged.iter().filter(|k| !text.lines().any(|l| l == k.as_str())).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("the restarted member lacks {missing:?}"))
        }
    });
}

impl Cluster {
    /// Runs etcdctl with `input` on stdin; returns stdout.
    fn etcdctl_stdin(&self, endpoints: &str, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = common::etcdctl(endpoints)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("etcdctl runs");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("written");
        let output = child.wait_with_output().expect("etcdctl ends");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a long-lived etcdctl command (watch, elect) for two seconds; returns its output.
    fn timed_watch(&self, endpoints: &str, args: &[&str]) -> String {
        let child = common::etcdctl(endpoints)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl runs");
        let pid = child.id();
        std::thread::sleep(Duration::from_secs(2));
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let output = child.wait_with_output().expect("etcdctl ends");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A plain HTTP GET; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .expect("sent");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

#[test]
fn health_version_metrics_and_refusals() {
    let root = tempdir::TempDir::new("single");
    let dir = root.0.join("data");
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let start = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stead"))
            .args(["--data-dir", dir.to_str().expect("utf-8")])
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stead starts")
    };
    let metrics_url = format!("http://127.0.0.1:{metrics}");
    let mut member = start(&["--listen-metrics-urls", &metrics_url]);
    let addr = format!("127.0.0.1:{metrics}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if std::net::TcpStream::connect(&addr).is_ok() {
            let answer = http_get(&addr, "/health");
            if answer.1.contains("true") || Instant::now() > deadline {
                break answer;
            }
        }
        assert!(Instant::now() < deadline, "the metrics port never opened");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health, ("HTTP/1.1 200 OK".to_string(), "{\"health\":\"true\"}".to_string()));
    // The metrics port serves /metrics and /health alone, as etcd's; /version is the client
    // port's.
    assert_eq!(http_get(&addr, "/version").0, "HTTP/1.1 404 Not Found");
    let version = http_get(&format!("127.0.0.1:{client}"), "/version").1;
    assert_eq!(version, "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}");
    let text = http_get(&addr, "/metrics").1;
    assert!(text.contains("\netcd_server_has_leader 1\n"), "{text}");
    assert!(text.contains("\netcd_server_is_leader 1\n"), "{text}");
    assert_eq!(http_get(&addr, "/nope").0, "HTTP/1.1 404 Not Found");

    // stead-bench runs against it.
    let bench = Command::new(env!("CARGO_BIN_EXE_stead-bench"))
        .args([
            "put",
            "--endpoints",
            &format!("127.0.0.1:{client}"),
            "--clients",
            "4",
            "--total",
            "200",
        ])
        .output()
        .expect("stead-bench runs");
    let report = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success() && report.contains("RESULT workload=Put requests=200 "),
        "{report}"
    );

    // A second process on the same data dir is refused, and so are bad URLs.
    let second = start(&[]).wait_with_output().expect("exits");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && said.contains("in use by another process"), "{said}");
    let bad = Command::new(env!("CARGO_BIN_EXE_stead"))
        .args(["--data-dir", root.0.join("other").to_str().expect("utf-8")])
        .args(["--listen-client-urls", "127.0.0.1:2379"])
        .output()
        .expect("exits");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && said.contains("only http:// and https:// URLs are supported"),
        "{said}"
    );
    let _ = member.kill();
    let _ = member.wait();
}

#[test]
fn a_removed_member_leaves_and_the_rest_keep_serving() {
    let cluster = Cluster::start("remove");
    let leader = cluster.leader();
    let victim = (leader + 1) % 3;
    let listed = cluster.ok(&cluster.endpoint(leader), &["member", "list"]);
    let victim_id = listed
        .lines()
        .find(|l| l.contains(&format!(", started, {}, ", cluster.members[victim].name)))
        .and_then(|l| l.split(',').next())
        .expect("the victim is listed")
        .to_string();
    let removed = cluster.ok(&cluster.endpoint(leader), &["member", "remove", &victim_id]);
    // etcdctl prints the ID with `%16x`: an ID with a leading zero nibble gets a space.
    assert!(
        removed.starts_with(&format!("Member {victim_id:>16} removed from cluster ")),
        "{removed}"
    );
    let rest: Vec<String> = (0..3).filter(|i| *i != victim).map(|i| cluster.endpoint(i)).collect();
    let rest = rest.join(",");
    assert_eq!(cluster.ok(&rest, &["member", "list"]).lines().count(), 2);
    assert_eq!(cluster.ok(&rest, &["put", "after-removal", "v"]), "OK\n");
    let refused = cluster.fails(&cluster.endpoint(victim), &["put", "x", "y"]);
    assert!(refused.contains("Error:"), "the removed member serves no writes: {refused}");
}

#[test]
fn a_member_added_with_etcdctl_joins_with_the_environment_it_prints() {
    let mut cluster = Cluster::start("join");
    let all = cluster.endpoints();
    cluster.ok(&all, &["put", "before-join", "v1"]);
    let peer = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    let added = cluster.ok(&all, &["member", "add", "d", &format!("--peer-urls={peer}")]);
    assert!(added.starts_with("Member ") && added.contains(" added to cluster "), "{added}");
    // etcdctl prints the new member's settings as ETCD_* variables; the binary reads them.
    let environment: Vec<(String, String)> = added
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.starts_with("ETCD_"))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect();
    assert!(
        environment.contains(&("ETCD_INITIAL_CLUSTER_STATE".into(), "existing".into())),
        "{added}"
    );
    assert_eq!(environment.len(), 4, "{added}");
    let dir = cluster._root.0.join("d");
    let child = Command::new(env!("CARGO_BIN_EXE_stead"))
        .envs(environment)
        .args(["--data-dir", dir.to_str().expect("utf-8")])
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .stdout(Stdio::null())
        .stderr(log_file(&dir))
        .spawn()
        .expect("the stead binary starts");
    cluster.members.push(Member {
        name: "d".into(),
        client: client.clone(),
        peer,
        dir,
        process: Some(child),
    });
    let d = cluster.endpoint(3);
    let d_log = || std::fs::read_to_string(cluster.members[3].dir.with_extension("log"));
    common::eventually(Duration::from_secs(30), || {
        let listed = cluster.etcdctl(&d, &["member", "list"]);
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        let got =
            cluster.etcdctl(&d, &["get", "before-join", "--consistency=s", "--print-value-only"]);
        if listed.contains(", started, d, ") && listed.contains(&client) && got.stdout == b"v1\n" {
            assert_eq!(listed.lines().count(), 4, "{listed}");
            return Ok(());
        }
        Err(format!("d did not join: {listed}\n{}", d_log().unwrap_or_default()))
    });
    assert_eq!(cluster.ok(&d, &["put", "after-join", "v2"]), "OK\n");
    assert_eq!(cluster.ok(&all, &["get", "after-join", "--print-value-only"]), "v2\n");
    // Restarted from its data dir with none of the --initial-* settings, it is still d.
    cluster.kill(3);
    cluster.ok(&all, &["put", "while-d-was-down", "v3"]);
    let member = &mut cluster.members[3];
    let child = Command::new(env!("CARGO_BIN_EXE_stead"))
        .args(["--name", "d", "--data-dir", member.dir.to_str().expect("utf-8")])
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &member.peer, "--initial-advertise-peer-urls", &member.peer])
        .stdout(Stdio::null())
        .stderr(log_file(&member.dir))
        .spawn()
        .expect("the stead binary starts");
    member.process = Some(child);
    let d_log = || std::fs::read_to_string(cluster.members[3].dir.with_extension("log"));
    common::eventually(Duration::from_secs(30), || {
        let got = cluster.etcdctl(&d, &["get", "while-d-was-down", "--consistency=s"]);
        if String::from_utf8_lossy(&got.stdout).ends_with("v3\n") {
            Ok(())
        } else {
            Err(format!("d did not catch up: {}", d_log().unwrap_or_default()))
        }
    });
    assert_eq!(cluster.ok(&all, &["member", "list"]).matches(", started, ").count(), 4);
    // A member the cluster does not list is refused with a clear error.
    let stranger = Command::new(env!("CARGO_BIN_EXE_stead"))
        .args(["--name", "e", "--initial-cluster-state", "existing"])
        .args(["--data-dir", cluster._root.0.join("e").to_str().expect("utf-8")])
        .args(["--initial-cluster", &format!("{},e=http://127.0.0.1:1", cluster.initial)])
        .args(["--initial-advertise-peer-urls", "http://127.0.0.1:1"])
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", free_port())])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", free_port())])
        .output()
        .expect("the stead binary runs");
    let refusal = String::from_utf8_lossy(&stranger.stderr);
    assert!(!stranger.status.success(), "{refusal}");
    assert!(refusal.contains("no member with peer URLs"), "{refusal}");
}

#[test]
fn a_wal_dir_from_the_environment_holds_the_wal_across_restarts() {
    let root = tempdir::TempDir::new("waldir");
    let (data, wal) = (root.0.join("data"), root.0.join("wal"));
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("127.0.0.1:{client}");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_stead"))
            .env("ETCD_NAME", "solo")
            .env("ETCD_DATA_DIR", &data)
            .env("ETCD_WAL_DIR", &wal)
            .env("ETCD_LISTEN_CLIENT_URLS", format!("http://{endpoint}"))
            .env("ETCD_ADVERTISE_CLIENT_URLS", format!("http://{endpoint}"))
            .env("ETCD_LISTEN_PEER_URLS", format!("http://127.0.0.1:{peer}"))
            .env("ETCD_INITIAL_ADVERTISE_PEER_URLS", format!("http://127.0.0.1:{peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stead starts")
    };
    let wait_put = |key: &str| {
        common::eventually(Duration::from_secs(20), || {
            let out = common::etcdctl(&endpoint).args(["put", key, "v"]).output().expect("runs");
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        })
    };
    let mut member = start();
    wait_put("first");
    let _ = Command::new("kill").arg(member.id().to_string()).status();
    let _ = member.wait();
    let wal_files = std::fs::read_dir(&wal).expect("the WAL dir exists").count();
    assert!(wal_files > 0, "the WAL is in --wal-dir");
    assert!(!data.join("member/wal").exists(), "and not in the data dir");
    assert!(data.join("member/snap").exists());
    let mut member = start();
    wait_put("second");
    let got = common::etcdctl(&endpoint)
        .args(["get", "", "--from-key", "--keys-only"])
        .output()
        .expect("runs");
    assert_eq!(String::from_utf8_lossy(&got.stdout), "first\n\nsecond\n\n");
    let _ = member.kill();
    let _ = member.wait();
}
