//! What a projector does with an event it cannot apply: stop, or write a dead letter.

use crate::api::batch::{encode_key_for, encode_value};
use crate::api::view::{View, ViewDef};
use crate::base::codec::Bincode;
use crate::base::error::{Error, Result};
use crate::schema::op::{Fallback, Op, OpKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The key of a dead letter: the failed event's source, partition and position.
pub type DeadLetterKey = (String, u32, u64);

/// An event a projector could not apply, kept with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// What failed: the handler's error or panic, or the error of the event's batch.
    pub error: String,
}

/// A dead-letter view under its usual name; open it with [`Store::view`](crate::Store::view)
/// and give the handle to [`OnFailure::DeadLetter`]. Any view of these types will do.
pub const DEAD_LETTERS: ViewDef<DeadLetterKey, DeadLetter> = ViewDef::new("dead_letters");

/// What a projector does with an event that fails: its handler returns an error or
/// panics, or its batch fails on its own (a unique violation, a panicking `update`
/// closure).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum OnFailure {
    /// Stop with [`Error::EventFailed`] naming the event; its position is not stored,
    /// so a restarted projector meets it again. Events of other partitions already in
    /// flight still commit. The default.
    #[default]
    Stop,
    /// Write a [`DeadLetter`] for the event to this view, store the event's position
    /// with it in the same transaction, and go on.
    DeadLetter(View<DeadLetterKey, DeadLetter>),
}

/// Where dead letters go, without a `Store` handle (a fallback waits in the writer's
/// queue, which must not keep the store open).
#[derive(Clone)]
pub(super) struct LetterBox {
    view: usize,
    name: Arc<str>,
    source: Option<u8>,
}

impl LetterBox {
    pub(super) fn of(view: &View<DeadLetterKey, DeadLetter>) -> Result<Self> {
        if !view.sources.is_empty() && view.source.is_none() {
            return Err(Error::SourceRequired { view: view.name().to_owned() });
        }
        Ok(LetterBox { view: view.id, name: Arc::clone(&view.name), source: view.source })
    }

    /// The write of a dead letter for `key` saying `error`.
    pub(super) fn op(&self, key: &DeadLetterKey, error: String) -> Result<Op> {
        let encoded = encode_key_for(&self.name, key)?;
        let letter = DeadLetter { error };
        let bytes =
            encode_value::<DeadLetterKey, _, _>(&self.name, &Bincode, &encoded, &letter, true)?;
        let kind = OpKind::Put { version: key.2, bytes, value: Arc::new(letter) };
        Ok(Op { view: self.view, source: self.source, key: encoded, kind })
    }

    /// A batch fallback that writes a dead letter for `key` with the batch's error.
    pub(super) fn fallback(&self, key: DeadLetterKey) -> Fallback {
        let letters = self.clone();
        Box::new(move |error: &Error| Ok(vec![letters.op(&key, error.to_string())?]))
    }
}
