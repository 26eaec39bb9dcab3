//! One crash scenario, run end to end: a store on a [`FaultBackend`] runs the
//! [`Workload`] while a fault is planned, then every image a crash could leave is opened
//! and checked. Shared by the fault sweep test and the `crash_point` fuzz target.

use super::disk::{check_store_invariants, read_backend};
use super::fault::{FaultBackend, FaultMode, FaultPlan};
use super::workload::{Workload, check_lossy, check_recovered};
use crate::api::store::Store;
use crate::base::config::Durability;
use crate::base::error::Error;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct CrashCase {
    /// How many workload batches to submit.
    pub batches: u64,
    /// Every how many batches three are submitted at once (so that they can share a
    /// group); 0 = never.
    pub trio_every: u64,
    /// The fault, if any.
    pub plan: Option<FaultPlan>,
    /// Periodic durability instead of immediate.
    pub periodic: bool,
    /// Journal durability instead of immediate (or periodic): the log lives in a second
    /// fault backend.
    pub journal: bool,
    /// With `journal`, the plan fails calls to the log instead of the store file.
    pub log_faults: bool,
    /// The seeds of the power-loss images to check (0 drops every unsynced write).
    pub tear_seeds: Vec<u64>,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct CrashReport {
    /// Batches acknowledged.
    pub acknowledged: usize,
    /// Batches that got an error.
    pub failed: usize,
    /// Faults the backend injected.
    pub faults: u64,
    /// Whether the store turned read-only.
    pub poisoned: bool,
    /// Calls to the backend that change it.
    pub mutations: u64,
    /// Of those, `write` calls.
    pub writes: u64,
    /// Of those, `sync_data` calls.
    pub syncs: u64,
    /// Crash images opened and checked.
    pub images: usize,
}

const NAME: &str = "fault-backend";

/// The durability a case runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Immediate,
    Periodic,
    /// Journal durability; checkpoints only at the journal's limit (a few groups), so
    /// that both power-loss windows, log-only groups and checkpoints, are crossed.
    Journal,
}

impl Mode {
    fn of(case: &CrashCase) -> Mode {
        if case.journal {
            Mode::Journal
        } else if case.periodic {
            Mode::Periodic
        } else {
            Mode::Immediate
        }
    }
}

/// The store file and the journal, each in its own backend.
struct Files {
    store: Arc<FaultBackend>,
    log: Arc<FaultBackend>,
}

fn open(files: &Files, mode: Mode) -> crate::Result<Store> {
    let mut builder = Store::builder(NAME).backend(Arc::clone(&files.store) as _);
    match mode {
        Mode::Immediate => {}
        Mode::Periodic => {
            builder =
                builder.durability(Durability::Periodic { interval: Duration::from_secs(3600) });
        }
        Mode::Journal => {
            builder = builder
                .durability(Durability::Journal)
                .journal_backend(Arc::clone(&files.log) as _)
                .journal_limit(JOURNAL_LIMIT)
                .checkpoint_interval(Duration::from_secs(3600))
                .cache_size(JOURNAL_CACHE);
        }
    }
    builder.open()
}

/// The journal limit of the journal cases: a checkpoint every few groups.
const JOURNAL_LIMIT: u64 = 2048;

/// redb's page cache in the journal cases: so small that the pages of the open
/// transaction (the groups since the last checkpoint) are written to the file before the
/// checkpoint commits them, and power-loss images hold them.
const JOURNAL_CACHE: usize = 16 << 10;

fn expected_error(e: &Error, context: &str) -> Result<(), String> {
    match e {
        // `Io` names the journal, in journal mode.
        Error::Storage { .. } | Error::Io { .. } | Error::Poisoned { .. } => Ok(()),
        other => Err(format!("{context}: unexpected error kind: {other}")),
    }
}

/// Runs `case` and checks: every failed call yields a storage error (or `Poisoned`
/// once the store gave up), never a panic or a hang; readers keep seeing whole
/// batches; with a one-off fault the store recovers; and every image a crash could
/// leave opens and holds `acknowledged ⊆ recovered ⊆ acknowledged ∪ failed`, whole
/// batches, memory equal to disk.
///
/// # Errors
///
/// A message saying which check failed, with the case.
pub fn run_crash_case(case: &CrashCase) -> Result<CrashReport, String> {
    run(case).map_err(|e| format!("{e}\n  case: {case:?}"))
}

fn run(case: &CrashCase) -> Result<CrashReport, String> {
    let mode = Mode::of(case);
    let files = Files { store: Arc::new(FaultBackend::new()), log: Arc::new(FaultBackend::new()) };
    let backend = if mode == Mode::Journal && case.log_faults { &files.log } else { &files.store };
    backend.set_plan(case.plan);
    let once = case.plan.is_none_or(|p| p.mode != FaultMode::FromThenOn);
    // A failed append or sync of the journal stops the store for good, by design.
    let fatal_once = case.periodic || (mode == Mode::Journal && case.log_faults);
    let mut tally = Tally::default();

    let store = match open(&files, mode) {
        Ok(s) => Some(s),
        Err(e) => {
            expected_error_or_open(&e)?;
            if once {
                // The fault is spent: opening again must work.
                Some(open(&files, mode).map_err(|e| format!("second open: {e}"))?)
            } else {
                None
            }
        }
    };
    // A store whose creation never finished may be left unopenable, with a typed error.
    let created = store.is_some();
    if let Some(store) = store {
        let workload = match Workload::open(&store) {
            Ok(w) => Some(w),
            Err(e) => {
                expected_error(&e, "opening the views")?;
                if once {
                    Some(Workload::open(&store).map_err(|e| format!("views again: {e}"))?)
                } else {
                    None
                }
            }
        };
        if let Some(workload) = workload {
            drive(&store, &workload, case, &mut tally)?;
            match store.verify() {
                Ok(report) if report.is_ok() => {}
                Ok(report) => return Err(format!("verify found {:?}", report.problems)),
                // The fault may have stopped the writer after the last answer.
                Err(Error::Poisoned { .. }) if !once || fatal_once => tally.poisoned = true,
                Err(e) => return Err(format!("verify after the workload: {e}")),
            }
            // In periodic mode a one-off fault that loses acknowledged groups stops the
            // store: writing on would leave a hole.
            if once && tally.poisoned && !fatal_once {
                return Err("a one-off fault poisoned the store".into());
            }
            if once && !tally.poisoned && tally.failed.len() > 3 {
                return Err(format!(
                    "a one-off fault failed {} batches: {:?}",
                    tally.failed.len(),
                    tally.failed
                ));
            }
        }
        match store.close() {
            Ok(()) => {}
            Err(Error::Poisoned { .. }) if fatal_once || !once => tally.poisoned = true,
            Err(e) if !once => expected_error(&e, "close")?,
            Err(e) => return Err(format!("close after a one-off fault: {e}")),
        }
    }
    let counters = backend.counters();
    let Tally { acked, failed, poisoned, .. } = tally;
    let mut report = CrashReport {
        acknowledged: acked.len(),
        failed: failed.len(),
        faults: counters.faults,
        poisoned,
        mutations: counters.mutations(),
        writes: counters.writes,
        syncs: counters.syncs,
        images: 0,
    };

    // What a restart would find (the process died, the machine did not), then what
    // each simulated power loss would leave.
    let mut images = vec![("restart", files.store.written_image(), files.log.written_image())];
    for &seed in &case.tear_seeds {
        // The two files lose their unsynced writes independently.
        let log_seed = if seed == 0 { 0 } else { seed.wrapping_mul(31) | 1 };
        images.push((
            "power loss",
            files.store.power_loss_image(seed),
            files.log.power_loss_image(log_seed),
        ));
    }
    for (what, image, log) in images {
        match check_image((image, log), mode, &acked, &failed) {
            Ok(()) => report.images += 1,
            Err(Unopenable(e)) if !created => {
                // Nothing was acknowledged before the store existed; the file that a
                // failed creation leaves may be refused, with a typed error.
                expected_error_or_refused(&e).map_err(|e| format!("{what} image: {e}"))?;
            }
            Err(Unopenable(e)) => return Err(format!("{what} image does not open: {e}")),
            Err(Inconsistent(e)) => return Err(format!("{what} image: {e}")),
        }
    }
    Ok(report)
}

/// What the workload got back.
#[derive(Default)]
struct Tally {
    acked: BTreeSet<u64>,
    failed: BTreeSet<u64>,
    poisoned: bool,
    last_lsn: u64,
}

/// Submits the workload, one batch or three at a time, checking every answer and what
/// readers see after it.
fn drive(
    store: &Store,
    workload: &Workload,
    case: &CrashCase,
    tally: &mut Tally,
) -> Result<(), String> {
    let mut i = 0;
    while i < case.batches {
        let n = if case.trio_every > 0 && i % case.trio_every == 0 {
            3.min(case.batches - i)
        } else {
            1
        };
        let floor = tally.last_lsn;
        let tickets: Vec<_> = (i..i + n)
            .map(|b| {
                let batch = workload.batch(b).map_err(|e| format!("batch {b}: {e}"))?;
                Ok((b, store.submit(batch)))
            })
            .collect::<Result<_, String>>()?;
        for (b, ticket) in tickets {
            match ticket.and_then(crate::Ticket::wait) {
                Ok(receipt) => {
                    if receipt.lsn.get() <= floor {
                        return Err(format!(
                            "batch {b} got lsn {}, not above {floor}",
                            receipt.lsn.get()
                        ));
                    }
                    tally.last_lsn = tally.last_lsn.max(receipt.lsn.get());
                    tally.acked.insert(b);
                }
                Err(e) => {
                    expected_error(&e, &format!("batch {b}"))?;
                    tally.poisoned |= matches!(e, Error::Poisoned { .. });
                    tally.failed.insert(b);
                }
            }
        }
        // Readers keep working and see whole batches, whatever failed.
        let present = workload.present().map_err(|e| format!("in memory: {e}"))?;
        check_recovered(&present, &tally.acked, &tally.failed)
            .map_err(|e| format!("in memory after batch {}: {e}", i + n - 1))?;
        i += n;
    }
    Ok(())
}

/// Opening can also fail because the fault hit while the file was being created.
fn expected_error_or_open(e: &Error) -> Result<(), String> {
    expected_error(e, "open")
}

fn expected_error_or_refused(e: &Error) -> Result<(), String> {
    match e {
        Error::NotAStore { .. } => Ok(()),
        other => expected_error(other, "opening a half-created store"),
    }
}

enum ImageFailure {
    Unopenable(Error),
    Inconsistent(String),
}
use ImageFailure::{Inconsistent, Unopenable};

fn check_image(
    (image, log): (Vec<u8>, Vec<u8>),
    mode: Mode,
    acked: &BTreeSet<u64>,
    failed: &BTreeSet<u64>,
) -> Result<(), ImageFailure> {
    let files = Files {
        store: Arc::new(FaultBackend::from_image(image)),
        log: Arc::new(FaultBackend::from_image(log)),
    };
    // A periodic image opens as immediate; a journal image must replay its log.
    let reopen = if mode == Mode::Journal { Mode::Journal } else { Mode::Immediate };
    let store = open(&files, reopen).map_err(Unopenable)?;
    let workload = Workload::open(&store).map_err(Unopenable)?;
    let lossy = mode == Mode::Periodic;
    check_opened(&store, &workload, files.store, lossy, acked, failed).map_err(Inconsistent)
}

fn check_opened(
    store: &Store,
    workload: &Workload,
    backend: Arc<FaultBackend>,
    lossy: bool,
    acked: &BTreeSet<u64>,
    failed: &BTreeSet<u64>,
) -> Result<(), String> {
    let present = workload.present()?;
    super::workload::check_verify(store)?;
    if lossy {
        check_lossy(&present, acked, failed)?;
    } else {
        check_recovered(&present, acked, failed)?;
    }
    let snapshot = store.snapshot();
    store.close().map_err(|e| format!("close: {e}"))?;
    let disk = read_backend(backend)?;
    check_store_invariants(&snapshot, &disk)
}
