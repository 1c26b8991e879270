//! Joining a running cluster (`--initial-cluster-state existing`), as etcd does it.
//!
//! A member added with `etcdctl member add` got its id from the leader, so the new process
//! cannot derive it from its flags. Before it creates its data dir it asks the other members of
//! `--initial-cluster`, on their peer URLs, for the member list they know
//! (`steadpeer.Peer/Members`, etcd's `GET /members`), finds the member whose peer URLs are its
//! own `--initial-advertise-peer-urls`, and takes that id and the cluster id. A member the
//! cluster does not list, or one that already started, is refused with a clear error.

use crate::dial::Dialer;
use crate::proto::etcdserverpb::MemberListRequest;
use crate::proto::steadpeer::peer_client::PeerClient;
use std::time::Duration;
use stead_core::api::Member;
use stead_core::node::NodeConfig;

/// How long one member may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds over the peers: a member that has not applied the addition yet is asked again.
const ROUNDS: usize = 3;

/// What a joining member learned from the running cluster.
#[derive(Debug)]
pub struct Joined {
    /// The members the cluster lists (where to reach them before this member applies the
    /// membership from the log).
    pub members: Vec<Member>,
}

/// Asks the other members of `config.members` who this member is, and sets `config.id` and
/// `config.cluster_id` from the answer.
pub async fn discover(
    config: &mut NodeConfig,
    my_peer_urls: &[String],
    dialer: &Dialer,
) -> Result<Joined, String> {
    let mut mine = my_peer_urls.to_vec();
    mine.sort();
    let others: Vec<String> = config
        .members
        .iter()
        .filter(|m| sorted(&m.peer_urls) != mine)
        .flat_map(|m| m.peer_urls.clone())
        .collect();
    let mut last_problem = None;
    let mut unreachable = None;
    for round in 0..ROUNDS {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for url in &others {
            let (cluster_id, members) = match ask(dialer, url).await {
                Ok(answer) => answer,
                Err(problem) => {
                    tracing::debug!(%url, %problem, "cannot ask for the member list");
                    unreachable = Some(problem);
                    continue;
                }
            };
            let Some(me) = members.iter().find(|m| sorted(&m.peer_urls) == mine) else {
                last_problem = Some(format!(
                    "the running cluster has no member with peer URLs {my_peer_urls:?} \
                     (add it first: etcdctl member add <name> --peer-urls=...)"
                ));
                continue;
            };
            if !me.name.is_empty() {
                return Err(format!(
                    "member {:x} has already been bootstrapped (restart it with its data dir)",
                    me.id
                ));
            }
            // This member's entry in the configuration carries the name it will publish.
            for member in config.members.iter_mut().filter(|m| sorted(&m.peer_urls) == mine) {
                member.id = me.id;
            }
            config.id = me.id;
            config.cluster_id = cluster_id;
            return Ok(Joined { members });
        }
    }
    Err(last_problem.unwrap_or_else(|| {
        format!(
            "cannot fetch cluster info from peer urls: could not retrieve cluster information \
             from the given URLs {others:?} (last: {})",
            unreachable.unwrap_or_default()
        )
    }))
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut urls = urls.to_vec();
    urls.sort();
    urls
}

/// One member's answer: the cluster id and the members it knows.
async fn ask(dialer: &Dialer, url: &str) -> Result<(u64, Vec<Member>), String> {
    let call = async {
        let mut client = PeerClient::new(dialer.connect(url, ASK_TIMEOUT).await?);
        client.members(MemberListRequest {}).await.map_err(|e| e.to_string())
    };
    let answer = tokio::time::timeout(ASK_TIMEOUT, call)
        .await
        .map_err(|_| "no answer in time".to_string())??
        .into_inner();
    let cluster_id = answer.header.map(|h| h.cluster_id).unwrap_or_default();
    let members = answer
        .members
        .into_iter()
        .map(|m| Member {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        })
        .collect();
    Ok((cluster_id, members))
}
