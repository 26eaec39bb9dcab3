//! Runs every fuzz target's body over its checked-in corpus (`fuzz/corpus/<target>/`),
//! so that CI exercises the fuzz targets on stable without cargo-fuzz.

use std::path::Path;
use viewstore::testing::fuzz;

fn replay(target: &str, body: fn(&[u8]) -> Result<(), String>) -> Result<(), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<_> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no corpus", dir.display()));
    }
    for file in &files {
        let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        body(&data).map_err(|e| format!("{target} on {}: {e}", file.display()))?;
    }
    println!("{target}: {} corpus files", files.len());
    Ok(())
}

#[test]
fn ops_model_corpus() -> Result<(), String> {
    replay("ops_model", fuzz::ops_model)
}

#[test]
fn decode_value_corpus() -> Result<(), String> {
    replay("decode_value", fuzz::decode_value)
}

#[test]
fn crash_point_corpus() -> Result<(), String> {
    replay("crash_point", fuzz::crash_point)
}

// Regressions: each input a fuzz target failed on, named after what it found.

/// A string whose length prefix is near `u64::MAX` made bincode's decoder panic with a
/// capacity overflow (and a large one would abort on allocation).
#[test]
fn decode_value_huge_length_prefix_is_an_error_not_a_panic() -> Result<(), String> {
    let mut data = vec![0xfd];
    data.extend([0xff; 8]);
    data.extend([1, 2, 3]);
    fuzz::decode_value(&data)?;
    let decoded: Result<String, _> = viewstore::Codec::<String>::decode(&viewstore::Bincode, &data);
    match decoded {
        Err(_) => Ok(()),
        Ok(s) => Err(format!("garbage decoded to a string of {} bytes", s.len())),
    }
}
