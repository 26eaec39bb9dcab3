//! The initial snapshot: the publication's tables copied inside the transaction that
//! created the replication slot, so that the copy is exactly the state at the slot's
//! start, and streaming from the slot continues it with no gap and no duplicate.

use crate::postgres::error::PostgresError;
use crate::postgres::row::{Change, Column, Kind, Relation, Row, Transaction, Value};
use crate::postgres::wire::{Connection, ident, literal, parse_lsn};
use std::collections::VecDeque;
use std::sync::Arc;

/// How far the initial snapshot has come, reported after each part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotProgress {
    /// The table being copied (`schema.name`), empty once done.
    pub table: String,
    /// Tables copied whole.
    pub tables_done: usize,
    /// Tables in the publication.
    pub tables: usize,
    /// Rows copied so far, all tables.
    pub rows: u64,
    /// The server's estimate of all the tables' rows (`pg_class.reltuples`).
    pub estimated_rows: u64,
    /// The snapshot is complete.
    pub done: bool,
}

/// A table to copy: its relation as the snapshot reads it.
struct Table {
    relation: Arc<Relation>,
    /// A partitioned table is read whole; any other without its inheritance children,
    /// which the publication lists (and the copy reads) on their own.
    partitioned: bool,
}

/// A snapshot being taken, on the replication connection that created the slot.
pub(crate) struct Snapshot {
    pub(crate) conn: Connection,
    tables: VecDeque<Table>,
    /// The table whose cursor is open.
    current: Option<Arc<Relation>>,
    chunk: usize,
    pub(crate) progress: SnapshotProgress,
    /// Where the slot starts: the copy is the state there, the stream goes on from it.
    pub(crate) consistent_point: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("progress", &self.progress).finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Creates `slot` with a snapshot in a new transaction on `conn` and lists the
    /// publication's tables under it.
    pub(crate) fn begin(
        mut conn: Connection,
        slot: &str,
        publication: &str,
        chunk: usize,
    ) -> Result<Self, PostgresError> {
        conn.query("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", "beginning the snapshot")?;
        // The old spelling of `(SNAPSHOT 'use')`, which PostgreSQL 14 knows too.
        let created = conn.query(
            &format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput USE_SNAPSHOT", ident(slot)),
            "creating the replication slot",
        )?;
        let consistent_point = created
            .first()
            .and_then(|r| r.rows.first())
            .and_then(|row| row.get(1).cloned().flatten())
            .ok_or_else(|| PostgresError::protocol("a slot created without its consistent point"))
            .and_then(|lsn| parse_lsn(&lsn))?;
        let listed = conn.query(
            &format!(
                "SELECT t.schemaname, t.tablename, c.oid, GREATEST(c.reltuples, 0)::int8, \
                 c.relkind = 'p' \
                 FROM pg_publication_tables t \
                 JOIN pg_namespace n ON n.nspname = t.schemaname \
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename \
                 WHERE t.pubname = {} ORDER BY 1, 2",
                literal(publication)
            ),
            "listing the publication's tables",
        )?;
        let listed = listed.into_iter().next().map(|r| r.rows).unwrap_or_default();
        let mut found = Vec::new();
        for row in listed {
            let [Some(schema), Some(name), Some(oid), estimate, partitioned] = &row[..] else {
                return Err(PostgresError::protocol("a table listed without its name or OID"));
            };
            let id: u32 = oid.parse().map_err(|_| PostgresError::protocol("a table OID"))?;
            let estimate: u64 = estimate.as_deref().and_then(|e| e.parse().ok()).unwrap_or(0);
            let partitioned = partitioned.as_deref() == Some("t");
            found.push((schema.clone(), name.clone(), id, estimate, partitioned));
        }
        // Held to the end of the copy: a concurrent ALTER TABLE waits for it, so that the
        // columns read now are the columns copied.
        if !found.is_empty() {
            let names: Vec<String> =
                found.iter().map(|(s, n, ..)| format!("{}.{}", ident(s), ident(n))).collect();
            conn.query(
                &format!("LOCK TABLE {} IN ACCESS SHARE MODE", names.join(", ")),
                "locking the publication's tables for the copy",
            )?;
        }
        let mut tables = VecDeque::new();
        let mut estimated_rows = 0u64;
        for (schema, name, id, estimate, partitioned) in found {
            estimated_rows += estimate;
            let columns = columns(&mut conn, id)?;
            let relation = Arc::new(Relation { id, schema, name, columns });
            tables.push_back(Table { relation, partitioned });
        }
        let progress = SnapshotProgress {
            tables: tables.len(),
            estimated_rows,
            ..SnapshotProgress::default()
        };
        Ok(Snapshot { conn, tables, current: None, chunk, progress, consistent_point })
    }

    /// The next part of the snapshot: up to a chunk of rows of one table; `None` once
    /// every table is copied.
    pub(crate) fn next_rows(&mut self) -> Result<Option<Transaction>, PostgresError> {
        loop {
            let relation = if let Some(r) = &self.current {
                Arc::clone(r)
            } else {
                let Some(table) = self.tables.pop_front() else { return Ok(None) };
                let (r, only) = (table.relation, if table.partitioned { "" } else { "ONLY " });
                let list: Vec<String> = r.columns.iter().map(|c| ident(&c.name)).collect();
                self.conn.query(
                    &format!(
                        "DECLARE viewstore_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {only}{}.{}",
                        if list.is_empty() { "NULL".to_owned() } else { list.join(", ") },
                        ident(&r.schema),
                        ident(&r.name)
                    ),
                    &format!("copying `{}.{}`", r.schema, r.name),
                )?;
                self.progress.table = format!("{}.{}", r.schema, r.name);
                self.current = Some(Arc::clone(&r));
                r
            };
            let during = format!("copying `{}.{}`", relation.schema, relation.name);
            let fetched = self
                .conn
                .query(&format!("FETCH {} FROM viewstore_snapshot", self.chunk), &during)?;
            let rows = fetched.into_iter().next().map(|r| r.rows).unwrap_or_default();
            if rows.is_empty() {
                self.conn.query("CLOSE viewstore_snapshot", &during)?;
                self.current = None;
                self.progress.tables_done += 1;
                continue;
            }
            self.progress.rows += rows.len() as u64;
            let changes = rows
                .into_iter()
                .map(|values| {
                    let values = if relation.columns.is_empty() { Vec::new() } else { values };
                    let values =
                        values.into_iter().map(|v| v.map_or(Value::Null, Value::Text)).collect();
                    Change::Insert { row: Row { relation: Arc::clone(&relation), values } }
                })
                .collect();
            return Ok(Some(Transaction {
                kind: Kind::Snapshot { done: false },
                commit_lsn: 0,
                end_lsn: 0,
                commit_time: None,
                xid: None,
                changes,
            }));
        }
    }

    /// Ends the snapshot's transaction and gives the connection back.
    pub(crate) fn finish(mut self) -> Result<Connection, PostgresError> {
        self.conn.query("COMMIT", "ending the snapshot")?;
        Ok(self.conn)
    }
}

/// The columns of table `oid` that `pgoutput` sends (not dropped, not generated), with
/// its replica identity's columns marked as the key, as the stream marks them.
fn columns(conn: &mut Connection, oid: u32) -> Result<Vec<Column>, PostgresError> {
    let rows = conn.query(
        &format!(
            "SELECT a.attname, a.atttypid, CASE c.relreplident \
             WHEN 'f' THEN true \
             WHEN 'd' THEN COALESCE(a.attnum = ANY(pk.indkey), false) \
             WHEN 'i' THEN COALESCE(a.attnum = ANY(ri.indkey), false) ELSE false END \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             LEFT JOIN pg_index pk ON pk.indrelid = a.attrelid AND pk.indisprimary \
             LEFT JOIN pg_index ri ON ri.indrelid = a.attrelid AND ri.indisreplident \
             WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attgenerated = '' ORDER BY a.attnum"
        ),
        "reading a table's columns",
    )?;
    rows.into_iter()
        .next()
        .map(|r| r.rows)
        .unwrap_or_default()
        .into_iter()
        .map(|row| match &row[..] {
            [Some(name), Some(type_oid), key] => Ok(Column {
                name: name.clone(),
                type_oid: type_oid.parse().unwrap_or(0),
                key: key.as_deref() == Some("t"),
            }),
            _ => Err(PostgresError::protocol("a column listed without its name or type")),
        })
        .collect()
}
