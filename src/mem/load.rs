//! Loading a view at open: decode stored records on worker threads while the writer
//! thread reads them from redb, then build the view's indexes in bulk from the sorted
//! result.
//!
//! Reading redb and decoding values cost about the same per record, so splitting them
//! across threads roughly halves the load time on two cores. Records arrive in key
//! order and chunks keep their sequence number, so the result is sorted without a sort
//! and the ordered index is built from full leaves. Decoded chunks are appended to one
//! growing array as soon as they are back in order, and every buffer (raw or decoded)
//! goes back to the workers for reuse: loading leaves no freed memory behind for the
//! allocator to keep.
//!
//! The index keys of the indexes whose entries are stored already (so built from the
//! records at open) are extracted on the same threads, each record's right after its
//! value is decoded, while the value is still in cache, and gathered in key order as
//! the decoded chunks are appended (see `gather`): the index builds that follow only put
//! the entries in order and lay them out.

use super::Entry;
use super::gather::{ChunkKeys, Gathered};
use super::points::Slot;
use crate::base::error::{Error, Result};
use crate::base::index_kind::IndexKind;
use crate::base::version::Version;
use crate::keys::KeyBuf;
use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Records per chunk handed to a worker.
const CHUNK: usize = 4_096;

/// Decodes one stored record (its encoded key and value bytes) into a value, or names
/// what is wrong with it.
pub(crate) type DecodeFn<V> = Arc<dyn Fn(&[u8], &[u8]) -> Result<V> + Send + Sync>;

/// Extracts the index keys of one decoded record (its encoded key and its value) into
/// the runs of its chunk's keys, as the chunk's record number `record`: one run per
/// index extracted, in the order the loader was given them.
pub(crate) type ExtractFn<V> = Arc<dyn Fn(&[u8], &V, u32, &mut ChunkKeys) + Send + Sync>;

/// How a chunk's raw records become decoded ones: the decoding, and the index keys
/// extracted beside it, if any.
struct Decoder<V> {
    decode: DecodeFn<V>,
    /// The extraction, and the kinds of the indexes it extracts, in order.
    extract: Option<(ExtractFn<V>, Vec<IndexKind>)>,
}

/// What a loader holds at the end: every record, decoded, in key order, and for each
/// index extracted while decoding (in the order the loader was given them), its entries
/// gathered, or the error of its first record (in key order) whose keys could not be
/// extracted.
pub(crate) struct Loaded<V> {
    pub(crate) records: Vec<Slot<V>>,
    pub(crate) gathered: Vec<Result<Gathered>>,
}

/// Raw records: keys and versions, and every value's bytes in one buffer.
#[derive(Default)]
struct RawChunk {
    bytes: Vec<u8>,
    records: Vec<(KeyBuf, Version, usize)>,
}

/// A chunk's records decoded, and their index keys.
struct Decoded<V> {
    slots: Vec<Slot<V>>,
    keys: ChunkKeys,
}

impl<V> Default for Decoded<V> {
    fn default() -> Self {
        Decoded { slots: Vec::new(), keys: ChunkKeys::default() }
    }
}

/// The decoding threads of one loader and the channels to and from them.
struct Workers<V> {
    tx: Sender<(usize, RawChunk)>,
    done: Receiver<(usize, Result<Decoded<V>>)>,
    /// Emptied raw chunks coming back, reused so that their buffers are not allocated
    /// (and faulted in) again for every chunk.
    spare_raw: Receiver<RawChunk>,
    /// Emptied decoded chunks going back, for the same reason.
    spare_decoded: Sender<Decoded<V>>,
    handles: Vec<JoinHandle<()>>,
}

/// Builds a view from records pushed in key order.
pub(crate) struct Loader<V> {
    name: String,
    decoder: Arc<Decoder<V>>,
    chunk: RawChunk,
    /// Chunks numbered so far.
    sent: usize,
    workers: Option<Workers<V>>,
    /// Whether starting the workers was tried (and failed when `workers` is `None`).
    started: bool,
    /// Decoded records so far, in key order.
    records: Vec<Slot<V>>,
    /// The entries of the indexes extracted while decoding, gathered so far.
    gathered: Vec<Result<Gathered>>,
    /// The last chunk decoded on this thread, emptied, for the next one.
    spare: Option<Decoded<V>>,
    /// The next chunk to append to `records`.
    next: usize,
    /// Chunks decoded ahead of an earlier one.
    waiting: BTreeMap<usize, Result<Decoded<V>>>,
    /// The first error, in key order.
    error: Option<Error>,
    /// Loaders of later key ranges of the same view, in order.
    later: Vec<Loader<V>>,
}

impl<V: Send + Sync + 'static> Loader<V> {
    pub(crate) fn new(name: &str, decode: DecodeFn<V>) -> Self {
        Loader {
            name: name.to_owned(),
            decoder: Arc::new(Decoder { decode, extract: None }),
            chunk: RawChunk::default(),
            sent: 0,
            workers: None,
            started: false,
            records: Vec::new(),
            gathered: Vec::new(),
            spare: None,
            next: 0,
            waiting: BTreeMap::new(),
            error: None,
            later: Vec::new(),
        }
    }

    /// Extracts the keys of indexes of `kinds` (in that order) with `extract` as each
    /// record is decoded. Called before the first record is pushed.
    pub(crate) fn extract_while_decoding(&mut self, kinds: Vec<IndexKind>, extract: ExtractFn<V>) {
        debug_assert!(self.sent == 0 && self.chunk.records.is_empty(), "set before pushing");
        let decode = Arc::clone(&self.decoder.decode);
        self.gathered = kinds.iter().map(|&kind| Ok(Gathered::new(kind, 0))).collect();
        self.decoder = Arc::new(Decoder { decode, extract: Some((extract, kinds)) });
    }

    /// A loader of the same view, with the same indexes extracted while decoding, for
    /// records whose keys all come after this one's (see [`Loader::append`]).
    pub(crate) fn for_later(&self) -> Self {
        let mut later = Loader::new(&self.name, Arc::clone(&self.decoder.decode));
        if let Some((_, kinds)) = &self.decoder.extract {
            later.gathered = kinds.iter().map(|&kind| Ok(Gathered::new(kind, 0))).collect();
            later.decoder = Arc::clone(&self.decoder);
        }
        later
    }

    /// Decodes on the pushing thread, with no worker: for a loader that already runs
    /// beside another one.
    pub(crate) fn decode_inline(&mut self) {
        self.started = true;
    }

    /// Makes room for `records` decoded records, and for as many entries in each list
    /// of gathered entries (a unique index's: one entry a record), when the memory is
    /// there.
    pub(crate) fn reserve(&mut self, records: usize) {
        let _ = self.records.try_reserve_exact(records);
        for gathered in &mut self.gathered {
            if let Ok(Gathered::Sorted(entries)) = gathered {
                let _ = entries.try_reserve_exact(records);
            }
        }
    }

    /// Says that every record is pushed. A loader that decodes on the pushing thread
    /// decodes the last records now and sorts the entries it gathered that need it, on
    /// that thread: beside the other loaders of the view, rather than after them all.
    pub(crate) fn pushed_all(&mut self) {
        if !self.started || self.workers.is_some() {
            return;
        }
        if !self.chunk.records.is_empty() {
            let last = std::mem::take(&mut self.chunk);
            self.send(last);
        }
        for gathered in self.gathered.iter_mut().flatten() {
            gathered.sort();
        }
    }

    /// Takes one stored record; records must come in key order.
    pub(crate) fn push(&mut self, key: &[u8], version: Version, value: &[u8]) {
        self.chunk.bytes.extend_from_slice(value);
        self.chunk.records.push((KeyBuf::from_slice(key), version, self.chunk.bytes.len()));
        if self.chunk.records.len() == CHUNK {
            let spare = self.workers.as_ref().and_then(|w| w.spare_raw.try_recv().ok());
            let next = spare.unwrap_or_else(|| RawChunk {
                bytes: Vec::with_capacity(self.chunk.bytes.len()),
                records: Vec::with_capacity(CHUNK),
            });
            let full = std::mem::replace(&mut self.chunk, next);
            self.send(full);
        }
    }

    fn send(&mut self, chunk: RawChunk) {
        if !self.started {
            self.started = true;
            self.workers = start_workers(&self.decoder);
        }
        let seq = self.sent;
        self.sent += 1;
        let unsent = match &self.workers {
            Some(w) => w.tx.send((seq, chunk)).err().map(|e| e.into_inner().1),
            None => Some(chunk),
        };
        if let Some(mut chunk) = unsent {
            // No worker: decode here.
            let out = self.spare.take().unwrap_or_default();
            let decoded = decode_chunk(&self.decoder, &mut chunk, out);
            self.absorb(seq, decoded);
        }
        while let Some((seq, decoded)) = self.workers.as_ref().and_then(|w| w.done.try_recv().ok())
        {
            self.absorb(seq, decoded);
        }
    }

    /// Appends decoded chunks to `records` in sequence order.
    fn absorb(&mut self, seq: usize, decoded: Result<Decoded<V>>) {
        self.waiting.insert(seq, decoded);
        while let Some(decoded) = self.waiting.remove(&self.next) {
            self.next += 1;
            match decoded {
                Ok(mut chunk) if self.error.is_none() => {
                    chunk.keys.gather_into(&mut self.gathered, self.records.len());
                    self.records.append(&mut chunk.slots);
                    match &self.workers {
                        Some(w) => {
                            let _ = w.spare_decoded.try_send(chunk);
                        }
                        None => self.spare = Some(chunk),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
    }

    /// Adds the records of `later`, whose keys all come after this loader's.
    pub(crate) fn append(&mut self, later: Loader<V>) {
        self.later.push(later);
    }

    /// Waits for the workers (also those of the loaders appended) and returns every
    /// decoded record in key order, with the entries gathered while decoding.
    ///
    /// # Errors
    ///
    /// The first record, in key order, that does not decode.
    pub(crate) fn into_loaded(mut self) -> Result<Loaded<V>> {
        let later = std::mem::take(&mut self.later);
        let mut loaded = self.loaded()?;
        for later in later {
            let mut more = later.loaded()?;
            let offset = loaded.records.len();
            for (gathered, more) in loaded.gathered.iter_mut().zip(more.gathered) {
                // The first failure in key order is the earlier loader's.
                match (gathered, more) {
                    (Ok(gathered), Ok(more)) => gathered.append(more, offset),
                    (gathered @ Ok(_), Err(e)) => *gathered = Err(e),
                    (Err(_), _) => {}
                }
            }
            loaded.records.append(&mut more.records);
        }
        Ok(loaded)
    }

    /// Waits for the workers and returns the decoded records in key order.
    fn loaded(mut self) -> Result<Loaded<V>> {
        let mut last = std::mem::take(&mut self.chunk);
        let seq = self.sent;
        self.sent += 1;
        let decoded = decode_chunk(&self.decoder, &mut last, Decoded::default());
        self.absorb(seq, decoded);
        if let Some(workers) = self.workers.take() {
            // Closing the queue lets the workers end once it is drained.
            drop(workers.tx);
            drop(workers.spare_raw);
            for (seq, decoded) in &workers.done {
                self.absorb(seq, decoded);
            }
            for handle in workers.handles {
                let _ = handle.join();
            }
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.next != self.sent {
            return Err(Error::decode(
                &self.name,
                "(loading)".into(),
                "a loading thread stopped before decoding its records",
            ));
        }
        Ok(Loaded { records: self.records, gathered: self.gathered })
    }
}

/// Starts the decoding threads: one per core but the one reading. `None` when none
/// could start.
fn start_workers<V: Send + Sync + 'static>(shared: &Arc<Decoder<V>>) -> Option<Workers<V>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_sub(1)
        .max(1);
    let (tx, rx) = crossbeam_channel::bounded::<(usize, RawChunk)>(4 * threads);
    let (done_tx, done) = crossbeam_channel::unbounded();
    let (spare_raw_tx, spare_raw) = crossbeam_channel::bounded::<RawChunk>(4 * threads);
    let (spare_decoded, spare_decoded_rx) = crossbeam_channel::bounded::<Decoded<V>>(4 * threads);
    let mut handles = Vec::new();
    for _ in 0..threads {
        let rx = rx.clone();
        let done_tx = done_tx.clone();
        let spare_raw_tx = spare_raw_tx.clone();
        let spare_decoded_rx = spare_decoded_rx.clone();
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new().name("viewstore-load".into()).spawn(move || {
            for (seq, mut chunk) in rx {
                let out = spare_decoded_rx.try_recv().unwrap_or_default();
                let decoded = decode_chunk(&shared, &mut chunk, out);
                if done_tx.send((seq, decoded)).is_err() {
                    return;
                }
                let _ = spare_raw_tx.try_send(chunk);
            }
        });
        if let Ok(handle) = spawned {
            handles.push(handle);
        }
    }
    (!handles.is_empty()).then_some(Workers { tx, done, spare_raw, spare_decoded, handles })
}

/// Decodes the records of `chunk` into `out` and leaves `chunk` empty, its buffers kept
/// for reuse.
fn decode_chunk<V>(
    decoder: &Decoder<V>,
    chunk: &mut RawChunk,
    mut out: Decoded<V>,
) -> Result<Decoded<V>> {
    out.slots.clear();
    out.slots.reserve(chunk.records.len());
    out.keys.reset(decoder.extract.as_ref().map_or(0, |(_, kinds)| kinds.len()));
    let result = decode_records(decoder, chunk, &mut out);
    chunk.records.clear();
    chunk.bytes.clear();
    result.map(|()| out)
}

fn decode_records<V>(
    decoder: &Decoder<V>,
    chunk: &mut RawChunk,
    out: &mut Decoded<V>,
) -> Result<()> {
    let mut start = 0;
    for (record, (key, version, end)) in (0u32..).zip(chunk.records.drain(..)) {
        let value = (decoder.decode)(key.as_bytes(), &chunk.bytes[start..end])?;
        start = end;
        if let Some((extract, _)) = &decoder.extract {
            extract(key.as_bytes(), &value, record, &mut out.keys);
        }
        out.slots.push(Slot { key, entry: Entry { version, value: Arc::new(value) } });
    }
    Ok(())
}
