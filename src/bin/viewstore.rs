//! `viewstore`: inspect a store file without the service's Rust types.
//!
//! ```text
//! viewstore info   <store> [--json]
//! viewstore stats  <store> [--json]
//! viewstore verify <store> [--json]
//! viewstore dump   <store> <view> [--limit N]
//! viewstore export <store> <view>
//! viewstore import <store> <view> [<file>] [--replace]
//! ```
//!
//! `dump` writes every stored record as JSON lines, tombstones included; `export` the
//! live records only, in the form `import` reads. Exit status: 0 on success, 1 when
//! `verify` finds problems, 2 on an error.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;
use viewstore::inspect::{FileInfo, ImportMode, StoreFile, TableStat, import};

const USAGE: &str = "usage:
  viewstore info   <store> [--json]     views, types, shapes, counts, LSN, file size
  viewstore stats  <store> [--json]     the size of every table in the file
  viewstore verify <store> [--json]     read every record and index entry, report problems
  viewstore dump   <store> <view> [--limit N]   every stored record as JSON lines
  viewstore export <store> <view>       live records as JSON lines, for import
  viewstore import <store> <view> [<file>] [--replace]
                                        JSON lines (from <file> or stdin) into a view of a
                                        store no process has open";

/// The parsed command line.
struct Args {
    command: String,
    positional: Vec<String>,
    json: bool,
    replace: bool,
    limit: Option<u64>,
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = raw.next().ok_or("no command given")?;
    if command == "-h" || command == "--help" || command == "help" {
        return Err(String::new());
    }
    let mut args =
        Args { command, positional: Vec::new(), json: false, replace: false, limit: None };
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "--json" => args.json = true,
            "--replace" => args.replace = true,
            "--limit" => {
                let n = raw.next().ok_or("--limit needs a number")?;
                args.limit = Some(n.parse().map_err(|_| format!("--limit {n}: not a number"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => args.positional.push(arg),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("viewstore: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("viewstore: {e}");
            ExitCode::from(2)
        }
    }
}

fn positional<'a>(args: &'a Args, n: usize, what: &str) -> Result<&'a str, String> {
    args.positional
        .get(n)
        .map(String::as_str)
        .ok_or_else(|| format!("{}: no {what} given", args.command))
}

fn open(path: &str) -> Result<StoreFile, String> {
    StoreFile::open(path).map_err(|e| match e {
        viewstore::Error::AlreadyOpen { .. } => format!(
            "{e}\nA process has the store open and holds its lock, so this tool cannot read \
             it consistently. Inspect a copy made by `Store::backup` from that process, or \
             stop it first."
        ),
        e => e.to_string(),
    })
}

type Out<'a> = BufWriter<std::io::StdoutLock<'a>>;

#[expect(clippy::needless_pass_by_value, reason = "used as a map_err adapter")]
fn io(e: std::io::Error) -> String {
    format!("writing the output: {e}")
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let store = positional(args, 0, "store file")?;
    let expected = match args.command.as_str() {
        "info" | "stats" | "verify" => 1,
        "dump" | "export" => 2,
        "import" => 3,
        other => return Err(format!("unknown command '{other}'")),
    };
    if args.positional.len() > expected {
        return Err(format!("{}: too many arguments", args.command));
    }
    let code = match args.command.as_str() {
        "info" => info(args, store, &mut out)?,
        "stats" => stats(args, store, &mut out)?,
        "verify" => verify(args, store, &mut out)?,
        "import" => import_lines(args, store, &mut out)?,
        _ => dump(args, store, &mut out)?,
    };
    out.flush().map_err(io)?;
    Ok(code)
}

fn info(args: &Args, store: &str, out: &mut Out<'_>) -> Result<ExitCode, String> {
    let info = open(store)?.info().map_err(|e| e.to_string())?;
    if args.json {
        writeln!(out, "{}", info_json(&info)).map_err(io)?;
    } else {
        write!(out, "{}", info_table(&info)).map_err(io)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(args: &Args, store: &str, out: &mut Out<'_>) -> Result<ExitCode, String> {
    let file = open(store)?;
    let info = file.info().map_err(|e| e.to_string())?;
    let tables = file.table_stats().map_err(|e| e.to_string())?;
    if args.json {
        writeln!(out, "{}", stats_json(&info, &tables)).map_err(io)?;
    } else {
        write!(out, "{}", stats_table(&info, &tables)).map_err(io)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &Args, store: &str, out: &mut Out<'_>) -> Result<ExitCode, String> {
    let check = open(store)?.verify().map_err(|e| e.to_string())?;
    if args.json {
        let json = serde_json::json!({
            "ok": check.is_ok(), "views": check.views, "records": check.records,
            "index_entries": check.index_entries, "decoded": check.decoded,
            "problems": check.problems,
        });
        writeln!(out, "{json}").map_err(io)?;
    } else {
        let verdict = if check.is_ok() {
            "ok".to_owned()
        } else {
            format!("{} problems", check.problems.len())
        };
        writeln!(
            out,
            "{} views, {} records ({} values decoded by shape), {} index entries: {verdict}",
            check.views, check.records, check.decoded, check.index_entries,
        )
        .map_err(io)?;
        for problem in &check.problems {
            writeln!(out, "  {problem}").map_err(io)?;
        }
    }
    Ok(if check.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn dump(args: &Args, store: &str, out: &mut Out<'_>) -> Result<ExitCode, String> {
    let view = positional(args, 1, "view")?;
    let live_only = args.command == "export";
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut written = 0u64;
    let file = open(store)?;
    let mut failed = None;
    file.dump(view, &mut |record| {
        if (live_only && record.value.is_none()) || written >= limit || failed.is_some() {
            return Ok(());
        }
        written += 1;
        if let Err(e) = writeln!(out, "{}", record.to_json()) {
            failed = Some(e);
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    match failed {
        Some(e) => Err(io(e)),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn import_lines(args: &Args, store: &str, out: &mut Out<'_>) -> Result<ExitCode, String> {
    let view = positional(args, 1, "view")?;
    let mode = if args.replace { ImportMode::Replace } else { ImportMode::Merge };
    let input: Box<dyn BufRead> = match args.positional.get(2).map(String::as_str) {
        None | Some("-") => Box::new(BufReader::new(std::io::stdin())),
        Some(file) => {
            Box::new(BufReader::new(std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?))
        }
    };
    let report = import(store, view, input, mode).map_err(|e| e.to_string())?;
    if args.json {
        let json = serde_json::json!({
            "lines": report.lines, "written": report.written,
            "skipped": report.skipped, "lsn": report.lsn.get(),
        });
        writeln!(out, "{json}").map_err(io)?;
    } else {
        writeln!(
            out,
            "{} lines: {} written, {} skipped (stored version as new or newer); LSN {}",
            report.lines,
            report.written,
            report.skipped,
            report.lsn.get()
        )
        .map_err(io)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn info_json(info: &FileInfo) -> serde_json::Value {
    let views: Vec<_> = info
        .views
        .iter()
        .map(|v| {
            let indexes: Vec<_> = v
                .indexes
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name, "unique": i.unique, "key_type": i.key_type,
                        "entries": i.entries,
                    })
                })
                .collect();
            serde_json::json!({
                "name": v.name, "key_type": v.key_type, "value_type": v.value_type,
                "codec": v.codec, "schema_version": v.schema_version, "records": v.records,
                "tombstones": v.tombstones, "indexes": indexes, "sources": v.sources,
                "shape": v.shape,
            })
        })
        .collect();
    serde_json::json!({
        "path": info.path.display().to_string(), "file_bytes": info.file_bytes,
        "format": info.format, "lsn": info.lsn.get(), "views": views,
    })
}

/// Rows as columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

fn info_table(info: &FileInfo) -> String {
    let mut out = format!(
        "{}: {} bytes, format {}, LSN {}, {} views\n\n",
        info.path.display(),
        info.file_bytes,
        info.format,
        info.lsn.get(),
        info.views.len()
    );
    let rows: Vec<Vec<String>> = info
        .views
        .iter()
        .map(|v| {
            let indexes: Vec<String> = v
                .indexes
                .iter()
                .map(|i| format!("{}({})", i.name, if i.unique { "unique" } else { "multi" }))
                .collect();
            vec![
                v.name.clone(),
                v.key_type.clone(),
                v.value_type.clone(),
                v.schema_version.to_string(),
                v.records.to_string(),
                v.tombstones.to_string(),
                if indexes.is_empty() { "-".into() } else { indexes.join(",") },
                if v.sources.is_empty() { "-".into() } else { v.sources.join(",") },
                v.shape.clone(),
            ]
        })
        .collect();
    out += &table(
        &["VIEW", "KEY", "VALUE", "SCHEMA", "RECORDS", "TOMBSTONES", "INDEXES", "SOURCES", "SHAPE"],
        &rows,
    );
    out
}

fn stats_json(info: &FileInfo, tables: &[TableStat]) -> serde_json::Value {
    let tables: Vec<_> = tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name, "entries": t.entries, "stored_bytes": t.stored_bytes,
                "metadata_bytes": t.metadata_bytes, "fragmented_bytes": t.fragmented_bytes,
                "tree_height": t.tree_height,
            })
        })
        .collect();
    serde_json::json!({
        "path": info.path.display().to_string(), "file_bytes": info.file_bytes,
        "lsn": info.lsn.get(), "tables": tables,
    })
}

fn stats_table(info: &FileInfo, tables: &[TableStat]) -> String {
    let used: u64 = tables.iter().map(|t| t.stored_bytes + t.metadata_bytes).sum();
    let mut out = format!(
        "{}: {} bytes on disk, {} bytes in tables, LSN {}\n\n",
        info.path.display(),
        info.file_bytes,
        used,
        info.lsn.get()
    );
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.entries.to_string(),
                t.stored_bytes.to_string(),
                t.metadata_bytes.to_string(),
                t.fragmented_bytes.to_string(),
                t.tree_height.to_string(),
            ]
        })
        .collect();
    out += &table(&["TABLE", "ENTRIES", "STORED", "METADATA", "FRAGMENTED", "HEIGHT"], &rows);
    out
}
