//! WAL record framing: encode, decode, and telling a torn tail from corruption.
//!
//! A record on disk:
//!
//! ```text
//! [len: u32][len_check: u32][crc: u32][kind: u8][data: len - 1 bytes][TRAILER: u8]
//! ```
//!
//! `len` counts kind and data. `len_check` is the CRC-32C of the four `len` bytes, so a damaged
//! length is detected before it is trusted. `crc` is CRC-32C over kind and data, *chained*: it
//! starts from the previous record's crc, so a record cannot be dropped, reordered or spliced in
//! without breaking the chain. The chain continues across segments: each segment opens with a
//! `Crc` record that carries the running value. The trailer is a fixed non-zero byte.
//!
//! A crash can tear only the tail of the last write: a prefix of the bytes lands and zeros
//! (preallocated space) follow. So a damaged record is a *torn tail* when the file holds nothing
//! but zeros after the part of it that landed. Concretely: with a valid length, its trailer is not
//! there and nothing follows its end; with a damaged length, nothing follows its header. A bit
//! flip in a record that was written whole leaves its trailer or its data behind it, so it is
//! reported as corruption, never silently truncated.

/// Bytes before a record's kind: `len`, `len_check`, `crc`.
pub(crate) const HEADER_BYTES: usize = 12;
/// The byte that ends every record.
pub(crate) const TRAILER: u8 = 0xA5;
/// The largest record accepted when reading (a raft entry is bounded far below this).
pub(crate) const MAX_RECORD_BYTES: usize = 256 << 20;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// The running CRC at the start of a segment (4 bytes, little-endian).
    Crc = 1,
    /// The WAL's metadata (opaque bytes from its creator), repeated in every segment.
    Metadata = 2,
    /// A raft entry in raft's protobuf encoding.
    Entry = 3,
    /// A raft hard state in raft's protobuf encoding.
    HardState = 4,
    /// A snapshot marker: index and term, 8 bytes each, little-endian.
    Snapshot = 5,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Crc,
            2 => Kind::Metadata,
            3 => Kind::Entry,
            4 => Kind::HardState,
            5 => Kind::Snapshot,
            _ => return None,
        })
    }
}

/// The CRC of a record's kind and data, continuing from `previous`.
pub(crate) fn chain(previous: u32, kind: Kind, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c_append(previous, &[kind as u8]), data)
}

fn len_check(len: u32) -> u32 {
    crc32c::crc32c(&len.to_le_bytes())
}

/// Appends one record to `out`, advancing the running `crc`. A `Crc` record restarts the chain
/// from the value it carries.
pub(crate) fn encode(out: &mut Vec<u8>, crc: &mut u32, kind: Kind, data: &[u8]) {
    let len = u32::try_from(1 + data.len()).expect("record below 4 GiB");
    if kind == Kind::Crc {
        *crc = u32::from_le_bytes(data.try_into().expect("a crc record holds 4 bytes"));
    }
    *crc = chain(*crc, kind, data);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len_check(len).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(data);
    out.push(TRAILER);
}

/// The outcome of reading at one offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole, valid record; the next one starts at `next`.
    Record { kind: Kind, data: &'a [u8], next: usize },
    /// No more records: zeros (or nothing) from here to the end.
    End,
    /// A record cut short by a crash; everything from here on can be discarded.
    Torn,
    /// Damage that a crash cannot explain.
    Corrupt(String),
}

/// Decodes the record at `offset` of `buf`, checking it against the running `crc` and
/// advancing it.
pub(crate) fn decode<'a>(buf: &'a [u8], offset: usize, crc: &mut u32) -> Decoded<'a> {
    let rest = &buf[offset..];
    if rest.len() < HEADER_BYTES {
        return if zeros_after(rest, 0) { Decoded::End } else { Decoded::Torn };
    }
    let word = |at: usize| u32::from_le_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
    let (len, stored_len_check, stored_crc) = (word(0), word(4), word(8));
    if (len, stored_len_check, stored_crc) == (0, 0, 0) {
        // The zeros of preallocated space: the end, unless records follow them.
        return if zeros_after(rest, 0) {
            Decoded::End
        } else {
            Decoded::Corrupt("zeroed bytes followed by data".into())
        };
    }
    if len_check(len) != stored_len_check {
        // A torn header is followed by nothing; a damaged one by the rest of its record.
        return if zeros_after(rest, HEADER_BYTES) {
            Decoded::Torn
        } else {
            Decoded::Corrupt(format!("record length {len} fails its check"))
        };
    }
    let len = len as usize;
    if len == 0 || len > MAX_RECORD_BYTES {
        return Decoded::Corrupt(format!("impossible record length {len}"));
    }
    let end = HEADER_BYTES + len + 1;
    if rest.len() < end {
        return Decoded::Torn;
    }
    let (body, trailer) = (&rest[HEADER_BYTES..HEADER_BYTES + len], rest[end - 1]);
    if trailer != TRAILER {
        return if trailer == 0 && zeros_after(rest, end) {
            Decoded::Torn
        } else {
            Decoded::Corrupt(format!("record trailer is {trailer:#04x}"))
        };
    }
    let Some(kind) = Kind::from_byte(body[0]) else {
        return Decoded::Corrupt(format!("unknown record kind {}", body[0]));
    };
    let data = &body[1..];
    let start = match kind {
        Kind::Crc if data.len() == 4 => u32::from_le_bytes(data.try_into().expect("4 bytes")),
        Kind::Crc => return Decoded::Corrupt("crc record of the wrong size".into()),
        _ => *crc,
    };
    let computed = chain(start, kind, data);
    if computed != stored_crc {
        return Decoded::Corrupt(format!(
            "crc mismatch: stored {stored_crc:#010x}, computed {computed:#010x}"
        ));
    }
    *crc = computed;
    Decoded::Record { kind, data, next: offset + end }
}

fn zeros_after(rest: &[u8], from: usize) -> bool {
    rest.get(from..).is_none_or(|tail| tail.iter().all(|&b| b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let (mut out, mut crc) = (Vec::new(), 0);
        encode(&mut out, &mut crc, Kind::Crc, &0u32.to_le_bytes());
        encode(&mut out, &mut crc, Kind::Entry, b"first entry");
        encode(&mut out, &mut crc, Kind::Entry, b"second entry, a bit longer");
        out
    }

    fn decode_all(buf: &[u8]) -> (usize, Decoded<'_>) {
        let (mut offset, mut crc, mut count) = (0, 0, 0);
        loop {
            match decode(buf, offset, &mut crc) {
                Decoded::Record { next, .. } => (offset, count) = (next, count + 1),
                other => return (count, other),
            }
        }
    }

    #[test]
    fn round_trip_then_zeros_is_a_clean_end() {
        let mut buf = two_records();
        buf.resize(buf.len() + 100, 0);
        assert_eq!(decode_all(&buf), (3, Decoded::End));
    }

    #[test]
    fn every_prefix_of_the_last_record_is_a_torn_tail() {
        let whole = two_records();
        let last_start = whole.len() - (HEADER_BYTES + 1 + 26 + 1);
        for cut in last_start + 1..whole.len() {
            let mut buf = whole[..cut].to_vec();
            buf.resize(whole.len() + 64, 0);
            assert_eq!(decode_all(&buf), (2, Decoded::Torn), "cut at {cut}");
        }
    }

    #[test]
    fn every_single_bit_flip_is_corruption_not_a_tear() {
        let whole = two_records();
        for byte in 0..whole.len() {
            for bit in 0..8 {
                let mut buf = whole.clone();
                buf[byte] ^= 1 << bit;
                buf.resize(whole.len() + 64, 0);
                let (_, outcome) = decode_all(&buf);
                assert!(matches!(outcome, Decoded::Corrupt(_)), "flip {byte}.{bit}: {outcome:?}");
            }
        }
    }

    #[test]
    fn a_broken_chain_is_corruption() {
        let (mut out, mut crc) = (Vec::new(), 0);
        encode(&mut out, &mut crc, Kind::Entry, b"a");
        let mut other = 0;
        encode(&mut out, &mut other, Kind::Entry, b"b");
        assert!(matches!(decode_all(&out).1, Decoded::Corrupt(_)));
    }
}
