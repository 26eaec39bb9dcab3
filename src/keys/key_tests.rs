//! Key encoding: stack keys and word reads.

use super::{StackKey, encode_key, encode_key_on_stack};
use crate::keys::key_buf::has_zero;
use crate::keys::{KeyBuf, KeyRef, SlotKey, WideKey};

#[test]
fn has_zero_agrees_with_a_byte_search() {
    for len in 0..40usize {
        let clean = vec![0x41u8; len];
        assert!(!has_zero(&clean), "length {len}");
        for at in 0..len {
            let mut bytes = clean.clone();
            bytes[at] = 0;
            assert!(has_zero(&bytes), "length {len}, zero at {at}");
            // Bytes whose high bit is set must not look like zeros.
            bytes[at] = 0x80;
            assert!(!has_zero(&bytes), "length {len}, 0x80 at {at}");
        }
    }
}

#[test]
fn word_at_reads_little_endian_words_zero_padded() {
    let bytes: Vec<u8> = (1..=40).collect();
    for len in 0..=bytes.len() {
        let slice = &bytes[..len];
        for i in 0..7 {
            let mut word = [0u8; 8];
            for (j, b) in word.iter_mut().enumerate() {
                *b = slice.get(8 * i + j).copied().unwrap_or(0);
            }
            assert_eq!(crate::keys::word_at(slice, i), u64::from_le_bytes(word), "{len} {i}");
        }
    }
}

#[test]
fn strings_with_zero_bytes_encode_the_same_on_the_stack() {
    for n in 1..60usize {
        for at in [0, n / 2, n - 1] {
            let mut key: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            key.replace_range(at..=at, "\0");
            let mut heap = Vec::new();
            encode_key(&key, &mut heap).expect("encodes");
            let mut stack = StackKey::new();
            encode_key_on_stack(&key, &mut stack).expect("encodes");
            stack.with_bytes(|bytes| assert_eq!(bytes, heap.as_slice(), "{n} {at}"));
            assert!(WideKey::from_slice(&heap).matched_by(&stack.probe()), "{n} {at}");
            assert!(stack.probe().matches(&KeyBuf::from_slice(&heap)), "{n} {at}");
        }
    }
}

#[test]
fn strings_of_every_length_probe_their_stored_forms() {
    for n in 0..80usize {
        let key: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let mut heap = Vec::new();
        encode_key(&key, &mut heap).expect("encodes");
        let mut stack = StackKey::new();
        encode_key_on_stack(&key, &mut stack).expect("encodes");
        stack.with_bytes(|bytes| assert_eq!(bytes, heap.as_slice(), "length {n}"));
        assert!(stack.probe().matches(&KeyBuf::from_slice(&heap)), "length {n}");
        assert!(WideKey::from_slice(&heap).matched_by(&stack.probe()), "length {n}");
        // A different last byte, or one byte more, never matches.
        if n > 0 {
            let mut other = heap.clone();
            other[n - 1] ^= 1;
            assert!(!WideKey::from_slice(&other).matched_by(&stack.probe()), "length {n}");
            assert!(!stack.probe().matches(&KeyBuf::from_slice(&other)), "length {n}");
        }
        let mut longer = heap.clone();
        longer.push(1);
        assert!(!WideKey::from_slice(&longer).matched_by(&stack.probe()), "length {n}");
    }
}

#[test]
fn stack_encoding_equals_heap_encoding_at_every_length() {
    for n in 0..200usize {
        let key = (n as u32, "x".repeat(n), vec![0u8; n % 7]);
        let mut heap = Vec::new();
        encode_key(&key, &mut heap).expect("encodes");
        let mut stack = StackKey::new();
        encode_key_on_stack(&key, &mut stack).expect("encodes");
        stack.with_bytes(|bytes| assert_eq!(bytes, heap.as_slice(), "length {n}"));
        let stored = KeyBuf::from_slice(&heap);
        assert!(stack.probe().matches(&stored), "length {n}");
        assert!(KeyRef::new(&heap).matches(&stored), "length {n}");
    }
}

fn assert_same<K: serde::Serialize + std::fmt::Debug>(key: &K) {
    let mut heap = Vec::new();
    encode_key(key, &mut heap).expect("encodes");
    let mut stack = StackKey::new();
    encode_key_on_stack(key, &mut stack).expect("encodes");
    stack.with_bytes(|bytes| assert_eq!(bytes, heap.as_slice(), "{key:?}"));
    let stored = KeyBuf::from_slice(&heap);
    assert!(stack.probe().matches(&stored), "{key:?}");
    assert!(KeyRef::of(&stored).matches(&stored), "{key:?}");
    // A key one byte longer or different never matches.
    let mut other = heap.clone();
    other.push(0);
    assert!(!stack.probe().matches(&KeyBuf::from_slice(&other)), "{key:?}");
    let mut other = heap.clone();
    if let Some(first) = other.first_mut() {
        *first ^= 1;
        assert!(!stack.probe().matches(&KeyBuf::from_slice(&other)), "{key:?}");
    }
}

#[derive(serde::Serialize, Debug)]
enum Kind {
    A,
    B(u16),
    C { x: i8, y: char },
}

#[test]
fn stack_encoding_of_every_integer_width_and_shape() {
    for v in [0u64, 1, 255, 256, u64::MAX, 0x0102_0304_0506_0708] {
        assert_same(&v);
        assert_same(&(v as u8));
        assert_same(&(v as u16));
        assert_same(&(v as u32));
        assert_same(&u128::from(v));
        assert_same(&(v as i8));
        assert_same(&(v as i16));
        assert_same(&(v as i32));
        assert_same(&v.cast_signed());
        assert_same(&i128::from(v));
        assert_same(&(v as u32, v as u16, v as u8));
        assert_same(&(v as u32, v));
        assert_same(&(v, v as u32, true));
        assert_same(&Some(v as u16));
    }
    assert_same(&'x');
    assert_same(&'\u{10FFFF}');
    assert_same(&None::<u8>);
    assert_same(&Kind::A);
    assert_same(&Kind::B(7));
    assert_same(&Kind::C { x: -1, y: 'q' });
    assert_same(&());
    assert_same(&"");
    assert_same(&"a\0b");
    assert_same(&vec![1u8, 0, 2]);
}
