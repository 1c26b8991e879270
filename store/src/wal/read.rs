//! Replaying a WAL from a snapshot marker.
//!
//! Replay starts in the last segment whose first index is at or below the snapshot's index (the
//! marker and every later entry are there or after) and reads to the end. An entry replaces
//! every collected entry at or above its index, as raft overwrote them. That holds even for an
//! entry at or below the snapshot: it still cuts off a stale tail written before it. The
//! running CRC must continue across segment boundaries. A torn tail in the last segment is cut
//! off and zeroed; any other damage stops the replay with [`StoreError::Corrupt`].

use super::record::{self, Decoded, Kind};
use super::{Segment, WalContents, WalPosition};
use crate::disk::{self, Disk};
use crate::{Entry, HardState, StoreError};
use protobuf::Message;

/// The result of a replay, with what the WAL needs to continue appending.
pub(super) struct Replayed {
    pub(super) contents: WalContents,
    pub(super) crc: u32,
    pub(super) end_offset: u64,
    pub(super) last_index: u64,
}

/// The position in `segments` where a replay from a snapshot at `index` starts.
pub(super) fn start_segment(segments: &[Segment], index: u64) -> usize {
    segments.iter().rposition(|s| s.first_index <= index).unwrap_or(0)
}

/// Replays `segments` (all of the WAL's, in order) from the snapshot at `from`.
pub(super) fn replay(
    disk: &mut dyn Disk,
    segments: &[Segment],
    from: WalPosition,
) -> Result<Replayed, StoreError> {
    let start = start_segment(segments, from.index);
    let mut state = ReplayState::new(from);
    let mut end_offset = 0;
    for (position, segment) in segments.iter().enumerate().skip(start) {
        let is_last = position + 1 == segments.len();
        let data =
            disk::read_all(disk, &segment.path).map_err(StoreError::io("read", &segment.path))?;
        let end = state.segment(segment, &data, position == start, is_last)?;
        if is_last && end < data.len() && data[end..].iter().any(|&b| b != 0) {
            repair_tail(disk, segment, end, data.len())?;
        }
        end_offset = end as u64;
    }
    if !state.found_marker {
        return Err(StoreError::SnapshotNotFound { index: from.index, term: from.term });
    }
    let last_index = state.contents.entries.last().map_or(from.index, |e| e.index);
    Ok(Replayed { contents: state.contents, crc: state.crc, end_offset, last_index })
}

/// Every snapshot marker in the WAL, reading all segments from the first (a torn tail is
/// tolerated and left alone; other damage is an error).
pub(super) fn markers(
    disk: &mut dyn Disk,
    segments: &[Segment],
) -> Result<Vec<WalPosition>, StoreError> {
    // A start position no entry or marker can reach: entries are skipped, markers collected.
    let mut state = ReplayState::new(WalPosition { index: u64::MAX, term: u64::MAX });
    for (position, segment) in segments.iter().enumerate() {
        let data =
            disk::read_all(disk, &segment.path).map_err(StoreError::io("read", &segment.path))?;
        state.segment(segment, &data, position == 0, position + 1 == segments.len())?;
    }
    Ok(state.contents.snapshots)
}

/// Zeroes a torn tail and syncs, so later appends never sit next to stale bytes.
fn repair_tail(
    disk: &mut dyn Disk,
    segment: &Segment,
    end: usize,
    len: usize,
) -> Result<(), StoreError> {
    tracing::warn!(segment = %segment.path.display(), offset = end, "wal: repairing a torn tail");
    let zeros = vec![0; len - end];
    disk.write_at(&segment.path, end as u64, &zeros)
        .map_err(StoreError::io("repair", &segment.path))?;
    disk.sync(&segment.path).map_err(StoreError::io("sync", &segment.path))
}

struct ReplayState {
    from: WalPosition,
    contents: WalContents,
    metadata_seen: bool,
    found_marker: bool,
    crc: u32,
}

impl ReplayState {
    fn new(from: WalPosition) -> Self {
        ReplayState {
            from,
            contents: WalContents::default(),
            metadata_seen: false,
            found_marker: false,
            crc: 0,
        }
    }

    /// Reads one segment's records; returns where its valid records end.
    fn segment(
        &mut self,
        segment: &Segment,
        data: &[u8],
        first: bool,
        last: bool,
    ) -> Result<usize, StoreError> {
        let corrupt = |offset: usize, reason: String| StoreError::Corrupt {
            segment: segment.path.clone(),
            offset: offset as u64,
            reason,
        };
        let mut offset = 0;
        loop {
            let before = self.crc;
            match record::decode(data, offset, &mut self.crc) {
                Decoded::Record { kind, data: body, next } => {
                    if offset == 0 && kind != Kind::Crc {
                        return Err(corrupt(0, "segment does not open with a crc record".into()));
                    }
                    if kind == Kind::Crc && !first && body != before.to_le_bytes() {
                        return Err(corrupt(0, "crc chain broken between segments".into()));
                    }
                    self.record(kind, body).map_err(|reason| corrupt(offset, reason))?;
                    offset = next;
                }
                Decoded::End => return Ok(offset),
                Decoded::Torn if last => return Ok(offset),
                Decoded::Torn => {
                    return Err(corrupt(offset, "torn record in a sealed segment".into()))
                }
                Decoded::Corrupt(reason) => return Err(corrupt(offset, reason)),
            }
        }
    }

    fn record(&mut self, kind: Kind, body: &[u8]) -> Result<(), String> {
        match kind {
            Kind::Crc => {}
            Kind::Metadata if !self.metadata_seen => {
                self.contents.metadata = body.to_vec();
                self.metadata_seen = true;
            }
            Kind::Metadata if self.contents.metadata != body => {
                return Err("metadata differs from an earlier segment's".into());
            }
            Kind::Metadata => {}
            Kind::Entry => {
                let entry = Entry::parse_from_bytes(body).map_err(|e| format!("bad entry: {e}"))?;
                self.entry(entry)?;
            }
            Kind::HardState => {
                let state = HardState::parse_from_bytes(body)
                    .map_err(|e| format!("bad hard state: {e}"))?;
                self.contents.hard_state = state;
            }
            Kind::Snapshot => {
                let position = parse_marker(body)?;
                if position.index == self.from.index {
                    if position.term != self.from.term {
                        let (want, got) = (self.from.term, position.term);
                        return Err(format!(
                            "snapshot marker at index {} has term {got}, not {want}",
                            position.index
                        ));
                    }
                    self.found_marker = true;
                }
                self.contents.snapshots.push(position);
            }
        }
        Ok(())
    }

    fn entry(&mut self, entry: Entry) -> Result<(), String> {
        let entries = &mut self.contents.entries;
        let keep = entries.partition_point(|e| e.index < entry.index);
        entries.truncate(keep);
        if entry.index <= self.from.index {
            return Ok(());
        }
        let expected = self.from.index + 1 + entries.len() as u64;
        if entry.index != expected {
            return Err(format!("entry {} follows entry {} (a gap)", entry.index, expected - 1));
        }
        entries.push(entry);
        Ok(())
    }
}

fn parse_marker(body: &[u8]) -> Result<WalPosition, String> {
    if body.len() != 16 {
        return Err("snapshot marker of the wrong size".into());
    }
    let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    Ok(WalPosition { index: word(0), term: word(8) })
}
