//! Requests only the leader answers, taken to it as etcd's followers take them: lease renewals
//! (`LeaseRenew`), lease time-to-live questions and learner promotion.
//!
//! The core answers such a request `not leader` on a member that does not lead, and also on
//! a leader whose lessor is not yet primary (the first moments of its term). [`at_leader`]
//! then keeps trying, as etcd does, until the request timeout: it waits for a leader, asks it
//! on its peer URL (`steadpeer.Peer/Forward`; the leader answers from its own member and never
//! forwards again), and on `not leader`, no leader, a changed leader or an unreachable leader
//! tries again 50 ms later. A client of a healthy cluster never sees `not leader`; one whose
//! cluster has no leader for the whole request timeout sees `request timed out`.

use crate::handle::{Handle, Leader};
use crate::proto::steadpeer::peer_client::PeerClient;
use crate::proto::steadpeer::{ForwardAnswer, Forwarded};
use std::time::Duration;
use stead_core::api::{
    ClusterError, ClusterRequest, Credential, Error, Request, Response, ServerError,
};

/// How long to wait before asking again (etcd's throttle in `LeaseRenew`).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Whether `request` is one a follower forwards to the leader.
pub fn is_forwardable(request: &Request) -> bool {
    matches!(
        request,
        Request::LeaseKeepAlive(_)
            | Request::LeaseTimeToLive(_)
            | Request::Cluster(ClusterRequest::MemberPromote { .. })
    )
}

/// Whether asking (another) leader again may give a different answer.
fn worth_retrying(error: &Error) -> bool {
    matches!(
        error,
        Error::Cluster(ClusterError::NotLeader)
            | Error::Server(ServerError::NoLeader | ServerError::LeaderChanged)
    )
}

/// Asks this member, and if it does not lead, the leader, until one answers or the request
/// timeout passes (then `request timed out`).
pub async fn at_leader(
    handle: &Handle,
    request: Request,
    credential: Option<Credential>,
) -> Result<Response, Error> {
    match handle.call(request.clone(), credential.clone()).await {
        Err(error) if worth_retrying(&error) => {}
        answered => return answered,
    }
    let deadline = tokio::time::Instant::now() + handle.request_timeout();
    loop {
        let answer = match handle.leader().await {
            // This member leads (its lessor may not be primary yet).
            Some(leader) if leader.is_me => {
                Some(handle.call(request.clone(), credential.clone()).await)
            }
            Some(leader) => ask_peer(handle, &leader, &request, &credential)
                .await
                .map(|answer| answer.map(|response| as_asked(response, &leader))),
            None => None,
        };
        match answer {
            Some(Err(error)) if worth_retrying(&error) => {}
            Some(answered) => return answered,
            None => {}
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(ServerError::Timeout.into());
        }
    }
}

/// The leader's answer as this member passes it on: with this member's id and raft term in
/// the header (the leader's revision stays), as etcd's gRPC layer fills every header.
fn as_asked(mut response: Response, leader: &Leader) -> Response {
    let header = response.header_mut();
    (header.member_id, header.raft_term) = leader.asked;
    response
}

/// Asks `leader` over its peer URLs; `None` if none of them could be asked.
async fn ask_peer(
    handle: &Handle,
    leader: &Leader,
    request: &Request,
    credential: &Option<Credential>,
) -> Option<Result<Response, Error>> {
    let question = Forwarded {
        request: postcard::to_allocvec(request).expect("requests encode"),
        credential: postcard::to_allocvec(credential).expect("credentials encode"),
    };
    for url in &leader.peer_urls {
        let Some(channel) = handle.peer_channel(url).await else { continue };
        let reply = PeerClient::new(channel).forward(question.clone()).await;
        match reply {
            Ok(answer) => match decode(answer.into_inner()) {
                // The leader is stopping: another will lead.
                Some(Err(Error::Server(ServerError::Stopped))) => {}
                Some(answer) => return Some(answer),
                None => tracing::warn!(%url, "a forwarded request's answer does not decode"),
            },
            Err(status) => tracing::debug!(%url, %status, "forwarding to the leader failed"),
        }
    }
    None
}

/// The leader's side: the answer to a forwarded request, from this member alone.
pub async fn answer(handle: &Handle, question: Forwarded) -> Result<ForwardAnswer, String> {
    let request: Request =
        postcard::from_bytes(&question.request).map_err(|e| format!("bad request: {e}"))?;
    if !is_forwardable(&request) {
        return Err(format!("not a request members forward: {request:?}"));
    }
    let credential: Option<Credential> =
        postcard::from_bytes(&question.credential).map_err(|e| format!("bad credential: {e}"))?;
    let result = handle.call(request, credential).await;
    Ok(ForwardAnswer { result: postcard::to_allocvec(&result).expect("results encode") })
}

fn decode(answer: ForwardAnswer) -> Option<Result<Response, Error>> {
    postcard::from_bytes(&answer.result).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stead_core::api::{LeaseKeepAliveRequest, LeaseKeepAliveResponse, ResponseHeader};

    #[test]
    fn only_leader_requests_are_forwarded() {
        assert!(is_forwardable(&Request::LeaseKeepAlive(LeaseKeepAliveRequest { id: 1 })));
        let promote = Request::Cluster(ClusterRequest::MemberPromote { id: 7 });
        assert!(is_forwardable(&promote));
        assert!(!is_forwardable(&Request::Cluster(ClusterRequest::MemberList)));
    }

    #[test]
    fn answers_survive_the_wire_both_ways() {
        let ok: Result<Response, Error> = Ok(Response::LeaseKeepAlive(LeaseKeepAliveResponse {
            header: ResponseHeader::at(9),
            id: 5,
            ttl: 10,
        }));
        let failed: Result<Response, Error> = Err(ClusterError::NotLeader.into());
        for result in [ok, failed] {
            let wire = ForwardAnswer { result: postcard::to_allocvec(&result).unwrap() };
            assert_eq!(decode(wire), Some(result));
        }
    }

    #[test]
    fn a_forwarded_answer_names_the_member_asked() {
        let leader = Leader { id: 1, is_me: false, peer_urls: Vec::new(), asked: (2, 7) };
        let answer = Response::LeaseKeepAlive(LeaseKeepAliveResponse {
            header: ResponseHeader { cluster_id: 9, member_id: 1, revision: 5, raft_term: 6 },
            id: 5,
            ttl: 10,
        });
        let Response::LeaseKeepAlive(passed) = as_asked(answer, &leader) else { panic!() };
        let expected = ResponseHeader { cluster_id: 9, member_id: 2, revision: 5, raft_term: 7 };
        assert_eq!(passed.header, expected);
    }

    #[test]
    fn only_leadership_errors_are_retried() {
        assert!(worth_retrying(&ClusterError::NotLeader.into()));
        assert!(worth_retrying(&ServerError::NoLeader.into()));
        assert!(!worth_retrying(&ServerError::Timeout.into()));
        assert!(!worth_retrying(&stead_core::api::LeaseError::Exists.into()));
    }
}
