//! Corrupt files: bit flips in the header and in every page, truncation, zeroed and
//! swapped pages, random bytes, an empty file. Each corrupted copy is opened in a child
//! process (this test binary run again), because a corruption could abort it. The child
//! must answer with a typed error, or with a store whose data is a whole, consistent
//! state of what was written (the latest, or an earlier commit redb fell back to), and
//! never an empty store for a file that held data.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use viewstore::testing::{Rng, Workload, check_prefix};
use viewstore::{Error, Store};

const CHILD_ENV: &str = "VIEWSTORE_CORRUPT_CHILD";
const PAGE: usize = 4096;
const MARK: &str = "VERDICT ";
const BATCHES: u64 = 60;

/// The store every case corrupts: `BATCHES` workload batches, one commit each.
fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("base.redb");
        let store = Store::open(&path).expect("create the base store");
        let workload = Workload::open(&store).expect("views");
        for i in 0..BATCHES {
            let batch = workload.batch(i).expect("batch");
            store.submit(batch).and_then(viewstore::Ticket::wait).expect("commit");
        }
        store.close().expect("close");
        std::fs::read(&path).expect("read the base store")
    })
}

/// Opens the store at `path` and prints what it found: `error <kind>: <message>`, or
/// `state <lsn> <batches>` for a whole, consistent prefix of the workload, or
/// `inconsistent <why>`.
fn child(path: &Path) {
    let verdict = match open_and_read(path) {
        Ok(v) | Err(v) => v,
    };
    // libtest prints around it: mark the line.
    println!("\n{MARK}{verdict}");
}

fn open_and_read(path: &Path) -> Result<String, String> {
    let kind = |e: &Error| {
        let kind = match e {
            Error::NotAStore { .. } => "NotAStore",
            Error::NewerFormat { .. } => "NewerFormat",
            Error::SchemaMismatch { .. } => "SchemaMismatch",
            Error::Decode { .. } => "Decode",
            Error::Storage { .. } => "Storage",
            Error::Io { .. } => "Io",
            _ => "Other",
        };
        format!("error {kind}: {e}")
    };
    let store = Store::open(path).map_err(|e| kind(&e))?;
    let workload = Workload::open(&store).map_err(|e| kind(&e))?;
    let present = workload.present().map_err(|e| format!("inconsistent {e}"))?;
    check_prefix(&present).map_err(|e| format!("inconsistent {e}"))?;
    let lsn = store.lsn().get();
    if present.len() as u64 != lsn {
        return Err(format!("inconsistent lsn {lsn} but {} batches present", present.len()));
    }
    store.close().map_err(|e| kind(&e))?;
    Ok(format!("state {lsn} {}", present.len()))
}

/// The outcome of one case, as the parent sees it.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Error(String),
    State { lsn: u64 },
}

/// Writes `bytes` to a file and opens it in a child process.
fn run_case(name: &str, bytes: &[u8]) -> Result<Verdict, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("{name}: tempdir: {e}"))?;
    let path = dir.path().join("corrupt.redb");
    std::fs::write(&path, bytes).map_err(|e| format!("{name}: write: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: spawn: {e}"))?;
    let started = Instant::now();
    loop {
        if child.try_wait().map_err(|e| format!("{name}: wait: {e}"))?.is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: the child hung opening the file"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let output = child.wait_with_output().map_err(|e| format!("{name}: output: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix(MARK));
    match line {
        _ if !output.status.success() => Err(format!(
            "{name}: the child crashed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .filter(|l| l.contains("panicked") || l.contains("error"))
                .collect::<Vec<_>>()
                .join(" | ")
        )),
        Some(l) if l.starts_with("error ") => Ok(Verdict::Error(l.to_owned())),
        Some(l) if l.starts_with("state ") => {
            let lsn = l
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{name}: bad verdict {l:?}"))?;
            Ok(Verdict::State { lsn })
        }
        Some(l) => Err(format!("{name}: {l}")),
        None => Err(format!("{name}: the child gave no verdict: {stdout}")),
    }
}

/// Runs every case; fails listing each case whose result is not acceptable. A store
/// that opens must hold data: `State { lsn: 0 }` is silently empty.
fn run_cases(label: &str, cases: Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let (mut errors, mut latest, mut older) = (0, 0, 0);
    let mut failures = Vec::new();
    let total = cases.len();
    for (name, bytes) in cases {
        match run_case(&name, &bytes) {
            Ok(Verdict::Error(_)) => errors += 1,
            Ok(Verdict::State { lsn }) if lsn == BATCHES => latest += 1,
            Ok(Verdict::State { lsn: 0 }) => failures.push(format!("{name}: opened empty")),
            Ok(Verdict::State { .. }) => older += 1,
            Err(e) => failures.push(e),
        }
    }
    println!(
        "{label}: {total} cases: {errors} typed errors, {latest} intact, {older} at an \
         earlier commit, {} failures",
        failures.len()
    );
    if failures.is_empty() { Ok(()) } else { Err(format!("{label}:\n  {}", failures.join("\n  "))) }
}

fn flipped(bytes: &[u8], offset: usize, bit: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[offset] ^= 1 << (bit % 8);
    out
}

#[test]
fn child_entry() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
    }
}

#[test]
fn the_base_store_is_intact() -> Result<(), String> {
    match run_case("base", base())? {
        Verdict::State { lsn } if lsn == BATCHES => Ok(()),
        other => Err(format!("the uncorrupted store gave {other:?}")),
    }
}

#[test]
fn header_bit_flips() -> Result<(), String> {
    let base = base();
    let offsets = (0..128).chain((128..1024).step_by(8));
    let cases = offsets
        .map(|o| (format!("header bit flip at byte {o}"), flipped(base, o, o as u32)))
        .collect();
    run_cases("header bit flips", cases)
}

#[test]
fn a_bit_flip_in_every_page() -> Result<(), String> {
    let base = base();
    let mut rng = Rng::new(0xF11B);
    let cases = (0..base.len() / PAGE)
        .map(|page| {
            let offset = page * PAGE + rng.below(PAGE as u64) as usize;
            let bit = rng.below(8) as u32;
            (
                format!("bit {bit} flipped at byte {offset} (page {page})"),
                flipped(base, offset, bit),
            )
        })
        .collect();
    run_cases("page bit flips", cases)
}

#[test]
fn truncations() -> Result<(), String> {
    let base = base();
    let len = base.len();
    let lengths = [1, 8, 100, PAGE - 1, PAGE, PAGE + 1, len / 4, len / 2, len - PAGE, len - 1];
    let cases = lengths
        .into_iter()
        .map(|l| (format!("truncated to {l} of {len} bytes"), base[..l].to_vec()))
        .collect();
    run_cases("truncations", cases)
}

#[test]
fn zeroed_pages() -> Result<(), String> {
    let base = base();
    let cases = (0..base.len() / PAGE)
        .map(|page| {
            let mut bytes = base.to_vec();
            bytes[page * PAGE..(page + 1) * PAGE].fill(0);
            (format!("page {page} zeroed"), bytes)
        })
        .collect();
    run_cases("zeroed pages", cases)
}

#[test]
fn swapped_pages() -> Result<(), String> {
    let base = base();
    let pages = (base.len() / PAGE) as u64;
    let mut rng = Rng::new(0x5A4B);
    let cases = (0..24)
        .map(|_| {
            let a = rng.below(pages) as usize;
            let b = (a + 1 + rng.below(pages - 1) as usize) % pages as usize;
            let mut bytes = base.to_vec();
            let page_a = base[a * PAGE..(a + 1) * PAGE].to_vec();
            bytes.copy_within(b * PAGE..(b + 1) * PAGE, a * PAGE);
            bytes[b * PAGE..(b + 1) * PAGE].copy_from_slice(&page_a);
            (format!("pages {a} and {b} swapped"), bytes)
        })
        .collect();
    run_cases("swapped pages", cases)
}

#[test]
fn random_bytes() -> Result<(), String> {
    let base = base();
    let mut rng = Rng::new(0xB17E5);
    let mut random = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.next_u64() as u8).collect() };
    let mut cases = Vec::new();
    for len in [1, 9, 100, PAGE, 100_000, base.len()] {
        cases.push((format!("{len} random bytes"), random(len)));
    }
    for len in [PAGE, base.len()] {
        let mut bytes = random(len);
        bytes[..9].copy_from_slice(&base[..9]);
        cases.push((format!("{len} random bytes after a redb magic number"), bytes));
    }
    let mut tail = base[..PAGE].to_vec();
    tail.extend(random(base.len() - PAGE));
    cases.push(("a valid header followed by random pages".into(), tail));
    run_cases("random files", cases)
}

#[test]
fn an_empty_file_becomes_a_new_store() -> Result<(), String> {
    match run_case("empty file", &[])? {
        Verdict::State { lsn: 0 } => Ok(()),
        other => Err(format!("an empty file gave {other:?}")),
    }
}

/// Bytes that pass redb's checksums but are not a record: the view refuses to open
/// with an error naming the view and the key.
#[test]
fn undecodable_record_bytes_name_the_view_and_key() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("s.redb");
    std::fs::write(&path, base()).map_err(|e| e.to_string())?;
    {
        let db = redb::Database::create(&path).map_err(|e| e.to_string())?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            let def: redb::TableDefinition<&[u8], &[u8]> =
                redb::TableDefinition::new("view.wl.links");
            let mut table = txn.open_table(def).map_err(|e| e.to_string())?;
            // Key 3 in the order-preserving encoding of a u64: 8 big-endian bytes.
            let key = 3u64.to_be_bytes();
            table.insert(key.as_slice(), [9u8, 1, 2].as_slice()).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
    }
    // The file lock of the redb handle just dropped can outlive it for a moment: a child
    // process another test of this binary forks at that instant holds a copy of its
    // descriptor until it execs.
    let mut opened = Store::open(&path);
    for _ in 0..200 {
        if !matches!(opened, Err(Error::AlreadyOpen { .. })) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        opened = Store::open(&path);
    }
    let store = opened.map_err(|e| format!("open: {e}"))?;
    match Workload::open(&store) {
        Err(Error::Decode { view, key, .. }) if view == "wl.links" && key.contains('3') => Ok(()),
        Err(e) => Err(format!("expected a decode error naming wl.links and key 3, got {e}")),
        Ok(_) => Err("a view with an undecodable record opened".into()),
    }
}
