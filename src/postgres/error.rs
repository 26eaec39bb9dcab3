//! What can go wrong between the store and PostgreSQL, each saying what to do.

use std::fmt;

/// An error of the PostgreSQL source. A projector reports it as
/// [`Error::SourceFailed`](crate::Error::SourceFailed) with this text; the source's own
/// methods return it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection string cannot be read.
    Config {
        /// What is wrong with it.
        reason: String,
    },
    /// The source cannot start on this database or store as they are (a missing
    /// publication, a slot of another database, a position it never writes).
    Setup {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The server could not be reached (after the configured retries).
    Unreachable {
        /// `host:port`.
        address: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The server refused the credentials (never retried).
    Authentication {
        /// The user that tried.
        user: String,
        /// The server's words.
        reason: String,
    },
    /// The server answered a command with an error.
    Server {
        /// What the source was doing.
        during: String,
        /// The SQLSTATE code.
        code: String,
        /// The server's message (and detail, when it gave one).
        message: String,
    },
    /// The replication slot the store's position needs no longer exists.
    SlotGone {
        /// The slot.
        slot: String,
    },
    /// The slot exists but cannot serve the store's position: its WAL was removed, or
    /// it has moved past what the store holds (a store restored from an older copy).
    WalGone {
        /// The slot.
        slot: String,
        /// Why.
        reason: String,
    },
    /// The initial snapshot was interrupted and cannot be taken again without first
    /// clearing the views it had begun to fill.
    SnapshotInterrupted {
        /// What interrupted it, or why it cannot be retaken.
        reason: String,
    },
    /// The server sent what the source cannot read.
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The connection failed while streaming and the retries ran out.
    Connection {
        /// What the source was doing.
        during: String,
        /// The last failure.
        reason: String,
    },
}

impl PostgresError {
    pub(crate) fn protocol(reason: impl Into<String>) -> Self {
        PostgresError::Protocol { reason: reason.into() }
    }

    /// Whether trying again (a new connection) may succeed: the server was unreachable,
    /// restarting, shutting down, or the connection broke.
    pub fn is_transient(&self) -> bool {
        match self {
            PostgresError::Unreachable { .. } | PostgresError::Connection { .. } => true,
            // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
            // 08xxx connection exceptions, 55006 object in use (a slot still held by the
            // walsender of a connection that has not noticed it is gone), 53300 too
            // many connections.
            PostgresError::Server { code, .. } => {
                code.starts_with("57P")
                    || code.starts_with("08")
                    || code == "55006"
                    || code == "53300"
            }
            _ => false,
        }
    }
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostgresError::Config { reason } => {
                write!(f, "the PostgreSQL connection string is not valid: {reason}")
            }
            PostgresError::Setup { reason } => {
                write!(f, "the PostgreSQL source cannot start: {reason}")
            }
            PostgresError::Unreachable { address, attempts, reason } => write!(
                f,
                "PostgreSQL at {address} could not be reached after {attempts} attempts: \
                 {reason}; check that the server runs and listens there"
            ),
            PostgresError::Authentication { user, reason } => write!(
                f,
                "PostgreSQL refused user `{user}`: {reason}; check the user and password of \
                 the connection string (and that the role has the REPLICATION attribute)"
            ),
            PostgresError::Server { during, code, message } => {
                write!(f, "PostgreSQL failed {during}: {message} (SQLSTATE {code})")
            }
            PostgresError::SlotGone { slot } => write!(
                f,
                "the replication slot `{slot}` that the store's position needs is gone, so \
                 the changes since that position are lost to it; resync: clear the views the \
                 source feeds and start again with `PostgresConfig::resync(true)` (or start \
                 from a new store file), which takes a new snapshot"
            ),
            PostgresError::WalGone { slot, reason } => write!(
                f,
                "the replication slot `{slot}` cannot continue from the store's position: \
                 {reason}; resync: start again with `PostgresConfig::resync(true)` (or from \
                 a new store file), which takes a new snapshot"
            ),
            PostgresError::SnapshotInterrupted { reason } => {
                write!(f, "the initial snapshot was interrupted: {reason}")
            }
            PostgresError::Protocol { reason } => {
                write!(f, "PostgreSQL sent what the source cannot read: {reason}")
            }
            PostgresError::Connection { during, reason } => {
                write!(f, "the connection to PostgreSQL failed {during}: {reason}")
            }
        }
    }
}

impl std::error::Error for PostgresError {}
