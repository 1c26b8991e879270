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
