//! Enforces the core's contract on its own source: no IO, no clock, no threads, no OS randomness,
//! no hash-ordered collections, and only dependencies that do none of those.
//!
//! A grep is crude, but it fails loudly the moment someone reaches for `std::time::Instant` or
//! `thread_rng` in the core, which is exactly when a reviewer should look.

use std::fs;
use std::path::{Path, PathBuf};

/// Source patterns the core must never contain, with the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::time", "time comes in as an input (our own Instant type)"),
    ("Instant::now", "time comes in as an input"),
    ("SystemTime", "time comes in as an input"),
    ("std::thread", "the core is single-threaded; drivers own threads"),
    ("std::fs", "persistence goes through stead-store's Disk, driven from outside"),
    ("std::net", "messages come in and go out as values"),
    ("std::process", "the core never spawns or exits"),
    ("std::env", "configuration comes in as a value"),
    ("thread_rng", "randomness comes from the seeded ChaCha RNG passed in"),
    ("OsRng", "randomness comes from the seeded ChaCha RNG passed in"),
    ("rand::random", "randomness comes from the seeded ChaCha RNG passed in"),
    ("bcrypt::hash(", "bcrypt's own salt is OS randomness: use hash_with_salt"),
    ("HashMap", "iteration order must not depend on a hasher (use BTreeMap)"),
    ("HashSet", "iteration order must not depend on a hasher (use BTreeSet)"),
    ("println!", "output goes through tracing, not stdout"),
];

/// The only crates the core may depend on (each does no IO, time, threads or OS random).
const ALLOWED_DEPENDENCIES: &[&str] = &[
    "serde",
    "crc32c",
    "postcard",
    "raft",
    "raft-proto",
    "protobuf",
    "rand",
    "rand_chacha",
    "slog",
    "tracing",
    "bytes",
    "thiserror",
    "sha1",
    // Pure computation: backup digests, and password hashes with salts from the seeded RNG
    // (bcrypt's own `hash`, which draws OS randomness, is never called).
    "sha2",
    "bcrypt",
    // Pure computation: etcd's protobuf messages inside backups (`backup/schema.rs`).
    "prost",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_source_does_no_io_time_threads_or_os_random() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() >= 5, "found the core's sources");
    let mut violations = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (pattern, reason) in FORBIDDEN {
                if code.contains(pattern) {
                    violations.push(format!(
                        "{}:{}: `{pattern}`: {reason}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "the core must stay sans-IO:\n{}", violations.join("\n"));
}

#[test]
fn core_depends_only_on_allowed_crates() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut section = "";
    let mut unexpected = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let is_dependency_line =
            section == "[dependencies]" && !line.is_empty() && !line.starts_with('#');
        if let Some(name) = line.split(['=', '.', ' ']).next().filter(|_| is_dependency_line) {
            if !ALLOWED_DEPENDENCIES.contains(&name) {
                unexpected.push(name.to_string());
            }
        }
    }
    assert!(unexpected.is_empty(), "core may not depend on {unexpected:?}");
}

/// The check itself must be able to fail: a line that breaks the rules is caught.
#[test]
fn the_pattern_check_catches_a_violation() {
    let line = "    let now = std::time::Instant::now(); // not allowed";
    let code = line.split("//").next().unwrap();
    assert!(FORBIDDEN.iter().any(|(pattern, _)| code.contains(pattern)));
    let comment_only = "// std::time is mentioned in a comment";
    assert!(!FORBIDDEN.iter().any(|(p, _)| comment_only.split("//").next().unwrap().contains(p)));
}
