//! Helpers shared by the end-to-end tests.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// A loopback port no other test of this process was given, and free now. Tests run in
/// parallel, and a port the OS hands out twice would make two members collide. Each test
/// binary starts from its own `base` (offset by the process id).
pub fn free_port(base: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = base + (std::process::id() % 10_000) as u16;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Tries `attempt` every 200 ms until it succeeds; panics with its last complaint once
/// `timeout` has passed.
pub fn eventually(timeout: std::time::Duration, mut attempt: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(()) => return,
            Err(complaint) => assert!(std::time::Instant::now() < deadline, "{complaint}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `etcdctl` with the v3 API against `endpoints` (CI installs etcd-client).
#[allow(dead_code)]
pub fn etcdctl(endpoints: &str) -> std::process::Command {
    let mut command = std::process::Command::new("etcdctl");
    command.env("ETCDCTL_API", "3").arg(format!("--endpoints={endpoints}"));
    command
}

/// An empty directory for one test: `stead-<tag>-<pid>` under the temp dir.
// Every test binary compiles this module; the etcdctl tests keep their own temp dirs.
#[allow(dead_code)]
pub fn fresh_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stead-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// What a long-running command (`etcdctl watch`) prints, read until nothing new has come for a
/// second (5 s before the first output, 15 s at most); then it is killed.
#[allow(dead_code)]
pub fn output_until_quiet(mut command: std::process::Command) -> String {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the command runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut output = Vec::new();
    loop {
        let quiet = if output.is_empty() { Duration::from_secs(5) } else { Duration::from_secs(1) };
        match received.recv_timeout(quiet) {
            Ok(bytes) if Instant::now() < deadline => output.extend(bytes),
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8_lossy(&output).into_owned()
}

/// The ports of a cluster's members.
#[allow(dead_code)]
pub struct Ports {
    /// Client ports, by member.
    pub client: Vec<u16>,
    /// Peer ports, by member.
    pub peer: Vec<u16>,
}

#[allow(dead_code)]
impl Ports {
    /// Six ports from `free_port(base)`.
    pub fn new(base: u16) -> Ports {
        Ports::members(3, base)
    }

    /// Ports of `count` members from `free_port(base)`.
    pub fn members(count: usize, base: u16) -> Ports {
        Ports {
            client: (0..count).map(|_| free_port(base)).collect(),
            peer: (0..count).map(|_| free_port(base)).collect(),
        }
    }
}

/// Starts a cluster of `binary` (etcd or stead: the flags are etcd's), one member per port
/// pair of `ports` (named `a`, `b`, `c`), with data dirs under `root`, the cluster token
/// `token`, and `extra` flags for every member. Their output goes nowhere.
#[allow(dead_code)]
pub fn start_cluster(
    binary: &str,
    ports: &Ports,
    root: &std::path::Path,
    token: &str,
    extra: &[&str],
) -> Vec<std::process::Child> {
    let names = &["a", "b", "c"][..ports.client.len()];
    let initial = names
        .iter()
        .zip(&ports.peer)
        .map(|(name, port)| format!("{name}=http://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let client = format!("http://127.0.0.1:{}", ports.client[i]);
            let peer = format!("http://127.0.0.1:{}", ports.peer[i]);
            std::process::Command::new(binary)
                .args(["--name", name])
                .args(["--data-dir", root.join(name).to_str().expect("utf-8")])
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial, "--initial-cluster-token", token])
                .args(extra)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{binary} starts (CI installs etcd-server): {e}"))
        })
        .collect()
}

/// Kills and reaps `children`.
#[allow(dead_code)]
pub fn stop(children: Vec<std::process::Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}
