//! The test hosts: one network namespace per member, joined by a bridge, so that a member is
//! a host with its own address and a partition is a pair of iptables rules inside the
//! namespaces it cuts.
//!
//! A [`Network`] owns a bridge `stb<n>` with address `10.77.<n>.1/24` in the harness's own
//! namespace (where the clients run) and, for host `i`, a namespace `stead<n>h<i>` holding a
//! veth end with address `10.77.<n>.<10 + i>`. Every member listens on its own address with
//! etcd's default ports. Partitions drop packets inside the member namespaces only, so the
//! clients always reach every member. Dropping the `Network` (also on panic) deletes the
//! namespaces, which takes their rules with them, and the bridge. Creating one needs root, as
//! CI runs.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The hosts of one run.
pub struct Network {
    /// This network's number: the third octet of its subnet and the suffix of its names.
    id: u32,
    hosts: usize,
}

impl Network {
    /// A bridge and `hosts` namespaces, each with its address; the loopback up in each.
    pub fn new(hosts: usize) -> Result<Network, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::SeqCst) * 31) % 240 + 10;
        let network = Network { id, hosts };
        network.remove(); // whatever a killed earlier run with this number left
        let bridge = network.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &format!("10.77.{id}.1/24"), "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for host in 0..hosts {
            let (ns, veth) = (network.namespace(host), format!("stv{id}h{host}"));
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns],
            )?;
            run("ip", &["link", "set", &veth, "master", &bridge, "up"])?;
            let address = format!("{}/24", network.ip(host));
            run("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// How many hosts there are.
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Host `host`'s address.
    pub fn ip(&self, host: usize) -> String {
        format!("10.77.{}.{}", self.id, 10 + host)
    }

    /// Host `host`'s namespace.
    pub fn namespace(&self, host: usize) -> String {
        format!("stead{}h{host}", self.id)
    }

    fn bridge(&self) -> String {
        format!("stb{}", self.id)
    }

    /// `program` to be run inside host `host`'s namespace.
    pub fn command(&self, host: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace(host), program]);
        command
    }

    /// Cuts hosts `a` and `b` apart, both ways.
    pub fn cut(&self, a: usize, b: usize) -> Result<(), String> {
        for (me, other) in [(a, b), (b, a)] {
            let ns = self.namespace(me);
            let other = self.ip(other);
            let mut drop = vec!["netns", "exec", &ns, "iptables", "-A", "INPUT", "-s", &other];
            drop.extend(["-j", "DROP"]);
            run("ip", &drop)?;
            let mut drop = vec!["netns", "exec", &ns, "iptables", "-A", "OUTPUT", "-d", &other];
            drop.extend(["-j", "DROP"]);
            run("ip", &drop)?;
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<(), String> {
        for host in 0..self.hosts {
            run("ip", &["netns", "exec", &self.namespace(host), "iptables", "-F"])?;
        }
        Ok(())
    }

    /// Deletes the namespaces (and their rules) and the bridge, ignoring what is not there.
    fn remove(&self) {
        for host in 0..self.hosts.max(8) {
            let _ = run_quietly("ip", &["netns", "del", &self.namespace(host)]);
        }
        let _ = run_quietly("ip", &["link", "del", &self.bridge()]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `program` with `args`; its stderr is the error if it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e} (the chaos suite needs iproute2 and iptables)"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{program} {}: {}", args.join(" "), stderr.trim()))
}

fn run_quietly(program: &str, args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
}
