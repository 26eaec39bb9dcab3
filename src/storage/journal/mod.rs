//! The journal of [`Durability::Journal`](crate::Durability::Journal): a write-ahead log
//! file beside the store file. Each group is appended as one checksummed frame holding
//! its effects (`effects`), synced, and only then acknowledged; redb takes the group
//! without a sync, and a checkpoint (a durable redb commit) later empties the log
//! (`log`). Opening a store replays the frames the file has not durably taken
//! (`replay`).

pub(crate) mod checksum;
pub(crate) mod effects;
pub(crate) mod frame;
pub(crate) mod log;
pub(crate) mod replay;
