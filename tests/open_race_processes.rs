//! Two processes opening the same new path at once (two replicas starting on a shared
//! volume). Its own test binary: it spawns children, and a child that has forked but not
//! yet exec'd holds copies of the parent's file descriptors and their locks, which would
//! disturb the lock-sensitive tests of another binary running beside it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use viewstore::{Error, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NUMBERS: ViewDef<u64, u64> = ViewDef::new("numbers");

/// Whether `e` is the refusal of a file that another handle holds open.
fn already_open(e: &Error) -> bool {
    matches!(e, Error::Storage { .. }) && e.to_string().contains("already open")
}

const CHILD_ENV: &str = "VIEWSTORE_HARDENING_OPEN_CHILD";

/// The child of [`two_processes_opening_a_new_path_never_brick_it`]: opens the path,
/// writes, and prints `ok`, `locked` or the error.
fn open_child(path: &Path) {
    let said = match Store::open(path).and_then(|s| {
        s.view(&NUMBERS)?.put(&2, 2, 1)?;
        s.close()
    }) {
        Ok(()) => "ok".to_owned(),
        Err(e) if already_open(&e) => "locked".to_owned(),
        Err(e) => format!("error {e}"),
    };
    let _ = writeln!(std::io::stdout(), "{said}");
}

/// The reset of interrupted creations used to run before redb took its file lock and
/// truncate the other process's half-written file, leaving a file every later open
/// refused. Now one process wins, the other is told the file is already open, and the
/// file opens afterwards.
#[test]
fn two_processes_opening_a_new_path_never_brick_it() -> TestResult {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        open_child(Path::new(&path));
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    for round in 0..60 {
        let path = dir.path().join(format!("procs-{round}.redb"));
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(&exe)
                    .args(["--exact", "two_processes_opening_a_new_path_never_brick_it"])
                    .args(["--nocapture", "--test-threads=1"])
                    .env(CHILD_ENV, &path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut ok = 0;
        for child in children {
            let output = child.wait_with_output()?;
            let text = String::from_utf8_lossy(&output.stdout);
            let line =
                text.lines().find(|l| *l == "ok" || *l == "locked" || l.starts_with("error"));
            match line {
                Some("ok") => ok += 1,
                Some("locked") => {}
                other => return Err(format!("round {round}: child said {other:?}").into()),
            }
        }
        assert!(ok >= 1, "round {round}: neither process opened the file");
        let store = Store::open(&path).map_err(|e| format!("round {round}: {e}"))?;
        assert_eq!(store.view(&NUMBERS)?.get_with(&2, |v| *v), Some(2));
    }
    Ok(())
}
