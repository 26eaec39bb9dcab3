//! Keys that are one string without zero bytes, read where they lie.
//!
//! Such a key encodes as its bytes followed by the terminator 0x00 0x00, so that a
//! lookup can hash and compare the string itself instead of encoding it first. Any key
//! type qualifies when it serializes as one string: `String`, `str`, `Box<str>`, a
//! newtype of one of them. Which one it is shows only once serde calls
//! `serialize_str`, so the string is handed to a closure from there: the lookup runs
//! on the caller's own bytes, never copied.

use super::key_buf::has_zero;
use serde::ser::{self, Impossible, Serialize};
use std::fmt;

/// Runs `f` on the string that `key` serializes as, when it serializes as one string
/// holding no zero byte. `None`, and `f` not run, for any other key.
///
/// Inlined: for a key type that never serializes as a string, nothing of it is left.
#[inline]
pub(crate) fn with_plain_string<Q, R>(key: &Q, f: impl FnOnce(&str) -> R) -> Option<R>
where
    Q: Serialize + ?Sized,
{
    let mut plain = Plain { f: Some(f), out: None };
    key.serialize(&mut plain).ok()?;
    plain.out
}

/// The serializer of [`with_plain_string`]: it accepts one string (inside newtypes)
/// and refuses everything else.
struct Plain<F, R> {
    f: Option<F>,
    out: Option<R>,
}

/// The key is not one string without zero bytes.
#[derive(Debug)]
struct NotPlain;

impl fmt::Display for NotPlain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a plain string")
    }
}

impl std::error::Error for NotPlain {}

impl ser::Error for NotPlain {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotPlain
    }
}

/// Serializer methods that refuse their value.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {$(
        #[inline]
        fn $method(self, $(_: $arg),*) -> Result<(), NotPlain> {
            Err(NotPlain)
        }
    )*};
}

/// Serializer methods that refuse to start a compound value.
macro_rules! refuse_compound {
    ($($method:ident($($arg:ty),*) -> $out:ident),* $(,)?) => {$(
        #[inline]
        fn $method(self, $(_: $arg),*) -> Result<Self::$out, NotPlain> {
            Err(NotPlain)
        }
    )*};
}

impl<F: FnOnce(&str) -> R, R> ser::Serializer for &mut Plain<F, R> {
    type Ok = ();
    type Error = NotPlain;
    type SerializeSeq = Impossible<(), NotPlain>;
    type SerializeTuple = Impossible<(), NotPlain>;
    type SerializeTupleStruct = Impossible<(), NotPlain>;
    type SerializeTupleVariant = Impossible<(), NotPlain>;
    type SerializeMap = Impossible<(), NotPlain>;
    type SerializeStruct = Impossible<(), NotPlain>;
    type SerializeStructVariant = Impossible<(), NotPlain>;

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), NotPlain> {
        if has_zero(v.as_bytes()) {
            return Err(NotPlain);
        }
        let f = self.f.take().ok_or(NotPlain)?;
        self.out = Some(f(v));
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), NotPlain> {
        // A newtype encodes as its content.
        value.serialize(self)
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), NotPlain> {
        Err(NotPlain)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), NotPlain> {
        Err(NotPlain)
    }

    refuse_compound!(
        serialize_seq(Option<usize>) -> SerializeSeq,
        serialize_tuple(usize) -> SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> SerializeTupleVariant,
        serialize_map(Option<usize>) -> SerializeMap,
        serialize_struct(&'static str, usize) -> SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> SerializeStructVariant,
    );

    fn is_human_readable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::with_plain_string;

    fn plain<Q: serde::Serialize + ?Sized>(key: &Q) -> Option<String> {
        with_plain_string(key, str::to_owned)
    }

    #[derive(serde::Serialize)]
    struct Email(String);

    #[test]
    fn only_one_string_without_zero_bytes_is_plain() {
        assert_eq!(plain(&"ab".to_string()).as_deref(), Some("ab"));
        assert_eq!(plain("ab").as_deref(), Some("ab"));
        assert_eq!(plain(&String::new()).as_deref(), Some(""));
        assert_eq!(plain(&Box::<str>::from("é")).as_deref(), Some("é"));
        assert_eq!(plain(&Email("a@b".into())).as_deref(), Some("a@b"));
        for n in 1..40 {
            for at in [0, n / 2, n - 1] {
                let mut s = "x".repeat(n);
                s.replace_range(at..=at, "\0");
                assert_eq!(plain(&s), None, "{n} {at}");
                assert_eq!(plain(s.as_str()), None, "{n} {at}");
            }
        }
        assert_eq!(plain(&7u64), None);
        assert_eq!(plain(&("a".to_string(), 1u8)), None);
        assert_eq!(plain(&Some("a".to_string())), None);
        assert_eq!(plain(b"ab".as_slice()), None);
        assert_eq!(plain(&vec!["a".to_string()]), None);
    }
}
