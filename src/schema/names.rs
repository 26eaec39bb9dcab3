//! The names views and indexes may have.

use crate::base::error::{Error, Result};

/// Checks a view name: 1 to 200 bytes, no control characters.
pub(crate) fn check_view_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidViewName { view: name.to_owned() });
    }
    Ok(())
}

/// Checks a view's index names: valid and distinct.
pub(crate) fn check_index_names<'a>(
    view: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !crate::schema::names::valid_index_name(name) {
            return Err(Error::InvalidIndex {
                view: view.to_owned(),
                index: name.to_owned(),
                reason: "names are 1 to 200 bytes without control characters or '/'".into(),
            });
        }
        if !seen.insert(name) {
            return Err(Error::InvalidIndex {
                view: view.to_owned(),
                index: name.to_owned(),
                reason: "two indexes of the view have this name".into(),
            });
        }
    }
    Ok(())
}

/// Checks an index name: 1 to 200 bytes, no control characters, no `/`.
pub(crate) fn valid_index_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.chars().any(|c| c.is_control() || c == '/')
}
