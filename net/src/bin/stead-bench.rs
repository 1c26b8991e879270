//! `stead-bench`: load against any etcd v3 endpoint (stead or etcd), like etcd's
//! `tools/benchmark`: `put`, `range`, `txn-put`, `watch`, `lease-keepalive`, with `--conns`,
//! `--clients`, `--total`, `--key-size`, `--val-size` and `--consistency`. It prints the run's
//! throughput and latency percentiles, and one machine-readable `RESULT` line.

use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::watch_client::WatchClient;
use stead_net::proto::etcdserverpb::{kv_client::KvClient, lease_client::LeaseClient};
use tonic::transport::Channel;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// Puts of random keys.
    Put,
    /// Reads of one key.
    Range,
    /// Transactions holding one put.
    TxnPut,
    /// Puts while watchers follow the key space; measures put-to-event latency.
    Watch,
    /// Lease renewals on keep-alive streams.
    LeaseKeepalive,
}

#[derive(Parser, Debug)]
#[command(name = "stead-bench", about = "Benchmark an etcd v3 endpoint (stead or etcd)")]
struct Flags {
    /// What to run.
    #[arg(value_enum)]
    workload: Workload,
    /// Comma-separated endpoints (host:port).
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// gRPC connections, spread over the endpoints.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Concurrent clients, spread over the connections.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000)]
    total: usize,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Distinct keys the writes cover.
    #[arg(long, default_value_t = 1)]
    key_space_size: usize,
    /// `l` (linearizable) or `s` (serializable) reads.
    #[arg(long, default_value = "l")]
    consistency: String,
    /// Verify the endpoints' TLS certificates with this CA bundle (and connect over TLS).
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// Present this client certificate (TLS).
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// The client certificate's key (TLS).
    #[arg(long)]
    key: Option<std::path::PathBuf>,
}

fn key(index: usize, size: usize) -> Vec<u8> {
    let mut key = format!("{index:0>width$}", width = size.max(1)).into_bytes();
    key.truncate(size.max(1));
    key
}

async fn connect(flags: &Flags) -> Result<Vec<Channel>, String> {
    let endpoints: Vec<&str> = flags.endpoints.split(',').collect();
    let identity = match (&flags.cert, &flags.key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    let tls = flags.cacert.is_some() || identity.is_some();
    let dialer = match tls {
        true => tls_dialer(flags.cacert.as_deref(), identity)?,
        false => stead_net::dial::Dialer::default(),
    };
    let scheme = if tls { "https" } else { "http" };
    let mut channels = Vec::new();
    for i in 0..flags.conns.max(1) {
        let url = format!("{scheme}://{}", endpoints[i % endpoints.len()]);
        channels.push(dialer.connect(&url, Duration::from_secs(5)).await?);
    }
    Ok(channels)
}

/// Dials over TLS, verifying servers with `ca` and presenting `identity` if given.
#[cfg(not(madsim))]
fn tls_dialer(
    ca: Option<&std::path::Path>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<stead_net::dial::Dialer, String> {
    let connector = stead_net::tls::client_connector(ca, identity)?;
    Ok(stead_net::dial::Dialer::with_tls(Some(connector)))
}

/// The simulated network has no TLS.
#[cfg(madsim)]
fn tls_dialer(
    _ca: Option<&std::path::Path>,
    _identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<stead_net::dial::Dialer, String> {
    Err("TLS is not simulated".into())
}

/// One client's loop: takes tickets until none remain; returns each request's latency.
async fn client(
    flags: Arc<Flags>,
    channel: Channel,
    tickets: Arc<AtomicUsize>,
    seed: u64,
) -> Result<Vec<Duration>, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kv = KvClient::new(channel.clone());
    let value = vec![b'v'; flags.val_size];
    let mut latencies = Vec::new();
    let mut keep_alive = None;
    let mut lease_id = 0;
    if let Workload::LeaseKeepalive = flags.workload {
        let mut lease = LeaseClient::new(channel.clone());
        let granted = lease
            .lease_grant(pb::LeaseGrantRequest { ttl: 600, id: 0 })
            .await
            .map_err(|e| e.to_string())?;
        lease_id = granted.into_inner().id;
        let (requests, receiver) = tokio::sync::mpsc::channel(1);
        // grpc-go answers a stream's headers only with its first message: send one first.
        requests
            .send(pb::LeaseKeepAliveRequest { id: lease_id })
            .await
            .map_err(|e| e.to_string())?;
        let mut answers = lease
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        answers.message().await.map_err(|e| e.to_string())?;
        keep_alive = Some((requests, answers));
    }
    loop {
        let ticket = tickets.fetch_sub(1, Ordering::Relaxed);
        if ticket == 0 || ticket > flags.total {
            break;
        }
        let k = key(rng.gen_range(0..flags.key_space_size.max(1)), flags.key_size);
        let started = Instant::now();
        let outcome = match flags.workload {
            Workload::Put | Workload::Watch => kv
                .put(pb::PutRequest { key: k, value: value.clone(), ..Default::default() })
                .await
                .map(drop),
            Workload::Range => kv
                .range(pb::RangeRequest {
                    key: k,
                    serializable: flags.consistency == "s",
                    ..Default::default()
                })
                .await
                .map(drop),
            Workload::TxnPut => {
                let put = pb::PutRequest { key: k, value: value.clone(), ..Default::default() };
                let op = pb::RequestOp { request: Some(pb::request_op::Request::RequestPut(put)) };
                kv.txn(pb::TxnRequest { success: vec![op], ..Default::default() }).await.map(drop)
            }
            Workload::LeaseKeepalive => {
                let (requests, answers) = keep_alive.as_mut().expect("opened");
                match requests.send(pb::LeaseKeepAliveRequest { id: lease_id }).await {
                    Ok(()) => answers.message().await.map(drop),
                    Err(_) => Err(tonic::Status::unavailable("the keep-alive stream closed")),
                }
            }
        };
        outcome.map_err(|e| e.to_string())?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// For `watch`: watchers that count the events they receive, until `expected` each.
async fn watchers(
    channels: &[Channel],
    count: usize,
    expected: usize,
) -> Result<Vec<tokio::task::JoinHandle<usize>>, String> {
    let mut handles = Vec::new();
    for i in 0..count {
        let mut client = WatchClient::new(channels[i % channels.len()].clone());
        let create =
            pb::WatchCreateRequest { key: vec![0], range_end: vec![0], ..Default::default() };
        let request = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
        };
        let mut responses = client
            .watch(tokio_stream::iter([request]).chain(tokio_stream::pending()))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        handles.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < expected {
                match responses.message().await {
                    Ok(Some(response)) => seen += response.events.len(),
                    _ => break,
                }
            }
            seen
        }));
    }
    Ok(handles)
}

use tokio_stream::StreamExt as _;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

async fn run(flags: Flags) -> Result<(), String> {
    let flags = Arc::new(flags);
    let channels = connect(&flags).await?;
    let watching = match flags.workload {
        Workload::Watch => watchers(&channels, flags.clients, flags.total).await?,
        _ => Vec::new(),
    };
    let writers = if matches!(flags.workload, Workload::Watch) {
        1.max(flags.clients / 8)
    } else {
        flags.clients.max(1)
    };
    let tickets = Arc::new(AtomicUsize::new(flags.total));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..writers {
        let channel = channels[i % channels.len()].clone();
        tasks.push(tokio::spawn(client(flags.clone(), channel, tickets.clone(), i as u64)));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let mut delivered = 0;
    for watcher in watching {
        delivered += watcher.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let average = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    println!("Summary:");
    println!("  Total:\t{:.4} secs.", elapsed.as_secs_f64());
    println!("  Requests/sec:\t{rate:.1}");
    println!("  Average:\t{:.4} secs.", average.as_secs_f64());
    for p in [0.5, 0.9, 0.99] {
        println!(
            "  {:>2}%:\t{:.4} secs.",
            (p * 100.0) as u32,
            percentile(&latencies, p).as_secs_f64()
        );
    }
    if matches!(flags.workload, Workload::Watch) {
        println!(
            "  Events delivered:\t{delivered} ({:.1}/sec)",
            delivered as f64 / elapsed.as_secs_f64()
        );
    }
    println!(
        "RESULT workload={:?} requests={} rps={rate:.1} p50_ms={:.3} p99_ms={:.3}",
        flags.workload,
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    match runtime.block_on(run(flags)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stead-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
