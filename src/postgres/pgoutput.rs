//! Reading the replication stream: the walsender's copy-data messages (WAL data and
//! keepalives) and, inside the WAL data, the `pgoutput` plugin's logical messages
//! (protocol version 1), assembled into whole [`Transaction`]s.

use crate::postgres::error::PostgresError;
use crate::postgres::row::{Change, Column, Kind, Relation, Row, Transaction, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH: u64 = 946_684_800;

/// A copy-data message of the replication stream.
#[derive(Debug)]
pub(crate) enum StreamMessage<'a> {
    /// WAL data: the server's WAL end and one `pgoutput` message.
    Data { wal_end: u64, payload: &'a [u8] },
    /// A keepalive: the server's WAL end and whether it wants an answer now.
    Keepalive { wal_end: u64, reply: bool },
}

/// Reads big-endian fields off a message, each failure naming what was cut short.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, at: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], PostgresError> {
        let out = self
            .buf
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| PostgresError::protocol("a replication message cut short"))?;
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PostgresError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PostgresError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PostgresError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PostgresError> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }

    fn cstr(&mut self) -> Result<String, PostgresError> {
        let rest = &self.buf[self.at.min(self.buf.len())..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| PostgresError::protocol("a string without its terminator"))?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.at.min(self.buf.len())..];
        self.at = self.buf.len();
        out
    }
}

/// Splits a copy-data payload of the stream.
pub(crate) fn stream_message(payload: &[u8]) -> Result<StreamMessage<'_>, PostgresError> {
    let mut c = Cursor::new(payload);
    match c.u8()? {
        b'w' => {
            let _start = c.u64()?;
            let wal_end = c.u64()?;
            let _sent = c.u64()?;
            Ok(StreamMessage::Data { wal_end, payload: c.rest() })
        }
        b'k' => {
            let wal_end = c.u64()?;
            let _sent = c.u64()?;
            let reply = c.u8()? == 1;
            Ok(StreamMessage::Keepalive { wal_end, reply })
        }
        other => Err(PostgresError::protocol(format!(
            "a replication message of unknown kind `{}`",
            char::from(other)
        ))),
    }
}

/// A standby status update: written, flushed and applied positions. The source reports
/// the store's durable position as all three (what it received beyond that is only in
/// memory), so that an idle walsender, seeing the client behind, sends keepalives with
/// its position, from which heartbeats are made.
pub(crate) fn status_update(received: u64, flushed: u64, reply: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(34);
    out.push(b'r');
    out.extend_from_slice(&received.to_be_bytes());
    out.extend_from_slice(&flushed.to_be_bytes());
    out.extend_from_slice(&flushed.to_be_bytes());
    out.extend_from_slice(&pg_now().to_be_bytes());
    out.push(u8::from(reply));
    out
}

/// Microseconds since PostgreSQL's epoch, now.
fn pg_now() -> i64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let micros = since.as_micros().saturating_sub(u128::from(PG_EPOCH) * 1_000_000);
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// A PostgreSQL timestamp (microseconds since 2000-01-01) as a time.
fn pg_time(micros: u64) -> SystemTime {
    let micros = micros.cast_signed();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(PG_EPOCH);
    if micros >= 0 {
        base + Duration::from_micros(micros.cast_unsigned())
    } else {
        base.checked_sub(Duration::from_micros(micros.unsigned_abs())).unwrap_or(base)
    }
}

/// The transaction being received.
struct Open {
    xid: u32,
    changes: Vec<Change>,
}

/// Assembles `pgoutput` messages into transactions, keeping the relations described.
#[derive(Default)]
pub(crate) struct Decoder {
    relations: HashMap<u32, Arc<Relation>>,
    open: Option<Open>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("relations", &self.relations.len()).finish_non_exhaustive()
    }
}

impl Decoder {
    /// Whether a transaction has begun and not yet committed.
    pub(crate) fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Forgets a transaction received in part (the connection broke; the server sends
    /// it again whole).
    pub(crate) fn reset(&mut self) {
        self.open = None;
    }

    /// Takes one `pgoutput` message; returns a transaction when one is complete (a
    /// commit, or a message emitted outside any transaction).
    pub(crate) fn take(&mut self, msg: &[u8]) -> Result<Option<Transaction>, PostgresError> {
        let mut c = Cursor::new(msg);
        match c.u8()? {
            b'B' => {
                let _commit_lsn = c.u64()?;
                let _commit_time = c.u64()?;
                let xid = c.u32()?;
                self.open = Some(Open { xid, changes: Vec::new() });
                Ok(None)
            }
            b'C' => {
                let _flags = c.u8()?;
                let commit_lsn = c.u64()?;
                let end_lsn = c.u64()?;
                let commit_time = pg_time(c.u64()?);
                let open = self
                    .open
                    .take()
                    .ok_or_else(|| PostgresError::protocol("a commit without its begin"))?;
                Ok(Some(Transaction {
                    kind: Kind::Commit,
                    commit_lsn,
                    end_lsn,
                    commit_time: Some(commit_time),
                    xid: Some(open.xid),
                    changes: open.changes,
                }))
            }
            b'R' => {
                let relation = relation(&mut c)?;
                self.relations.insert(relation.id, Arc::new(relation));
                Ok(None)
            }
            // Types and origins: nothing a handler reads.
            b'Y' | b'O' => Ok(None),
            b'I' => {
                let relation = self.relation(c.u32()?)?;
                expect(&mut c, b'N')?;
                let row = tuple(&mut c, &relation)?;
                self.push(Change::Insert { row })
            }
            b'U' => {
                let relation = self.relation(c.u32()?)?;
                let (old, row) = update(&mut c, &relation)?;
                self.push(Change::Update { old, row })
            }
            b'D' => {
                let relation = self.relation(c.u32()?)?;
                let kind = c.u8()?;
                if kind != b'K' && kind != b'O' {
                    return Err(PostgresError::protocol("a delete without its old row"));
                }
                let old = tuple(&mut c, &relation)?;
                self.push(Change::Delete { old })
            }
            b'T' => {
                let count = c.u32()?;
                let _options = c.u8()?;
                let mut relations = Vec::new();
                for _ in 0..count {
                    relations.push(self.relation(c.u32()?)?);
                }
                self.push(Change::Truncate { relations })
            }
            b'M' => {
                let transactional = c.u8()? & 1 == 1;
                let lsn = c.u64()?;
                let prefix = c.cstr()?;
                let len = c.u32()? as usize;
                let content = c.bytes(len)?.to_vec();
                let change = Change::Message { prefix, content };
                match &mut self.open {
                    Some(open) => {
                        open.changes.push(change);
                        Ok(None)
                    }
                    None if transactional => Err(PostgresError::protocol(
                        "a transactional message outside a transaction",
                    )),
                    // Its LSN is where its record ends.
                    None => Ok(Some(Transaction {
                        kind: Kind::Commit,
                        commit_lsn: lsn,
                        end_lsn: lsn,
                        commit_time: None,
                        xid: None,
                        changes: vec![change],
                    })),
                }
            }
            other => Err(PostgresError::protocol(format!(
                "a pgoutput message of unknown kind `{}`",
                char::from(other)
            ))),
        }
    }

    fn relation(&self, id: u32) -> Result<Arc<Relation>, PostgresError> {
        self.relations.get(&id).cloned().ok_or_else(|| {
            PostgresError::protocol(format!("a change to relation {id}, which was not described"))
        })
    }

    fn push(&mut self, change: Change) -> Result<Option<Transaction>, PostgresError> {
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| PostgresError::protocol("a change outside a transaction"))?;
        open.changes.push(change);
        Ok(None)
    }
}

/// A relation message's body: the table and its columns.
fn relation(c: &mut Cursor<'_>) -> Result<Relation, PostgresError> {
    let id = c.u32()?;
    let mut schema = c.cstr()?;
    if schema.is_empty() {
        "pg_catalog".clone_into(&mut schema);
    }
    let name = c.cstr()?;
    let _identity = c.u8()?;
    let count = c.u16()?;
    let mut columns = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let flags = c.u8()?;
        let column = c.cstr()?;
        let type_oid = c.u32()?;
        let _modifier = c.u32()?;
        columns.push(Column { name: column, type_oid, key: flags & 1 == 1 });
    }
    Ok(Relation { id, schema, name, columns })
}

/// An update's body after its relation: the old row (key or full), if sent, and the new.
fn update(
    c: &mut Cursor<'_>,
    relation: &Arc<Relation>,
) -> Result<(Option<Row>, Row), PostgresError> {
    let mut old = None;
    let mut kind = c.u8()?;
    if kind == b'K' || kind == b'O' {
        old = Some(tuple(c, relation)?);
        kind = c.u8()?;
    }
    if kind != b'N' {
        return Err(PostgresError::protocol("an update without its new row"));
    }
    Ok((old, tuple(c, relation)?))
}

fn expect(c: &mut Cursor<'_>, tag: u8) -> Result<(), PostgresError> {
    let got = c.u8()?;
    if got == tag {
        Ok(())
    } else {
        Err(PostgresError::protocol(format!(
            "`{}` where `{}` was expected",
            char::from(got),
            char::from(tag)
        )))
    }
}

/// A tuple of the relation: one value per column.
fn tuple(c: &mut Cursor<'_>, relation: &Arc<Relation>) -> Result<Row, PostgresError> {
    let count = c.u16()?;
    if usize::from(count) != relation.columns.len() {
        return Err(PostgresError::protocol(format!(
            "a row of {count} values for `{}.{}`, described with {} columns",
            relation.schema,
            relation.name,
            relation.columns.len()
        )));
    }
    let mut values = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        values.push(match c.u8()? {
            b'n' => Value::Null,
            b'u' => Value::Unchanged,
            b't' => {
                let len = c.u32()? as usize;
                Value::Text(String::from_utf8_lossy(c.bytes(len)?).into_owned())
            }
            other => {
                return Err(PostgresError::protocol(format!(
                    "a value of unknown form `{}`",
                    char::from(other)
                )));
            }
        });
    }
    Ok(Row { relation: Arc::clone(relation), values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_message() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16_384u32.to_be_bytes());
        m.extend_from_slice(b"public\0users\0d");
        m.extend_from_slice(&2u16.to_be_bytes());
        m.push(1);
        m.extend_from_slice(b"id\0");
        m.extend_from_slice(&20u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        m.push(0);
        m.extend_from_slice(b"name\0");
        m.extend_from_slice(&25u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        m
    }

    #[test]
    fn a_transaction_assembled() -> Result<(), PostgresError> {
        let mut d = Decoder::default();
        assert!(d.take(&relation_message())?.is_none());
        let mut begin = vec![b'B'];
        begin.extend_from_slice(&0x100u64.to_be_bytes());
        begin.extend_from_slice(&0u64.to_be_bytes());
        begin.extend_from_slice(&7u32.to_be_bytes());
        assert!(d.take(&begin)?.is_none());
        let mut insert = vec![b'I'];
        insert.extend_from_slice(&16_384u32.to_be_bytes());
        insert.push(b'N');
        insert.extend_from_slice(&2u16.to_be_bytes());
        insert.push(b't');
        insert.extend_from_slice(&1u32.to_be_bytes());
        insert.push(b'5');
        insert.push(b'n');
        assert!(d.take(&insert)?.is_none());
        let mut commit = vec![b'C', 0];
        commit.extend_from_slice(&0x100u64.to_be_bytes());
        commit.extend_from_slice(&0x130u64.to_be_bytes());
        commit.extend_from_slice(&0u64.to_be_bytes());
        let tx = d.take(&commit)?.ok_or_else(|| PostgresError::protocol("no transaction"))?;
        assert_eq!(
            (tx.commit_lsn, tx.end_lsn, tx.xid, tx.changes.len()),
            (0x100, 0x130, Some(7), 1)
        );
        let Change::Insert { row } = &tx.changes[0] else {
            return Err(PostgresError::protocol("not an insert"));
        };
        assert_eq!(row.get::<i64>("id").ok(), Some(5));
        assert_eq!(row.get::<Option<String>>("name").ok(), Some(None));
        Ok(())
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let mut d = Decoder::default();
        let full = relation_message();
        for cut in 0..full.len() {
            let _ = d.take(&full[..cut]);
        }
        for bytes in [&b"I\0\0\0\x01N"[..], b"C", b"Z", b"M\x01", b"U\0\0\0\x09"] {
            assert!(d.take(bytes).is_err());
        }
        assert!(stream_message(b"w\0").is_err());
        assert!(stream_message(b"x").is_err());
    }
}
