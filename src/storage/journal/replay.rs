//! Opening a store in journal mode: the groups the journal holds above the LSN the store
//! file has durably taken are written to the file in one durable transaction, which
//! also stores a fresh salt, then the journal starts over from its beginning with that
//! salt (its frames are overwritten by the next groups). With nothing to replay, the
//! salt the file holds is kept, and nothing is written.
//!
//! Each frame sets keys to their final bytes or removes them, so a replay interrupted by
//! a crash is simply made again at the next open: replays are idempotent.

use super::effects::GroupEffects;
use super::frame::{Invalid, MAGIC_UNSALTED, scan};
use super::log::{Journal, fresh_salt, journal_path};
use crate::base::config::{Config, Durability};
use crate::base::error::{Error, Result};
use crate::base::version::Lsn;
use crate::storage::feed::{FEED, META_FEED_PRUNED};
use crate::storage::format::{
    FORMAT_SALTED_JOURNAL, META, META_JOURNAL_SALT, META_LSN, POSITIONS, format_version,
    index_table, raise_format, view_table,
};
use redb::{Database, ReadableDatabase, WriteTransaction};
use std::path::Path;

/// The groups of `journal` above `stored` with the store file's `salt`, in LSN order,
/// checked to follow each other.
///
/// # Errors
///
/// [`Error::JournalCorrupt`] naming the journal and the offset of the damage: a damaged
/// frame followed by a later group's, a group that does not follow the one before it,
/// a payload that passes its checksum and still does not decode.
pub(crate) fn pending_groups(
    journal: &Journal,
    stored: Lsn,
    salt: Option<u64>,
) -> Result<Vec<GroupEffects>> {
    let bytes = journal.read_all()?;
    // A journal that starts with an unsalted frame was written by a build from before
    // salts were stored, which leaves the store file's salt (if any) as it was: its
    // frames are read as such.
    let salt = if bytes.starts_with(&MAGIC_UNSALTED) { None } else { salt };
    let corrupt = |Invalid { offset, reason }| Error::JournalCorrupt {
        file: journal.path().to_owned(),
        offset,
        reason,
    };
    let (frames, _torn_tail) = scan(&bytes, stored.get(), salt).map_err(corrupt)?;
    let mut groups = Vec::new();
    let mut last = stored.get();
    for frame in frames {
        if frame.lsn <= stored.get() && groups.is_empty() {
            // Left from before the last checkpoint: the file has it.
            continue;
        }
        let mut effects = GroupEffects::decode(frame.payload).map_err(|reason| {
            corrupt(Invalid {
                offset: frame.offset,
                reason: format!("group {} does not decode: {reason}", frame.lsn),
            })
        })?;
        if effects.follows != last || frame.lsn <= last {
            return Err(corrupt(Invalid {
                offset: frame.offset,
                reason: format!(
                    "group {} follows group {} where group {last} was the last",
                    frame.lsn, effects.follows
                ),
            }));
        }
        effects.lsn = frame.lsn;
        last = frame.lsn;
        groups.push(effects);
    }
    Ok(groups)
}

/// Replays the journal into `db`, whose meta table says `stored`, and starts the
/// journal over. The replay's transaction stores a fresh salt for the frames to come.
/// With `appending` (journal mode, where groups are appended next) and nothing to
/// replay, the store file's salt is kept, without a commit when the file has one and
/// its format already says so: every frame with that salt is then at or below
/// `stored`, and the frames written next, from the start of the journal, are above
/// it. Returns the LSN the file is at afterwards.
pub(crate) fn recover(
    db: &Database,
    journal: &mut Journal,
    stored: Lsn,
    file: &Path,
    appending: bool,
) -> Result<Lsn> {
    let (kept, format) = stored_salt(db, file)?;
    let groups = pending_groups(journal, stored, kept)?;
    let mut lsn = stored;
    let salt = match kept {
        Some(kept) if groups.is_empty() => kept,
        _ => fresh_salt(),
    };
    // A file salted by a build that did not yet raise the format for it gets the raise
    // before the first salted frame is appended.
    let unmarked = format.is_none_or(|f| f < FORMAT_SALTED_JOURNAL);
    if !groups.is_empty() || (appending && (kept.is_none() || unmarked)) {
        let txn = db.begin_write().map_err(Error::at(file, "beginning the journal replay"))?;
        for group in &groups {
            apply(&txn, group, file)?;
            lsn = Lsn::new(group.lsn);
        }
        store_salt(&txn, salt, file)?;
        // A default (immediate) commit: the file now holds every group durably.
        txn.commit().map_err(Error::at(file, "committing the journal replay"))?;
    }
    journal.restart(salt);
    Ok(lsn)
}

/// The salt of the journal's frames since the last checkpoint, as the store file
/// holds it (`None` for a file from before salts were stored), and the file's format
/// version. A salt row that is not 8 bytes is a damaged file ([`Error::NotAStore`]):
/// read as no salt, it would make the replay skip every salted frame.
fn stored_salt(db: &Database, file: &Path) -> Result<(Option<u64>, Option<u32>)> {
    let txn = db.begin_read().map_err(Error::at(file, "reading the journal's salt"))?;
    let meta = txn.open_table(META).map_err(Error::at(file, "reading the journal's salt"))?;
    let format = format_version(&meta, file)?;
    let Some(bytes) =
        meta.get(META_JOURNAL_SALT).map_err(Error::at(file, "reading the journal's salt"))?
    else {
        return Ok((None, format));
    };
    match <[u8; 8]>::try_from(bytes.value()) {
        Ok(salt) => Ok((Some(u64::from_le_bytes(salt)), format)),
        Err(_) => Err(Error::NotAStore {
            file: file.to_owned(),
            reason: format!("a journal salt of {} bytes, not 8", bytes.value().len()),
        }),
    }
}

/// Stores `salt` as the salt of the frames after the checkpoint `txn` makes, and
/// raises the file's format version to [`FORMAT_SALTED_JOURNAL`]: a salted frame is
/// only ever written under a salt already committed, so a file whose journal may hold
/// salted frames always says so, and builds that cannot read them refuse it.
pub(crate) fn store_salt(txn: &WriteTransaction, salt: u64, file: &Path) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(Error::at(file, "storing the journal's salt"))?;
    meta.insert(META_JOURNAL_SALT, salt.to_le_bytes().as_slice())
        .map_err(Error::at(file, "storing the journal's salt"))?;
    raise_format(&mut meta, FORMAT_SALTED_JOURNAL, file)
}

/// Opens the journal of a store in journal mode and replays it into `db`, whose meta
/// table says `stored`. Returns the LSN the file is at and the journal.
///
/// In the other modes there is no journal, unless the store was last used in journal
/// mode and not closed: its journal file is then replayed (acknowledged groups may be in
/// it only) and removed, and `None` is returned.
pub(crate) fn open_journal(
    db: &Database,
    config: &Config,
    stored: Lsn,
) -> Result<(Lsn, Option<Journal>)> {
    if config.durability != Durability::Journal {
        let path = journal_path(&config.path);
        if config.journal_backend.is_none() && !path.exists() {
            return Ok((stored, None));
        }
        let mut journal = Journal::open(config)?;
        let lsn = recover(db, &mut journal, stored, &config.path, false)?;
        drop(journal);
        if config.journal_backend.is_none() {
            std::fs::remove_file(&path)
                .map_err(|e| Error::Io { file: path.clone(), source: std::sync::Arc::new(e) })?;
        }
        return Ok((lsn, None));
    }
    let mut journal = Journal::open(config)?;
    let lsn = recover(db, &mut journal, stored, &config.path, true)?;
    Ok((lsn, Some(journal)))
}

/// Writes one group's effects into `txn`, and its LSN into the meta table.
pub(crate) fn apply(txn: &WriteTransaction, group: &GroupEffects, file: &Path) -> Result<()> {
    for effects in &group.records {
        let mut table = txn.open_table(view_table(&effects.table)).map_err(failed(file))?;
        for (key, value) in &effects.entries {
            match value {
                Some(bytes) => table.insert(&**key, &**bytes).map(drop),
                None => table.remove(&**key).map(drop),
            }
            .map_err(failed(file))?;
        }
    }
    for effects in &group.indexes {
        let mut table = txn.open_table(index_table(&effects.table)).map_err(failed(file))?;
        for (key, value) in &effects.entries {
            match value {
                Some(len) => table.insert(&**key, *len).map(drop),
                None => table.remove(&**key).map(drop),
            }
            .map_err(failed(file))?;
        }
    }
    if !group.positions.is_empty() {
        let mut table = txn.open_table(POSITIONS).map_err(failed(file))?;
        for (source, partition, at) in &group.positions {
            table.insert((source.as_str(), *partition), *at).map_err(failed(file))?;
        }
    }
    let mut meta = txn.open_table(META).map_err(failed(file))?;
    if group.feed_row.is_some() || group.feed_pruned.is_some() {
        let mut table = txn.open_table(FEED).map_err(failed(file))?;
        if let Some(row) = &group.feed_row {
            table.insert(group.lsn, &**row).map_err(failed(file))?;
        }
        if let Some(through) = group.feed_pruned {
            table.retain_in(..=through, |_, _| false).map_err(failed(file))?;
            meta.insert(META_FEED_PRUNED, through.to_le_bytes().as_slice())
                .map_err(failed(file))?;
        }
    }
    meta.insert(META_LSN, group.lsn.to_le_bytes().as_slice()).map_err(failed(file))?;
    Ok(())
}

/// A `map_err` adapter for the replay's redb errors.
fn failed<E: Into<redb::Error>>(file: &Path) -> impl FnOnce(E) -> Error + '_ {
    Error::at(file, "replaying the journal")
}
