//! Range: reading keys at a revision, with etcd 3.4's filters, sorting, limit and count.
//!
//! The rules, from etcd's `applierV3backend.Range`: `count` is the number of keys in the range at
//! the read revision, before the mod/create revision filters and the limit. With no sort order
//! and no filter, only the first `limit + 1` keys (in key order) are read; otherwise all. The
//! filters then drop keys; the results are sorted (a non-key sort target with no order means
//! ascending, over the keys read); the limit truncates and sets `more`. The header carries the store's revision, even for historical reads.

use super::history::Version;
use super::store::KvStore;
use super::KeyRange;
use crate::api::{KeyValue, KvError, RangeRequest, RangeResponse, ResponseHeader};
use crate::api::{SortOrder, SortTarget};
use std::cmp::Ordering;

impl KvStore {
    /// Serves a range at the store's current revision (etcd's Range).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.range_seen_at(request, self.current_revision())
    }

    /// Serves a range for a reader that sees revision `current` (a transaction sees its own
    /// revision once it has written).
    pub(crate) fn range_seen_at(
        &self,
        request: &RangeRequest,
        current: i64,
    ) -> Result<RangeResponse, KvError> {
        let at = self.read_revision(request.revision, current)?;
        let range = KeyRange::new(&request.key, &request.range_end);
        let order = effective_order(request);
        let streams_in_key_order = order == SortOrder::None
            || (request.sort_target == SortTarget::Key && order == SortOrder::Ascend);
        let streams_in_reverse =
            request.sort_target == SortTarget::Key && order == SortOrder::Descend;
        // One result beyond the limit tells whether there is `more`. Materialising stops there
        // (counting goes on) when results come out in their final order, and also where etcd
        // itself stops: with no sort order requested and no revision filter, it reads only
        // `limit + 1` keys in key order and sorts just those by a non-key target.
        let etcd_reads_everything = request.sort_order != SortOrder::None || has_filters(request);
        let stops_early = streams_in_key_order || streams_in_reverse || !etcd_reads_everything;
        let wanted = match request.limit {
            limit if limit > 0 && stops_early => limit as usize + 1,
            _ => usize::MAX,
        };
        // Values are needed to sort by value even when the answer carries keys only; etcd drops
        // them after sorting.
        let with_values = !request.keys_only || request.sort_target == SortTarget::Value;
        let mut count = 0usize;
        let mut kvs = Vec::new();
        let mut visit = |key: &[u8], version: &Version| {
            count += 1;
            if request.count_only || kvs.len() >= wanted || !passes_filters(request, version) {
                return;
            }
            kvs.push(version.to_key_value(key, with_values));
        };
        if streams_in_reverse {
            self.visible(range, at).rev().for_each(|(key, version)| visit(key, version));
        } else {
            self.visible(range, at).for_each(|(key, version)| visit(key, version));
        }
        if !(streams_in_key_order || streams_in_reverse) {
            sort(&mut kvs, request.sort_target, order);
        }
        let more = request.limit > 0 && kvs.len() > request.limit as usize;
        if more {
            kvs.truncate(request.limit as usize);
        }
        if request.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse { header: ResponseHeader::at(current), kvs, more, count: count as i64 })
    }
}

/// The sort order etcd applies: ascending when a non-key target is given without an order.
fn effective_order(request: &RangeRequest) -> SortOrder {
    match request.sort_order {
        SortOrder::None if request.sort_target != SortTarget::Key => SortOrder::Ascend,
        order => order,
    }
}

/// Whether any min/max revision filter is set.
fn has_filters(request: &RangeRequest) -> bool {
    let bounds = [
        request.min_mod_revision,
        request.max_mod_revision,
        request.min_create_revision,
        request.max_create_revision,
    ];
    bounds.iter().any(|&bound| bound != 0)
}

/// The min/max mod and create revision filters (0 means no bound).
fn passes_filters(request: &RangeRequest, version: &Version) -> bool {
    let Some(put) = version.put() else {
        return false;
    };
    let within =
        |value: i64, min: i64, max: i64| (min == 0 || value >= min) && (max == 0 || value <= max);
    within(version.rev.main, request.min_mod_revision, request.max_mod_revision)
        && within(put.create, request.min_create_revision, request.max_create_revision)
}

/// Sorts by the target. The sort is stable and descending order flips the comparison, not the
/// result, so ties stay in key order either way (etcd leaves tie order unspecified).
fn sort(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    let compare = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| compare(b, a)),
        SortOrder::Ascend | SortOrder::None => kvs.sort_by(compare),
    }
}
