//! Lease calls sent to the followers of a fresh cluster, through the real gRPC path: every one
//! must be answered (the real-process suite found followers answering `not leader` right
//! after start; they now take such calls to the leader over the peer URLs and retry).

use super::cluster::Cluster;
use madsim::time::{sleep, timeout};
use std::time::Duration;
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::lease_client::LeaseClient;
use tonic::transport::Channel;

/// Clients, and calls each makes (time-to-live and keep-alive in turn).
const CLIENTS: usize = 12;
const CALLS: usize = 40;

/// Starts a fresh cluster, grants a lease as soon as one can be, and has [`CLIENTS`] clients
/// spread over every member make [`CALLS`] lease calls each: (calls, every failure).
pub async fn fresh_cluster_lease_calls() -> (usize, Vec<String>) {
    let cluster = Cluster::start().await;
    let endpoints = cluster.endpoints().lock().expect("the endpoints").clone();
    let task = cluster.spawn_client(async move {
        let id = grant(&endpoints[0]).await;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| madsim::task::spawn(ask(endpoints[c % endpoints.len()].clone(), id)))
            .collect();
        let mut failures = Vec::new();
        for client in clients {
            failures.extend(client.await.expect("a client"));
        }
        (CLIENTS * CALLS, failures)
    });
    task.await.expect("the client host")
}

/// A client of the member at `endpoint`, once it accepts connections.
async fn connect(endpoint: &str) -> LeaseClient<Channel> {
    for _ in 0..100 {
        if let Ok(client) = LeaseClient::connect(endpoint.to_string()).await {
            return client;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("{endpoint} accepts no connection");
}

async fn grant(endpoint: &str) -> i64 {
    let mut client = connect(endpoint).await;
    for _ in 0..100 {
        let call = client.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 });
        if let Ok(Ok(answer)) = timeout(Duration::from_secs(5), call).await {
            return answer.into_inner().id;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("no lease granted");
}

async fn ask(endpoint: String, id: i64) -> Vec<String> {
    let mut client = connect(&endpoint).await;
    let mut failures = Vec::new();
    for call in 0..CALLS {
        let answer = if call % 2 == 0 {
            let question = pb::LeaseTimeToLiveRequest { id, keys: false };
            client.lease_time_to_live(question).await.map(|a| a.into_inner().ttl)
        } else {
            let renewal = tokio_stream::iter([pb::LeaseKeepAliveRequest { id }]);
            match client.lease_keep_alive(renewal).await {
                Ok(answers) => match answers.into_inner().message().await {
                    Ok(answer) => Ok(answer.map_or(0, |a| a.ttl)),
                    Err(status) => Err(status),
                },
                Err(status) => Err(status),
            }
        };
        match answer {
            Ok(ttl) if ttl > 0 => {}
            Ok(ttl) => failures.push(format!("TTL {ttl}")),
            Err(status) => failures.push(format!("{:?}: {}", status.code(), status.message())),
        }
    }
    failures
}
