//! Faults other than crashes: a panicking update closure, a writer thread that dies, a
//! full disk, and a store dropped with batches still queued. None of them may hang a
//! caller or lose an acknowledged write.

use std::sync::Arc;
use std::time::Duration;
use viewstore::testing::{FaultBackend, FaultMode, FaultPlan, FaultTarget, Workload};
use viewstore::{Batch, Codec, CodecError, Error, Outcome, Receipt, Store, Ticket, ViewDef};

const NAMES: ViewDef<u64, String> = ViewDef::new("names");
const LIMIT: Duration = Duration::from_secs(30);

type TestResult = Result<(), String>;

fn in_memory(backend: &Arc<FaultBackend>) -> Result<Store, String> {
    Store::builder("in-memory")
        .backend(Arc::clone(backend) as _)
        .open()
        .map_err(|e| format!("open: {e}"))
}

/// Waits for a ticket, failing the test instead of hanging.
fn settle(ticket: Ticket) -> Result<viewstore::Result<Receipt>, String> {
    ticket.wait_timeout(LIMIT).map_err(|_| "a ticket was never resolved".to_string())
}

fn storage_full(e: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return true;
        }
        if let Some(viewstore::redb::Error::Io(io)) = err.downcast_ref::<viewstore::redb::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[test]
fn a_panicking_update_fails_its_batch_alone() -> TestResult {
    let backend = Arc::new(FaultBackend::new());
    let store = in_memory(&backend)?;
    let names = store.view(&NAMES).map_err(|e| e.to_string())?;
    // Three batches queued together, so that they can share a group.
    let mut good = Batch::new();
    good.put(&names, &1, "ada".into(), 1).map_err(|e| e.to_string())?;
    let mut bad = Batch::new();
    bad.put(&names, &2, "never".into(), 1).map_err(|e| e.to_string())?;
    bad.update(&names, &1, 2, |_| -> Option<String> { panic!("closure bug") })
        .map_err(|e| e.to_string())?;
    let mut after = Batch::new();
    after.update(&names, &1, 3, |v| v.map(|s| format!("{s}!"))).map_err(|e| e.to_string())?;
    let tickets: Vec<_> = [good, bad, after]
        .into_iter()
        .map(|b| store.submit(b))
        .collect::<viewstore::Result<_>>()
        .map_err(|e| e.to_string())?;
    let results: Vec<_> = tickets.into_iter().map(settle).collect::<Result<_, _>>()?;
    if results[0].is_err() || results[2].is_err() {
        return Err(format!("the other batches failed: {results:?}"));
    }
    match &results[1] {
        Err(Error::UpdatePanicked { view, key, message, .. })
            if view == "names" && key == "1" && message.contains("closure bug") => {}
        other => {
            return Err(format!("expected UpdatePanicked naming names/1, got {other:?}"));
        }
    }
    if names.contains(&2) {
        return Err("the failed batch left its put behind".into());
    }
    if names.get(&1).as_deref().map(String::as_str) != Some("ada!") {
        return Err(format!("names[1] = {:?}", names.get(&1)));
    }
    // The writer lives on.
    let outcome = names.put(&3, "c".into(), 1).map_err(|e| e.to_string())?;
    if outcome != Outcome::Applied {
        return Err(format!("a write after the panic: {outcome:?}"));
    }
    store.close().map_err(|e| e.to_string())
}

#[test]
fn a_writer_that_dies_poisons_the_store_without_hanging() -> TestResult {
    let backend = Arc::new(FaultBackend::new());
    let store = in_memory(&backend)?;
    let workload = Workload::open(&store).map_err(|e| e.to_string())?;
    for i in 0..5 {
        let batch = workload.batch(i).map_err(|e| e.to_string())?;
        settle(store.submit(batch).map_err(|e| e.to_string())?)?.map_err(|e| e.to_string())?;
    }
    // The backend panics inside the next commit, on the writer thread.
    let at = backend.counters().writes;
    backend.set_plan(Some(FaultPlan { target: FaultTarget::Write, at, mode: FaultMode::Panic }));
    let batch = workload.batch(5).map_err(|e| e.to_string())?;
    match settle(store.submit(batch).map_err(|e| e.to_string())?)? {
        Err(Error::Poisoned { .. }) => {}
        other => return Err(format!("the batch the writer died with: {other:?}")),
    }
    // Later writers get Poisoned at once, whether they submit or register a view.
    let batch = workload.batch(6).map_err(|e| e.to_string())?;
    match store.submit(batch) {
        Err(Error::Poisoned { reason, .. }) if reason.contains("panicked") => {}
        Err(e) => return Err(format!("a later submit: {e}")),
        Ok(ticket) => match settle(ticket)? {
            Err(Error::Poisoned { .. }) => {}
            other => return Err(format!("a later batch: {other:?}")),
        },
    }
    match store.view(&NAMES) {
        Err(Error::Poisoned { .. }) => {}
        other => return Err(format!("registering a view: {other:?}")),
    }
    // Reads are still served, with every acknowledged batch.
    let present = workload.present()?;
    if present != (0..5).collect() {
        return Err(format!("after the writer died, reads see {present:?}"));
    }
    match store.close() {
        Err(Error::Poisoned { .. }) => Ok(()),
        other => Err(format!("close of a poisoned store: {other:?}")),
    }
}

/// A codec whose decode panics: a bug in user code that runs on the writer thread when
/// a view's records are loaded.
#[derive(Clone, Copy)]
struct PanickingDecode;

impl Codec<String> for PanickingDecode {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn decode(&self, _: &[u8]) -> Result<String, CodecError> {
        panic!("decode bug")
    }
}

#[test]
fn a_codec_panicking_while_a_view_loads_fails_only_that_open() -> TestResult {
    const RAW: ViewDef<u64, String, PanickingDecode> = ViewDef::with_codec("raw", PanickingDecode);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path).map_err(|e| e.to_string())?;
        let raw = store.view(&RAW).map_err(|e| e.to_string())?;
        raw.put(&1, "one".into(), 1).map_err(|e| e.to_string())?;
        store.close().map_err(|e| e.to_string())?;
    }
    let store = Store::open(&path).map_err(|e| e.to_string())?;
    match store.view(&RAW) {
        Err(Error::Decode { view, key, source, .. })
            if view == "raw" && key == "1" && source.to_string().contains("decode bug") => {}
        other => return Err(format!("loading with a panicking codec: {other:?}")),
    }
    // The writer keeps running: other views open and take writes.
    let names = store.view(&NAMES).map_err(|e| format!("the next view: {e}"))?;
    names.put(&1, "ada".into(), 1).map_err(|e| e.to_string())?;
    store.close().map_err(|e| e.to_string())
}

#[test]
fn a_full_disk_fails_the_group_and_the_store_recovers_when_space_returns() -> TestResult {
    let backend = Arc::new(FaultBackend::new());
    let store = in_memory(&backend)?;
    let names = store.view(&NAMES).map_err(|e| e.to_string())?;
    names.put(&0, "small".into(), 1).map_err(|e| e.to_string())?;
    backend.set_capacity(Some(backend.written_image().len() as u64));
    // Values large enough that the file must grow.
    let big = "x".repeat(200_000);
    let mut full_errors = 0;
    for i in 1..=5u64 {
        match names.put(&i, big.clone(), 1) {
            Err(e @ Error::Storage { .. }) if storage_full(&e) => full_errors += 1,
            Err(e) => return Err(format!("put {i} on a full disk: {e}")),
            Ok(_) => return Err(format!("put {i} of 200 kB fit on a full disk")),
        }
        // Readers keep working and see nothing of the failed groups.
        if names.get(&0).as_deref().map(String::as_str) != Some("small") || names.contains(&i) {
            return Err(format!("reads after failed put {i} are wrong"));
        }
    }
    if full_errors != 5 {
        return Err(format!("{full_errors} disk-full errors"));
    }
    backend.set_capacity(None);
    for i in 1..=5u64 {
        names.put(&i, big.clone(), 1).map_err(|e| format!("put {i} after space returned: {e}"))?;
    }
    if names.len() != 6 {
        return Err(format!("{} records after recovery", names.len()));
    }
    store.close().map_err(|e| format!("close: {e}"))?;
    let store = in_memory(&backend)?;
    let names = store.view(&NAMES).map_err(|e| e.to_string())?;
    if names.len() != 6 || names.get(&5).is_none_or(|v| v.len() != big.len()) {
        return Err("the writes after recovery did not persist".into());
    }
    Ok(())
}

#[test]
fn a_large_group_whose_commit_fails_is_not_published() -> TestResult {
    // With 64 changes or more, the next root is built while the commit syncs: it must
    // be dropped when the commit fails, and every batch of the group fails. The commit
    // fails on a write, before redb writes its header, so the group cannot reach the
    // file either: the reopen that follows the failure loads the store without it. (A
    // failed sync may leave the group whole in the file, and the reopen then loads it.)
    let backend = Arc::new(FaultBackend::new());
    let store = in_memory(&backend)?;
    let names = store.view(&NAMES).map_err(|e| e.to_string())?;
    names.put(&0, "first".into(), 1).map_err(|e| e.to_string())?;
    let batch = || -> Result<Batch, String> {
        let mut batch = Batch::new();
        for i in 1..=100u64 {
            batch.put(&names, &i, format!("value {i}"), 1).map_err(|e| e.to_string())?;
        }
        Ok(batch)
    };
    let at = backend.counters().writes;
    backend.set_plan(Some(FaultPlan { target: FaultTarget::Write, at, mode: FaultMode::Once }));
    match store.submit(batch()?).map_err(|e| e.to_string())?.wait() {
        Err(Error::Storage { .. }) => {}
        Err(e) => return Err(format!("a failed write: {e}")),
        Ok(_) => return Err("100 puts committed through a failed write".into()),
    }
    if backend.counters().faults != 1 {
        return Err(format!("{} faults, expected the one write", backend.counters().faults));
    }
    if names.len() != 1 || (1..=100u64).any(|i| names.contains(&i)) {
        return Err("the failed group is visible".into());
    }
    store.submit(batch()?).map_err(|e| e.to_string())?.wait().map_err(|e| e.to_string())?;
    if names.len() != 101 {
        return Err(format!("{} records after the failed group", names.len()));
    }
    Ok(())
}

#[test]
fn dropping_the_store_with_batches_queued_resolves_every_ticket() -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("s.redb");
    let mut tickets = Vec::new();
    {
        let store = Store::builder(&path).max_batch_ops(1).open().map_err(|e| e.to_string())?;
        let workload = Workload::open(&store).map_err(|e| e.to_string())?;
        for i in 0..300 {
            let batch = workload.batch(i).map_err(|e| e.to_string())?;
            tickets.push((i, store.submit(batch).map_err(|e| e.to_string())?));
        }
        // The store and its views go away with most batches still queued.
    }
    let mut acked = std::collections::BTreeSet::new();
    for (i, ticket) in tickets {
        match settle(ticket)? {
            Ok(_) => {
                acked.insert(i);
            }
            Err(Error::Closed) => {}
            Err(e) => return Err(format!("batch {i}: {e}")),
        }
    }
    let store = Store::open(&path).map_err(|e| e.to_string())?;
    let workload = Workload::open(&store).map_err(|e| e.to_string())?;
    let present = workload.present()?;
    viewstore::testing::check_recovered(&present, &acked, &std::collections::BTreeSet::new())?;
    if present != acked {
        return Err(format!("{} acknowledged, {} present", acked.len(), present.len()));
    }
    Ok(())
}

#[test]
fn close_commits_what_is_queued_and_refuses_what_comes_after() -> TestResult {
    let backend = Arc::new(FaultBackend::new());
    let store = in_memory(&backend)?;
    let workload = Workload::open(&store).map_err(|e| e.to_string())?;
    let tickets: Vec<_> = (0..50)
        .map(|i| store.submit(workload.batch(i)?))
        .collect::<viewstore::Result<_>>()
        .map_err(|e| e.to_string())?;
    store.close().map_err(|e| e.to_string())?;
    for (i, t) in tickets.into_iter().enumerate() {
        settle(t)?.map_err(|e| format!("batch {i} queued before close: {e}"))?;
    }
    match store.submit(workload.batch(50).map_err(|e| e.to_string())?) {
        Err(Error::Closed) => {}
        other => return Err(format!("a submit after close: {other:?}")),
    }
    if workload.present()?.len() != 50 {
        return Err("reads after close lost batches".into());
    }
    Ok(())
}

const FRAGILE: viewstore::IndexDef<String, String> = viewstore::IndexDef::multi("fragile", |v| {
    assert!(v != "boom", "extractor bug");
    v.clone()
});
const INDEXED: ViewDef<u64, String> = ViewDef::new("indexed").with_indexes(&[&FRAGILE]);

#[test]
fn a_panicking_index_extractor_fails_its_batch_alone() -> TestResult {
    let backend = Arc::new(FaultBackend::new());
    let store = in_memory(&backend)?;
    let view = store.view(&INDEXED).map_err(|e| e.to_string())?;
    let mut good = Batch::new();
    good.put(&view, &1, "fine".into(), 1).map_err(|e| e.to_string())?;
    let mut bad = Batch::new();
    bad.put(&view, &2, "also fine".into(), 1).map_err(|e| e.to_string())?;
    bad.put(&view, &3, "boom".into(), 1).map_err(|e| e.to_string())?;
    let tickets = [store.submit(good), store.submit(bad)];
    let mut results = Vec::new();
    for t in tickets {
        results.push(settle(t.map_err(|e| e.to_string())?)?);
    }
    if let Err(e) = &results[0] {
        return Err(format!("the good batch failed: {e}"));
    }
    match &results[1] {
        Err(Error::IndexPanicked { view, index, .. })
            if view == "indexed" && index == "fragile" => {}
        other => return Err(format!("expected IndexPanicked naming indexed/fragile: {other:?}")),
    }
    if view.contains(&2) || view.contains(&3) {
        return Err("the failed batch left records behind".into());
    }
    view.put(&4, "later".into(), 1).map_err(|e| format!("a write after the panic: {e}"))?;
    viewstore::testing::check_verify(&store)?;
    store.close().map_err(|e| e.to_string())
}
