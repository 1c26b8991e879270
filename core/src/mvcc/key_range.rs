//! The set of keys a request names, decoded from etcd's `key`/`range_end` convention.

use std::ops::Bound;

/// Lower and upper bounds over keys, as `BTreeMap::range` takes them.
pub type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Which keys a request (`key`, `range_end`) addresses.
///
/// etcd's convention: an empty `range_end` names the single key `key`; `range_end == [0]` names
/// every key `>= key` (so `key == [0]` too names every key); otherwise the half-open interval
/// `[key, range_end)`, which is empty when `range_end <= key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRange<'a> {
    /// Exactly one key.
    Single(&'a [u8]),
    /// Every key greater than or equal to this one.
    From(&'a [u8]),
    /// Keys in `[start, end)`.
    Span(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    /// Decodes a request's `key` and `range_end`.
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::From(key),
            end => KeyRange::Span(key, end),
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match *self {
            KeyRange::Single(single) => key == single,
            KeyRange::From(start) => key >= start,
            KeyRange::Span(start, end) => start <= key && key < end,
        }
    }

    /// The range as map bounds, or `None` when it is empty (a span whose end is not after its
    /// start), because `BTreeMap::range` panics on such bounds.
    pub fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::From(start) => Some((Bound::Included(start), Bound::Unbounded)),
            KeyRange::Span(start, end) if start < end => {
                Some((Bound::Included(start), Bound::Excluded(end)))
            }
            KeyRange::Span(..) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_etcd_conventions() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a"));
        assert_eq!(KeyRange::new(b"a", b"\0"), KeyRange::From(b"a"));
        assert_eq!(KeyRange::new(b"a", b"c"), KeyRange::Span(b"a", b"c"));
    }

    #[test]
    fn membership() {
        let span = KeyRange::new(b"b", b"d");
        assert!(!span.contains(b"a") && span.contains(b"b") && span.contains(b"cz"));
        assert!(!span.contains(b"d"));
        let from = KeyRange::new(b"\0", b"\0");
        assert!(from.contains(b"\0") && from.contains(b"zzz"));
        assert!(
            KeyRange::new(b"k", b"").contains(b"k") && !KeyRange::new(b"k", b"").contains(b"k0")
        );
    }

    #[test]
    fn inverted_span_is_empty_not_a_panic() {
        assert_eq!(KeyRange::new(b"d", b"b").bounds(), None);
        assert_eq!(KeyRange::new(b"d", b"d").bounds(), None);
        assert!(!KeyRange::new(b"d", b"b").contains(b"c"));
    }
}
