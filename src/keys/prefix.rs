//! What a scan by prefix selects: the leading fields of a composite key
//! ([`CompositeKey`]), or the start of a string key ([`string_start`]).

use super::key::encode_key;

/// A key made of fields, whose leading fields a scan can select by: what `prefix`
/// ([`View::prefix`](crate::View::prefix), [`ViewSnapshot::prefix`](crate::ViewSnapshot::prefix),
/// [`IndexView::prefix`](crate::IndexView::prefix)) requires of the key type.
///
/// Implemented for tuples of 2 to 12 fields. A struct key encodes as its fields in
/// order, as a tuple does: implement this trait for it when scans should select by its
/// leading fields.
///
/// Keys of one field (strings, integers, byte strings, `Option`s, enums) do not
/// implement it: their only "leading field" is the whole key, so a prefix would be an
/// exact match. For the string keys that start with some text, use `starts_with`
/// ([`View::starts_with`](crate::View::starts_with)); for one key, `get`.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use viewstore::{CompositeKey, Store, ViewDef};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct PostKey {
///     user: u64,
///     post: u64,
/// }
/// impl CompositeKey for PostKey {}
///
/// const POSTS: ViewDef<PostKey, String> = ViewDef::new("posts");
/// # let dir = tempfile::tempdir()?;
/// # let store = Store::open(dir.path().join("s.redb"))?;
/// let posts = store.view(&POSTS)?;
/// posts.put(&PostKey { user: 7, post: 1 }, "hello".into(), 1)?;
/// posts.put(&PostKey { user: 8, post: 1 }, "other".into(), 1)?;
/// // The posts of user 7: the keys whose first field is 7.
/// let of_7 = posts.prefix(&7u64);
/// assert_eq!(of_7.len(), 1);
/// assert_eq!(of_7[0].0.post, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A key of one field does not compile:
///
/// ```compile_fail
/// # use viewstore::{Store, ViewDef};
/// # let dir = tempfile::tempdir()?;
/// # let store = Store::open(dir.path().join("s.redb"))?;
/// let names = store.view(&ViewDef::<String, u32>::new("names"))?;
/// names.prefix("ad"); // use `names.starts_with("ad")`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`prefix` selects by the leading fields of a composite key, and `{Self}` is not one",
    label = "not a composite key",
    note = "for the string keys that start with some text, use `starts_with`; for one key, `get`",
    note = "a struct key whose leading fields a prefix should select by can implement `viewstore::CompositeKey`"
)]
pub trait CompositeKey {}

/// `CompositeKey` for tuples of each of the given arities.
macro_rules! composite_tuples {
    ($(($($field:ident),+)),+ $(,)?) => {$(
        impl<$($field),+> CompositeKey for ($($field,)+) {}
    )+};
}

composite_tuples!(
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, L),
    (A, B, C, D, E, F, G, H, I, J, L, M),
);

/// The bytes that begin the encoding of every string starting with `start`, and of no
/// other string: `start`'s escaped bytes without the terminator.
///
/// A string encodes as its bytes with each 0x00 written 0x00 0xFF, then 0x00 0x00.
/// Each byte's code depends on that byte alone and no code begins another (a 0x00 is
/// always followed by 0xFF or ends the string), so an encoding begins with these bytes
/// exactly when the string begins with `start`.
pub(crate) fn string_start(start: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(start.len() + 2);
    encode_key(start, &mut out).ok()?;
    let escaped = out.len().checked_sub(2)?;
    out.truncate(escaped);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::string_start;
    use crate::keys::{encode_key, prefix_bounds};
    use std::ops::{Bound, RangeBounds};

    fn encoded(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(s, &mut out).expect("a string encodes");
        out
    }

    #[test]
    fn a_string_start_selects_exactly_the_strings_that_start_with_it() {
        let parts = ["", "\0", "\u{1}", "\u{ff}", "a", "é", "\u{10ffff}", "\0\0", "a\0b"];
        let mut strings = vec![String::new()];
        for a in parts {
            for b in parts {
                for c in ["", "\0", "z", "\u{ff}"] {
                    strings.push(format!("{a}{b}{c}"));
                }
            }
        }
        for start in &strings {
            let bytes = string_start(start).expect("a string encodes");
            let bounds = prefix_bounds(bytes.clone());
            for s in &strings {
                let key = encoded(s);
                let wanted = s.starts_with(start.as_str());
                assert_eq!(key.starts_with(&bytes), wanted, "{s:?} starts with {start:?}");
                assert_eq!(bounds.contains(&key), wanted, "{s:?} in the range of {start:?}");
            }
        }
        assert_eq!(prefix_bounds(Vec::new()), (Bound::Included(Vec::new()), Bound::Unbounded));
    }
}
