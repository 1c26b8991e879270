//! The `stead` binary's flags: etcd's names and defaults, each also read from its `ETCD_*`
//! environment variable, as etcd reads them.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use stead_core::api::Member;
use stead_core::node::{AutoCompaction, NodeConfig};
use stead_core::time::Duration;

/// The flags of `stead` (etcd's names).
#[derive(Parser, Debug, Clone)]
#[command(name = "stead", version, about = "An etcd-compatible replicated key-value store")]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.stead`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path to a dedicated WAL directory (default: `member/wal` in the data dir).
    #[arg(long, env = "ETCD_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic.
    #[arg(long, env = "ETCD_LISTEN_CLIENT_URLS", default_value = "http://127.0.0.1:2379")]
    pub listen_client_urls: String,
    /// This member's client URLs to advertise to the rest of the cluster.
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS", default_value = "http://127.0.0.1:2379")]
    pub advertise_client_urls: String,
    /// URLs to serve `/metrics` and `/health` on (`https://` ones with the client TLS flags).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// URLs to listen on for peer traffic.
    #[arg(long, env = "ETCD_LISTEN_PEER_URLS", default_value = "http://127.0.0.1:2380")]
    pub listen_peer_urls: String,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, env = "ETCD_INITIAL_ADVERTISE_PEER_URLS", default_value = "http://127.0.0.1:2380")]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (`name=url,...`; default: this member).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` to found a cluster, `existing` to join one.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token, part of every member and cluster id.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_TOKEN", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Time (ms) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (ms) for an election to time out.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Committed transactions between snapshots.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Snapshot files to keep (0: unlimited).
    #[arg(long, env = "ETCD_MAX_SNAPSHOTS", default_value_t = 5)]
    pub max_snapshots: usize,
    /// WAL files to keep (0: unlimited).
    #[arg(long, env = "ETCD_MAX_WALS", default_value_t = 5)]
    pub max_wals: usize,
    /// Raise an alarm when the state exceeds this many bytes (0: 2 GiB; negative: no quota).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0, allow_hyphen_values = true)]
    pub quota_backend_bytes: i64,
    /// Largest request a client may send, in bytes.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Most operations in one transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// `periodic` or `revision`.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// History to keep: hours or a duration (`30m`) in periodic mode, revisions in revision mode.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Checkpoint remaining lease TTLs so they survive leader changes.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", action = clap::ArgAction::Set,
          num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub experimental_enable_lease_checkpoint: bool,
    /// Compare key-space digests with the peers when restarting from a data dir.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", action = clap::ArgAction::Set,
          num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub experimental_initial_corrupt_check: bool,
    /// How often the leader runs the corruption check (a duration like `5m`; 0: never).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s")]
    pub experimental_corrupt_check_time: String,
    /// bcrypt cost of password hashes (4 to 31).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    /// `debug`, `info`, `warn`, `error`, `panic` or `fatal` (or a tracing filter).
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// `zap` (JSON lines) or `capnslog` (text lines, etcd 3.4's default).
    #[arg(long, env = "ETCD_LOGGER", default_value = "capnslog")]
    pub logger: String,
    /// Where logs go: `default`, `stderr`, `stdout` or file paths, comma-separated.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,
    /// `basic` or `extensive` (adds `grpc_server_handling_seconds`).
    #[arg(long, env = "ETCD_METRICS", default_value = "basic")]
    pub metrics: String,
    /// Serve etcd's JSON gateway (`/v3/...`) on the client port.
    #[arg(long, env = "ETCD_ENABLE_GRPC_GATEWAY", action = clap::ArgAction::Set,
          num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub enable_grpc_gateway: bool,
    /// Origins allowed to read the client port's HTTP answers (comma-separated; `*`: any).
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,
    /// Hosts that plaintext HTTP requests may name (comma-separated; `*`: any).
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub host_whitelist: String,
    /// The security flags.
    #[command(flatten)]
    pub tls: crate::tls::TlsFlags,
}

/// A URL's listen address (`http://host:port` or `https://host:port`; `localhost` is the
/// loopback address).
pub fn socket_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?}: only http:// and https:// URLs are supported"))?;
    let host_port = rest.trim_end_matches('/');
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().map_err(|_| format!("{url:?}: expected http(s)://host:port"))
}

/// A comma-separated URL list, each checked.
pub fn urls(list: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = list.split(',').map(|u| u.trim().to_string()).collect();
    for url in &urls {
        socket_addr(url)?;
    }
    Ok(urls)
}

/// etcd's duration syntax for the flags that take one (`90s`, `5m`, `1h30m`, `250ms`).
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?}: expected a duration like 90s, 5m or 1h30m");
    let mut total_ms: u64 = 0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        let unit_ms = match c {
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => return Err(bad()),
        };
        total_ms += value * unit_ms;
    }
    if !number.is_empty() {
        if total_ms == 0 && number == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(bad());
    }
    Ok(Duration::from_millis(total_ms))
}

/// Whether `origin` is a URL etcd takes in `--cors`: http(s) or unix(s), `host:port`, no path.
#[cfg(not(madsim))]
fn cors_origin(origin: &str) -> Result<(), String> {
    let (scheme, rest) = origin.split_once("://").unwrap_or(("", origin));
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
        return Err(format!("URL scheme must be http, https, unix, or unixs: {origin}"));
    }
    let (host, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {origin}"));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!("URL address does not have the form \"host:port\": {origin}")),
    }
}

/// A comma-separated list of names, each trimmed, empty entries dropped.
#[cfg(not(madsim))]
fn names(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

impl Flags {
    /// How the client port's HTTP side behaves; `--cors` entries must be `*` or URLs, as in
    /// etcd.
    #[cfg(not(madsim))]
    pub fn http_options(&self) -> Result<crate::http::HttpOptions, String> {
        let cors = names(&self.cors);
        for origin in cors.iter().filter(|origin| *origin != "*") {
            cors_origin(origin)
                .map_err(|why| format!("invalid value {:?} for flag -cors: {why}", self.cors))?;
        }
        Ok(crate::http::HttpOptions {
            gateway: self.enable_grpc_gateway,
            cors,
            hosts: names(&self.host_whitelist),
            max_request_bytes: self.max_request_bytes,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.stead", self.name)))
    }

    /// The members `--initial-cluster` names, with etcd's ids (grouped by name).
    pub fn initial_members(&self) -> Result<Vec<Member>, String> {
        let default = format!("{}={}", self.name, self.initial_advertise_peer_urls);
        let text = self.initial_cluster.clone().unwrap_or(default);
        let mut by_name: Vec<(String, Vec<String>)> = Vec::new();
        for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster: {entry:?} is not name=url"))?;
            socket_addr(url.trim())?;
            match by_name.iter_mut().find(|(n, _)| n == name.trim()) {
                Some((_, urls)) => urls.push(url.trim().to_string()),
                None => by_name.push((name.trim().to_string(), vec![url.trim().to_string()])),
            }
        }
        let token = &self.initial_cluster_token;
        let members = by_name
            .into_iter()
            .map(|(name, peer_urls)| Member {
                id: stead_core::apply::membership::member_id(&peer_urls, token, None),
                name,
                peer_urls,
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect();
        Ok(members)
    }

    /// The node's configuration from the flags.
    pub fn node_config(&self, seed: u64) -> Result<NodeConfig, String> {
        let mut members = self.initial_members()?;
        let advertised = urls(&self.initial_advertise_peer_urls)?;
        let me = members
            .iter_mut()
            .find(|m| m.name == self.name)
            .ok_or_else(|| format!("--initial-cluster has no member named {:?}", self.name))?;
        let mut mine = me.peer_urls.clone();
        mine.sort();
        let mut wanted = advertised.clone();
        wanted.sort();
        if mine != wanted {
            return Err(format!(
                "--initial-cluster has {:?} for {:?}, but --initial-advertise-peer-urls is {:?}",
                me.peer_urls, self.name, advertised
            ));
        }
        let id = me.id;
        let mut config = NodeConfig::with_members(id, members, seed);
        // Every member must write the same bootstrap entries, so client URLs are not part of
        // them: each member publishes its own through the log once it runs, as etcd does.
        config.client_urls = urls(&self.advertise_client_urls)?;
        config.cluster_token = self.initial_cluster_token.clone();
        config.join_existing = match self.initial_cluster_state.as_str() {
            "new" => false,
            "existing" => true,
            other => {
                return Err(format!("--initial-cluster-state: {other:?} is not new or existing"))
            }
        };
        if self.election_timeout < 2 * self.heartbeat_interval || self.heartbeat_interval == 0 {
            return Err("--election-timeout must be at least twice --heartbeat-interval".into());
        }
        config.heartbeat_interval = Duration::from_millis(self.heartbeat_interval);
        config.election_timeout = Duration::from_millis(self.election_timeout);
        config.snapshot_count = self.snapshot_count.max(1);
        config.quota_backend_bytes = self.quota_backend_bytes;
        config.max_request_bytes = self.max_request_bytes;
        config.max_txn_ops = self.max_txn_ops;
        config.bcrypt_cost = self.bcrypt_cost;
        if self.experimental_enable_lease_checkpoint {
            config.lease_checkpoint_interval = Some(stead_core::lease::DEFAULT_CHECKPOINT_INTERVAL);
        }
        config.initial_corrupt_check = self.experimental_initial_corrupt_check;
        let check = duration(&self.experimental_corrupt_check_time)?;
        config.corrupt_check_interval = (check > Duration::ZERO).then_some(check);
        config.auto_compaction = self.auto_compaction()?;
        Ok(config)
    }

    /// etcd's reading of `--auto-compaction-mode` and `--auto-compaction-retention`.
    fn auto_compaction(&self) -> Result<Option<AutoCompaction>, String> {
        let retention = self.auto_compaction_retention.trim();
        let mode = self.auto_compaction_mode.as_str();
        let whole: Option<u64> = retention.parse().ok();
        match (mode, whole) {
            ("periodic", Some(0)) | ("revision", Some(0)) => Ok(None),
            ("periodic", Some(hours)) => {
                Ok(Some(AutoCompaction::Periodic(Duration::from_secs(hours * 3600))))
            }
            ("periodic", None) => {
                let period = duration(retention)?;
                Ok((period > Duration::ZERO).then_some(AutoCompaction::Periodic(period)))
            }
            ("revision", Some(revisions)) => Ok(Some(AutoCompaction::Revision(revisions as i64))),
            ("revision", None) => Err(format!(
                "--auto-compaction-retention {retention:?}: revision mode takes a number"
            )),
            (other, _) => Err(format!("unknown auto-compaction-mode {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(madsim))]
    fn cors_origins_are_checked_as_etcd_checks_them() {
        assert_eq!(cors_origin("http://a.example:8080"), Ok(()));
        assert_eq!(cors_origin("https://10.0.0.1:443"), Ok(()));
        let host_port = "URL address does not have the form \"host:port\": http://a.example";
        assert_eq!(cors_origin("http://a.example").unwrap_err(), host_port);
        let scheme = "URL scheme must be http, https, unix, or unixs: ftp://a:1";
        assert_eq!(cors_origin("ftp://a:1").unwrap_err(), scheme);
        let path = "URL must not contain a path: http://a:1/x";
        assert_eq!(cors_origin("http://a:1/x").unwrap_err(), path);
        assert!(cors_origin("http://a:1/").is_err());
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::parse_from(std::iter::once("stead").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_one_member_on_loopback() {
        let flags = flags(&[]);
        let config = flags.node_config(1).unwrap();
        assert_eq!(flags.data_dir(), PathBuf::from("default.stead"));
        assert_eq!(config.members.len(), 1);
        assert_eq!(config.members[0].name, "default");
        assert_eq!(config.client_urls, ["http://127.0.0.1:2379"]);
        assert!(config.members[0].client_urls.is_empty(), "published later, not bootstrapped");
        assert_eq!(socket_addr(&flags.listen_client_urls).unwrap().port(), 2379);
        assert!(config.auto_compaction.is_none() && config.corrupt_check_interval.is_none());
        assert!(!flags.experimental_enable_lease_checkpoint);
    }

    #[test]
    fn booleans_take_etcds_true_and_false() {
        for (args, expected) in [
            (&["--experimental-enable-lease-checkpoint"][..], true),
            (&["--experimental-enable-lease-checkpoint=true"], true),
            (&["--experimental-enable-lease-checkpoint=false"], false),
        ] {
            assert_eq!(flags(args).experimental_enable_lease_checkpoint, expected, "{args:?}");
        }
        assert!(
            flags(&["--experimental-initial-corrupt-check=true"])
                .experimental_initial_corrupt_check
        );
    }

    #[test]
    fn a_three_member_cluster_gets_etcds_ids() {
        let cluster = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";
        let flags = flags(&[
            "--name",
            "b",
            "--initial-cluster",
            cluster,
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2",
        ]);
        let config = flags.node_config(1).unwrap();
        assert_eq!(config.members.len(), 3);
        let b = config.members.iter().find(|m| m.name == "b").unwrap();
        assert_eq!(config.id, b.id);
        let wrong = self::flags(&["--name", "b", "--initial-cluster", cluster]);
        assert!(wrong.node_config(1).unwrap_err().contains("--initial-advertise-peer-urls"));
    }

    #[test]
    fn durations_and_compaction_flags_read_like_etcds() {
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("5x").is_err());
        let hourly = flags(&["--auto-compaction-retention", "2"]);
        assert_eq!(
            hourly.auto_compaction().unwrap(),
            Some(AutoCompaction::Periodic(Duration::from_secs(7200)))
        );
        let revisions =
            flags(&["--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000"]);
        assert_eq!(revisions.auto_compaction().unwrap(), Some(AutoCompaction::Revision(1000)));
        let bad = flags(&["--auto-compaction-mode", "weekly", "--auto-compaction-retention", "1"]);
        assert!(bad.auto_compaction().unwrap_err().contains("unknown auto-compaction-mode"));
        assert!(socket_addr("ftp://127.0.0.1:1").is_err() && socket_addr("http://nope").is_err());
        assert_eq!(socket_addr("https://localhost:2379").unwrap().port(), 2379);
    }
}
