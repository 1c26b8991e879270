//! `stead snapshot save|status|restore`: etcd's backup workflow (etcdctl 3.4's `snapshot`
//! commands, with their flags and outputs) for backups in etcd's format, written by stead or by
//! etcd.
//!
//! - `save` streams a member's Maintenance.Snapshot into `<file>.part`, checks that it ends in
//!   a SHA-256 trailer, syncs it and renames it into place.
//! - `status` prints what etcdctl prints: the CRC-32C hash over every bucket, the revision, the
//!   number of keys and the size, as `simple`, `json` or `table`.
//! - `restore` makes the data dir of one member of a new cluster from a backup: the state is
//!   checked and written into a temporary directory first, which is renamed into place only when
//!   complete, so a failure leaves nothing half-written.

use crate::config::Flags;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::SnapshotRequest;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use stead_core::backup::{self, Status};
use stead_core::node::Node;
use stead_core::time::Instant;
use stead_store::host::{Host, WAL_DIR};
use stead_store::wal::WalConfig;
use stead_store::RealDisk;

/// `stead snapshot`.
#[derive(Parser, Debug)]
#[command(name = "stead snapshot", about = "Manages backups in etcd's format")]
pub struct SnapshotCli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Stores a backup of a running member to <file>.
    Save {
        /// Where to write it.
        file: PathBuf,
        /// The member to ask (host:port; the first of a list).
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoints: String,
        /// Verify TLS servers with this CA bundle (and connect over TLS).
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Present this TLS client certificate.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// The client certificate's key.
        #[arg(long)]
        key: Option<PathBuf>,
        /// How long to wait for the member.
        #[arg(long, default_value = "5s")]
        dial_timeout: String,
    },
    /// Prints the hash, revision, total keys and size of a backup.
    Status {
        /// The backup.
        file: PathBuf,
        /// `simple`, `json` or `table`.
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Makes a new member's data dir from a backup.
    Restore {
        /// The backup (or, with --skip-hash-check, a raw database file).
        file: PathBuf,
        /// The member's name.
        #[arg(long, default_value = "default")]
        name: String,
        /// The data dir to create (default: `<name>.stead`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A dedicated WAL dir to create.
        #[arg(long)]
        wal_dir: Option<PathBuf>,
        /// The new cluster (`name=url,...`).
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// The new cluster's token.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// This member's peer URLs.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Do not check the backup's SHA-256 (needed for a raw database file).
        #[arg(long)]
        skip_hash_check: bool,
    },
}

impl SnapshotCli {
    /// Runs the command.
    pub async fn run(self) -> Result<(), String> {
        match self.command {
            Command::Save { file, endpoints, cacert, cert, key, dial_timeout } => {
                let endpoint = endpoints.split(',').next().unwrap_or_default().trim().to_string();
                let timeout = crate::config::duration(&dial_timeout)?;
                let timeout = Duration::from_millis(timeout.as_nanos() / 1_000_000);
                let tls = Tls { cacert, cert, key };
                save(&file, &endpoint, &tls, timeout).await?;
                println!("Snapshot saved at {}", file.display());
                Ok(())
            }
            Command::Status { file, write_out } => {
                let bytes = read(&file)?;
                let status = backup::status(&bytes)?;
                print!("{}", show_status(&status, &write_out)?);
                Ok(())
            }
            Command::Restore {
                file,
                name,
                data_dir,
                wal_dir,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                skip_hash_check,
            } => {
                let flags = Flags::parse_from([
                    "stead",
                    "--name",
                    &name,
                    "--initial-cluster",
                    &initial_cluster,
                    "--initial-cluster-token",
                    &initial_cluster_token,
                    "--initial-advertise-peer-urls",
                    &initial_advertise_peer_urls,
                ]);
                let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.stead")));
                let restore = Restore { flags, data_dir, wal_dir, skip_hash_check };
                restore.run(&file)
            }
        }
    }
}

/// etcdctl's `--cacert`, `--cert` and `--key`.
struct Tls {
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

fn read(file: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Streams a backup from `endpoint` into `file`.
async fn save(file: &Path, endpoint: &str, tls: &Tls, timeout: Duration) -> Result<(), String> {
    let identity = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    let secure = tls.cacert.is_some() || identity.is_some();
    let (dialer, scheme) = match secure {
        true => {
            let connector = crate::tls::client_connector(tls.cacert.as_deref(), identity)?;
            (crate::dial::Dialer::with_tls(Some(connector)), "https")
        }
        false => (crate::dial::Dialer::default(), "http"),
    };
    let endpoint = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let channel = dialer.connect(&format!("{scheme}://{endpoint}"), timeout).await?;
    let mut client = MaintenanceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut stream = client
        .snapshot(SnapshotRequest {})
        .await
        .map_err(|status| format!("{endpoint}: {}", status.message()))?
        .into_inner();
    let part = file.with_extension(match file.extension() {
        Some(ext) => format!("{}.part", ext.to_string_lossy()),
        None => "part".into(),
    });
    let mut out = std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let mut size = 0usize;
    let written = async {
        while let Some(chunk) = stream.message().await.map_err(|s| s.message().to_string())? {
            out.write_all(&chunk.blob).map_err(|e| format!("{}: {e}", part.display()))?;
            size += chunk.blob.len();
        }
        if size % 512 != 32 {
            return Err("sha256 checksum not found".to_string());
        }
        out.sync_all().map_err(|e| format!("{}: {e}", part.display()))
    };
    if let Err(error) = written.await {
        let _ = std::fs::remove_file(&part);
        return Err(error);
    }
    std::fs::rename(&part, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// `status` as etcdctl prints it.
fn show_status(status: &Status, write_out: &str) -> Result<String, String> {
    let size = human_bytes(status.total_size);
    match write_out {
        "simple" => {
            Ok(format!("{:x}, {}, {}, {size}\n", status.hash, status.revision, status.total_keys))
        }
        "json" => Ok(format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            status.hash, status.revision, status.total_keys, status.total_size
        )),
        "table" => {
            let row = [
                format!("{:x}", status.hash),
                status.revision.to_string(),
                status.total_keys.to_string(),
                size,
            ];
            Ok(table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &row))
        }
        other => Err(format!("unknown output format {other:?} (simple, json or table)")),
    }
}

/// etcdctl's status table (tablewriter, right-aligned): headers centred, cells to the right.
fn table(headers: &[&str], row: &[String]) -> String {
    let widths: Vec<usize> = headers.iter().zip(row).map(|(h, c)| h.len().max(c.len())).collect();
    let line: String = widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect();
    let line = format!("{line}+\n");
    let mut out = line.clone();
    for (header, width) in headers.iter().zip(&widths) {
        let pad = width - header.len();
        let left = pad / 2;
        out.push_str(&format!("| {}{header}{} ", " ".repeat(left), " ".repeat(pad - left)));
    }
    out.push_str("|\n");
    out.push_str(&line);
    for (cell, width) in row.iter().zip(&widths) {
        out.push_str(&format!("| {cell:>width$} "));
    }
    out.push_str("|\n");
    out.push_str(&line);
    out
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
fn human_bytes(bytes: u64) -> String {
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let exponent = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let exponent = exponent.min(units.len() - 1);
    let value = (bytes as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    match value < 10.0 {
        true => format!("{value:.1} {}", units[exponent]),
        false => format!("{value:.0} {}", units[exponent]),
    }
}

/// One member's data dir from a backup.
struct Restore {
    flags: Flags,
    data_dir: PathBuf,
    wal_dir: Option<PathBuf>,
    skip_hash_check: bool,
}

impl Restore {
    fn run(&self, file: &Path) -> Result<(), String> {
        for dir in std::iter::once(&self.data_dir).chain(&self.wal_dir) {
            if dir.exists() {
                return Err(format!("data-dir {:?} exists", dir.display().to_string()));
            }
        }
        let config = self.flags.node_config(rand::random())?;
        let bytes = read(file)?;
        let state = backup::from_file(&bytes, self.skip_hash_check)?;
        let revision = state.revisions.last().map_or(1, |r| r.main).max(state.compacted);
        let keys = state.revisions.len();
        let node = Node::from_etcd(config, Instant::ZERO, state)?;
        let staging = staging_dir(&self.data_dir);
        let wal_staging = self.wal_dir.as_deref().map(staging_dir);
        let made = self.write(node, &staging, wal_staging.as_deref());
        let moved = made.and_then(|()| {
            if let (Some(wal_dir), Some(wal_staging)) = (&self.wal_dir, &wal_staging) {
                std::fs::rename(wal_staging, wal_dir)
                    .map_err(|e| format!("{}: {e}", wal_dir.display()))?;
            }
            std::fs::rename(&staging, &self.data_dir)
                .map_err(|e| format!("{}: {e}", self.data_dir.display()))
        });
        if let Err(error) = moved {
            let _ = std::fs::remove_dir_all(&staging);
            if let Some(wal_staging) = &wal_staging {
                let _ = std::fs::remove_dir_all(wal_staging);
            }
            return Err(error);
        }
        eprintln!(
            "restored snapshot {} into {} (member {}, revision {revision}, {keys} revisions)",
            file.display(),
            self.data_dir.display(),
            self.flags.name
        );
        Ok(())
    }

    /// Writes the member's data dir into `dir` (its WAL into `wal_dir` if given).
    fn write(&self, node: Node, dir: &Path, wal_dir: Option<&Path>) -> Result<(), String> {
        let where_ = |e: &dyn std::fmt::Display| format!("{}: {e}", dir.display());
        let mut disk = RealDisk::new(dir).map_err(|e| where_(&e))?;
        if let Some(wal_dir) = wal_dir {
            std::fs::create_dir_all(wal_dir).map_err(|e| format!("{}: {e}", wal_dir.display()))?;
            disk = disk.with_mount(WAL_DIR, wal_dir);
        }
        let mut host =
            Host::create_from(node, disk, WalConfig::default()).map_err(|e| where_(&e))?;
        host.flush().map_err(|e| where_(&e))?;
        Ok(())
    }
}

/// A sibling of `dir` to build it in.
fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!(".{name}.restoring-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_go_humanize_prints_them() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(2_100_000), "2.1 MB");
        assert_eq!(human_bytes(16384), "16 kB");
    }

    #[test]
    fn the_table_looks_like_etcdctls() {
        let status =
            Status { hash: 0xfe01cf57, revision: 10, total_keys: 7, total_size: 2_100_000 };
        assert_eq!(
            show_status(&status, "table").unwrap(),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | fe01cf57 |       10 |          7 |     2.1 MB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert_eq!(show_status(&status, "simple").unwrap(), "fe01cf57, 10, 7, 2.1 MB\n");
    }
}
