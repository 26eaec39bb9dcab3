//! Tests that run this test binary again as child processes: another process opening a
//! file a store holds, two processes creating the same new store at once (two replicas
//! starting on a shared volume), and the read-only cases run as an unprivileged user.
//! They have a binary of their own: a child that has forked but not yet exec'd holds
//! copies of the parent's file descriptors and their locks, which would disturb the
//! lock-sensitive tests of another binary running beside them.

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use support::{
    MARK, NAMES, TestResult, create_names, expected_names, finish_child, in_child, io_kind, name,
    put_now, read_names, settle, spawn_child,
};
use viewstore::testing::check_verify;
use viewstore::{Batch, Error, Outcome, Store, ViewDef};

/// Set in a child that must open the file it names and report what happened.
const OPEN_ENV: &str = "VIEWSTORE_TEST_OPEN";
/// The unprivileged user the read-only tests run as when the suite runs as root.
const NOBODY: u32 = 65_534;

const NUMBERS: ViewDef<u64, u64> = ViewDef::new("numbers");

/// Whether `e` is the refusal of a file that another handle holds open.
fn already_open(e: &Error) -> bool {
    matches!(e, Error::AlreadyOpen { .. })
}

// ---------------------------------------------------------------------------------
// 2. Two processes on one file.

/// The child of [`another_process_is_refused_while_the_file_is_open`]: opens the file in
/// [`OPEN_ENV`] and prints what happened. Does nothing in a normal run.
#[test]
fn child_open_entry() {
    let Some(path) = std::env::var_os(OPEN_ENV) else {
        return;
    };
    let verdict = match Store::open(Path::new(&path)) {
        Err(e) if already_open(&e) => format!("already-open {e}"),
        Err(e) => format!("other-error {e:?}"),
        Ok(store) => match store.view(&NAMES) {
            Ok(names) => {
                let (lsn, len) = (store.lsn().get(), names.len());
                match store.close() {
                    Ok(()) => format!("opened lsn {lsn} records {len}"),
                    Err(e) => format!("close-error {e:?}"),
                }
            }
            Err(e) => format!("view-error {e:?}"),
        },
    };
    println!("\n{MARK}{verdict}");
}

fn open_in_child(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let child = spawn_child(
        &["--exact", "child_open_entry", "--nocapture", "--test-threads=1"],
        &[(OPEN_ENV, path.as_os_str())],
        None,
    )?;
    let output = finish_child(child)?;
    if !output.status.success() {
        return Err(format!("the child failed ({}): {}", output.status, output.stderr).into());
    }
    Ok(output.verdict()?.to_owned())
}

#[test]
fn another_process_is_refused_while_the_file_is_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let store = Store::open(&path)?;
    let names = store.view(&NAMES)?;
    let mut batch = Batch::new();
    for i in 0..50 {
        batch.put(&names, &i, name(i), 1)?;
    }
    settle(store.submit(batch)?)??;
    let before = fs::read(&path)?;
    // The store is idle (immediate durability, nothing queued): the file only changes
    // if the child writes to it.
    let verdict = open_in_child(&path)?;
    assert!(verdict.starts_with("already-open "), "the child was not refused: {verdict}");
    assert!(verdict.contains("is already open"), "{verdict}");
    assert!(verdict.contains(&path.display().to_string()), "{verdict}");
    assert_eq!(fs::read(&path)?, before, "the refused process changed the file");
    // The parent is unaffected, and a second child is refused the same way.
    assert_eq!(put_now(&names, &50, name(50), 1)?, Outcome::Applied);
    check_verify(&store)?;
    let verdict = open_in_child(&path)?;
    assert!(verdict.starts_with("already-open "), "the second child: {verdict}");
    let lsn = store.lsn().get();
    store.close()?;
    // With the file closed (the handles still exist), a child opens it and finds all.
    let verdict = open_in_child(&path)?;
    assert_eq!(verdict, format!("opened lsn {lsn} records 51"));
    drop(names);
    assert_eq!(read_names(&path)?, expected_names(0..51));
    Ok(())
}

// ---------------------------------------------------------------------------------
// 4. Read-only files and directories.

/// Whether this process may write `path` despite its permission bits (root may).
fn can_write_file(path: &Path) -> bool {
    OpenOptions::new().write(true).open(path).is_ok()
}

/// Whether this process may create a file in `dir` despite its permission bits.
fn can_create_in(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let created = fs::File::create(&probe).is_ok();
    if created {
        let _ = fs::remove_file(&probe);
    }
    created
}

/// When the suite runs as root, permission bits do not stop it: the test runs again in
/// a child as `nobody`, where they do (skipped, with a note, where the child cannot
/// switch users).
fn rerun_unprivileged(test: &str) -> TestResult {
    if in_child() {
        return Err("the unprivileged child is privileged too".into());
    }
    let child = match spawn_child(&["--exact", test, "--test-threads=1"], &[], Some(NOBODY)) {
        Ok(child) => child,
        Err(e) => {
            // The same binary starts without a user switch (the two-process test), so
            // this is the switch: not permitted here (no CAP_SETUID, or no such user).
            eprintln!("{test}: cannot run as uid {NOBODY} ({e}); only the privileged case ran");
            return Ok(());
        }
    };
    let output = finish_child(child)?;
    assert!(
        output.status.success() && output.stdout.contains("1 passed"),
        "{test} as uid {NOBODY} failed ({}): {}\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    Ok(())
}

#[test]
fn a_read_only_store_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    create_names(&path, 10)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444))?;
    let before = fs::read(&path)?;
    if can_write_file(&path) {
        // Root (or CAP_DAC_OVERRIDE): the mode bits do not stop writes, and the store
        // opens and writes as usual. The unprivileged case runs in a child as nobody.
        let store = Store::open(&path)?;
        let names = store.view(&NAMES)?;
        assert_eq!(names.len(), 10);
        assert_eq!(put_now(&names, &10, name(10), 1)?, Outcome::Applied);
        store.close()?;
        drop(names);
        assert_eq!(read_names(&path)?, expected_names(0..11));
        rerun_unprivileged("a_read_only_store_file")?;
        return Ok(());
    }
    // Unprivileged: redb opens files for writing, so the open fails with
    // Error::Storage whose I/O error is PermissionDenied, and the file is unchanged.
    let err = Store::open(&path).map(drop).expect_err("a read-only file cannot be opened");
    assert!(matches!(&err, Error::Storage { during: "opening the database", .. }), "{err:?}");
    assert_eq!(io_kind(&err), Some(std::io::ErrorKind::PermissionDenied), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::read(&path)?, before, "the refused file was changed");
    Ok(())
}

#[test]
fn a_new_store_in_a_read_only_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    let locked = dir.path().join("locked");
    fs::create_dir(&locked)?;
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555))?;
    let path = locked.join("new.redb");
    if can_create_in(&locked) {
        // Root: the directory's mode does not stop it, and the store is created.
        let store = Store::open(&path)?;
        let names = store.view(&NAMES)?;
        assert_eq!(put_now(&names, &1, name(1), 1)?, Outcome::Applied);
        store.close()?;
        drop(names);
        assert_eq!(read_names(&path)?, expected_names([1]));
        fs::remove_file(&path)?;
        rerun_unprivileged("a_new_store_in_a_read_only_directory")?;
        return Ok(());
    }
    // Unprivileged: the file cannot be created: Error::Storage with PermissionDenied,
    // and nothing appears in the directory.
    let err = Store::open(&path).map(drop).expect_err("no file can be created here");
    assert!(matches!(&err, Error::Storage { during: "opening the database", .. }), "{err:?}");
    assert_eq!(io_kind(&err), Some(std::io::ErrorKind::PermissionDenied), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::read_dir(&locked)?.count(), 0, "the refused open left a file behind");
    Ok(())
}

// ---------------------------------------------------------------------------------
// Two processes creating one new store.

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
