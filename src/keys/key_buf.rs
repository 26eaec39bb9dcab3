//! `KeyBuf`: an encoded key, stored inline when short; `KeyRef`: a key to look up.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, Hasher};

/// The longest key stored inline.
pub(crate) const INLINE: usize = 14;

/// Encoded key bytes, 16 bytes in all. Keys of up to 14 bytes (every integer key, pairs
/// of `u32`, strings of up to 12 bytes) live inline in the index slot, with no
/// allocation of their own; longer ones sit behind a thin pointer, with 32 bits of a
/// hash of their bytes beside it, so that comparing two different long keys almost
/// never follows the pointer. This keeps the slot of every resident record at 16 bytes.
#[derive(Clone)]
pub(crate) enum KeyBuf {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap { check: u32, bytes: Box<Box<[u8]>> },
}

const _: () = assert!(std::mem::size_of::<KeyBuf>() == 16);

/// The 32-bit check of a long key's bytes: the same for equal keys in every process.
fn check_of(bytes: &[u8]) -> u32 {
    // Only a filter before comparing bytes: a fixed seed is enough.
    foldhash::fast::FixedState::with_seed(0x005E_ED0F_1EE7).hash_one(bytes) as u32
}

impl KeyBuf {
    /// The key stored inline, when it is short enough; never allocates.
    #[inline]
    pub(crate) fn inline(bytes: &[u8]) -> Option<Self> {
        (bytes.len() <= INLINE).then(|| {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            KeyBuf::Inline { len: bytes.len() as u8, bytes: inline }
        })
    }

    #[inline]
    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        Self::inline(bytes).unwrap_or_else(|| KeyBuf::Heap {
            check: check_of(bytes),
            bytes: Box::new(bytes.into()),
        })
    }

    /// The key's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBuf::Heap { bytes, .. } => bytes,
        }
    }

    /// An inline key as its length and two overlapping words that cover its 14 bytes
    /// (zero-padded past the length), for hashing and comparing without a pass over
    /// bytes; `None` for a long key.
    #[inline]
    pub(crate) fn words(&self) -> Option<(u8, u64, u64)> {
        match self {
            KeyBuf::Inline { len, bytes } => Some((*len, head(bytes), tail(bytes))),
            KeyBuf::Heap { .. } => None,
        }
    }
}

/// Bytes 0 to 7 of an inline key, as a little-endian word.
#[inline]
fn head(bytes: &[u8; INLINE]) -> u64 {
    bytes.first_chunk().map_or(0, |w| u64::from_le_bytes(*w))
}

/// Bytes 6 to 13 of an inline key, as a little-endian word.
#[inline]
fn tail(bytes: &[u8; INLINE]) -> u64 {
    bytes.last_chunk().map_or(0, |w| u64::from_le_bytes(*w))
}

impl KeyBuf {}

/// The longest key a [`WideKey`] holds inline.
pub(crate) const WIDE_INLINE: usize = 30;

/// Encoded key bytes, 32 bytes in all: up to 30 bytes inline, longer ones one pointer
/// away. Secondary indexes key their resident entries with it: a lookup by a typical
/// string index key (an e-mail address, a user name, a slug) compares bytes in the
/// slot it has already loaded rather than behind a pointer, and copying a tree node of
/// such keys (index key and primary key together, for a multi index) allocates nothing.
/// Equal bytes always take the same form, so equality compares fields.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum WideKey {
    Inline { len: u8, bytes: [u8; WIDE_INLINE] },
    Long(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<WideKey>() == 32);

/// The bytes of an inline [`WideKey`] as four little-endian words (zero past them),
/// each one load.
#[inline]
fn wide_words(bytes: &[u8; WIDE_INLINE]) -> [u64; 4] {
    let at = |i: usize| {
        bytes.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()).map_or(0, u64::from_le_bytes)
    };
    [at(0), at(8), at(16), at(WIDE_INLINE - 8) >> (8 * (32 - WIDE_INLINE))]
}

impl Hash for WideKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        SlotKey::as_bytes(self).hash(state);
    }
}

impl Borrow<[u8]> for WideKey {
    fn borrow(&self) -> &[u8] {
        SlotKey::as_bytes(self)
    }
}

impl PartialOrd for WideKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WideKey {
    fn cmp(&self, other: &Self) -> Ordering {
        SlotKey::as_bytes(self).cmp(SlotKey::as_bytes(other))
    }
}

impl WideKey {
    /// The key's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        SlotKey::as_bytes(self)
    }

    /// The key of bytes `a` then `b`, with no intermediate allocation.
    pub(crate) fn concat(a: &[u8], b: &[u8]) -> Self {
        let len = a.len() + b.len();
        if len <= WIDE_INLINE {
            let mut inline = [0u8; WIDE_INLINE];
            inline[..a.len()].copy_from_slice(a);
            inline[a.len()..len].copy_from_slice(b);
            WideKey::Inline { len: len as u8, bytes: inline }
        } else {
            WideKey::Long([a, b].concat().into_boxed_slice())
        }
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        Self::concat(bytes, &[])
    }
}

/// A key stored in a slot of a point index.
pub(crate) trait SlotKey: Clone + Eq + Hash {
    /// The key's bytes.
    fn as_bytes(&self) -> &[u8];
    /// See [`KeyBuf::words`].
    fn words(&self) -> Option<(u8, u64, u64)>;
    /// Whether `probe` stands for this key.
    fn matched_by(&self, probe: &KeyRef<'_>) -> bool;
    /// Whether this key is the encoding of `s`, a string holding no zero byte: the
    /// string, then the terminator 0x00 0x00.
    #[inline]
    fn matched_by_string(&self, s: &[u8]) -> bool {
        encodes_string(self.as_bytes(), s)
    }
}

/// Whether `bytes` are the encoding of `s`, a string holding no zero byte.
fn encodes_string(bytes: &[u8], s: &[u8]) -> bool {
    bytes.strip_suffix(&[0, 0]).is_some_and(|bytes| bytes == s)
}

impl SlotKey for KeyBuf {
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        KeyBuf::as_bytes(self)
    }
    #[inline]
    fn words(&self) -> Option<(u8, u64, u64)> {
        KeyBuf::words(self)
    }
    #[inline]
    fn matched_by(&self, probe: &KeyRef<'_>) -> bool {
        probe.matches(self)
    }
}

impl SlotKey for WideKey {
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            WideKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            WideKey::Long(bytes) => bytes,
        }
    }
    #[inline]
    fn words(&self) -> Option<(u8, u64, u64)> {
        match self {
            // Bytes past `len` are zero, as in a `KeyBuf`: the same words.
            WideKey::Inline { len, bytes } if usize::from(*len) <= INLINE => {
                let short = bytes.first_chunk::<INLINE>()?;
                Some((*len, head(short), tail(short)))
            }
            _ => None,
        }
    }
    #[inline]
    fn matched_by(&self, probe: &KeyRef<'_>) -> bool {
        match (probe, self) {
            (KeyRef::Inline { len, head: h, tail: t }, WideKey::Inline { len: l, bytes }) => {
                let Some(short) = bytes.first_chunk::<INLINE>() else { return false };
                len == l && *h == head(short) && *t == tail(short)
            }
            (KeyRef::Inline { .. }, _) => false,
            (KeyRef::Words { len, words }, WideKey::Inline { len: l, bytes }) => {
                // Past the length both are zero, so whole words compare.
                let stored = wide_words(bytes);
                *len == usize::from(*l)
                    && words.iter().zip(stored).fold(0, |diff, (w, s)| diff | (w ^ s)) == 0
            }
            (_, WideKey::Inline { len, bytes }) => {
                bytes.get(..usize::from(*len)).is_some_and(|b| probe.matches_long(b))
            }
            (_, WideKey::Long(bytes)) => probe.matches_long(bytes),
        }
    }
    #[inline]
    fn matched_by_string(&self, s: &[u8]) -> bool {
        match self {
            // Past the string, both are zero (the terminator, then padding): whole
            // words compare.
            WideKey::Inline { len, bytes } => {
                let stored = wide_words(bytes);
                usize::from(*len) == s.len() + 2
                    && (0..stored.len()).fold(0, |diff, i| diff | (stored[i] ^ word_at(s, i))) == 0
            }
            WideKey::Long(bytes) => encodes_string(bytes, s),
        }
    }
}

/// A key to look up: a short key as the words [`KeyBuf::words`] gives, a long one as
/// borrowed bytes or as its little-endian 64-bit words (zero past `len`), as a
/// [`StackKey`](super::StackKey) holds it.
pub(crate) enum KeyRef<'a> {
    Inline { len: u8, head: u64, tail: u64 },
    Long(&'a [u8]),
    Words { len: usize, words: &'a [u64] },
}

impl<'a> KeyRef<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        match KeyBuf::inline(bytes).as_ref().and_then(KeyBuf::words) {
            Some((len, head, tail)) => KeyRef::Inline { len, head, tail },
            None => KeyRef::Long(bytes),
        }
    }

    /// The probe for a stored key.
    #[cfg(test)]
    #[inline]
    pub(crate) fn of(key: &'a KeyBuf) -> Self {
        match key {
            KeyBuf::Inline { len, bytes } => {
                KeyRef::Inline { len: *len, head: head(bytes), tail: tail(bytes) }
            }
            KeyBuf::Heap { bytes, .. } => KeyRef::Long(bytes),
        }
    }

    /// Whether `key` holds the same bytes.
    #[inline]
    pub(crate) fn matches(&self, key: &KeyBuf) -> bool {
        match (self, key) {
            (KeyRef::Inline { len, head: h, tail: t }, KeyBuf::Inline { len: l, bytes }) => {
                len == l && *h == head(bytes) && *t == tail(bytes)
            }
            // The bucket's tags have already ruled out almost every other key, so
            // the bytes are compared directly, with no check to compute for the probe.
            (_, KeyBuf::Heap { bytes, .. }) => self.matches_long(bytes),
            _ => false,
        }
    }

    /// Whether this long probe stands for the key `bytes` (longer than the inline
    /// limit). Words are compared as words, read whole from where they were written.
    /// Out of line, to keep short-key reads small.
    #[inline(never)]
    pub(crate) fn matches_long(&self, bytes: &[u8]) -> bool {
        match self {
            KeyRef::Inline { .. } => false,
            KeyRef::Long(probe) => *probe == bytes,
            KeyRef::Words { len, words } => {
                *len == bytes.len()
                    && words.iter().enumerate().all(|(i, w)| *w == word_at(bytes, i))
            }
        }
    }
}

impl Borrow<[u8]> for KeyBuf {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for KeyBuf {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // Inline bytes past `len` are always zero, so whole arrays compare, as two
            // words: no call to compare slices.
            (KeyBuf::Inline { len: a, bytes: x }, KeyBuf::Inline { len: b, bytes: y }) => {
                a == b && head(x) == head(y) && tail(x) == tail(y)
            }
            (KeyBuf::Heap { check: a, bytes: x }, KeyBuf::Heap { check: b, bytes: y }) => {
                a == b && x == y
            }
            // A key's length decides its form.
            _ => false,
        }
    }
}

impl Eq for KeyBuf {}

impl PartialOrd for KeyBuf {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyBuf {
    /// The order of the keys' bytes. Two inline keys compare as two big-endian words
    /// each (their zero-padded bytes), then by length: keys that tie on the words are
    /// equal up to the shorter one's length with only zero bytes after it in the
    /// longer, which is then the greater, as its bytes order.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyBuf::Inline { len: a, bytes: x }, KeyBuf::Inline { len: b, bytes: y }) => {
                let words = |k: &[u8; INLINE]| {
                    let head = k.first_chunk().map_or(0, |w| u64::from_be_bytes(*w));
                    let tail = k.last_chunk().map_or(0, |w| u64::from_be_bytes(*w));
                    (head, tail)
                };
                words(x).cmp(&words(y)).then(a.cmp(b))
            }
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

impl Hash for KeyBuf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::render_bytes(self.as_bytes()))
    }
}

/// Whether `bytes` holds a zero byte, eight bytes at a time: cheaper than a general
/// byte search for the short strings keys are made of, and made of loads only.
#[inline]
pub(crate) fn has_zero(bytes: &[u8]) -> bool {
    let (full, rest) = bytes.as_chunks::<8>();
    let mut zero = full.iter().fold(0, |zero, c| zero | zero_bytes(u64::from_le_bytes(*c)));
    if !rest.is_empty() {
        // The last eight bytes overlap those already checked, which changes nothing.
        zero |= match bytes.last_chunk::<8>() {
            Some(last) => zero_bytes(u64::from_le_bytes(*last)),
            None => u64::from(rest.contains(&0)),
        };
    }
    zero != 0
}

/// Nonzero when `word` has a zero byte (the high bit of the first such byte is set).
#[inline]
pub(crate) fn zero_bytes(word: u64) -> u64 {
    const LOW: u64 = u64::MAX / 0xFF;
    const HIGH: u64 = LOW << 7;
    word.wrapping_sub(LOW) & !word & HIGH
}

/// The `i`th little-endian 64-bit word of `bytes`, zero past their end, read with
/// whole-word loads only (the last, partial word from the final eight bytes, shifted).
#[inline]
pub(crate) fn word_at(bytes: &[u8], i: usize) -> u64 {
    let start = 8 * i;
    if let Some(chunk) = bytes.get(start..start + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        return u64::from_le_bytes(chunk);
    }
    let rest = bytes.len().saturating_sub(start);
    if rest == 0 {
        return 0;
    }
    match bytes.last_chunk::<8>() {
        Some(last) => u64::from_le_bytes(*last) >> (8 * (8 - rest)),
        None => bytes[start..].iter().rev().fold(0, |w, &b| w << 8 | u64::from(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::{INLINE, KeyBuf, KeyRef, SlotKey, WIDE_INLINE, WideKey};

    /// Whether a stored key matches a string.
    type Matcher = Box<dyn Fn(&[u8]) -> bool>;

    #[test]
    fn stored_keys_match_exactly_the_string_they_encode() {
        // Lookups reach this comparison only on a hash match, so it is tested here
        // against keys that differ in one byte, in length, or in the terminator.
        for n in 0..80usize {
            let s: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let mut encoded = s.clone();
            encoded.extend_from_slice(&[0, 0]);
            let keys = |bytes: &[u8]| -> [Matcher; 2] {
                let (buf, wide) = (KeyBuf::from_slice(bytes), WideKey::from_slice(bytes));
                [
                    Box::new(move |s| buf.matched_by_string(s)),
                    Box::new(move |s| wide.matched_by_string(s)),
                ]
            };
            for (kind, matches) in keys(&encoded).iter().enumerate() {
                assert!(matches(&s), "length {n}, key kind {kind}");
                for p in 0..n {
                    let mut other = s.clone();
                    other[p] ^= 1;
                    assert!(!matches(&other), "length {n}, byte {p}, key kind {kind}");
                }
                assert!(!matches(&[s.as_slice(), b"a"].concat()), "length {n} + 1");
                if n > 0 {
                    assert!(!matches(&s[..n - 1]), "length {n} - 1");
                }
            }
            // Same length, but not the terminator at the end.
            let mut unterminated = s.clone();
            unterminated.extend_from_slice(&[0, 1]);
            for matches in keys(&unterminated) {
                assert!(!matches(&s), "length {n}, not terminated");
            }
        }
    }

    #[test]
    fn concatenated_wide_keys_equal_the_key_of_both_parts() {
        let bytes: Vec<u8> = (1..=40).collect();
        for split in 0..=20 {
            for end in split..=bytes.len() {
                let (a, b) = bytes[..end].split_at(split);
                let joined = WideKey::concat(a, b);
                assert!(joined == WideKey::from_slice(&bytes[..end]), "{split} {end}");
                assert_eq!(joined.as_bytes(), &bytes[..end]);
            }
        }
    }

    #[test]
    fn inline_and_heap_keys_compare_by_bytes() {
        let short = KeyBuf::from_slice(b"abc");
        let long = KeyBuf::from_slice(&[b'a'; 40]);
        assert!(matches!(short, KeyBuf::Inline { .. }));
        assert!(matches!(long, KeyBuf::Heap { .. }));
        assert_eq!(long.as_bytes().len(), 40);
        assert!(long < short);
        assert_eq!(short, KeyBuf::from_slice(b"abc"));
        assert_eq!(long, KeyBuf::from_slice(&[b'a'; 40]));
        assert_ne!(long, KeyBuf::from_slice(&[b'a'; 41]));
    }

    #[test]
    fn keys_order_as_their_bytes() {
        // Every key of up to INLINE + 2 bytes over {0, 1, 0xff} at a few lengths, and
        // prefixes of each other with zero bytes after them: the order of KeyBuf is the
        // order of the bytes.
        let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
        for len in [1, 2, 7, 8, 9, 13, INLINE, INLINE + 1, INLINE + 2] {
            for fill in [0u8, 1, 0xff] {
                for at in [0, len / 2, len - 1] {
                    let mut key = vec![fill; len];
                    key[at] = fill.wrapping_add(1);
                    keys.push(key.clone());
                    key[at] = fill;
                    keys.push(key);
                }
            }
        }
        for a in &keys {
            for b in &keys {
                let (x, y) = (KeyBuf::from_slice(a), KeyBuf::from_slice(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn probes_match_exactly_the_same_bytes() {
        let keys: Vec<Vec<u8>> = (0..=INLINE + 3)
            .flat_map(|n| [vec![0u8; n], vec![7u8; n], (0..n as u8).collect()])
            .collect();
        for a in &keys {
            let probe = KeyRef::new(a);
            for b in &keys {
                assert_eq!(probe.matches(&KeyBuf::from_slice(b)), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn wide_keys_match_exactly_the_same_bytes() {
        let keys: Vec<Vec<u8>> = (0..=WIDE_INLINE + 3)
            .flat_map(|n| [vec![0u8; n], vec![7u8; n], (0..n as u8).collect()])
            .collect();
        for a in &keys {
            let probe = KeyRef::new(a);
            for b in &keys {
                let wide = WideKey::from_slice(b);
                assert_eq!(wide.matched_by(&probe), a == b, "{a:?} vs {b:?}");
                assert_eq!(wide.as_bytes(), b.as_slice());
                // The same words as a `KeyBuf` of the same bytes, so the same hash.
                assert_eq!(wide.words(), KeyBuf::from_slice(b).words(), "{b:?}");
            }
        }
    }

    #[test]
    fn words_tell_lengths_apart() {
        // Trailing zero bytes must not make two inline keys hash the same words.
        let a = KeyBuf::from_slice(&[1, 0]);
        let b = KeyBuf::from_slice(&[1]);
        assert_ne!(a.words(), b.words());
        assert!(KeyBuf::from_slice(&[0; INLINE + 1]).words().is_none());
    }
}
