//! Splitting a large watch response into fragments (etcd's `sendFragments`), by its protobuf
//! encoded size, which this module computes the way protobuf does.

use crate::api::{Event, EventKind, KeyValue, ResponseHeader, WatchResponse};

/// Splits `response` into pieces below `max_bytes`, each with at least one event; every piece
/// but the last says more follow. A response that is small enough, or has fewer than two
/// events, stays whole.
pub(super) fn split(response: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if encoded_len(&response) < max_bytes || response.events.len() < 2 {
        return vec![response];
    }
    let mut pieces = Vec::new();
    let mut shell = response.clone();
    shell.events.clear();
    shell.fragment = true;
    let empty_len = encoded_len(&shell);
    let mut current = shell.clone();
    let mut current_len = empty_len;
    for event in response.events {
        let event_len = field_len(11, event_len(&event));
        if !current.events.is_empty() && current_len + event_len >= max_bytes {
            pieces.push(std::mem::replace(&mut current, shell.clone()));
            current_len = empty_len;
        }
        current.events.push(event);
        current_len += event_len;
    }
    current.fragment = false;
    pieces.push(current);
    pieces
}

/// The protobuf encoded size of a watch response.
pub(super) fn encoded_len(response: &WatchResponse) -> usize {
    field_len(1, header_len(&response.header))
        + int_len(2, response.watch_id)
        + bool_len(3, response.created)
        + bool_len(4, response.canceled)
        + int_len(5, response.compact_revision)
        + bytes_len(6, response.cancel_reason.len())
        + bool_len(7, response.fragment)
        + response.events.iter().map(|e| field_len(11, event_len(e))).sum::<usize>()
}

fn header_len(header: &ResponseHeader) -> usize {
    int_len(1, header.cluster_id as i64)
        + int_len(2, header.member_id as i64)
        + int_len(3, header.revision)
        + int_len(4, header.raft_term as i64)
}

fn event_len(event: &Event) -> usize {
    let kind = if event.kind == EventKind::Delete { 2 } else { 0 };
    kind + field_len(2, kv_len(&event.kv))
        + event.prev_kv.as_ref().map_or(0, |prev| field_len(3, kv_len(prev)))
}

fn kv_len(kv: &KeyValue) -> usize {
    bytes_len(1, kv.key.len())
        + int_len(2, kv.create_revision)
        + int_len(3, kv.mod_revision)
        + int_len(4, kv.version)
        + bytes_len(5, kv.value.len())
        + int_len(6, kv.lease)
}

fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// A length-delimited field that is always present (an embedded message).
fn field_len(_tag: u32, len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// A bytes/string field, omitted when empty.
fn bytes_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        field_len(tag, len)
    }
}

/// An int64 field, omitted when zero (negative values take ten bytes).
fn int_len(_tag: u32, value: i64) -> usize {
    if value == 0 {
        0
    } else {
        1 + varint_len(value as u64)
    }
}

fn bool_len(_tag: u32, value: bool) -> usize {
    if value {
        2
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(size: usize) -> Event {
        let kv = KeyValue { key: b"k".to_vec(), value: vec![7; size], ..KeyValue::default() };
        Event { kind: EventKind::Put, kv, prev_kv: None }
    }

    #[test]
    fn sizes_follow_protobuf() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
        // key (1+1+1) + value (1+1+3) = 8; the event wraps it in a field: 1 + 1 + 8.
        assert_eq!(event_len(&event(3)), 10);
        let response = WatchResponse { watch_id: 1, events: vec![event(3)], ..Default::default() };
        assert_eq!(encoded_len(&response), 2 + 2 + 12, "empty header, watch id, one event");
    }

    #[test]
    fn large_responses_split_in_order_with_at_least_one_event_each() {
        let events: Vec<Event> = (0..10).map(|i| event(100 + i)).collect();
        let response = WatchResponse { watch_id: 3, events: events.clone(), ..Default::default() };
        let pieces = split(response.clone(), 300);
        assert!(pieces.len() > 3, "{} pieces", pieces.len());
        let flags: Vec<bool> = pieces.iter().map(|p| p.fragment).collect();
        assert!(flags[..flags.len() - 1].iter().all(|&f| f) && !flags[flags.len() - 1]);
        let joined: Vec<Event> = pieces.iter().flat_map(|p| p.events.clone()).collect();
        assert_eq!(joined, events, "nothing lost or reordered");
        assert!(pieces.iter().all(|p| p.watch_id == 3 && !p.events.is_empty()));
        assert!(pieces.iter().all(|p| p.events.len() == 1 || encoded_len(p) < 300));
        assert_eq!(split(response.clone(), 1 << 20), vec![response], "small: whole");
        let one = WatchResponse { events: vec![event(5000)], ..Default::default() };
        assert_eq!(split(one.clone(), 100), vec![one], "a single event is never split");
    }
}
