//! The lease regression: lease questions sent to followers of a fresh cluster must be
//! answered, never refused with `not leader`.
//!
//! A first run of this suite found it: on a fresh 3-member cluster, 16 clients over 4
//! connections spread over all members sending `LeaseTimeToLive` and keep-alives right after
//! start saw 1 300-1 800 of 40 000 calls fail with `etcdserver: not leader` (a follower
//! forwarded once, to a leader whose lessor was not yet primary or whose client URL was not yet
//! published, and passed the refusal on). etcd's followers retry until the leader answers.

use crate::cluster::Cluster;
use crate::member::Flavor;
use crate::workload::keep_alive;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::lease_client::LeaseClient;
use tonic::transport::Channel;

/// Clients, connections and members of the regression.
const CLIENTS: usize = 16;
const CONNECTIONS: usize = 4;

/// What the clients saw: calls made, and failures by message.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls made.
    pub calls: usize,
    /// Failed calls, by status code and message.
    pub errors: BTreeMap<String, usize>,
}

/// Starts a fresh 3-member cluster of `flavor` under `dir`, grants a lease as soon as one can
/// be granted, then has [`CLIENTS`] clients over [`CONNECTIONS`] connections (spread over all
/// members, so most land on followers) each make `calls` lease calls, time-to-live and
/// keep-alive in turn.
pub async fn fresh_cluster(flavor: Flavor, dir: &Path, calls: usize) -> Result<Tally, String> {
    let mut cluster = Cluster::new(flavor, 3, 0, dir)?;
    cluster.start()?;
    let id = grant(cluster.channel(0)).await?;
    let connections: Vec<Channel> = (0..CONNECTIONS).map(|c| cluster.connect(c % 3)).collect();
    let clients = (0..CLIENTS).map(|c| {
        let channel = connections[c % CONNECTIONS].clone();
        tokio::spawn(ask(channel, id, calls))
    });
    let mut tally = Tally::default();
    for client in clients.collect::<Vec<_>>() {
        let seen = client.await.map_err(|e| e.to_string())?;
        tally.calls += seen.calls;
        for (error, n) in seen.errors {
            *tally.errors.entry(error).or_default() += n;
        }
    }
    drop(cluster);
    Ok(tally)
}

/// A lease of 60 s, granted through `channel` once the cluster can (the first leader).
async fn grant(channel: Channel) -> Result<i64, String> {
    let mut client = LeaseClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let call = client.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 });
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(answer)) => return Ok(answer.into_inner().id),
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            outcome => return Err(format!("no lease granted in 30 s: {outcome:?}")),
        }
    }
}

/// One client: `calls` lease calls on `channel`.
async fn ask(channel: Channel, id: i64, calls: usize) -> Tally {
    let mut client = LeaseClient::new(channel);
    let mut tally = Tally::default();
    for call in 0..calls {
        tally.calls += 1;
        let outcome = if call % 2 == 0 {
            let question = pb::LeaseTimeToLiveRequest { id, keys: false };
            let answer = client.lease_time_to_live(question).await;
            answer
                .map(|a| a.into_inner().ttl)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        } else {
            keep_alive(&mut client, id).await
        };
        let error = match outcome {
            Ok(ttl) if ttl > 0 => continue,
            Ok(ttl) => format!("lease answered with TTL {ttl}"),
            Err(error) => error,
        };
        *tally.errors.entry(error).or_default() += 1;
    }
    tally
}
