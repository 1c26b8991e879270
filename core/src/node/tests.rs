//! Single-node tests of the Node's contract with its driver; multi-node behaviour is tested in
//! `tests/cluster.rs` and `tests/membership.rs`.

use super::*;
use raft::prelude::MessageType;

fn drain(node: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

/// Ticks until the node emits a message of `kind`, persisting nothing; returns every output.
fn tick_until(node: &mut Node, now: &mut Instant, done: impl Fn(&[Output]) -> bool) -> Vec<Output> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        *now = *now + Duration::from_millis(100);
        node.handle(Input::Tick { now: *now });
        seen.extend(drain(node));
        if done(&seen) {
            return seen;
        }
    }
    panic!("never happened: {seen:?}");
}

fn sends(outputs: &[Output], kind: MessageType) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::Send { message, .. } if message.get_msg_type() == kind))
        .count()
}

/// The first output of a founding member persists its bootstrap log: one conf change per
/// member, committed in term 1.
#[test]
fn a_founding_member_first_persists_its_bootstrap_log() {
    let mut node = Node::new(NodeConfig::new(1, vec![1, 2, 3], 7), Instant::ZERO);
    let Some(Output::Persist { batch: 0, entries, hard_state: Some(hard_state), .. }) =
        node.poll_output()
    else {
        panic!("the bootstrap batch comes first");
    };
    assert_eq!(
        entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
        [(1, 1), (2, 1), (3, 1)]
    );
    assert_eq!((hard_state.term, hard_state.commit), (1, 3));
}

/// raft's Ready contract: a candidate's vote requests depend on its new term and its own vote
/// being durable, so they come out only after the driver reports that batch persisted.
#[test]
fn vote_requests_wait_for_the_persisted_vote() {
    let mut now = Instant::ZERO;
    let mut node = Node::new(NodeConfig::new(1, vec![1, 2, 3], 7), now);
    node.handle(Input::Persisted { batch: 0 });
    let outputs =
        tick_until(&mut node, &mut now, |o| sends(o, MessageType::MsgRequestPreVote) == 2);
    let pre_vote_term = outputs
        .iter()
        .find_map(|o| match o {
            Output::Send { message, .. }
                if message.get_msg_type() == MessageType::MsgRequestPreVote =>
            {
                Some(message.term)
            }
            _ => None,
        })
        .unwrap();
    // Grant the pre-vote from member 2: member 1 becomes a candidate.
    let mut grant = Message::default();
    grant.set_msg_type(MessageType::MsgRequestPreVoteResponse);
    (grant.from, grant.to, grant.term) = (2, 1, pre_vote_term);
    node.handle(Input::Message(grant));
    let outputs = drain(&mut node);
    let batch = outputs
        .iter()
        .find_map(|o| match o {
            Output::Persist { batch, hard_state: Some(hs), .. } if hs.vote == 1 => Some(*batch),
            _ => None,
        })
        .expect("the new term and self-vote are persisted");
    assert_eq!(
        sends(&outputs, MessageType::MsgRequestVote),
        0,
        "nothing sent before the vote is durable"
    );
    node.handle(Input::Persisted { batch });
    let released = drain(&mut node);
    assert_eq!(sends(&released, MessageType::MsgRequestVote), 2, "released once durable");
}

/// A request answered before it could be proposed still gets exactly one answer, and the
/// node never answers a client twice.
#[test]
fn a_request_without_a_leader_times_out_once() {
    let mut now = Instant::ZERO;
    let mut node = Node::new(NodeConfig::new(1, vec![1, 2, 3], 7), now);
    node.handle(Input::Persisted { batch: 0 });
    let put = crate::api::PutRequest { key: b"k".to_vec(), ..Default::default() };
    node.handle(Input::Client { id: 9, credential: None, request: Request::Put(put) });
    let mut answers = Vec::new();
    for _ in 0..100 {
        now = now + Duration::from_millis(100);
        node.handle(Input::Tick { now });
        for output in drain(&mut node) {
            if let Output::Respond { id, result } = output {
                answers.push((id, result));
            }
        }
    }
    assert_eq!(answers, [(9, Err(crate::api::ServerError::Timeout.into()))]);
}

/// Review finding: the requests only the leader makes for itself are refused from clients (an
/// expiry carrying the current term would otherwise revoke any lease at once).
#[test]
fn clients_cannot_send_the_servers_own_lease_requests() {
    use crate::api::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseExpireRequest, ServerError};
    let mut node = Node::new(NodeConfig::new(1, vec![1], 7), Instant::ZERO);
    node.handle(Input::Persisted { batch: 0 });
    let checkpoint = LeaseCheckpoint { id: 1, remaining_ttl: i64::MAX };
    let requests = [
        Request::LeaseExpire(LeaseExpireRequest { id: 1, term: 1 }),
        Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints: vec![checkpoint], term: 0 }),
    ];
    for (id, request) in requests.into_iter().enumerate() {
        node.handle(Input::Client { id: id as u64, credential: None, request });
        let answers: Vec<_> = drain(&mut node)
            .into_iter()
            .filter_map(|o| match o {
                Output::Respond { result, .. } => Some(result),
                _ => None,
            })
            .collect();
        assert_eq!(answers, [Err(ServerError::InternalOnly.into())]);
    }
}
