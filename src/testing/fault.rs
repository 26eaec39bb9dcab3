//! An in-memory [`redb::StorageBackend`] that injects I/O faults and simulates power loss.
//!
//! It keeps two images apart: the *written* bytes (what a running process reads back,
//! like the page cache) and the *durable* bytes (what the last successful `sync_data`
//! made safe). Every write or length change since that sync is kept in order, so that a
//! power-loss image can apply, drop or tear each of them.

use super::rng::Rng;
use std::io::{Error as IoError, ErrorKind};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Which operations a [`FaultPlan`] counts and fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget {
    /// `write` calls.
    Write,
    /// `sync_data` calls.
    Sync,
    /// Every call that changes the storage: `write`, `set_len` and `sync_data`.
    Any,
}

/// What happens once a [`FaultPlan`] is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The `at`-th targeted call fails; later ones succeed.
    Once,
    /// The `at`-th targeted call and every later one fail: the disk is gone.
    FromThenOn,
    /// The `at`-th targeted call panics (a backend bug); later ones succeed.
    Panic,
}

/// When and how the backend fails: the targeted call with index `at` (counting from 0
/// since the backend was made) fails, or panics, as `mode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Which calls are counted.
    pub target: FaultTarget,
    /// The index of the first call that fails.
    pub at: u64,
    /// Once, from then on, or a panic.
    pub mode: FaultMode,
}

/// Counts of what the backend was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// `write` calls, failed ones included.
    pub writes: u64,
    /// `sync_data` calls, failed ones included.
    pub syncs: u64,
    /// `set_len` calls, failed ones included.
    pub set_lens: u64,
    /// Calls that failed or panicked because of the plan or the capacity.
    pub faults: u64,
}

impl FaultCounters {
    /// Calls that change the storage: writes, syncs and length changes.
    pub fn mutations(&self) -> u64 {
        self.writes + self.syncs + self.set_lens
    }
}

#[derive(Debug, Clone, Copy)]
enum Call {
    Write,
    Sync,
    SetLen,
}

/// A change not yet made durable.
#[derive(Debug, Clone)]
enum Unsynced {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
struct State {
    written: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Unsynced>,
    counters: FaultCounters,
    plan: Option<FaultPlan>,
    capacity: Option<u64>,
}

/// The in-memory fault-injecting backend. Share it with `Arc` and hand a clone to
/// [`StoreBuilder::backend`](crate::StoreBuilder::backend); the test keeps its own to
/// arm faults and take images.
#[derive(Debug, Default)]
pub struct FaultBackend {
    state: Mutex<State>,
}

/// The size of a sector: torn writes land in whole sectors.
pub const SECTOR: usize = 512;

fn injected(what: &str) -> IoError {
    IoError::other(format!("injected fault: {what}"))
}

fn to_usize(n: u64) -> Result<usize, IoError> {
    usize::try_from(n).map_err(|_| IoError::new(ErrorKind::InvalidInput, "offset too large"))
}

impl FaultBackend {
    /// An empty backend with no fault planned.
    pub fn new() -> Self {
        FaultBackend::default()
    }

    /// A backend holding `image` as both its written and durable bytes: a disk found
    /// after a crash.
    pub fn from_image(image: Vec<u8>) -> Self {
        FaultBackend {
            state: Mutex::new(State { written: image.clone(), durable: image, ..State::default() }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans a fault (replacing any earlier plan); `None` removes it.
    pub fn set_plan(&self, plan: Option<FaultPlan>) {
        self.lock().plan = plan;
    }

    /// Limits the storage to `bytes`: a write or `set_len` that would grow it past that
    /// fails with [`ErrorKind::StorageFull`]. `None` removes the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// What the backend has been asked to do so far.
    pub fn counters(&self) -> FaultCounters {
        self.lock().counters
    }

    /// The bytes a running process reads back (every successful write applied).
    pub fn written_image(&self) -> Vec<u8> {
        self.lock().written.clone()
    }

    /// The bytes made safe by the last successful sync.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// How many changes are not yet durable.
    pub fn unsynced(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// The bytes a power loss would leave: the durable image with each unsynced change,
    /// in order, applied, dropped or (for writes) torn at a sector boundary, as
    /// `tear_seed` decides. Seed 0 drops every unsynced change.
    pub fn power_loss_image(&self, tear_seed: u64) -> Vec<u8> {
        let state = self.lock();
        let mut image = state.durable.clone();
        if tear_seed == 0 {
            return image;
        }
        let mut rng = Rng::new(tear_seed);
        for change in &state.unsynced {
            match change {
                Unsynced::SetLen(len) => {
                    if !rng.one_in(3) {
                        image.resize(*len, 0);
                    }
                }
                Unsynced::Write { offset, data } => {
                    let kept = match rng.below(3) {
                        0 => data.len(),
                        1 => 0,
                        _ => {
                            let sectors = data.len().div_ceil(SECTOR) as u64;
                            (rng.below(sectors + 1) as usize * SECTOR).min(data.len())
                        }
                    };
                    if kept > 0 {
                        let end = offset + kept;
                        if image.len() < end {
                            image.resize(end, 0);
                        }
                        image[*offset..end].copy_from_slice(&data[..kept]);
                    }
                }
            }
        }
        image
    }

    /// Counts a call and decides whether the plan fails it (`Err(Some(e))`) or makes
    /// it panic (`Err(None)`).
    fn check(state: &mut State, call: Call) -> Result<(), Option<IoError>> {
        let any_index = state.counters.mutations();
        let (counter, target) = match call {
            Call::Write => (&mut state.counters.writes, Some(FaultTarget::Write)),
            Call::Sync => (&mut state.counters.syncs, Some(FaultTarget::Sync)),
            Call::SetLen => (&mut state.counters.set_lens, None),
        };
        let own_index = *counter;
        *counter += 1;
        let Some(plan) = state.plan else {
            return Ok(());
        };
        let index = match plan.target {
            FaultTarget::Any => any_index,
            t if Some(t) == target => own_index,
            _ => return Ok(()),
        };
        let hit = match plan.mode {
            FaultMode::Once | FaultMode::Panic => index == plan.at,
            FaultMode::FromThenOn => index >= plan.at,
        };
        if !hit {
            return Ok(());
        }
        state.counters.faults += 1;
        if plan.mode == FaultMode::Panic {
            return Err(None);
        }
        Err(Some(injected(match call {
            Call::Write => "write failed",
            Call::Sync => "sync failed",
            Call::SetLen => "set_len failed",
        })))
    }

    /// Runs the plan for one call; panics (with the lock released) when it says so.
    fn guard(&self, call: Call) -> Result<MutexGuard<'_, State>, IoError> {
        let mut state = self.lock();
        match FaultBackend::check(&mut state, call) {
            Ok(()) => Ok(state),
            Err(Some(e)) => Err(e),
            Err(None) => {
                drop(state);
                panic!("injected panic in the storage backend");
            }
        }
    }

    fn check_capacity(state: &mut State, new_len: usize) -> Result<(), IoError> {
        match state.capacity {
            Some(cap) if new_len as u64 > cap && new_len > state.written.len() => {
                state.counters.faults += 1;
                Err(IoError::new(ErrorKind::StorageFull, "injected fault: disk full"))
            }
            _ => Ok(()),
        }
    }
}

impl redb::StorageBackend for FaultBackend {
    fn len(&self) -> Result<u64, IoError> {
        Ok(self.lock().written.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        let state = self.lock();
        let start = to_usize(offset)?;
        let end = start
            .checked_add(out.len())
            .filter(|&end| end <= state.written.len())
            .ok_or_else(|| IoError::from(ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(&state.written[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), IoError> {
        let len = to_usize(len)?;
        let mut state = self.guard(Call::SetLen)?;
        FaultBackend::check_capacity(&mut state, len)?;
        state.written.resize(len, 0);
        state.unsynced.push(Unsynced::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), IoError> {
        let mut state = self.guard(Call::Sync)?;
        let State { written, durable, .. } = &mut *state;
        durable.clone_from(written);
        state.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), IoError> {
        let start = to_usize(offset)?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| IoError::new(ErrorKind::InvalidInput, "write past the end"))?;
        let mut state = self.guard(Call::Write)?;
        FaultBackend::check_capacity(&mut state, end)?;
        if state.written.len() < end {
            state.written.resize(end, 0);
        }
        state.written[start..end].copy_from_slice(data);
        state.unsynced.push(Unsynced::Write { offset: start, data: data.to_vec() });
        Ok(())
    }
}
