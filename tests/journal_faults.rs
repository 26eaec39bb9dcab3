//! Journal durability under injected faults: the N-th write, sync or length change of
//! the journal (or of the store file) fails once, or from then on, for every N over a
//! whole workload; then the restart image and power-loss images of both files (each
//! losing, keeping or tearing its unsynced writes) are opened and checked: every
//! acknowledged batch present, whole; nothing but acknowledged or failed batches. See
//! `viewstore::testing::crash`.

use viewstore::testing::{
    CrashCase, CrashReport, FaultMode, FaultPlan, FaultTarget, run_crash_case,
};

const BATCHES: u64 = 40;

fn case(plan: Option<FaultPlan>, log_faults: bool, tear_seeds: Vec<u64>) -> CrashCase {
    CrashCase {
        batches: BATCHES,
        trio_every: 5,
        plan,
        periodic: false,
        journal: true,
        log_faults,
        tear_seeds,
    }
}

/// The number of calls of the whole workload without faults, to the journal
/// (`log_faults`) or to the store file.
fn probe(log_faults: bool) -> Result<CrashReport, String> {
    let report = run_crash_case(&case(None, log_faults, vec![0, 11, 12_345]))?;
    if report.acknowledged != BATCHES as usize || report.failed != 0 {
        return Err(format!("without faults: {report:?}"));
    }
    Ok(report)
}

fn sweep(log_faults: bool, mode: FaultMode, target: FaultTarget) -> Result<(), String> {
    let probed = probe(log_faults)?;
    let total = match target {
        FaultTarget::Write => probed.writes,
        FaultTarget::Sync => probed.syncs,
        FaultTarget::Any => probed.mutations,
    };
    let (mut faults, mut images, mut runs, mut poisoned) = (0, 0, 0, 0);
    for at in 0..total + 2 {
        let seeds = vec![0, at * 7919 + 1, at * 104_729 + 3, at * 15_485_863 + 5];
        let plan = FaultPlan { target, at, mode };
        let report = run_crash_case(&case(Some(plan), log_faults, seeds))?;
        faults += report.faults;
        images += report.images;
        poisoned += u64::from(report.poisoned);
        runs += 1;
    }
    println!(
        "journal sweep log_faults={log_faults} {mode:?} {target:?}: {runs} runs over {total} \
         calls, {faults} faults injected, {images} crash images checked, {poisoned} poisoned"
    );
    if faults == 0 {
        return Err("the sweep injected no fault".into());
    }
    Ok(())
}

#[test]
fn every_journal_call_failing_once_loses_nothing_acknowledged() -> Result<(), String> {
    sweep(true, FaultMode::Once, FaultTarget::Any)
}

#[test]
fn the_journal_disk_dying_at_every_call_loses_nothing_acknowledged() -> Result<(), String> {
    sweep(true, FaultMode::FromThenOn, FaultTarget::Any)
}

#[test]
fn every_store_file_call_failing_once_in_journal_mode_is_survived() -> Result<(), String> {
    sweep(false, FaultMode::Once, FaultTarget::Any)
}

#[test]
fn the_store_file_dying_in_journal_mode_loses_nothing_acknowledged() -> Result<(), String> {
    sweep(false, FaultMode::FromThenOn, FaultTarget::Any)
}
