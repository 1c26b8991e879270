//! One member process: the real `stead` binary (or etcd 3.4, the control) started the way a
//! user starts it, with etcd's flags, inside its host's namespace, its data dir on a small
//! tmpfs of its own (so a full disk is one ballast file away), its output in a log file.
//!
//! The faults a process can suffer live here: `kill -9` and a restart from the same data dir,
//! `SIGSTOP`/`SIGCONT`, and a full disk. Dropping a member kills its process and unmounts its
//! data dir.

use crate::network::Network;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// Which server the members run.
#[derive(Clone, Debug)]
pub enum Flavor {
    /// stead's release binary at this path.
    Stead(PathBuf),
    /// etcd 3.4 from the Debian package (`etcd` on the PATH): the control.
    Etcd,
}

impl Flavor {
    /// stead's release binary: `STEAD_BIN`, or `target/release/stead` of this workspace.
    pub fn stead() -> Result<Flavor, String> {
        let binary = match std::env::var_os("STEAD_BIN") {
            Some(path) => PathBuf::from(path),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/stead"),
        };
        if !binary.exists() {
            return Err(format!(
                "{} is missing: build it first (cargo build --release -p stead-net --bin stead)",
                binary.display()
            ));
        }
        Ok(Flavor::Stead(binary))
    }

    /// A short name for verdicts and folders.
    pub fn name(&self) -> &'static str {
        match self {
            Flavor::Stead(_) => "stead",
            Flavor::Etcd => "etcd",
        }
    }

    fn program(&self) -> String {
        match self {
            Flavor::Stead(binary) => binary.display().to_string(),
            Flavor::Etcd => "etcd".into(),
        }
    }
}

/// How big each member's data dir may grow.
const DATA_DIR_BYTES: u64 = 512 << 20;
/// The raft timing every member runs with (etcd's flags, in ms): short, so faults are felt.
pub const HEARTBEAT_MS: u64 = 100;
/// See [`HEARTBEAT_MS`].
pub const ELECTION_MS: u64 = 1000;

/// One member: where it runs, its files, and its process if started.
pub struct Member {
    /// Its name (`--name`).
    pub name: String,
    /// Its host in the [`Network`].
    pub host: usize,
    /// Its address.
    pub ip: String,
    /// Its folder: `log` and the `data` mount.
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
    mounted: bool,
}

impl Member {
    /// A member named `name` on `host`, its files under `run_dir/name` (its data dir a fresh
    /// tmpfs).
    pub fn new(
        network: &Network,
        host: usize,
        name: &str,
        run_dir: &Path,
    ) -> Result<Member, String> {
        let dir = run_dir.join(name);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let size = format!("size={DATA_DIR_BYTES}");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(&data)
            .status()
            .map_err(|e| format!("mount: {e}"))?
            .success();
        if !mounted {
            return Err(format!("cannot mount a tmpfs on {}", data.display()));
        }
        let ip = network.ip(host);
        Ok(Member { name: name.into(), host, ip, dir, child: None, paused: false, mounted })
    }

    /// Its client URL.
    pub fn client_url(&self) -> String {
        format!("http://{}:2379", self.ip)
    }

    /// Its peer URL.
    pub fn peer_url(&self) -> String {
        format!("http://{}:2380", self.ip)
    }

    /// Its log file (stdout and stderr of every run of its process).
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts its process in `cluster` (`--initial-cluster`), `state` `new` or `existing`. A
    /// restart uses the same flags: the data dir decides.
    pub fn start(
        &mut self,
        network: &Network,
        flavor: &Flavor,
        cluster: &str,
        state: &str,
    ) -> Result<(), String> {
        if self.running() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .map_err(|e| format!("{}: {e}", self.log().display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let (client, peer) = (self.client_url(), self.peer_url());
        let data = self.data().join("member");
        let heartbeat = HEARTBEAT_MS.to_string();
        let election = ELECTION_MS.to_string();
        let mut command = network.command(self.host, &flavor.program());
        command.args(["--name", &self.name, "--data-dir"]).arg(&data);
        command.args(["--listen-client-urls", &client, "--advertise-client-urls", &client]);
        command.args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer]);
        command.args(["--initial-cluster", cluster, "--initial-cluster-state", state]);
        command.args(["--initial-cluster-token", "chaos", "--snapshot-count", "2000"]);
        command.args(["--heartbeat-interval", &heartbeat, "--election-timeout", &election]);
        command.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = command.spawn().map_err(|e| format!("starting {}: {e}", self.name))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Whether its process is alive (paused counts as alive).
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// If its process ended by itself (not by [`Member::kill`]): how. It is then not running.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.paused = false;
        Some(status.to_string())
    }

    /// Whether it is stopped by `SIGSTOP`.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// `kill -9`, then waits for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// `SIGSTOP`.
    pub fn pause(&mut self) {
        if self.signal(libc::SIGSTOP) {
            self.paused = true;
        }
    }

    /// `SIGCONT`.
    pub fn resume(&mut self) {
        if self.signal(libc::SIGCONT) {
            self.paused = false;
        }
    }

    fn signal(&mut self, signal: i32) -> bool {
        let Some(child) = &self.child else { return false };
        // SAFETY: kill(2) on a pid this member spawned and has not yet reaped.
        unsafe { libc::kill(child.id() as i32, signal) == 0 }
    }

    /// Fills its data dir's file system to the last byte with a ballast file.
    pub fn fill_disk(&self) -> Result<(), String> {
        let path = self.ballast();
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut chunk = DATA_DIR_BYTES as i64;
        let mut offset = 0i64;
        use std::os::fd::AsRawFd;
        while chunk >= 4096 {
            // SAFETY: fallocate(2) on a file descriptor this function owns.
            let done = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, chunk) } == 0;
            if done {
                offset += chunk;
            } else {
                chunk /= 2;
            }
        }
        Ok(())
    }

    /// Gives the space back.
    pub fn free_disk(&self) {
        let _ = std::fs::remove_file(self.ballast());
    }

    fn ballast(&self) -> PathBuf {
        self.data().join("ballast")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
        self.kill();
        if self.mounted {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.data()).status();
        }
    }
}
