//! Key sets for tests of the key paths.

/// For each length from 0 to `lengths - 1`, a string of that many letters, and the same
/// letters with a `!` appended and the middle byte replaced by a zero byte: strings
/// with and without zero bytes at every length, which the string fast path of lookups
/// treats differently.
pub fn strings_with_and_without_zero_bytes(lengths: usize) -> Vec<String> {
    (0..lengths)
        .flat_map(|n| {
            let plain: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let mut zeroed = format!("{plain}!");
            zeroed.replace_range(n / 2..=n / 2, "\0");
            [plain, zeroed]
        })
        .collect()
}
