//! Sorting helpers shared by the writer (table writes) and the read layer (loading).

/// `entries` in key order, keeping of each key only its last entry in the order given.
pub(crate) fn last_of_each_key<K: Ord, T>(mut entries: Vec<(K, T)>) -> Vec<(K, T)> {
    // A stable sort keeps each key's entries in the order they came.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut last: Vec<(K, T)> = Vec::with_capacity(entries.len());
    for entry in entries {
        match last.last_mut() {
            Some(previous) if previous.0 == entry.0 => *previous = entry,
            _ => last.push(entry),
        }
    }
    last
}
