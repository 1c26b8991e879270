//! A cluster of member processes on their own hosts, and what the harness asks of it through
//! etcd's v3 API: who leads, membership changes, leader transfers, and at the end the whole
//! event history and HashKV of every member.

use crate::member::{Flavor, Member};
use crate::network::Network;
use std::path::{Path, PathBuf};
use std::time::Duration;
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::cluster_client::ClusterClient;
use stead_net::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use stead_net::proto::etcdserverpb::watch_client::WatchClient;
use stead_net::proto::mvccpb;
use tonic::transport::Channel;

/// How long one administrative call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The members, their hosts, and a channel to each.
pub struct Cluster {
    /// What the members run.
    pub flavor: Flavor,
    /// Every member ever started (removed ones stay, stopped).
    pub members: Vec<Member>,
    channels: Vec<Channel>,
    /// The folder of the run.
    pub dir: PathBuf,
    // Dropped after the members: their processes run inside its namespaces.
    network: Network,
}

impl Cluster {
    /// `size` founding members (hosts 0..size) and room for `spare` more, their files in `dir`.
    pub fn new(flavor: Flavor, size: usize, spare: usize, dir: &Path) -> Result<Cluster, String> {
        let network = Network::new(size + spare)?;
        let mut cluster =
            Cluster { flavor, members: Vec::new(), channels: Vec::new(), dir: dir.into(), network };
        for host in 0..size {
            cluster.add_host(host)?;
        }
        Ok(cluster)
    }

    fn add_host(&mut self, host: usize) -> Result<usize, String> {
        let member = Member::new(&self.network, host, &format!("m{host}"), &self.dir)?;
        self.members.push(member);
        self.channels.push(self.connect(self.members.len() - 1));
        Ok(self.members.len() - 1)
    }

    /// A new connection to member `i`'s client URL (made at its first call).
    pub fn connect(&self, i: usize) -> Channel {
        tonic::transport::Endpoint::from_shared(self.members[i].client_url())
            .expect("client URLs parse")
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy()
    }

    /// The network the members live on.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// `--initial-cluster` for the founding members.
    fn founders(&self) -> String {
        let founders = self.members.iter().map(|m| format!("{}={}", m.name, m.peer_url()));
        founders.collect::<Vec<_>>().join(",")
    }

    /// Starts every founding member.
    pub fn start(&mut self) -> Result<(), String> {
        let founders = self.founders();
        for member in &mut self.members {
            member.start(&self.network, &self.flavor, &founders, "new")?;
        }
        Ok(())
    }

    /// Restarts member `i` from its data dir (a no-op if it runs).
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        let founders = self.founders();
        self.members[i].start(&self.network, &self.flavor, &founders, "new")
    }

    /// The channel to member `i`'s client URL.
    pub fn channel(&self, i: usize) -> Channel {
        self.channels[i].clone()
    }

    /// Member `i`'s status, if it answers.
    pub async fn status(&self, i: usize) -> Option<pb::StatusResponse> {
        let mut client = MaintenanceClient::new(self.channel(i));
        let call = client.status(pb::StatusRequest {});
        let answer = tokio::time::timeout(CALL_TIMEOUT, call).await.ok()?.ok()?;
        Some(answer.into_inner())
    }

    /// The member the running members agree leads: (index, member id).
    pub async fn leader(&mut self) -> Option<(usize, u64)> {
        for i in self.live() {
            let Some(status) = self.status(i).await else { continue };
            let header = status.header.unwrap_or_default();
            if status.leader != 0 && header.member_id == status.leader {
                return Some((i, status.leader));
            }
        }
        None
    }

    /// Waits up to `timeout` for a leader that every running member follows.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> Result<(usize, u64), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                let mut agreed = true;
                for i in self.live() {
                    agreed &= self.status(i).await.is_some_and(|s| s.leader == leader.1);
                }
                if agreed {
                    return Ok(leader);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("no leader every member follows after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Indexes of the members whose process runs (paused ones included).
    pub fn live(&mut self) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.members[i].running()).collect()
    }

    /// The member list as member `i` knows it.
    pub async fn member_list(&self, i: usize) -> Result<Vec<pb::Member>, String> {
        let mut client = ClusterClient::new(self.channel(i));
        let call = client.member_list(pb::MemberListRequest {});
        Ok(answer("member list", CALL_TIMEOUT, call).await?.members)
    }

    /// Asks leader `leader` to hand leadership to the member with id `target`.
    pub async fn move_leader(&self, leader: usize, target: u64) -> Result<(), String> {
        let mut client = MaintenanceClient::new(self.channel(leader));
        let call = client.move_leader(pb::MoveLeaderRequest { target_id: target });
        answer("move-leader", CALL_TIMEOUT * 2, call).await.map(drop)
    }

    /// Adds a learner on a new host through member `via`, and starts it: its index and id.
    pub async fn add_learner(&mut self, via: usize) -> Result<(usize, u64), String> {
        let host = self.members.len();
        if host >= self.network.hosts() {
            return Err("no spare host".into());
        }
        let i = self.add_host(host)?;
        let peer_url = self.members[i].peer_url();
        let mut client = ClusterClient::new(self.channel(via));
        let request = pb::MemberAddRequest { peer_ur_ls: vec![peer_url], is_learner: true };
        let added = answer("member add", CALL_TIMEOUT, client.member_add(request)).await?;
        let id = added.member.map(|m| m.id).unwrap_or_default();
        let named = |m: &pb::Member| {
            let name = if m.id == id { self.members[i].name.clone() } else { m.name.clone() };
            format!("{name}={}", m.peer_ur_ls.first().cloned().unwrap_or_default())
        };
        let cluster = added.members.iter().map(named).collect::<Vec<_>>().join(",");
        self.members[i].start(&self.network, &self.flavor, &cluster, "existing")?;
        Ok((i, id))
    }

    /// Promotes learner `id` through member `via`.
    pub async fn promote(&self, via: usize, id: u64) -> Result<(), String> {
        let mut client = ClusterClient::new(self.channel(via));
        let call = client.member_promote(pb::MemberPromoteRequest { id });
        answer("member promote", CALL_TIMEOUT * 3, call).await.map(drop)
    }

    /// Removes member `id` through member `via`.
    pub async fn remove(&self, via: usize, id: u64) -> Result<(), String> {
        let mut client = ClusterClient::new(self.channel(via));
        let call = client.member_remove(pb::MemberRemoveRequest { id });
        answer("member remove", CALL_TIMEOUT * 3, call).await.map(drop)
    }

    /// HashKV of member `i` at `revision`: (hash, header revision).
    pub async fn hash_kv(&self, i: usize, revision: i64) -> Result<(u32, i64), String> {
        let mut client = MaintenanceClient::new(self.channel(i));
        let hashed = answer("hashkv", CALL_TIMEOUT, client.hash_kv(pb::HashKvRequest { revision }));
        let hashed = hashed.await?;
        Ok((hashed.hash, hashed.header.unwrap_or_default().revision))
    }

    /// Every event member `i` holds from revision 1 through `last`, read with a watch
    /// (prev_kv on), as the final log the checkers hold the history to.
    pub async fn events(&self, i: usize, last: i64) -> Result<Vec<mvccpb::Event>, String> {
        let mut client = WatchClient::new(self.channel(i));
        let create = pb::WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            start_revision: 1,
            prev_kv: true,
            ..Default::default()
        };
        let request = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender.send(request).await.map_err(|e| e.to_string())?;
        let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let read = async {
            let mut inbound = client.watch(outbound).await.map_err(|s| s.to_string())?.into_inner();
            let mut events = Vec::new();
            while events
                .last()
                .map_or(0, |e: &mvccpb::Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision))
                < last
            {
                match inbound.message().await {
                    Ok(Some(response)) if response.canceled => {
                        return Err(format!("watch canceled: {}", response.cancel_reason))
                    }
                    // Leases expiring after the end go on writing: keep what `last` covers.
                    Ok(Some(response)) => events.extend(
                        response
                            .events
                            .into_iter()
                            .filter(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision <= last)),
                    ),
                    Ok(None) => return Err("watch ended".to_string()),
                    Err(status) => return Err(status.to_string()),
                }
            }
            drop(sender);
            Ok(events)
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .map_err(|_| format!("reading the history of member {i} timed out"))?
    }
}

/// The answer to an administrative call within `limit`, or its error message (`what timed
/// out` if none came).
async fn answer<T>(
    what: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("{what} timed out")),
    }
}
