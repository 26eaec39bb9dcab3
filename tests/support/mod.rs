//! Helpers shared by the test files that use them: bounded waits, a `names` view with
//! known contents, and child processes (the test binary run again).

#![allow(dead_code, reason = "each test binary uses a part of these helpers")]

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use viewstore::Store;
use viewstore::{Batch, Codec, Error, Outcome, Receipt, Ticket, View, ViewDef, ViewKey, ViewValue};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

pub(crate) const NAMES: ViewDef<u64, String> = ViewDef::new("names");

/// The longest any single wait may take before the test calls it a hang.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// Set in a child process run by [`spawn_child`], so that it does not spawn children.
pub(crate) const CHILD_ENV: &str = "VIEWSTORE_TEST_CHILD";
/// Marks the verdict line of a child (libtest prints around it).
pub(crate) const MARK: &str = "TEST-CHILD-VERDICT ";

/// Waits for a ticket, failing the test instead of hanging.
pub(crate) fn settle(ticket: Ticket) -> Result<viewstore::Result<Receipt>, String> {
    ticket.wait_timeout(LIMIT).map_err(|_| format!("a ticket was not resolved within {LIMIT:?}"))
}

/// `view.put`, with a bounded wait: one put in its own batch; returns its outcome.
pub(crate) fn put_now<K: ViewKey, V: ViewValue, C: Codec<V> + Clone>(
    view: &View<K, V, C>,
    key: &K,
    value: V,
    version: u64,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut batch = Batch::new();
    batch.put(view, key, value, version)?;
    let receipt = settle(view.store().submit(batch)?)??;
    Ok(receipt.outcomes.first().copied().ok_or("a receipt without an outcome")?)
}

/// The redb error inside an [`Error::Storage`].
pub(crate) fn redb_source(e: &Error) -> Option<&viewstore::redb::Error> {
    match e {
        Error::Storage { source, .. } => Some(source.as_ref()),
        _ => None,
    }
}

/// The kind of the I/O error at the bottom of `e`'s source chain, if there is one.
pub(crate) fn io_kind(e: &Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        if let Some(viewstore::redb::Error::Io(io)) = err.downcast_ref::<viewstore::redb::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

pub(crate) fn name(i: u64) -> String {
    format!("name {i}")
}

/// Creates a store at `path` holding `names[i] = name(i)` for `i` in `0..count`, in one
/// batch, and closes it.
pub(crate) fn create_names(path: &Path, count: u64) -> TestResult {
    let store = Store::open(path)?;
    let names = store.view(&NAMES)?;
    let mut batch = Batch::new();
    for i in 0..count {
        batch.put(&names, &i, name(i), 1)?;
    }
    settle(store.submit(batch)?)??;
    store.close()?;
    Ok(())
}

/// Opens the store at `path` and returns every record of `names`.
pub(crate) fn read_names(path: &Path) -> Result<Vec<(u64, String)>, Box<dyn std::error::Error>> {
    let store = Store::open(path)?;
    let names = store.view(&NAMES)?;
    let all = names.range(..).into_iter().map(|(k, v)| (k, (*v).clone())).collect();
    store.close()?;
    Ok(all)
}

pub(crate) fn expected_names(keys: impl IntoIterator<Item = u64>) -> Vec<(u64, String)> {
    keys.into_iter().map(|i| (i, name(i))).collect()
}

/// What a child process printed and how it ended.
pub(crate) struct ChildOutput {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl ChildOutput {
    pub(crate) fn verdict(&self) -> Result<&str, String> {
        self.stdout.lines().find_map(|l| l.strip_prefix(MARK)).ok_or_else(|| {
            format!("the child gave no verdict ({}): {} {}", self.status, self.stdout, self.stderr)
        })
    }
}

/// Starts this test binary again with `args` and `env` set and, with `uid`, as that
/// user and group.
pub(crate) fn spawn_child(
    args: &[&str],
    env: &[(&str, &OsStr)],
    uid: Option<u32>,
) -> Result<Child, std::io::Error> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(args)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(id) = uid {
        // std drops the supplementary groups when root switches users.
        command.uid(id).gid(id);
    }
    command.spawn()
}

/// Collects what a child printed, waiting at most [`LIMIT`] for it (killing it then).
pub(crate) fn finish_child(mut child: Child) -> Result<ChildOutput, String> {
    let (tx, rx) = mpsc::channel();
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().ok_or("the child has no stdout")?),
        Box::new(child.stderr.take().ok_or("the child has no stderr")?),
    ];
    for (n, mut pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send((n, text));
        });
    }
    let deadline = Instant::now() + LIMIT;
    let mut texts = [String::new(), String::new()];
    for _ in 0..2 {
        // The pipes close when the child exits (it starts no processes of its own).
        let Ok((n, text)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the child did not finish within {LIMIT:?}"));
        };
        texts[n] = text;
    }
    let status = child.wait().map_err(|e| format!("waiting for the child: {e}"))?;
    let [stdout, stderr] = texts;
    Ok(ChildOutput { status, stdout, stderr })
}

pub(crate) fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}
