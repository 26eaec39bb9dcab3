//! `KeyBuf`: an encoded key, stored inline when short.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

const INLINE: usize = 14;

/// Encoded key bytes, 16 bytes in all. Keys of up to 14 bytes (every integer key, pairs
/// of `u32`, strings of up to 12 bytes) live inline in the index slot, with no
/// allocation of their own; longer ones sit behind a thin pointer, which keeps the slot
/// of every resident record at 16 bytes instead of 24.
#[derive(Clone)]
pub(crate) enum KeyBuf {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<Box<[u8]>>),
}

const _: () = assert!(std::mem::size_of::<KeyBuf>() == 16);

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
        if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            KeyBuf::Inline { len: bytes.len() as u8, bytes: inline }
        } else {
            KeyBuf::Heap(Box::new(bytes.into()))
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBuf::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for KeyBuf {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for KeyBuf {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // Inline bytes past `len` are always zero, so whole arrays compare: a few
            // word compares instead of a call to compare slices.
            (KeyBuf::Inline { len: a, bytes: x }, KeyBuf::Inline { len: b, bytes: y }) => {
                a == b && x == y
            }
            _ => self.as_bytes() == other.as_bytes(),
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
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::KeyBuf;

    #[test]
    fn inline_and_heap_keys_compare_by_bytes() {
        let short = KeyBuf::from_slice(b"abc");
        let long = KeyBuf::from_slice(&[b'a'; 40]);
        assert!(matches!(short, KeyBuf::Inline { .. }));
        assert!(matches!(long, KeyBuf::Heap(_)));
        assert_eq!(long.as_bytes().len(), 40);
        assert!(long < short);
        assert_eq!(short, KeyBuf::from_slice(b"abc"));
    }
}
