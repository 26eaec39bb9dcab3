//! Resuming a [`PostgresSource`]: what the store's positions and the slot say, and what
//! follows from them (stream on, retake an interrupted snapshot, start a new one, or
//! refuse with the resync to do); the publication, the slot and the views cleared for a
//! new snapshot.

use crate::postgres::error::PostgresError;
use crate::postgres::snapshot::Snapshot;
use crate::postgres::source::{DONE, Phase, PostgresSource, SNAPSHOT, STREAM};
use crate::postgres::wire::{Connection, format_lsn, ident, literal, parse_lsn};
use crate::project::source::BoxError;

/// The replication slot as the server describes it.
pub(super) struct SlotState {
    pub(super) confirmed: Option<u64>,
    pub(super) lost: bool,
    pub(super) database: String,
}

impl PostgresSource {
    /// Creates the publication from the configured tables when it does not exist.
    pub(super) fn ensure_publication(&self, conn: &mut Connection) -> Result<(), PostgresError> {
        let c = &self.config;
        let found = conn.query(
            &format!("SELECT 1 FROM pg_publication WHERE pubname = {}", literal(&c.publication)),
            "looking for the publication",
        )?;
        if found.iter().any(|r| !r.rows.is_empty()) {
            return Ok(());
        }
        if c.tables.is_empty() {
            return Err(PostgresError::Setup {
                reason: format!(
                    "the publication `{}` does not exist and no tables were given to create \
                     it with (`PostgresConfig::with_tables`)",
                    c.publication
                ),
            });
        }
        let tables: Vec<String> = c
            .tables
            .iter()
            .map(|t| t.split('.').map(ident).collect::<Vec<_>>().join("."))
            .collect();
        conn.query(
            &format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                ident(&c.publication),
                tables.join(", ")
            ),
            "creating the publication",
        )?;
        Ok(())
    }

    pub(super) fn slot_state(
        &self,
        conn: &mut Connection,
    ) -> Result<Option<SlotState>, PostgresError> {
        let rows = conn.query(
            &format!(
                "SELECT confirmed_flush_lsn, wal_status, database \
                 FROM pg_replication_slots WHERE slot_name = {}",
                literal(&self.config.slot)
            ),
            "reading the replication slot",
        )?;
        let Some(row) = rows.into_iter().next().and_then(|r| r.rows.into_iter().next()) else {
            return Ok(None);
        };
        let confirmed = row.first().cloned().flatten().map(|l| parse_lsn(&l)).transpose()?;
        Ok(Some(SlotState {
            confirmed,
            lost: row.get(1).cloned().flatten().as_deref() == Some("lost"),
            database: row.get(2).cloned().flatten().unwrap_or_default(),
        }))
    }

    /// Clears the views the source feeds, before a new snapshot fills them again.
    pub(super) fn clear_feeds(&self, why: &str) -> Result<(), BoxError> {
        if self.config.feeds.is_empty() {
            return Err(Box::new(PostgresError::SnapshotInterrupted {
                reason: format!(
                    "{why}; the views it feeds may hold part of an older copy, and the source \
                     does not know them: name them with `PostgresConfig::with_feeds` so that \
                     it clears them first, or start from a new store file"
                ),
            }));
        }
        for view in &self.config.feeds {
            self.store.clear_view(view)?;
        }
        Ok(())
    }

    /// Drops the slot (a new store, or a resync), waiting for a walsender that still
    /// holds it to let go.
    fn drop_slot(&self, conn: &mut Connection) -> Result<(), PostgresError> {
        conn.query(
            &format!("DROP_REPLICATION_SLOT {} WAIT", ident(&self.config.slot)),
            "dropping the old replication slot",
        )?;
        Ok(())
    }

    pub(super) fn start_snapshot(
        &mut self,
        mut conn: Connection,
        epoch: u64,
    ) -> Result<(), PostgresError> {
        if self.slot_state(&mut conn)?.is_some() {
            self.drop_slot(&mut conn)?;
        }
        let c = &self.config;
        let snapshot = Snapshot::begin(conn, &c.slot, &c.publication, c.snapshot_chunk)?;
        self.phase = Phase::Snapshot { snapshot: Box::new(snapshot), epoch, part: 0 };
        Ok(())
    }

    pub(super) fn try_resume(&mut self, positions: &[(u32, u64)]) -> Result<(), BoxError> {
        let stream = positions.iter().find(|(p, _)| *p == STREAM).map(|&(_, at)| at);
        let snapshot = positions.iter().find(|(p, _)| *p == SNAPSHOT).map(|&(_, at)| at);
        if let Some((p, _)) = positions.iter().find(|(p, _)| *p != STREAM && *p != SNAPSHOT) {
            return Err(Box::new(PostgresError::Setup {
                reason: format!(
                    "the store holds a position of partition {p} for source `{}`, which a \
                     PostgreSQL source never writes: is another source using this name?",
                    self.config.slot
                ),
            }));
        }
        self.flushed = stream.unwrap_or(0);
        self.reported = self.flushed;
        self.delivered = stream;
        let epoch = snapshot.map_or(0, |s| s >> 32);
        let mut conn = self.connect()?;
        self.ensure_publication(&mut conn)?;
        let slot = self.slot_state(&mut conn)?;
        if let Some(s) = &slot
            && s.database != self.config.endpoint.dbname
        {
            return Err(Box::new(PostgresError::Setup {
                reason: format!(
                    "the slot `{}` belongs to database `{}`, not `{}`",
                    self.config.slot, s.database, self.config.endpoint.dbname
                ),
            }));
        }
        // A snapshot begun and not completed: its rows may be in the views.
        if snapshot.is_some_and(|s| s & DONE != DONE) {
            self.clear_feeds("the initial snapshot was interrupted")?;
            self.start_snapshot(conn, epoch + 1)?;
            return Ok(());
        }
        if stream.is_none() && snapshot.is_none() {
            if self.config.snapshot {
                self.start_snapshot(conn, 1)?;
            } else {
                if slot.is_none() {
                    conn.query(
                        &format!(
                            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput",
                            ident(&self.config.slot)
                        ),
                        "creating the replication slot",
                    )?;
                }
                self.start_streaming(conn)?;
            }
            return Ok(());
        }
        let problem = match &slot {
            None => Some(PostgresError::SlotGone { slot: self.config.slot.clone() }),
            Some(s) if s.lost => Some(PostgresError::WalGone {
                slot: self.config.slot.clone(),
                reason: "the server removed WAL the slot still needed (wal_status = lost)".into(),
            }),
            Some(s) if s.confirmed.zip(stream).is_some_and(|(c, at)| c > at) => {
                Some(PostgresError::WalGone {
                    slot: self.config.slot.clone(),
                    reason: format!(
                        "the slot has confirmed {}, past the store's {}: the store is older \
                         than the slot (restored from an older copy?), and the changes between \
                         are gone",
                        format_lsn(s.confirmed.unwrap_or(0)),
                        format_lsn(stream.unwrap_or(0))
                    ),
                })
            }
            Some(_) => None,
        };
        match problem {
            Some(e) if self.config.resync => {
                self.clear_feeds(&format!("resync after: {e}"))?;
                self.start_snapshot(conn, epoch + 1)?;
            }
            Some(e) => return Err(Box::new(e)),
            // A walsender of a dead connection may still hold the slot for a moment
            // (SQLSTATE 55006, transient): the first poll then reconnects with backoff.
            None => {
                self.start_streaming(conn).or_else(|e| {
                    if e.is_transient() {
                        self.phase = Phase::Broken;
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
            }
        }
        Ok(())
    }
}
