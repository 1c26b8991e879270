//! The simulated cluster: members of the real runtime (`stead_net::server::serve`) on madsim
//! hosts, each on its own `MemDisk` that outlives the host's restarts, and a client host from
//! which every gRPC call is made.

use clap::Parser;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::JoinHandle;
use madsim::time::{sleep, timeout, Instant};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stead_core::api::Event;
use stead_net::config::Flags;
use stead_net::convert::kv::event_from_pb;
use stead_net::proto::etcdserverpb as pb;
use stead_store::MemDisk;
use tonic::transport::Channel;

const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
/// How long a control call (status, membership, final reads) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// One member host.
struct Member {
    name: String,
    ip: Ipv4Addr,
    node: NodeHandle,
    disk: MemDisk,
    /// Removed from the cluster and stopped.
    gone: bool,
}

/// The cluster and the client host.
pub struct Cluster {
    handle: Handle,
    members: Vec<Member>,
    client: NodeHandle,
    endpoints: Arc<Mutex<Vec<String>>>,
}

fn url(ip: Ipv4Addr, port: u16) -> String {
    format!("http://{ip}:{port}")
}

/// Starts a member host that runs the real runtime on `disk`, again after every restart.
fn start_member(
    handle: &Handle,
    name: &str,
    ip: Ipv4Addr,
    initial: &str,
    state: &str,
    disk: MemDisk,
) -> NodeHandle {
    let (client, peer) = (url(ip, CLIENT_PORT), url(ip, PEER_PORT));
    let args: Vec<String> = [
        "stead",
        "--name",
        name,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        state,
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let name = name.to_string();
    handle
        .create_node()
        .name(name.clone())
        .ip(ip.into())
        .init(move || {
            let (args, disk, name) = (args.clone(), disk.clone(), name.clone());
            async move {
                let flags = Flags::parse_from(&args);
                let seed = thread_rng().gen::<u64>();
                let stop = std::future::pending();
                if let Err(error) = stead_net::server::serve(&flags, disk, &name, seed, stop).await
                {
                    tracing::warn!(%name, %error, "the member stopped");
                }
            }
        })
        .build()
}

impl Cluster {
    /// Three founding members `a`, `b`, `c`, once one of them leads.
    pub async fn start() -> Cluster {
        let handle = Handle::current();
        let names = ["a", "b", "c"];
        let ips: Vec<Ipv4Addr> = (1..=3).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let initial: Vec<String> =
            names.iter().zip(&ips).map(|(n, ip)| format!("{n}={}", url(*ip, PEER_PORT))).collect();
        let initial = initial.join(",");
        let members: Vec<Member> = names
            .iter()
            .zip(&ips)
            .map(|(name, ip)| {
                let disk = MemDisk::new();
                let node = start_member(&handle, name, *ip, &initial, "new", disk.clone());
                Member { name: name.to_string(), ip: *ip, node, disk, gone: false }
            })
            .collect();
        let client =
            handle.create_node().name("client").ip(Ipv4Addr::new(10, 0, 1, 1).into()).build();
        let endpoints = members.iter().map(|m| url(m.ip, CLIENT_PORT)).collect();
        let cluster =
            Cluster { handle, members, client, endpoints: Arc::new(Mutex::new(endpoints)) };
        cluster.leader().await;
        cluster
    }

    /// The client URLs clients may use (members that are in the cluster).
    pub fn endpoints(&self) -> Arc<Mutex<Vec<String>>> {
        self.endpoints.clone()
    }

    /// Runs `task` on the client host.
    pub fn spawn_client<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.client.spawn(task)
    }

    /// How many member hosts there have been.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Member `index`'s name.
    pub fn name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// Member `index`'s madsim node.
    pub fn node_id(&self, index: usize) -> madsim::task::NodeId {
        self.members[index].node.id()
    }

    /// Whether member `index` is still in the cluster.
    pub fn alive(&self, index: usize) -> bool {
        !self.members[index].gone
    }

    /// The index of the member that leads, once one does (asked through Maintenance.Status).
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (index, member) in self.members.iter().enumerate().filter(|(_, m)| !m.gone) {
                let endpoint = url(member.ip, CLIENT_PORT);
                let status = self.control(async move { Ok(status(endpoint).await?.1) });
                if let Ok(status) = status.await {
                    let me = status.header.map_or(0, |h| h.member_id);
                    if status.leader != 0 && status.leader == me {
                        return index;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within 30 s");
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a control call on the client host, giving up after [`CONTROL_TIMEOUT`].
    async fn control<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let task = self.client.spawn(async move {
            timeout(CONTROL_TIMEOUT, call).await.unwrap_or_else(|_| Err("timed out".into()))
        });
        task.await.map_err(|e| e.to_string())?
    }

    /// Kills member `index`'s host, loses whatever its disk had not synced (a power loss, with
    /// random survivors among the unsynced writes), and restarts it after `down`.
    pub async fn crash_and_restart(&mut self, index: usize, down: Duration) {
        let member = &self.members[index];
        self.handle.kill(member.node.id());
        member.disk.crash(&mut |choices| thread_rng().gen_range(0..choices));
        sleep(down).await;
        self.handle.restart(member.node.id());
    }

    /// Removes member `index` through MemberRemove, stops its host, adds a new member on a new
    /// host with MemberAdd and starts it with `--initial-cluster-state existing` on an empty
    /// disk. Returns the new member's name.
    pub async fn replace(&mut self, index: usize) -> String {
        let via = (0..self.members.len())
            .find(|&i| i != index && !self.members[i].gone)
            .expect("a member");
        let endpoint = url(self.members[via].ip, CLIENT_PORT);
        let victim_peer = url(self.members[index].ip, PEER_PORT);
        let number = self.members.len() as u8 + 1;
        let (name, ip) = (format!("n{number}"), Ipv4Addr::new(10, 0, 0, number));
        let peer = url(ip, PEER_PORT);
        let (endpoint_for_call, peer_for_call) = (endpoint.clone(), peer.clone());
        let members = self
            .control(async move {
                let e = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
                let mut client = pb::cluster_client::ClusterClient::connect(endpoint_for_call)
                    .await
                    .map_err(|x| e("connect", &x))?;
                let listed = client
                    .member_list(pb::MemberListRequest {})
                    .await
                    .map_err(|x| e("list", &x))?;
                let victim = listed
                    .into_inner()
                    .members
                    .into_iter()
                    .find(|m| m.peer_ur_ls.contains(&victim_peer));
                let victim = victim.ok_or("the victim is not listed")?.id;
                client
                    .member_remove(pb::MemberRemoveRequest { id: victim })
                    .await
                    .map_err(|x| e("remove", &x))?;
                let add =
                    pb::MemberAddRequest { peer_ur_ls: vec![peer_for_call], is_learner: false };
                let added = client.member_add(add).await.map_err(|x| e("add", &x))?;
                Ok(added.into_inner().members)
            })
            .await
            .unwrap_or_else(|error| panic!("replacing a member: {error}"));
        self.handle.kill(self.members[index].node.id());
        self.members[index].gone = true;
        let gone = url(self.members[index].ip, CLIENT_PORT);
        self.endpoints.lock().expect("the endpoints").retain(|e| *e != gone);
        let initial: Vec<String> = members
            .iter()
            .map(|m| {
                let who = if m.peer_ur_ls.contains(&peer) { name.clone() } else { m.name.clone() };
                format!("{who}={}", m.peer_ur_ls[0])
            })
            .collect();
        let disk = MemDisk::new();
        let node =
            start_member(&self.handle, &name, ip, &initial.join(","), "existing", disk.clone());
        self.members.push(Member { name: name.clone(), ip, node, disk, gone: false });
        self.endpoints.lock().expect("the endpoints").push(url(ip, CLIENT_PORT));
        name
    }

    /// The final event log (every event from revision 1, read through a Watch stream from the
    /// leader), and every member's HashKV at the final revision once it has applied it.
    pub async fn final_log(&self) -> (Vec<Event>, Vec<u32>) {
        let leader = self.leader().await;
        let endpoint = url(self.members[leader].ip, CLIENT_PORT);
        let last = endpoint.clone();
        let revision = self
            .control(async move {
                let mut client =
                    pb::kv_client::KvClient::connect(last).await.map_err(|e| e.to_string())?;
                let read = pb::RangeRequest { key: b"k".to_vec(), ..Default::default() };
                let answer = client.range(read).await.map_err(|e| e.to_string())?.into_inner();
                Ok(answer.header.map_or(0, |h| h.revision))
            })
            .await
            .unwrap_or_else(|error| panic!("the final linearizable read: {error}"));
        let events = self
            .control(async move {
                use tokio_stream::StreamExt;
                let mut client = pb::watch_client::WatchClient::connect(endpoint)
                    .await
                    .map_err(|e| e.to_string())?;
                let create = pb::WatchCreateRequest {
                    key: vec![0],
                    range_end: vec![0],
                    start_revision: 1,
                    ..Default::default()
                };
                let request = pb::WatchRequest {
                    request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
                };
                let requests = tokio_stream::iter(vec![request]).chain(tokio_stream::pending());
                let mut responses =
                    client.watch(requests).await.map_err(|e| e.to_string())?.into_inner();
                let mut events = Vec::new();
                while events.last().is_none_or(|e: &Event| e.kv.mod_revision < revision) {
                    let response = responses.message().await.map_err(|e| e.to_string())?;
                    let response = response.ok_or("the watch ended")?;
                    events.extend(response.events.into_iter().map(event_from_pb));
                }
                Ok(events)
            })
            .await
            .unwrap_or_else(|error| panic!("the final log: {error}"));
        let mut hashes = Vec::new();
        for member in self.members.iter().filter(|m| !m.gone) {
            let endpoint = url(member.ip, CLIENT_PORT);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let endpoint = endpoint.clone();
                let hash = self
                    .control(async move {
                        let (mut client, status) = status(endpoint).await?;
                        if status.header.map_or(0, |h| h.revision) < revision {
                            return Err("behind".to_string());
                        }
                        let answer = client
                            .hash_kv(pb::HashKvRequest { revision })
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(answer.into_inner().hash)
                    })
                    .await;
                if let Ok(hash) = hash {
                    hashes.push(hash);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never applied revision {revision}",
                    member.name
                );
                sleep(Duration::from_millis(200)).await;
            }
        }
        (events, hashes)
    }
}

/// A Maintenance client on `endpoint`, and the member's Status.
async fn status(
    endpoint: String,
) -> Result<(pb::maintenance_client::MaintenanceClient<Channel>, pb::StatusResponse), String> {
    let mut client = pb::maintenance_client::MaintenanceClient::connect(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let status = client.status(pb::StatusRequest {}).await.map_err(|e| e.to_string())?;
    Ok((client, status.into_inner()))
}
