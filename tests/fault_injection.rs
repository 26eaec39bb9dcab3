//! Faults injected into the storage backend: the N-th write or sync fails once, or
//! from then on (the disk is gone), for every N over a whole workload; then every
//! image a crash could leave is opened and checked. See `viewstore::testing::crash`.

use viewstore::testing::{
    CrashCase, CrashReport, FaultMode, FaultPlan, FaultTarget, run_crash_case,
};

const BATCHES: u64 = 40;

fn case(plan: Option<FaultPlan>, periodic: bool, tear_seeds: Vec<u64>) -> CrashCase {
    CrashCase { batches: BATCHES, trio_every: 5, plan, periodic, tear_seeds }
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
    let total = probe(periodic)?.mutations;
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

#[test]
fn periodic_mode_keeps_whole_groups_in_order() -> Result<(), String> {
    sweep(true, FaultMode::FromThenOn, FaultTarget::Any, 3)?;
    sweep(true, FaultMode::Once, FaultTarget::Any, 3)
}
