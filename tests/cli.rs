//! The `viewstore` command-line tool, end to end on real store files: `info`, `stats`,
//! `verify`, `dump`, `export` and `import`, their tables and `--json`, a store held open
//! by another process, and a corrupt index found by `verify`.

#![cfg(feature = "cli")]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use viewstore::{IndexDef, Store, ViewDef};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Tier {
    Free,
    Paid { seats: u32 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Profile {
    name: String,
    email: String,
    tier: Tier,
    tags: Vec<String>,
}

static PROFILES: ViewDef<u64, Profile> =
    ViewDef::new("profiles").with_indexes(&[&BY_EMAIL]).with_schema_version(2);
static BY_EMAIL: IndexDef<Profile, String> = IndexDef::unique("by_email", |p| p.email.clone());
static COUNTS: ViewDef<String, u64> = ViewDef::new("counts");

fn profile(n: u64) -> Profile {
    Profile {
        name: format!("user {n}"),
        email: format!("u{n}@example.com"),
        tier: if n.is_multiple_of(2) { Tier::Free } else { Tier::Paid { seats: n as u32 } },
        tags: vec!["a".into(); (n % 3) as usize],
    }
}

fn make(path: &Path) -> viewstore::Result<Store> {
    let store = Store::open(path)?;
    let profiles = store.view(&PROFILES)?;
    for n in 1..=10 {
        profiles.put(&n, profile(n), n)?;
    }
    profiles.delete(&10, 11)?;
    store.view(&COUNTS)?.put(&"hits".to_owned(), 42, 1)?;
    Ok(store)
}

fn tool(args: &[&str], stdin: Option<&str>) -> Result<Output, Box<dyn std::error::Error>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_viewstore"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().ok_or("no stdin")?.write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    Ok(child.wait_with_output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn info_shows_views_types_counts_and_shapes_as_a_table_and_as_json() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    make(&path)?.close()?;
    let p = path.to_str().ok_or("path")?;

    let out = tool(&["info", p], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    println!("{table}");
    let header = table.lines().find(|l| l.starts_with("VIEW")).ok_or("no header")?;
    assert!(header.contains("RECORDS") && header.contains("SHAPE"), "{table}");
    let row = table.lines().find(|l| l.starts_with("profiles")).ok_or("no profiles row")?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..7], ["u64", "Profile", "2", "9", "1", "by_email(unique)"], "{row}");

    let out = tool(&["info", p, "--json"], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["lsn"], 12);
    assert_eq!(json["file_bytes"], std::fs::metadata(&path)?.len());
    let views = json["views"].as_array().ok_or("views")?;
    let profiles = views.iter().find(|v| v["name"] == "profiles").ok_or("profiles")?;
    assert_eq!((profiles["records"].as_u64(), profiles["tombstones"].as_u64()), (Some(9), Some(1)));
    assert_eq!(profiles["indexes"][0]["entries"], 9);
    let fingerprint = format!("{:016x}", viewstore::Shape::of::<Profile>()?.fingerprint());
    assert!(profiles["shape"].as_str().ok_or("shape")?.contains(&fingerprint), "{profiles}");
    Ok(())
}

#[test]
fn dump_and_export_write_decoded_json_lines_that_import_reads_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    make(&path)?.close()?;
    let p = path.to_str().ok_or("path")?;

    let out = tool(&["dump", p, "profiles"], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> =
        text(&out.stdout).lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[2], serde_json::json!({"key": 3, "version": 3, "value": profile(3)}));
    assert_eq!(lines[9], serde_json::json!({"key": 10, "version": 11, "deleted": true}));
    let limited = tool(&["dump", p, "profiles", "--limit", "2"], None)?;
    assert_eq!(text(&limited.stdout).lines().count(), 2);

    let out = tool(&["export", p, "profiles"], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = text(&out.stdout);
    assert_eq!(exported.lines().count(), 9);

    // Into a second store with the same view, replacing what it held.
    let copy = dir.path().join("copy.redb");
    {
        let store = Store::open(&copy)?;
        store.view(&PROFILES)?.put(&99, profile(99), 1)?;
        store.close()?;
    }
    let c = copy.to_str().ok_or("path")?;
    let out = tool(&["import", c, "profiles", "--replace"], Some(&exported))?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("9 lines: 9 written, 0 skipped"),
        "{}",
        text(&out.stdout)
    );
    let store = Store::open(&copy)?;
    let profiles = store.view(&PROFILES)?;
    assert_eq!(profiles.len(), 9);
    for n in 1..=9 {
        assert_eq!(
            profiles.get_versioned(&n).map(|(v, p)| (v, (*p).clone())),
            Some((n, profile(n)))
        );
    }
    assert_eq!(profiles.index_get(&BY_EMAIL, "u4@example.com").map(|(k, _)| k), Some(4));
    Ok(())
}

#[test]
fn stats_and_verify_read_every_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    make(&path)?.close()?;
    let p = path.to_str().ok_or("path")?;

    let out = tool(&["stats", p, "--json"], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout)?;
    let tables = json["tables"].as_array().ok_or("tables")?;
    let entries =
        |name: &str| tables.iter().find(|t| t["name"] == name).map(|t| t["entries"].clone());
    assert_eq!(entries("view.profiles"), Some(Value::from(10)));
    assert_eq!(entries("index.profiles/by_email"), Some(Value::from(9)));
    let out = tool(&["stats", p], None)?;
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("view.counts")),
        "{}",
        text(&out.stdout)
    );

    let out = tool(&["verify", p], None)?;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("ok"), "{}", text(&out.stdout));

    // An index entry naming a record that does not exist.
    {
        let db = viewstore::redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        {
            let def: viewstore::redb::TableDefinition<&[u8], u32> =
                viewstore::redb::TableDefinition::new("index.profiles/by_email");
            let mut table = txn.open_table(def)?;
            let mut entry = b"\x02ghost".to_vec();
            entry.extend_from_slice(&77u64.to_be_bytes());
            table.insert(entry.as_slice(), 6)?;
        }
        txn.commit()?;
    }
    let out = tool(&["verify", p, "--json"], None)?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["ok"], false);
    let problems = json["problems"].as_array().ok_or("problems")?;
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = problems[0].as_str().ok_or("text")?;
    assert!(problem.contains("'profiles'") && problem.contains("'by_email'"), "{problem}");
    Ok(())
}

#[test]
fn a_store_held_open_by_another_process_is_refused_and_its_backup_is_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    let store = make(&path)?; // held open by this process while the tool runs
    let p = path.to_str().ok_or("path")?;
    let out = tool(&["info", p], None)?;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("open") && err.contains("Store::backup"), "{err}");
    let out = tool(&["import", p, "counts"], Some(""))?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));

    let copy = dir.path().join("backup.redb");
    store.backup(&copy)?;
    let out = tool(&["dump", copy.to_str().ok_or("path")?, "counts"], None)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), r#"{"key":"hits","version":1,"value":42}"#);
    store.close()?;
    Ok(())
}

#[test]
fn bad_command_lines_and_files_are_errors_not_panics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, vec![7u8; 4096])?;
    let g = garbage.to_str().ok_or("path")?;
    for args in [
        vec![],
        vec!["frobnicate", g],
        vec!["info"],
        vec!["info", g],
        vec!["info", "/nonexistent/store.redb"],
        vec!["dump", g],
        vec!["dump", g, "v", "--limit", "x"],
        vec!["info", g, "--bogus"],
    ] {
        let out = tool(&args, None)?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.starts_with("viewstore: ") && !err.contains("panicked"), "{args:?}: {err}");
    }
    let out = tool(&["--help"], None)?;
    assert!(out.status.success() && text(&out.stdout).contains("usage"));
    Ok(())
}
