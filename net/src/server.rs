//! Starting a member: open or create its data dir, start its task, serve clients and peers,
//! and stop cleanly on SIGINT or SIGTERM.

use crate::config::{socket_addr, Flags};
use crate::driver::Driver;
use crate::peer::{PeerService, Peers};
use crate::service::{
    auth::AuthService, cluster::ClusterService, election::ElectionService, kv::KvService,
    lease::LeaseService, lock::LockService, maintenance::MaintenanceService, watch::WatchService,
};
use std::path::Path;
use stead_core::time::Instant;
use stead_store::host::{Host, WAL_DIR};
use stead_store::wal::WalConfig;
use stead_store::RealDisk;

/// How long client calls in flight may take to finish once the member is told to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs a member until it is told to stop or its store fails.
pub async fn run(flags: Flags) -> Result<(), String> {
    let mut config = flags.node_config(rand::random())?;
    let data_dir = flags.data_dir();
    let mut disk = RealDisk::new(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    if let Some(wal_dir) = &flags.wal_dir {
        disk = disk.with_mount(WAL_DIR, wal_dir);
    }
    let _lock = crate::lock::DataDirLock::acquire(&data_dir)?;
    let existing = has_data(&disk);
    let mut known = Vec::new();
    if config.join_existing && !existing {
        let mine = crate::config::urls(&flags.initial_advertise_peer_urls)?;
        known = crate::join::discover(&mut config, &mine).await?.members;
        tracing::info!(member = format_args!("{:x}", config.id), "joining a running cluster");
    }
    let start = tokio::time::Instant::now();
    let disk_paths = disk.clone();
    let host = if existing {
        tracing::info!(data_dir = %data_dir.display(), "restarting from the data dir; --initial-* flags are ignored");
        Host::recover_recorded(config.clone(), disk, WalConfig::default(), Instant::ZERO)
    } else {
        Host::create(config.clone(), disk, WalConfig::default(), Instant::ZERO)
    }
    .map_err(|e| format!("{}: {e}", data_dir.display()))?
    .with_retention(flags.max_wals, flags.max_snapshots);
    tracing::info!(
        name = %flags.name,
        member = format_args!("{:x}", host.node().id()),
        cluster = format_args!("{:x}", host.node().cluster_id()),
        "starting"
    );
    // Bind first, so a port in use is a clear error before anything starts.
    let client_addr = first_addr(&flags.listen_client_urls)?;
    let peer_addr = first_addr(&flags.listen_peer_urls)?;
    let client_listener = bind(client_addr, "--listen-client-urls").await?;
    let peer_listener = bind(peer_addr, "--listen-peer-urls").await?;
    let (driver, handle, commands) = Driver::new(host, disk_paths, start, Peers::with_known(known));
    let member = tokio::spawn(driver.run(commands));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let clients = tonic::transport::Server::builder()
        .add_service(KvService::server(handle.clone()))
        .add_service(ClusterService::server(handle.clone()))
        .add_service(WatchService::server(handle.clone()))
        .add_service(LeaseService::server(handle.clone()))
        .add_service(MaintenanceService::server(handle.clone()))
        .add_service(AuthService::server(handle.clone()))
        .add_service(LockService::server(handle.clone()))
        .add_service(ElectionService::server(handle.clone()))
        .serve_with_incoming_shutdown(client_listener, wait(stopped.clone()));
    let peers = tonic::transport::Server::builder()
        .add_service(PeerService::server(handle.clone()))
        .serve_with_incoming_shutdown(peer_listener, wait(stopped.clone()));
    if let Some(urls) = &flags.listen_metrics_urls {
        let addr = first_addr(urls)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--listen-metrics-urls {addr}: cannot listen: {e}"))?;
        tokio::spawn(crate::http::serve(listener, handle.clone()));
        tracing::info!(%addr, "serving /health, /version and /metrics");
    }
    let clients = tokio::spawn(clients);
    let peers = tokio::spawn(peers);
    tracing::info!(%client_addr, %peer_addr, "serving");

    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        finished = member => match finished {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("the store failed: {error}")),
            Err(error) => Err(format!("the member's task failed: {error}")),
        },
    };
    // Client calls in flight get a moment to finish; peer streams never end by themselves (the
    // other members keep theirs open), so the peer server just stops.
    let _ = stop.send(true);
    peers.abort();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, clients).await;
    outcome
}

/// Listens on `addr` for gRPC; accepted connections send small messages at once (no Nagle).
async fn bind(
    addr: std::net::SocketAddr,
    flag: &str,
) -> Result<impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>>, String> {
    use tokio_stream::StreamExt;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{flag} {addr}: cannot listen: {e}"))?;
    let accepted = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Ok(accepted.map(|stream| {
        stream.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    }))
}

fn first_addr(urls: &str) -> Result<std::net::SocketAddr, String> {
    socket_addr(urls.split(',').next().unwrap_or_default().trim())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be watched");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}

/// Whether `disk` holds a member's data (its WAL directory exists).
pub fn has_data(disk: &RealDisk) -> bool {
    disk.full(Path::new(WAL_DIR)).exists()
}
