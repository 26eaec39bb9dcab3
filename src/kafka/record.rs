//! The changelog topic's records: one Kafka record per changed record of a group, keyed
//! by view and key (so that compaction keeps the latest state of each record), the
//! group's LSN, its size and the change's place in it in headers; and one marker record
//! for an LSN whose group changed no replicated view.
//!
//! | part | bytes |
//! |---|---|
//! | key | the view name's length (`u16`, big-endian), the view name, the record's key as the store encodes it; a marker's key is two zero bytes |
//! | value | a live record's value as its codec encodes it; empty for a tombstone; none (a Kafka tombstone, which compaction removes) for a purged record and a marker |
//! | header `vs.lsn` | the group's LSN, `u64` big-endian |
//! | header `vs.count` | how many changes the group has, `u32` big-endian (0 for a marker) |
//! | header `vs.index` | the change's place in the group, `u32` big-endian |
//! | header `vs.version` | the record's version, `u64` big-endian |
//! | header `vs.kind` | `live`, `tombstone`, `purged` or `marker` |
//! | header `vs.at` | when the group committed on the primary, ms since the Unix epoch, `u64` big-endian |

use crate::base::feed::{ChangeKind, FeedChange};
use crate::base::version::{Lsn, Version};
use std::sync::Arc;

/// The header names.
pub(crate) const LSN: &str = "vs.lsn";
pub(crate) const COUNT: &str = "vs.count";
pub(crate) const INDEX: &str = "vs.index";
pub(crate) const VERSION: &str = "vs.version";
pub(crate) const KIND: &str = "vs.kind";
pub(crate) const AT: &str = "vs.at";

/// The key of a marker record.
pub(crate) const MARKER_KEY: [u8; 2] = [0, 0];

/// One changelog record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangelogRecord {
    pub(crate) lsn: Lsn,
    pub(crate) count: u32,
    pub(crate) index: u32,
    pub(crate) committed_at_ms: u64,
    /// `None` for a marker.
    pub(crate) change: Option<FeedChange>,
}

/// The record key of `change`.
pub(crate) fn record_key(view: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + view.len() + key.len());
    // View names are at most 255 bytes (`schema::names`).
    out.extend_from_slice(&(view.len() as u16).to_be_bytes());
    out.extend_from_slice(view.as_bytes());
    out.extend_from_slice(key);
    out
}

/// The name of `kind` in the `vs.kind` header.
pub(crate) fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Live => "live",
        ChangeKind::Tombstone => "tombstone",
        ChangeKind::Purged => "purged",
    }
}

/// The record's value: the live value, empty for a tombstone, none for a purge.
pub(crate) fn record_value(change: &FeedChange) -> Option<&[u8]> {
    match change.kind {
        ChangeKind::Live => Some(change.value.as_deref().unwrap_or(&[])),
        ChangeKind::Tombstone => Some(&[]),
        ChangeKind::Purged => None,
    }
}

/// Reads a record back from its key, value and headers (`header(name)` gives a header's
/// bytes). `Err` says what is wrong with it.
pub(crate) fn decode_record<'h>(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    header: impl Fn(&str) -> Option<&'h [u8]>,
) -> Result<ChangelogRecord, String> {
    let lsn = Lsn::new(u64_header(&header, LSN)?);
    let count = u32_header(&header, COUNT)?;
    let index = u32_header(&header, INDEX)?;
    let committed_at_ms = u64_header(&header, AT)?;
    let kind = header(KIND).ok_or_else(|| format!("no `{KIND}` header"))?;
    let key = key.ok_or("no record key")?;
    if kind == b"marker" {
        return Ok(ChangelogRecord { lsn, count, index, committed_at_ms, change: None });
    }
    let version: Version = u64_header(&header, VERSION)?;
    let kind = match kind {
        b"live" => ChangeKind::Live,
        b"tombstone" => ChangeKind::Tombstone,
        b"purged" => ChangeKind::Purged,
        other => return Err(format!("unknown kind `{}`", String::from_utf8_lossy(other))),
    };
    if index >= count {
        return Err(format!("change {index} of a group of {count}"));
    }
    let (view_len, rest) = match key {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return Err("a record key shorter than its view name's length".into()),
    };
    if view_len == 0 || rest.len() < view_len {
        return Err(format!("a record key of {} bytes naming a view of {view_len}", key.len()));
    }
    let view = std::str::from_utf8(&rest[..view_len])
        .map_err(|_| "a view name that is not UTF-8".to_owned())?;
    let record_key: Arc<[u8]> = Arc::from(&rest[view_len..]);
    let value = match kind {
        ChangeKind::Live => Some(Arc::from(value.ok_or("a live change without a value")?)),
        _ => None,
    };
    let change = FeedChange::new(Arc::from(view), record_key, version, kind, value);
    Ok(ChangelogRecord { lsn, count, index, committed_at_ms, change: Some(change) })
}

fn u64_header<'h>(header: &impl Fn(&str) -> Option<&'h [u8]>, name: &str) -> Result<u64, String> {
    let bytes = header(name).ok_or_else(|| format!("no `{name}` header"))?;
    let bytes: [u8; 8] =
        bytes.try_into().map_err(|_| format!("header `{name}` of {} bytes, not 8", bytes.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn u32_header<'h>(header: &impl Fn(&str) -> Option<&'h [u8]>, name: &str) -> Result<u32, String> {
    let bytes = header(name).ok_or_else(|| format!("no `{name}` header"))?;
    let bytes: [u8; 4] =
        bytes.try_into().map_err(|_| format!("header `{name}` of {} bytes, not 4", bytes.len()))?;
    Ok(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&str, Vec<u8>)]) -> impl Fn(&str) -> Option<&'a [u8]> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_slice())
    }

    fn change_headers(kind: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (LSN, 9u64.to_be_bytes().to_vec()),
            (COUNT, 2u32.to_be_bytes().to_vec()),
            (INDEX, 1u32.to_be_bytes().to_vec()),
            (AT, 5u64.to_be_bytes().to_vec()),
            (VERSION, 3u64.to_be_bytes().to_vec()),
            (KIND, kind.as_bytes().to_vec()),
        ]
    }

    #[test]
    fn a_live_change_round_trips() {
        let key = record_key("users", &[1, 2, 3]);
        let pairs = change_headers("live");
        let record = decode_record(Some(&key), Some(b"value"), headers(&pairs));
        let change = FeedChange::new(
            Arc::from("users"),
            Arc::from(&[1u8, 2, 3][..]),
            3,
            ChangeKind::Live,
            Some(Arc::from(&b"value"[..])),
        );
        assert_eq!(
            record,
            Ok(ChangelogRecord {
                lsn: Lsn::new(9),
                count: 2,
                index: 1,
                committed_at_ms: 5,
                change: Some(change)
            })
        );
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        let key = record_key("users", &[1]);
        let pairs = change_headers("sideways");
        let err = decode_record(Some(&key), None, headers(&pairs));
        assert!(err.is_err_and(|e| e.contains("sideways")));
        let pairs = change_headers("live");
        let err = decode_record(Some(&key), None, headers(&pairs));
        assert!(err.is_err_and(|e| e.contains("without a value")));
        let err = decode_record(Some(&[0, 9, b'a']), Some(b""), headers(&pairs));
        assert!(err.is_err_and(|e| e.contains("naming a view")));
        let err = decode_record(Some(&key), Some(b""), headers(&pairs[1..]));
        assert!(err.is_err_and(|e| e.contains("vs.lsn")));
    }
}
