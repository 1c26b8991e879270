//! Starting a member: open or create its data dir, start its task, serve clients and peers,
//! and stop cleanly on SIGINT or SIGTERM. [`serve`] is the part shared by the binary (real disk,
//! real network, TLS where the URLs say `https://`) and the tier-2 simulation (madsim,
//! `MemDisk`, plaintext only).

use crate::config::Flags;
use crate::driver::{Driver, MemberDisk};
use crate::handle::Handle;
use crate::peer::{PeerService, Peers};
use crate::service::{
    auth::AuthService, cluster::ClusterService, election::ElectionService, kv::KvService,
    lease::LeaseService, lock::LockService, maintenance::MaintenanceService, watch::WatchService,
};
use std::future::Future;
use std::path::Path;
use stead_core::time::Instant;
use stead_store::host::{Host, WAL_DIR};
use stead_store::wal::{Wal, WalConfig};
#[cfg(not(madsim))]
use stead_store::RealDisk;

/// How long client calls in flight may take to finish once the member is told to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The `stead` binary's member: its data dir on the real disk (locked against a second
/// process), a seed from the OS, `/health` and friends on `--listen-metrics-urls`, and a clean
/// stop on SIGINT or SIGTERM.
#[cfg(not(madsim))]
pub async fn run(flags: Flags) -> Result<(), String> {
    let data_dir = flags.data_dir();
    let mut disk = RealDisk::new(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    if let Some(wal_dir) = &flags.wal_dir {
        disk = disk.with_mount(WAL_DIR, wal_dir);
    }
    let _lock = crate::lock::DataDirLock::acquire(&data_dir)?;
    let name = data_dir.display().to_string();
    serve(&flags, disk, &name, rand::random(), shutdown_signal()).await
}

/// Runs a member on `disk` (`where_` names it in errors; seeding its random choices with
/// `seed`) until `stop` completes or its store fails. The binary runs it on the real disk; the
/// tier-2 simulation on a `MemDisk` inside madsim.
pub async fn serve<D: MemberDisk>(
    flags: &Flags,
    disk: D,
    where_: &str,
    seed: u64,
    stop: impl Future<Output = ()>,
) -> Result<(), String> {
    let mut config = flags.node_config(seed)?;
    let security = Security::prepare(flags)?;
    let dialer = security.dialer();
    let existing =
        Wal::exists(&mut disk.clone(), Path::new(WAL_DIR)).map_err(|e| format!("{where_}: {e}"))?;
    let mut known = Vec::new();
    if config.join_existing && !existing {
        let mine = crate::config::urls(&flags.initial_advertise_peer_urls)?;
        known = crate::join::discover(&mut config, &mine, &dialer).await?.members;
        tracing::info!(member = format_args!("{:x}", config.id), "joining a running cluster");
    }
    let start = tokio::time::Instant::now();
    let host = if existing {
        tracing::info!("restarting from the data dir; --initial-* flags are ignored");
        Host::recover_recorded(config.clone(), disk.clone(), WalConfig::default(), Instant::ZERO)
    } else {
        Host::create(config.clone(), disk.clone(), WalConfig::default(), Instant::ZERO)
    }
    .map_err(|e| format!("{where_}: {e}"))?
    .with_retention(flags.max_wals, flags.max_snapshots);
    tracing::info!(
        name = %flags.name,
        member = format_args!("{:x}", host.node().id()),
        cluster = format_args!("{:x}", host.node().cluster_id()),
        "starting"
    );
    let extensive = match flags.metrics.as_str() {
        "basic" => false,
        "extensive" => true,
        other => return Err(format!("unknown metrics option {other:?} (basic or extensive)")),
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new(extensive));
    let heartbeat = std::time::Duration::from_nanos(config.heartbeat_interval.as_nanos());
    let peers = Peers::new(known, dialer, host.node().id(), metrics.clone());
    let (driver, handle, commands) = Driver::new(host, disk, start, peers, metrics, heartbeat);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    // Bind first, so a port in use is a clear error before the member starts.
    let client_urls = crate::config::urls(&flags.listen_client_urls)?;
    let peer_urls = crate::config::urls(&flags.listen_peer_urls)?;
    let clients =
        security.listen(Port::Client, &client_urls, &handle, wait(stopped.clone())).await?;
    let peers = security.listen(Port::Peer, &peer_urls, &handle, wait(stopped.clone())).await?;
    #[cfg(not(madsim))]
    if let Some(urls) = &flags.listen_metrics_urls {
        let urls = crate::config::urls(urls)?;
        security.listen(Port::Metrics, &urls, &handle, wait(stopped.clone())).await?;
        tracing::info!(?urls, "serving /metrics and /health");
    }
    let member = tokio::spawn(driver.run(commands));
    tracing::info!(clients = ?client_urls, peers = ?peer_urls, "serving");

    let outcome = tokio::select! {
        biased;
        _ = stop => Ok(()),
        finished = member => match finished {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("the store failed: {error}")),
            Err(error) => Err(format!("the member's task failed: {error}")),
        },
    };
    // Client calls in flight get a moment to finish; peer streams never end by themselves (the
    // other members keep theirs open), so the peer server just stops.
    let _ = stopping.send(true);
    peers.abort();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, clients).await;
    outcome
}

/// `$start` (gRPC routes or a server) with etcd's client services over `$handle` added.
macro_rules! client_services {
    ($start:expr, $handle:expr) => {
        $start
            .add_service(KvService::server($handle.clone()))
            .add_service(ClusterService::server($handle.clone()))
            .add_service(WatchService::server($handle.clone()))
            .add_service(LeaseService::server($handle.clone()))
            .add_service(MaintenanceService::server($handle.clone()))
            .add_service(AuthService::server($handle.clone()))
            .add_service(LockService::server($handle.clone()))
            .add_service(ElectionService::server($handle.clone()))
    };
}

/// Which listeners.
#[derive(Clone, Copy)]
enum Port {
    /// `--listen-client-urls`.
    Client,
    /// `--listen-peer-urls`.
    Peer,
    /// `--listen-metrics-urls` (their `https://` ones take the client port's TLS, as etcd's).
    #[cfg(not(madsim))]
    Metrics,
}

/// A gRPC server's task.
type Serving = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// The member's TLS: what its client and peer listeners accept with, and how it dials peers;
/// and how its client port's HTTP side behaves.
#[cfg(not(madsim))]
struct Security {
    client: Option<crate::tls::Side>,
    peer: Option<crate::tls::Side>,
    /// How the client port's HTTP side behaves.
    http: crate::http::HttpOptions,
}

#[cfg(not(madsim))]
impl Security {
    /// Both sides from the flags (auto TLS certificates live under the data dir's
    /// `fixtures/`, as etcd keeps them).
    fn prepare(flags: &Flags) -> Result<Security, String> {
        let suites = flags.tls.cipher_suites();
        let fixtures = flags.data_dir().join("fixtures");
        let client_urls = crate::config::urls(&flags.listen_client_urls)?;
        let peer_urls = crate::config::urls(&flags.listen_peer_urls)?;
        let client = crate::tls::prepare(
            &flags.tls.client(),
            &client_urls,
            &fixtures.join("client"),
            &suites,
            "client",
        )?;
        let peer = crate::tls::prepare(
            &flags.tls.peer(),
            &peer_urls,
            &fixtures.join("peer"),
            &suites,
            "peer",
        )?;
        Ok(Security { client, peer, http: flags.http_options()? })
    }

    fn dialer(&self) -> crate::dial::Dialer {
        crate::dial::Dialer::with_tls(self.peer.as_ref().map(|side| side.connector.clone()))
    }

    /// Serves `port`'s services on every one of its URLs until `stop`: gRPC, the HTTP
    /// endpoints and the JSON gateway on the client port, the peer service on the peer port,
    /// `/metrics` and `/health` on the metrics port.
    async fn listen(
        &self,
        port: Port,
        urls: &[String],
        handle: &Handle,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Serving, String> {
        let (tls, flag, side) = match port {
            Port::Client => (self.client.as_ref(), "--listen-client-urls", "client"),
            Port::Peer => (self.peer.as_ref(), "--listen-peer-urls", "peer"),
            Port::Metrics => (self.client.as_ref(), "--listen-metrics-urls", "metrics"),
        };
        let incoming = crate::listen::bind(urls, tls, flag, side).await?;
        let http = |router: axum::Router| {
            tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(tonic::service::Routes::from(router))
        };
        let server = match port {
            Port::Client => {
                let routes = client_services!(tonic::service::Routes::default(), handle);
                let metrics = handle.metrics().clone();
                let grpc = crate::metrics::grpc::layer(routes.into_axum_router(), metrics);
                http(crate::http::routes(grpc, handle.clone(), &self.http))
            }
            Port::Peer => {
                tonic::transport::Server::builder().add_service(PeerService::server(handle.clone()))
            }
            Port::Metrics => http(crate::http::metrics_routes(handle.clone())),
        };
        Ok(tokio::spawn(server.serve_with_incoming_shutdown(incoming, stop)))
    }
}

/// The simulated network is plaintext: `https://` URLs are refused.
#[cfg(madsim)]
struct Security;

#[cfg(madsim)]
impl Security {
    fn prepare(flags: &Flags) -> Result<Security, String> {
        let urls = [&flags.listen_client_urls, &flags.listen_peer_urls];
        match urls.iter().find(|u| u.contains("https://")) {
            Some(url) => Err(format!("{url}: TLS is not simulated")),
            None => Ok(Security),
        }
    }

    fn dialer(&self) -> crate::dial::Dialer {
        crate::dial::Dialer::default()
    }

    /// madsim's server binds when it starts serving, on the simulated network (first URL).
    async fn listen(
        &self,
        port: Port,
        urls: &[String],
        handle: &Handle,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Serving, String> {
        let addr = crate::config::socket_addr(&urls[0])?;
        let server = match port {
            Port::Client => client_services!(tonic::transport::Server::builder(), handle),
            Port::Peer => {
                tonic::transport::Server::builder().add_service(PeerService::server(handle.clone()))
            }
        };
        Ok(tokio::spawn(server.serve_with_shutdown(addr, stop)))
    }
}

/// SIGINT or SIGTERM.
#[cfg(not(madsim))]
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be watched");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}
