//! TLS end to end: clusters of the real `stead` binary (and of real etcd 3.4, as the control)
//! with mutual TLS on the client and peer ports, certificates made by the test (rcgen), driven
//! by the real `etcdctl` with `--cacert --cert --key`. CI installs `etcd-server` and
//! `etcd-client`; without them these tests fail rather than pass vacuously.

mod common;
#[path = "common/pki.rs"]
mod pki;

use pki::{Ca, Issued, Usage};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    common::free_port(30_000)
}

/// One member's place: name, ports, data dir.
#[derive(Clone)]
struct Place {
    name: String,
    client: String,
    peer: String,
    dir: PathBuf,
}

impl Place {
    fn new(root: &Path, name: &str) -> Place {
        Place {
            name: name.into(),
            client: format!("https://127.0.0.1:{}", free_port()),
            peer: format!("https://127.0.0.1:{}", free_port()),
            dir: root.join(name),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.with_extension("log")
    }
}

/// Starts `binary` as the member at `place` of the cluster `initial`, with `extra` flags.
fn launch(binary: &str, place: &Place, initial: &str, extra: &[String]) -> Child {
    let log = std::fs::File::create(place.log()).expect("a log file");
    Command::new(binary)
        .args(["--name", &place.name])
        .args(["--data-dir", place.dir.to_str().expect("utf-8")])
        .args(["--listen-client-urls", &place.client, "--advertise-client-urls", &place.client])
        .args(["--listen-peer-urls", &place.peer, "--initial-advertise-peer-urls", &place.peer])
        .args(["--initial-cluster", initial, "--initial-cluster-token", "tls-token"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts (CI installs etcd-server): {e}"))
}

fn initial(places: &[Place]) -> String {
    places.iter().map(|p| format!("{}={}", p.name, p.peer)).collect::<Vec<_>>().join(",")
}

/// The flags of a member with mutual TLS on both ports.
fn mutual_tls(ca: &Path, member: &Issued) -> Vec<String> {
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    [
        ("--cert-file", path(&member.cert)),
        ("--key-file", path(&member.key)),
        ("--trusted-ca-file", path(ca)),
        ("--client-cert-auth", "true".into()),
        ("--peer-cert-file", path(&member.cert)),
        ("--peer-key-file", path(&member.key)),
        ("--peer-trusted-ca-file", path(ca)),
        ("--peer-client-cert-auth", "true".into()),
    ]
    .into_iter()
    .map(|(flag, value)| format!("{flag}={value}"))
    .collect()
}

/// etcdctl against `endpoints` trusting `ca`, presenting `client` if given; stdout, then the
/// `Error:` lines of stderr (not the client library's retry log).
fn etcdctl(endpoints: &str, ca: &Path, client: Option<&Issued>, args: &[&str]) -> String {
    let mut command = common::etcdctl(endpoints);
    command.arg("--command-timeout=5s").arg("--dial-timeout=2s");
    command.arg(format!("--cacert={}", ca.display()));
    if let Some(client) = client {
        command.arg(format!("--cert={}", client.cert.display()));
        command.arg(format!("--key={}", client.key.display()));
    }
    let output = command.args(args).stdin(Stdio::null()).output().expect("etcdctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), errors.join("\n"))
}

fn stop(children: Vec<Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits until a put through `endpoints` succeeds.
fn wait_serving(endpoints: &str, ca: &Path, client: &Issued) {
    common::eventually(Duration::from_secs(30), || {
        match etcdctl(endpoints, ca, Some(client), &["put", "warmup", "x"]).as_str() {
            "OK\n" => Ok(()),
            other => Err(format!("the cluster never served: {other}")),
        }
    });
}

/// The certificates of the mutual-TLS scenario.
struct Certs {
    ca: Ca,
    member: Issued,
    root: Issued,
    alice: Issued,
}

fn certs(dir: &Path) -> Certs {
    let ca = Ca::new(dir, "ca");
    let member = ca.issue("member", "member", Usage::Member);
    let root = ca.issue("root", "root", Usage::Client);
    let alice = ca.issue("alice", "alice", Usage::Client);
    Certs { ca, member, root, alice }
}

/// The script: KV, watch, lease, membership, health, then users whose certificates name them.
fn transcript(places: &[Place], certs: &Certs) -> String {
    let ca = &certs.ca.cert;
    let one = places[0].client.clone();
    let all = places.iter().map(|p| p.client.clone()).collect::<Vec<_>>().join(",");
    wait_serving(&all, ca, &certs.root);
    let mut out = String::new();
    let run = |out: &mut String, who: Option<&Issued>, label: &str, args: &[&str]| {
        out.push_str(&format!("$ [{label}] etcdctl {}\n", args.join(" ")));
        out.push_str(&etcdctl(&one, ca, who, args));
        out.push('\n');
    };
    let root = Some(&certs.root);
    let alice = Some(&certs.alice);
    run(&mut out, root, "root", &["put", "a", "1"]);
    run(&mut out, root, "root", &["put", "a", "2", "--prev-kv"]);
    run(&mut out, root, "root", &["get", "a", "-w", "json"]);
    run(&mut out, root, "root", &["get", "", "--prefix", "--keys-only"]);
    run(&mut out, root, "root", &["lease", "grant", "100"]);
    let granted = etcdctl(&one, ca, root, &["lease", "grant", "100"]);
    let lease = granted.split_whitespace().nth(1).unwrap_or("none").to_string();
    run(&mut out, root, "root", &["put", "leased", "v", &format!("--lease={lease}")]);
    run(&mut out, root, "root", &["lease", "timetolive", &lease, "--keys"]);
    run(&mut out, root, "root", &["lease", "revoke", &lease]);
    run(&mut out, root, "root", &["put", "w", "1"]);
    run(&mut out, root, "root", &["del", "w"]);
    out.push_str(&format!("$ [root] etcdctl watch w --rev=1\n{}\n", watch(&one, ca, &certs.root)));
    run(&mut out, root, "root", &["member", "list"]);
    run(&mut out, root, "root", &["user", "add", "root:rootpw"]);
    run(&mut out, root, "root", &["role", "add", "root"]);
    run(&mut out, root, "root", &["user", "grant-role", "root", "root"]);
    run(&mut out, root, "root", &["role", "add", "app"]);
    run(
        &mut out,
        root,
        "root",
        &["role", "grant-permission", "app", "readwrite", "app/", "--prefix"],
    );
    run(&mut out, root, "root", &["user", "add", "alice:alicepw"]);
    run(&mut out, root, "root", &["user", "grant-role", "alice", "app"]);
    run(&mut out, root, "root", &["auth", "enable"]);
    run(&mut out, alice, "alice", &["put", "app/x", "1"]);
    run(&mut out, alice, "alice", &["get", "app/x"]);
    run(&mut out, alice, "alice", &["put", "a", "3"]);
    run(&mut out, alice, "alice", &["get", "a"]);
    run(&mut out, alice, "alice", &["user", "list"]);
    run(&mut out, alice, "alice", &["--user", "root:rootpw", "get", "a"]);
    run(&mut out, root, "root", &["get", "a"]);
    run(&mut out, root, "root", &["user", "list"]);
    run(&mut out, None, "no certificate", &["get", "a"]);
    run(&mut out, root, "root", &["auth", "disable"]);
    normalize(&out.replace(&lease, "<lease>"))
}

/// What `etcdctl watch w --rev=1` replays: the key's whole history.
fn watch(endpoint: &str, ca: &Path, client: &Issued) -> String {
    let mut command = common::etcdctl(endpoint);
    command
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", client.cert.display()))
        .arg(format!("--key={}", client.key.display()))
        .args(["watch", "w", "--rev=1"]);
    common::output_until_quiet(command)
}

/// Masks what differs by nature between two runs (lease ids, raft terms).
fn normalize(text: &str) -> String {
    let mut masked = String::new();
    for line in text.lines() {
        let line = match line.strip_prefix("lease ") {
            Some(rest) if rest.contains(" granted with TTL(") => {
                format!("lease <id>{}", &rest[rest.find(' ').unwrap_or(0)..])
            }
            _ => line.to_string(),
        };
        let line = mask_after(&line, "\"raft_term\":");
        let line = mask_after(&line, "remaining(");
        masked.push_str(&line);
        masked.push('\n');
    }
    masked
}

fn mask_after(line: &str, marker: &str) -> String {
    let Some(at) = line.find(marker) else { return line.to_string() };
    let after = &line[at + marker.len()..];
    let end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
    format!("{}#{}", &line[..at + marker.len()], mask_after(&after[end..], marker))
}

fn start_cluster(binary: &str, places: &[Place], certs: &Certs) -> Vec<Child> {
    let flags = mutual_tls(&certs.ca.cert, &certs.member);
    places.iter().map(|p| launch(binary, p, &initial(places), &flags)).collect()
}

#[test]
fn etcdctl_over_mutual_tls_sees_no_difference_between_etcd_and_stead() {
    let root = common::fresh_dir("tls-diff");
    let certs = certs(&root.join("certs"));
    let places: Vec<Place> = ["a", "b", "c"].iter().map(|n| Place::new(&root, n)).collect();

    let etcd = start_cluster("etcd", &places, &certs);
    let expected = transcript(&places, &certs);
    stop(etcd);
    for place in &places {
        std::fs::remove_dir_all(&place.dir).expect("etcd's data dir removed");
    }
    let stead = start_cluster(env!("CARGO_BIN_EXE_stead"), &places, &certs);
    let got = transcript(&places, &certs);

    // Not vacuous: what the scenario is about happened.
    assert!(got.contains("$ [alice] etcdctl put app/x 1\nOK\n"), "{got}");
    assert!(got.contains("[alice] etcdctl put a 3\nError: etcdserver: permission denied"), "{got}");
    assert!(got.contains("[root] etcdctl get a\na\n2\n"), "{got}");
    assert!(got.contains("https://127.0.0.1:"), "member list shows https URLs: {got}");
    assert!(got.contains("etcdctl watch w --rev=1\nPUT\nw\n1\nDELETE\nw\n\n"), "{got}");
    assert!(
        got.contains("granted with TTL(100s), remaining(#s), attached keys([leased])"),
        "{got}"
    );
    let refused = got.split("$ [no certificate] etcdctl get a\n").nth(1).unwrap_or_default();
    assert!(refused.starts_with("Error:"), "no certificate, no answer: {got}");
    stop(stead);
    assert_eq!(got, expected, "stead's transcript (left) differs from etcd's (right)");
    let _ = std::fs::remove_dir_all(&root);
}

/// Waits (up to `timeout`) for `child` to exit; its status if it did.
fn exited(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn logs(places: &[Place]) -> String {
    places.iter().map(|p| std::fs::read_to_string(p.log()).unwrap_or_default()).collect()
}

#[test]
fn a_member_with_a_foreign_or_disallowed_certificate_cannot_join() {
    let root = common::fresh_dir("tls-join");
    let certs = certs(&root.join("certs"));
    let other_ca = Ca::new(&root.join("certs"), "other-ca");
    let places: Vec<Place> = ["a", "b", "c"].iter().map(|n| Place::new(&root, n)).collect();
    let mut flags = mutual_tls(&certs.ca.cert, &certs.member);
    flags.push("--peer-cert-allowed-cn=member".into());
    let stead = env!("CARGO_BIN_EXE_stead");
    let mut children: Vec<Child> =
        places.iter().map(|p| launch(stead, p, &initial(&places), &flags)).collect();
    let ca = &certs.ca.cert;
    let all = places.iter().map(|p| p.client.clone()).collect::<Vec<_>>().join(",");
    wait_serving(&all, ca, &certs.root);

    // d: signed by another CA. e: the right CA, the wrong CN.
    let foreign = other_ca.issue("foreign", "member", Usage::Member);
    let intruder = certs.ca.issue("intruder", "intruder", Usage::Member);
    for (name, cert, refusal) in [
        ("d", &foreign, "TLS handshake failed"),
        ("e", &intruder, "is not the one --peer-cert-allowed-cn allows"),
    ] {
        let place = Place::new(&root, name);
        let added = etcdctl(
            &all,
            ca,
            Some(&certs.root),
            &["member", "add", name, &format!("--peer-urls={}", place.peer)],
        );
        assert!(added.starts_with("Member "), "{added}");
        let mut everyone = places.clone();
        everyone.push(place.clone());
        let mut joiner_flags = mutual_tls(ca, cert);
        joiner_flags.push("--initial-cluster-state=existing".into());
        let mut joiner = launch(stead, &place, &initial(&everyone), &joiner_flags);
        let status = exited(&mut joiner, Duration::from_secs(30));
        let said = std::fs::read_to_string(place.log()).unwrap_or_default();
        assert!(status.is_some_and(|s| !s.success()), "{name} must not join: {said}");
        common::eventually(Duration::from_secs(10), || {
            let logged = logs(&places);
            match logged.contains(refusal) && logged.contains("refused a peer connection") {
                true => Ok(()),
                false => Err(format!("no member logged the refusal of {name}: {logged}")),
            }
        });
        let listed = etcdctl(&all, ca, Some(&certs.root), &["member", "list"]);
        let line = listed.lines().find(|l| l.contains(&place.peer)).unwrap_or_default();
        assert!(line.contains(", unstarted, "), "{name} never started: {listed}");
        let id = line.split(',').next().unwrap_or_default();
        let removed = etcdctl(&all, ca, Some(&certs.root), &["member", "remove", id]);
        assert!(removed.contains(" removed from cluster "), "{removed}");
        let put = etcdctl(&all, ca, Some(&certs.root), &["put", "still", name]);
        assert_eq!(put, "OK\n", "the cluster keeps serving");
    }
    children.iter_mut().for_each(|c| assert!(c.try_wait().ok().flatten().is_none()));
    stop(children);
    let _ = std::fs::remove_dir_all(&root);
}

/// `curl` over TLS: the HTTP endpoints share the client port with gRPC.
fn curl(url: &str, ca: &Path, client: &Issued) -> String {
    curl_with(&[], url, ca, client)
}

/// [`curl`] with more of curl's arguments (a JSON body, a protocol).
fn curl_with(extra: &[&str], url: &str, ca: &Path, client: &Issued) -> String {
    let output = Command::new("curl")
        .args(extra)
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--cert")
        .arg(&client.cert)
        .arg("--key")
        .arg(&client.key)
        .arg(url)
        .output()
        .expect("curl runs (CI installs it)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn certificates_rotate_on_disk_and_bad_tls_is_refused() {
    let root = common::fresh_dir("tls-rotate");
    let certs = certs(&root.join("certs"));
    let ca2 = Ca::new(&root.join("certs"), "ca2");
    let stead = env!("CARGO_BIN_EXE_stead");
    let place = Place::new(&root, "solo");
    let served = root.join("certs").join("served");
    std::fs::create_dir_all(&served).expect("a dir");
    let cert = Issued { cert: served.join("cert.pem"), key: served.join("key.pem") };
    std::fs::copy(&certs.member.cert, &cert.cert).expect("copied");
    std::fs::copy(&certs.member.key, &cert.key).expect("copied");
    let metrics = format!("https://127.0.0.1:{}", free_port());
    let mut child = launch(stead, &place, &initial(std::slice::from_ref(&place)), &{
        let mut flags = mutual_tls(&certs.ca.cert, &cert);
        flags.retain(|f| !f.starts_with("--trusted-ca-file") && !f.starts_with("--client-cert"));
        flags.push(format!("--listen-metrics-urls={metrics}"));
        flags
    });
    let ca1 = &certs.ca.cert;
    wait_serving(&place.client, ca1, &certs.root);

    // The HTTP endpoints answer on the TLS client port.
    let health = curl(&format!("{}/health", place.client), ca1, &certs.root);
    assert_eq!(health, "{\"health\":\"true\"}");
    assert!(curl(&format!("{}/metrics", place.client), ca1, &certs.root)
        .contains("\netcd_server_has_leader 1\n"));
    // An https:// metrics URL serves them with the client port's certificate, as etcd's.
    assert_eq!(curl(&format!("{metrics}/health"), ca1, &certs.root), "{\"health\":\"true\"}");
    // So does the JSON gateway, over HTTP/1.1 and HTTP/2.
    let put = ["-X", "POST", "-d", r#"{"key":"dGxz","value":"b24="}"#, "--http1.1"];
    let answer = curl_with(&put, &format!("{}/v3/kv/put", place.client), ca1, &certs.root);
    assert!(answer.starts_with(r#"{"header":{"cluster_id":""#), "{answer}");
    let range = ["-X", "POST", "-d", r#"{"key":"dGxz"}"#, "--http2"];
    let answer = curl_with(&range, &format!("{}/v3/kv/range", place.client), ca1, &certs.root);
    assert!(
        answer.contains(r#""key":"dGxz","#) && answer.contains(r#""value":"b24=""#),
        "{answer}"
    );

    // Plaintext on the TLS port, and TLS to a URL that is not the member's: refused.
    let plain = place.client.replace("https://", "http://");
    let output = common::etcdctl(&plain).args(["--dial-timeout=2s", "get", "a"]).output();
    let output = output.expect("etcdctl runs");
    assert!(!output.status.success(), "a plaintext client on a TLS port is refused");

    // Rotation: the files change under the running member; new connections get the new one.
    let rotated = ca2.issue("rotated", "member", Usage::Member);
    std::fs::copy(&rotated.key, &cert.key).expect("rotated key");
    std::fs::copy(&rotated.cert, &cert.cert).expect("rotated cert");
    common::eventually(Duration::from_secs(10), || {
        match etcdctl(&place.client, &ca2.cert, Some(&certs.root), &["put", "k", "v"]).as_str() {
            "OK\n" => Ok(()),
            other => Err(format!("the rotated certificate is not served: {other}")),
        }
    });
    let old = etcdctl(&place.client, ca1, Some(&certs.root), &["get", "k"]);
    assert!(old.starts_with("Error:"), "the old CA no longer verifies the member: {old}");
    assert!(child.try_wait().expect("alive").is_none(), "the member kept running");
    stop(vec![child]);

    // Bad set-ups: a clear error at start-up, never a fallback to plaintext.
    let expired = certs.ca.issue_valid(
        "expired",
        "member",
        Usage::Member,
        Some(time::OffsetDateTime::now_utc() - time::Duration::days(1)),
    );
    let missing = root.join("certs").join("missing.pem");
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                format!("--cert-file={}", path(&missing)),
                format!("--key-file={}", path(&certs.member.key)),
            ],
            "missing.pem: No such file",
        ),
        (
            vec![
                format!("--cert-file={}", path(&certs.member.cert)),
                format!("--key-file={}", path(&certs.alice.key)),
            ],
            "the key does not fit the certificate",
        ),
        (
            vec![
                format!("--cert-file={}", path(&expired.cert)),
                format!("--key-file={}", path(&expired.key)),
            ],
            "the certificate expired at",
        ),
        (vec![], "TLS key/cert (--cert-file, --key-file) must be provided for client url https://"),
        (
            vec![
                format!("--cert-file={}", path(&certs.member.cert)),
                format!("--key-file={}", path(&certs.member.key)),
                "--cipher-suites=TLS_FANCY".into(),
            ],
            "unexpected TLS cipher suite \"TLS_FANCY\"",
        ),
    ];
    for (flags, complaint) in cases {
        let bad = Place::new(&root, "bad");
        let _ = std::fs::remove_dir_all(&bad.dir);
        let mut child = launch(stead, &bad, &initial(std::slice::from_ref(&bad)), &flags);
        let status = exited(&mut child, Duration::from_secs(10));
        let said = std::fs::read_to_string(bad.log()).unwrap_or_default();
        assert!(status.is_some_and(|s| !s.success()), "refused at start-up: {flags:?} {said}");
        assert!(said.contains(complaint), "{complaint:?} in {said}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn auto_tls_serves_clients_and_peers_with_generated_certificates() {
    let root = common::fresh_dir("tls-auto");
    let places: Vec<Place> = ["a", "b", "c"].iter().map(|n| Place::new(&root, n)).collect();
    let flags = vec!["--auto-tls".to_string(), "--peer-auto-tls".to_string()];
    let stead = env!("CARGO_BIN_EXE_stead");
    let children: Vec<Child> =
        places.iter().map(|p| launch(stead, p, &initial(&places), &flags)).collect();
    let all = places.iter().map(|p| p.client.clone()).collect::<Vec<_>>().join(",");
    let insecure = |args: &[&str]| {
        let output = common::etcdctl(&all)
            .args(["--insecure-skip-tls-verify", "--insecure-transport=false"])
            .args(["--command-timeout=5s", "--dial-timeout=2s"])
            .args(args)
            .output()
            .expect("etcdctl runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    common::eventually(Duration::from_secs(30), || match insecure(&["put", "a", "1"]).as_str() {
        "OK\n" => Ok(()),
        other => Err(format!("an auto-TLS cluster never served: {other} {}", logs(&places))),
    });
    assert_eq!(insecure(&["get", "a", "--print-value-only"]), "1\n");
    for place in &places {
        for side in ["client", "peer"] {
            let cert = place.dir.join("fixtures").join(side).join("cert.pem");
            assert!(cert.exists(), "{} holds its {side} certificate", place.dir.display());
        }
    }
    stop(children);
    let _ = std::fs::remove_dir_all(&root);
}
