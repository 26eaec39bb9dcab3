//! The names views, indexes and sources may have.

use crate::base::error::{Error, Result};
use crate::base::limits::MAX_SOURCES;

/// The longest view or index name, in bytes.
const MAX_NAME_BYTES: usize = 200;

/// Whether `name` can name a view or an index: 1 to 200 bytes, no control characters,
/// and none of `forbidden`.
fn valid_name(name: &str, forbidden: &[char]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.chars().any(|c| c.is_control() || forbidden.contains(&c))
}

/// Checks a view name: 1 to 200 bytes, no control characters.
pub(crate) fn check_view_name(name: &str) -> Result<()> {
    if !valid_name(name, &[]) {
        return Err(Error::InvalidViewName { view: name.to_owned() });
    }
    Ok(())
}

/// Checks a view's index names: 1 to 200 bytes, no control characters, no `/` (the
/// separator of view and index in the file's index list), and distinct.
pub(crate) fn check_index_names<'a>(
    view: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !valid_name(name, &['/']) {
            return Err(Error::InvalidIndex {
                view: view.to_owned(),
                index: name.to_owned(),
                reason: "names are 1 to 200 bytes without control characters or '/'".into(),
                key: None,
            });
        }
        if !seen.insert(name) {
            return Err(Error::InvalidIndex {
                view: view.to_owned(),
                index: name.to_owned(),
                reason: "two indexes of the view have this name".into(),
                key: None,
            });
        }
    }
    Ok(())
}

/// Checks a source's name, as positions and projectors give it: 1 to 200 bytes, no
/// control characters.
pub(crate) fn check_source_name(name: &str) -> Result<()> {
    if !valid_name(name, &[]) {
        return Err(Error::InvalidPosition {
            source: name.to_owned(),
            reason: "source names are 1 to 200 bytes without control characters".into(),
        });
    }
    Ok(())
}

/// Checks a view's source names: 1 to 200 bytes, no control characters, distinct, and
/// at most `MAX_SOURCES` of them.
pub(crate) fn check_source_names(view: &str, names: &[&str]) -> Result<()> {
    let invalid = |name: &str, reason: String| Error::InvalidSource {
        view: view.to_owned(),
        source_name: name.to_owned(),
        reason,
    };
    if let Some(extra) = names.get(MAX_SOURCES) {
        let reason = format!("a view has at most {MAX_SOURCES} sources; {} given", names.len());
        return Err(invalid(extra, reason));
    }
    for (i, name) in names.iter().enumerate() {
        if !valid_name(name, &[]) {
            let reason = "names are 1 to 200 bytes without control characters".into();
            return Err(invalid(name, reason));
        }
        if names[..i].contains(name) {
            return Err(invalid(name, "the view lists this source twice".into()));
        }
    }
    Ok(())
}
