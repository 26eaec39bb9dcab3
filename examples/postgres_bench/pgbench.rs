//! PostgreSQL's own insert rate on the same machine: `pgbench` with a one-`INSERT`
//! script, and one `INSERT ... SELECT` of the bulk size.

use crate::{Line, Res};
use pg::{Client, NoTls};
use std::process::Command;
use std::time::Instant;

/// `pgbench -n -f <script> -c clients -j clients -T secs url`, its tps.
fn tps(url: &str, script: &std::path::Path, clients: u32, secs: u64) -> Res<f64> {
    let output = Command::new("pgbench")
        .args(["-n", "-f"])
        .arg(script)
        .args(["-c", &clients.to_string(), "-j", &clients.to_string(), "-T", &secs.to_string()])
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(
            format!("pgbench failed: {}{}", text, String::from_utf8_lossy(&output.stderr)).into()
        );
    }
    // `tps = 1234.567890 (without initial connection time)`
    let line = text.lines().find(|l| l.starts_with("tps = ")).ok_or("pgbench printed no tps")?;
    let number = line.trim_start_matches("tps = ").split_whitespace().next().unwrap_or("");
    Ok(number.parse()?)
}

/// pgbench with 1 and 4 clients, then one `INSERT ... SELECT` of `bulk_rows` rows.
pub(crate) fn run(url: &str, secs: u64, bulk_rows: u64) -> Res<Vec<Line>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("insert.sql");
    std::fs::write(&script, "INSERT INTO pgb (payload) VALUES (repeat('x', 64));\n")?;
    let mut lines = Vec::new();
    for clients in [1, 4] {
        let tps = tps(url, &script, clients, secs)?;
        lines.push(Line {
            what: format!("pgbench, 1-row INSERT tx, {clients} client(s)"),
            rows: (tps * secs as f64) as u64,
            rows_per_sec: tps,
            latency: None,
            note: format!("pgbench -n -f insert.sql -c {clients} -j {clients} -T {secs}"),
        });
    }
    let mut db = Client::connect(url, NoTls)?;
    let rows = i64::try_from(bulk_rows)?;
    let started = Instant::now();
    db.execute(
        "INSERT INTO pgb_bulk SELECT i, rpad(i::text, 64) FROM generate_series(1, $1::int8) i",
        &[&rows],
    )?;
    let took = started.elapsed();
    lines.push(Line {
        what: format!("PostgreSQL INSERT ... SELECT of {bulk_rows} rows"),
        rows: bulk_rows,
        rows_per_sec: bulk_rows as f64 / took.as_secs_f64(),
        latency: None,
        note: format!("{:.2} s, one transaction, table not published", took.as_secs_f64()),
    });
    Ok(lines)
}
