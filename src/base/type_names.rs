//! Type names as the store records them: `std::any::type_name` without module paths,
//! so that moving a type to another module does not change a view's identity.

/// `name` with every path segment stripped and generics kept:
/// `app::model::Profile` → `Profile`, `alloc::vec::Vec<app::m::Item>` → `Vec<Item>`,
/// `(u64, alloc::string::String)` → `(u64, String)`.
pub(crate) fn strip_paths(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // Where the identifier being written started in `out`: a `::` after it drops it.
    let mut segment = 0;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment);
            continue;
        }
        let identifier = c.is_alphanumeric() || c == '_';
        out.push(c);
        if !identifier {
            segment = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_paths;

    #[test]
    fn paths_are_stripped_and_generics_kept() {
        assert_eq!(strip_paths("app::model::Profile"), "Profile");
        assert_eq!(strip_paths("alloc::vec::Vec<app::m::Item>"), "Vec<Item>");
        assert_eq!(strip_paths("(u64, alloc::string::String)"), "(u64, String)");
        assert_eq!(
            strip_paths("std::collections::HashMap<a::K, b::c::V<x::Y>>"),
            "HashMap<K, V<Y>>"
        );
        assert_eq!(strip_paths("&'static str"), "&'static str");
        assert_eq!(strip_paths("[core::option::Option<u8>; 4]"), "[Option<u8>; 4]");
        assert_eq!(strip_paths("u64"), "u64");
        assert_eq!(strip_paths("Profile"), "Profile");
    }
}
