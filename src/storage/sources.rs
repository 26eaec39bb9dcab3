//! The per-source versions of a record of a view with sources, and their bytes.
//!
//! A view may declare named sources (`ViewDef::with_sources`); each of its records then
//! keeps one version per source instead of one version, and a tombstone also remembers
//! which source deleted it last. Source ids are positions in the declared list.
//!
//! Encoded as `[n u8][deleter u8, 0xFF for none][n × (present u8, version u64 LE)]`,
//! between a record's tag and its value bytes (`storage::format`).

use crate::base::limits::MAX_SOURCES;
use crate::base::version::Version;

/// The deleter byte of a record that has none (a live record).
const NO_DELETER: u8 = 0xFF;
/// The bytes of one source's entry: present, then the version.
const ENTRY: usize = 9;

/// One version per source (absent: the source never wrote the record), and the source
/// of the last delete when the record is a tombstone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceVersions {
    /// Indexed by source id.
    versions: Vec<Option<Version>>,
    deleter: Option<u8>,
}

impl SourceVersions {
    /// The version source `source` wrote the record at, `None` when it never did.
    pub(crate) fn get(&self, source: u8) -> Option<Version> {
        self.versions.get(usize::from(source)).copied().flatten()
    }

    /// Records that `source` wrote the record at `version`.
    pub(crate) fn set(&mut self, source: u8, version: Version) {
        let at = usize::from(source);
        if self.versions.len() <= at {
            self.versions.resize(at + 1, None);
        }
        self.versions[at] = Some(version);
    }

    /// The largest version of any source: the record's version as reads report it.
    pub(crate) fn latest(&self) -> Option<Version> {
        self.versions.iter().flatten().copied().max()
    }

    /// The source of the last delete, on a tombstone.
    pub(crate) fn deleter(&self) -> Option<u8> {
        self.deleter
    }

    pub(crate) fn set_deleter(&mut self, deleter: Option<u8>) {
        self.deleter = deleter;
    }

    /// The number of bytes `encode_into` appends.
    pub(crate) fn encoded_len(&self) -> usize {
        2 + ENTRY * self.versions.len()
    }

    /// Appends the encoding.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        // `set` takes a `u8` id, so there are never more than 256 entries; a view has
        // at most `MAX_SOURCES`.
        out.push(self.versions.len() as u8);
        out.push(self.deleter.unwrap_or(NO_DELETER));
        for version in &self.versions {
            out.push(u8::from(version.is_some()));
            out.extend_from_slice(&version.unwrap_or(0).to_le_bytes());
        }
    }

    /// Decodes the versions at the start of `bytes`; returns them and the bytes after
    /// them, or what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Self, &[u8]), String> {
        let Some((&[n, deleter], mut rest)) = bytes.split_first_chunk::<2>() else {
            return Err("record too short for its source header".into());
        };
        let n = usize::from(n);
        if n > MAX_SOURCES {
            return Err(format!("record with {n} sources; a view has at most {MAX_SOURCES}"));
        }
        if deleter != NO_DELETER && usize::from(deleter) >= n {
            return Err(format!("record deleted by source {deleter} of {n}"));
        }
        if rest.len() < ENTRY * n {
            return Err(format!("record too short for the versions of its {n} sources"));
        }
        let mut versions = Vec::with_capacity(n);
        for source in 0..n {
            let Some((&[present], tail)) = rest.split_first_chunk::<1>() else {
                return Err("record too short for its source versions".into());
            };
            let Some((version, tail)) = tail.split_first_chunk::<8>() else {
                return Err("record too short for its source versions".into());
            };
            let version = u64::from_le_bytes(*version);
            versions.push(match present {
                1 => Some(version),
                0 if version == 0 => None,
                0 => return Err(format!("source {source} is absent but has a version")),
                other => return Err(format!("source {source} has presence byte {other}")),
            });
            rest = tail;
        }
        if versions.iter().all(Option::is_none) {
            return Err("record with no source version".into());
        }
        let deleter = (deleter != NO_DELETER).then_some(deleter);
        Ok((SourceVersions { versions, deleter }, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::SourceVersions;

    #[test]
    fn versions_round_trip_and_keep_the_others() {
        let mut v = SourceVersions::default();
        assert_eq!((v.get(0), v.get(3), v.latest()), (None, None, None));
        v.set(2, 7);
        v.set(0, 9);
        v.set(2, 8);
        assert_eq!((v.get(0), v.get(1), v.get(2), v.latest()), (Some(9), None, Some(8), Some(9)));
        v.set_deleter(Some(2));
        let mut bytes = Vec::new();
        v.encode_into(&mut bytes);
        assert_eq!(bytes.len(), v.encoded_len());
        bytes.extend_from_slice(b"tail");
        let (back, rest) = SourceVersions::decode(&bytes).expect("decodes");
        assert_eq!((back, rest), (v, &b"tail"[..]));
    }

    #[test]
    fn malformed_versions_are_refused_with_a_reason() {
        let entry = |present: u8, version: u64| {
            let mut e = vec![present];
            e.extend_from_slice(&version.to_le_bytes());
            e
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "too short for its source header"),
            (vec![1], "too short for its source header"),
            (vec![65, 0xFF], "at most 64"),
            ([vec![1, 1], entry(1, 3)].concat(), "deleted by source 1 of 1"),
            (vec![2, 0xFF, 1, 0, 0], "too short"),
            ([vec![1, 0xFF], entry(2, 3)].concat(), "presence byte 2"),
            ([vec![1, 0xFF], entry(0, 3)].concat(), "absent but has a version"),
            ([vec![2, 0xFF], entry(0, 0), entry(0, 0)].concat(), "no source version"),
            (vec![0, 0xFF], "no source version"),
        ];
        for (bytes, reason) in cases {
            let err = SourceVersions::decode(&bytes).expect_err("malformed");
            assert!(err.contains(reason), "{bytes:?}: {err:?} should say {reason:?}");
        }
    }
}
