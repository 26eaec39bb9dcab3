//! Faults injected into the storage backend: the N-th write or sync fails once, or
//! from then on (the disk is gone), for every N over a whole workload; then every
//! image a crash could leave is opened and checked. See `viewstore::testing::crash`.

use viewstore::testing::{
    CrashCase, CrashReport, FaultMode, FaultPlan, FaultTarget, run_crash_case,
};

const BATCHES: u64 = 40;

fn case(plan: Option<FaultPlan>, periodic: bool, tear_seeds: Vec<u64>) -> CrashCase {
    CrashCase {
        batches: BATCHES,
        trio_every: 5,
        plan,
        periodic,
        journal: false,
        log_faults: false,
        tear_seeds,
    }
}

/// The number of storage-changing calls of the whole workload without faults.
fn probe(periodic: bool) -> Result<CrashReport, String> {
    let report = run_crash_case(&case(None, periodic, vec![]))?;
    if report.acknowledged != BATCHES as usize || report.failed != 0 {
        return Err(format!("without faults: {report:?}"));
    }
    Ok(report)
}

fn sweep(periodic: bool, mode: FaultMode, target: FaultTarget, stride: u64) -> Result<(), String> {
    let probed = probe(periodic)?;
    let total = match target {
        FaultTarget::Write => probed.writes,
        FaultTarget::Sync => probed.syncs,
        FaultTarget::Any => probed.mutations,
    };
    let (mut faults, mut images, mut runs, mut poisoned) = (0, 0, 0, 0);
    let mut at = 0;
    while at < total + 2 {
        let seeds = vec![0, at * 7919 + 1, at * 104_729 + 3, at * 15_485_863 + 5];
        let report = run_crash_case(&case(Some(FaultPlan { target, at, mode }), periodic, seeds))?;
        faults += report.faults;
        images += report.images;
        poisoned += u64::from(report.poisoned);
        runs += 1;
        at += stride;
    }
    println!(
        "sweep periodic={periodic} {mode:?} {target:?}: {runs} runs over {total} calls, \
         {faults} faults injected, {images} crash images checked, {poisoned} poisoned"
    );
    if faults == 0 {
        return Err("the sweep injected no fault".into());
    }
    Ok(())
}

#[test]
fn every_call_failing_once_is_survived() -> Result<(), String> {
    sweep(false, FaultMode::Once, FaultTarget::Any, 1)
}

#[test]
fn the_disk_dying_at_every_call_loses_nothing_acknowledged() -> Result<(), String> {
    sweep(false, FaultMode::FromThenOn, FaultTarget::Any, 1)
}

#[test]
fn every_sync_failing_once_is_survived() -> Result<(), String> {
    sweep(false, FaultMode::Once, FaultTarget::Sync, 1)
}

/// Writes keep landing while every fsync fails: nothing acknowledged may be lost, and
/// the batches that got errors may turn up after a restart, whole.
#[test]
fn syncs_failing_for_good_lose_nothing_acknowledged() -> Result<(), String> {
    sweep(false, FaultMode::FromThenOn, FaultTarget::Sync, 1)
}

#[test]
fn every_write_failing_once_is_survived() -> Result<(), String> {
    sweep(false, FaultMode::Once, FaultTarget::Write, 2)
}

#[test]
fn periodic_mode_keeps_whole_groups_in_order() -> Result<(), String> {
    sweep(true, FaultMode::FromThenOn, FaultTarget::Any, 3)?;
    sweep(true, FaultMode::Once, FaultTarget::Any, 3)
}

// Regressions for what the sweeps found.

/// redb writes its magic number last when it creates a file; a creation interrupted
/// before that left a file redb refused forever. It held no commit: it is created
/// afresh.
#[test]
fn an_interrupted_creation_is_created_afresh() -> Result<(), String> {
    use std::sync::Arc;
    use viewstore::testing::FaultBackend;
    let backend = Arc::new(FaultBackend::new());
    backend.set_plan(Some(FaultPlan { target: FaultTarget::Write, at: 0, mode: FaultMode::Once }));
    let open =
        || viewstore::Store::builder("interrupted").backend(Arc::clone(&backend) as _).open();
    if open().is_ok() {
        return Err("the first open should have hit the fault".into());
    }
    if backend.written_image().is_empty() {
        return Err("the interrupted creation left nothing to recover from".into());
    }
    open().map_err(|e| format!("the second open: {e}"))?.close().map_err(|e| e.to_string())?;

    // The same for a file: zeros where the header goes, nothing else.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("s.redb");
    std::fs::write(&path, vec![0u8; 72 * 1024]).map_err(|e| e.to_string())?;
    viewstore::Store::open(&path)
        .map_err(|e| format!("a half-created file: {e}"))?
        .close()
        .map_err(|e| e.to_string())?;
    // A large file of zeros is not what a creation leaves: it is refused, untouched.
    std::fs::write(&path, vec![0u8; 2 << 20]).map_err(|e| e.to_string())?;
    match viewstore::Store::open(&path) {
        Err(viewstore::Error::NotAStore { .. }) => {}
        other => return Err(format!("a 2 MiB file of zeros: {other:?}")),
    }
    let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    if len != 2 << 20 {
        return Err(format!("the refused file was changed to {len} bytes"));
    }
    Ok(())
}

/// In periodic mode a failed commit lost the acknowledged groups not yet synced while
/// later groups went on to disk, leaving a hole. The store now turns read-only, and
/// keeps showing what it acknowledged.
#[test]
fn periodic_mode_stops_instead_of_leaving_a_hole() -> Result<(), String> {
    use std::sync::Arc;
    use std::time::Duration;
    use viewstore::testing::{FaultBackend, Workload, check_lossy};
    let backend = Arc::new(FaultBackend::new());
    let store = viewstore::Store::builder("periodic")
        .backend(Arc::clone(&backend) as _)
        .durability(viewstore::Durability::Periodic { interval: Duration::from_secs(3600) })
        .open()
        .map_err(|e| e.to_string())?;
    let workload = Workload::open(&store).map_err(|e| e.to_string())?;
    let submit = |i| store.submit(workload.batch(i)?)?.wait();
    for i in 0..5 {
        submit(i).map_err(|e| format!("batch {i}: {e}"))?;
    }
    // Unsynced commits may not touch the storage at all: the fault hits whichever
    // call comes next, a later commit's or the final sync's.
    let at = backend.counters().mutations();
    backend.set_plan(Some(FaultPlan { target: FaultTarget::Any, at, mode: FaultMode::Once }));
    let mut acked: std::collections::BTreeSet<u64> = (0..5).collect();
    let mut failed = std::collections::BTreeSet::new();
    for i in 5..400 {
        match submit(i) {
            Ok(_) => {
                acked.insert(i);
            }
            Err(viewstore::Error::Storage { .. } | viewstore::Error::Poisoned { .. }) => {
                failed.insert(i);
                break;
            }
            Err(e) => return Err(format!("batch {i}: {e}")),
        }
    }
    println!("acknowledged {}, failed {failed:?}", acked.len());
    if let Some(&first) = failed.iter().next() {
        // Acknowledged groups were lost with the failed database: no more writes.
        match submit(first + 1) {
            Err(viewstore::Error::Poisoned { .. }) => {}
            other => return Err(format!("a write after acknowledged groups were lost: {other:?}")),
        }
        failed.insert(first + 1);
        let present = workload.present()?;
        if present != acked {
            return Err(format!("readers see {present:?}, acknowledged {acked:?}"));
        }
    } else if store.close().is_ok() {
        return Err("the fault hit nothing".into());
    }
    drop(store);
    drop(workload);
    let restarted = Arc::new(FaultBackend::from_image(backend.written_image()));
    let store = viewstore::Store::builder("periodic")
        .backend(restarted as _)
        .open()
        .map_err(|e| e.to_string())?;
    let present = Workload::open(&store).map_err(|e| e.to_string())?.present()?;
    check_lossy(&present, &acked, &failed)
}
