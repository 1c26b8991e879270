//! The differential test: one etcdctl script against a 3-member cluster of real etcd 3.4, then
//! against a 3-member cluster of stead on the very same ports, data dirs and flags, and the
//! outputs must be identical once what is random by nature (lease ids, timings, database sizes,
//! raft terms) is masked. Same ports and token mean etcd's member and cluster ids must come out
//! the same too. CI installs `etcd-server` and `etcd-client`; without them this test fails.

mod common;

use common::{stop, Ports};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

fn start(binary: &str, ports: &Ports, root: &Path) -> Vec<Child> {
    common::start_cluster(binary, ports, root, "diff-token", &[])
}

fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = common::etcdctl(endpoints)
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let input = stdin.unwrap_or_default().to_string();
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("written");
    let output = child.wait_with_output().expect("etcdctl ends");
    // Keep etcdctl's own error line, not the client library's retry log.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), errors.join("\n"))
}

/// Runs the script and returns one normalized transcript.
fn transcript(ports: &Ports) -> String {
    let one = format!("127.0.0.1:{}", ports.client[0]);
    let all = ports.client.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    common::eventually(Duration::from_secs(30), || {
        if etcdctl(&all, &["endpoint", "health"], None).is_empty()
            || etcdctl(&all, &["put", "warmup", "x"], None) == "OK\n"
        {
            Ok(())
        } else {
            Err("the cluster never served".into())
        }
    });
    let mut out = String::new();
    run(&mut out, &one, &["put", "a", "1"], None);
    run(&mut out, &one, &["put", "b", "2"], None);
    run(&mut out, &one, &["put", "c", "3", "--prev-kv"], None);
    run(&mut out, &one, &["put", "a", "10", "--prev-kv"], None);
    run(&mut out, &one, &["get", "a"], None);
    run(&mut out, &one, &["get", "", "--prefix", "--keys-only"], None);
    run(&mut out, &one, &["get", "a", "--rev=3"], None);
    run(
        &mut out,
        &one,
        &["get", "", "--from-key", "--sort-by=MODIFY", "--order=DESCEND", "--limit=2"],
        None,
    );
    run(&mut out, &one, &["get", "a", "-w", "json"], None);
    run(&mut out, &one, &["del", "b", "--prev-kv"], None);
    run(&mut out, &one, &["del", "nothing"], None);
    run(
        &mut out,
        &one,
        &["txn", "-w", "json"],
        Some("value(\"a\") = \"10\"\n\nput a 11\nget c\n\nput a 12\n\n"),
    );
    run(&mut out, &one, &["txn"], Some("version(\"c\") > \"5\"\n\nput a 13\n\nget a\n\n"));
    run(&mut out, &one, &["put", "", "x"], None);
    run(&mut out, &one, &["compact", "4"], None);
    run(&mut out, &one, &["get", "a", "--rev=3"], None);
    run(&mut out, &one, &["get", "a", "--rev=1000"], None);
    run(&mut out, &one, &["lease", "grant", "100"], None);
    let lease = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("lease ").and_then(|r| r.split_whitespace().next()))
        .expect("a granted lease")
        .to_string();
    run(&mut out, &one, &["put", "leased", "v", &format!("--lease={lease}")], None);
    run(&mut out, &one, &["lease", "timetolive", &lease, "--keys"], None);
    run(&mut out, &one, &["lease", "revoke", &lease], None);
    run(&mut out, &one, &["get", "leased"], None);
    run(&mut out, &one, &["lease", "revoke", &lease], None);
    run(&mut out, &one, &["put", "k", "v", "--lease=123"], None);
    run(&mut out, &one, &["member", "list"], None);
    run(&mut out, &one, &["auth", "enable"], None);
    run(&mut out, &one, &["user", "add", "root:pw"], None);
    run(&mut out, &one, &["role", "add", "root"], None);
    run(&mut out, &one, &["user", "grant-role", "root", "root"], None);
    run(&mut out, &one, &["role", "add", "ro"], None);
    run(&mut out, &one, &["role", "grant-permission", "ro", "read", "a"], None);
    run(&mut out, &one, &["user", "add", "u:upw"], None);
    run(&mut out, &one, &["user", "grant-role", "u", "ro"], None);
    run(&mut out, &one, &["user", "get", "u"], None);
    run(&mut out, &one, &["role", "get", "ro"], None);
    run(&mut out, &one, &["auth", "enable"], None);
    run(&mut out, &one, &["--user", "u:upw", "get", "a"], None);
    run(&mut out, &one, &["--user", "u:upw", "put", "a", "x"], None);
    run(&mut out, &one, &["--user", "u:bad", "get", "a"], None);
    run(&mut out, &one, &["get", "a"], None);
    run(&mut out, &one, &["--user", "root:pw", "user", "list"], None);
    run(&mut out, &one, &["--user", "root:pw", "role", "list"], None);
    run(&mut out, &one, &["--user", "root:pw", "auth", "disable"], None);
    run(&mut out, &one, &["alarm", "list"], None);
    normalize(&out, &lease)
}

/// Runs one etcdctl command and appends it and its output to the transcript.
fn run(out: &mut String, endpoint: &str, args: &[&str], stdin: Option<&str>) {
    out.push_str(&format!("$ etcdctl {}\n", args.join(" ")));
    out.push_str(&etcdctl(endpoint, args, stdin));
    out.push('\n');
}

/// Masks what differs by nature between two runs.
fn normalize(text: &str, lease: &str) -> String {
    let lease_decimal = i64::from_str_radix(lease, 16).map(|v| v.to_string()).unwrap_or_default();
    let mut text = text.replace(lease, "<lease>");
    if !lease_decimal.is_empty() {
        text = text.replace(&lease_decimal, "<lease>");
    }
    let mut masked = String::new();
    for line in text.lines() {
        let line = mask_after(line, "\"raft_term\":", |c: char| c.is_ascii_digit());
        let line = mask_after(&line, "remaining(", |c: char| c.is_ascii_digit());
        masked.push_str(&line);
        masked.push('\n');
    }
    masked
}

fn mask_after(line: &str, marker: &str, keep: impl Fn(char) -> bool + Copy) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        let after = &rest[at + marker.len()..];
        let end = after.find(|c: char| !keep(c)).unwrap_or(after.len());
        out.push('#');
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn etcdctl_sees_no_difference_between_etcd_and_stead() {
    let ports = Ports::new(40_000);
    let etcd_dir = common::fresh_dir("diff-etcd");
    let etcd = start("etcd", &ports, &etcd_dir);
    let expected = transcript(&ports);
    stop(etcd);
    // The script must have exercised what it claims, on etcd, before stead is compared to it.
    for sign in [
        "$ etcdctl get a\na\n10\n",
        "compacted revision 4",
        "Error: etcdserver: mvcc: required revision has been compacted",
        "Error: etcdserver: mvcc: required revision is a future revision",
        "Error: etcdserver: key is not provided",
        "Error: etcdserver: requested lease not found",
        "attached keys([leased])",
        "Error: etcdserver: root user does not exist",
        "Role ro updated",
        "Authentication Enabled",
        "Error: etcdserver: permission denied",
        "Error: etcdserver: authentication failed, invalid user ID or password",
        "Error: etcdserver: user name is empty",
        "Authentication Disabled",
        ", started, a, http://127.0.0.1:",
    ] {
        assert!(expected.contains(sign), "etcd's transcript lacks {sign:?}:\n{expected}");
    }
    if std::env::var_os("STEAD_DIFF_SHOW").is_some() {
        eprintln!("{expected}");
    }
    let stead_dir = common::fresh_dir("diff-stead");
    let stead = start(env!("CARGO_BIN_EXE_stead"), &ports, &stead_dir);
    let actual = transcript(&ports);
    stop(stead);
    let _ = std::fs::remove_dir_all(&etcd_dir);
    let _ = std::fs::remove_dir_all(&stead_dir);
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(e, a)| e != a)
            .map(|(e, a)| format!("etcd:  {e}\nstead: {a}"))
            .collect();
        panic!(
            "etcdctl saw a difference:\n{}\n\nfull etcd transcript:\n{expected}",
            diff.join("\n")
        );
    }
}
