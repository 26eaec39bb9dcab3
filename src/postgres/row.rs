//! What the source delivers: a [`Transaction`] of [`Change`]s to [`Row`]s of a
//! [`Relation`], each value read by column name.

use std::sync::Arc;
use std::time::SystemTime;

/// A table as the server last described it: its columns by name, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The table's OID.
    pub id: u32,
    /// Its schema (`public`).
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Its columns, in the order of the row's values.
    pub columns: Vec<Column>,
}

impl Relation {
    /// Whether this is `table` (`name` or `schema.name`).
    pub fn is(&self, table: &str) -> bool {
        match table.split_once('.') {
            Some((schema, name)) => self.schema == schema && self.name == name,
            None => self.name == table,
        }
    }

    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type's OID (`pg_type.oid`: 23 for `int4`, 20 for `int8`, 25 for `text`).
    pub type_oid: u32,
    /// Whether it is part of the table's replica identity (its primary key, by default).
    pub key: bool,
}

/// One value of a row, in PostgreSQL's text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// The value's text (`42`, `t`, `2026-12-06 10:00:00+00`).
    Text(String),
    /// A TOASTed value the update did not change, which the server does not send again
    /// (the view keeps what it has; see the README).
    Unchanged,
}

/// A row of a table: its relation and its values, read by column name.
///
/// # Examples
///
/// ```no_run
/// # fn handle(row: &viewstore::postgres::Row) -> Result<(), viewstore::postgres::DecodeError> {
/// let id: i64 = row.get("id")?;
/// let bio: Option<String> = row.get("bio")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The table, as described when the row was read.
    pub relation: Arc<Relation>,
    /// The values, one per column of the relation.
    pub values: Vec<Value>,
}

/// A value that cannot be read as the type asked for, or a column the row lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column `{}` of `{}`: {}", self.column, self.table, self.reason)
    }
}

impl std::error::Error for DecodeError {}

impl Row {
    /// The value of column `name`, if the table has it.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.relation.column(name).and_then(|i| self.values.get(i))
    }

    /// The text of column `name`: `None` for `NULL`, an unchanged TOASTed value or a
    /// column the table lacks.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// Column `name` read as `T` (`Option<T>` for a nullable column).
    ///
    /// # Errors
    ///
    /// The table has no such column, the value is `NULL` for a `T` that is not an
    /// `Option`, it is an unchanged TOASTed value, or its text is not a `T`.
    pub fn get<T: FromText>(&self, name: &str) -> Result<T, DecodeError> {
        let fail = |reason: String| DecodeError {
            table: format!("{}.{}", self.relation.schema, self.relation.name),
            column: name.to_owned(),
            reason,
        };
        let value = self.value(name).ok_or_else(|| fail("the table has no such column".into()))?;
        match value {
            Value::Null => T::from_null().ok_or_else(|| fail("the value is NULL".into())),
            Value::Unchanged => Err(fail("an unchanged TOASTed value, not sent again".into())),
            Value::Text(text) => T::from_text(text).map_err(fail),
        }
    }
}

/// A Rust type read from PostgreSQL's text form of a value.
pub trait FromText: Sized {
    /// Reads `text`.
    ///
    /// # Errors
    ///
    /// Why `text` is not a `Self`.
    fn from_text(text: &str) -> Result<Self, String>;

    /// What `NULL` reads as: `None` (an error) except for `Option`.
    fn from_null() -> Option<Self> {
        None
    }
}

macro_rules! parsed {
    ($($t:ty),*) => {$(
        impl FromText for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                text.parse().map_err(|e| format!("`{text}` is not a {}: {e}", stringify!($t)))
            }
        }
    )*};
}

parsed!(i16, i32, i64, u16, u32, u64, f32, f64, u8, i8, i128, u128);

impl FromText for String {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl FromText for bool {
    fn from_text(text: &str) -> Result<Self, String> {
        match text {
            "t" | "true" => Ok(true),
            "f" | "false" => Ok(false),
            _ => Err(format!("`{text}` is not a boolean")),
        }
    }
}

impl FromText for Vec<u8> {
    /// `bytea` in the hex form (`\x0aff`), PostgreSQL's default output.
    fn from_text(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix("\\x").ok_or_else(|| format!("`{text}` is not hex bytea"))?;
        if hex.len() % 2 != 0 {
            return Err(format!("`{text}` has an odd number of hex digits"));
        }
        let digit =
            |b: u8| char::from(b).to_digit(16).ok_or_else(|| format!("`{text}` is not hex"));
        hex.as_bytes()
            .chunks(2)
            .map(|pair| Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
            .collect()
    }
}

impl<T: FromText> FromText for Option<T> {
    fn from_text(text: &str) -> Result<Self, String> {
        T::from_text(text).map(Some)
    }

    fn from_null() -> Option<Self> {
        Some(None)
    }
}

/// One change of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A row inserted (or, in the initial snapshot, a row as it was).
    Insert {
        /// The new row.
        row: Row,
    },
    /// A row updated.
    Update {
        /// The old row's key columns (or all its columns with `REPLICA IDENTITY FULL`),
        /// when the update changed the key or the table's identity is full; the other
        /// columns are `NULL`.
        old: Option<Row>,
        /// The new row.
        row: Row,
    },
    /// A row deleted: its key columns (all columns with `REPLICA IDENTITY FULL`); the
    /// other columns are `NULL`.
    Delete {
        /// The old row's key.
        old: Row,
    },
    /// Tables emptied by `TRUNCATE`.
    Truncate {
        /// The tables.
        relations: Vec<Arc<Relation>>,
    },
    /// A message the application emitted with
    /// `pg_logical_emit_message(transactional, prefix, content)`: an outbox event, in
    /// commit order beside the row changes.
    Message {
        /// The prefix it was emitted with.
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
}

/// What an event of the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A committed transaction of the stream (or a message emitted outside any
    /// transaction, alone).
    Commit,
    /// A part of the initial snapshot: rows as they were at the slot's start, each a
    /// [`Change::Insert`]; the last part (`done`) has no rows.
    Snapshot {
        /// The snapshot is complete with this event.
        done: bool,
    },
    /// No change: the server's position, recorded while idle so that the slot does not
    /// hold WAL back.
    Heartbeat,
}

/// One event of the source: a whole source transaction (or a part of the initial
/// snapshot), applied as one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// What the event is.
    pub kind: Kind,
    /// The commit's LSN (where its commit record starts); 0 for the snapshot parts.
    pub commit_lsn: u64,
    /// The event's position: where its last record ends (the commit record of a
    /// transaction, the message of one emitted outside any, the server's position for a
    /// heartbeat: the LSN PostgreSQL's own subscribers record). Distinct records end at
    /// distinct LSNs, and streaming resumed there skips exactly what came before.
    /// 0 for the snapshot parts.
    pub end_lsn: u64,
    /// The commit's time on the server (`None` for the snapshot and heartbeats).
    pub commit_time: Option<SystemTime>,
    /// The transaction's id (`None` for the snapshot and heartbeats).
    pub xid: Option<u32>,
    /// Its changes, in the order they were made.
    pub changes: Vec<Change>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<Value>) -> Row {
        let columns = ["id", "name", "bio", "active", "avatar"]
            .into_iter()
            .map(|n| Column { name: n.into(), type_oid: 25, key: n == "id" })
            .collect();
        let relation =
            Arc::new(Relation { id: 1, schema: "public".into(), name: "users".into(), columns });
        Row { relation, values }
    }

    #[test]
    fn typed_reads_by_name() -> Result<(), DecodeError> {
        let r = row(vec![
            Value::Text("7".into()),
            Value::Text("ada".into()),
            Value::Null,
            Value::Text("t".into()),
            Value::Text("\\x0aff".into()),
        ]);
        assert_eq!(r.get::<i64>("id")?, 7);
        assert_eq!(r.get::<String>("name")?, "ada");
        assert_eq!(r.get::<Option<String>>("bio")?, None);
        assert!(r.get::<bool>("active")?);
        assert_eq!(r.get::<Vec<u8>>("avatar")?, vec![10, 255]);
        assert!(r.relation.is("users") && r.relation.is("public.users"));
        let e = r.get::<String>("bio").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("column `bio` of `public.users`: the value is NULL")
        );
        assert!(r.get::<u8>("name").is_err());
        assert!(r.get::<i64>("missing").is_err());
        let odd = row(vec![
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Text("\\x0\u{e9}0".into()),
        ]);
        assert!(odd.get::<Vec<u8>>("avatar").is_err(), "not hex, and no panic");
        Ok(())
    }
}
