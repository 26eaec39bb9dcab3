//! The dependency rule of `src/`, checked on the source text (see `docs/design.md`):
//!
//! base ← keys ← {mem, storage} ← schema ← engine ← api ← {project, feed} ← {postgres, kafka}
//! and beside them `inspect`, which reads a file through `storage` alone
//!
//! A file imports only from its own layer and the layers to its left; `mem` and
//! `storage` never import each other; no two files import each other, directly or
//! around a cycle; and the read path (`mem`, `keys`) never names `redb`.
//! `lib.rs` (the public re-exports), `testing/` (behind the `__testing` feature) and
//! `bin/` (programs on the public API) stand outside the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each layer and the layers it may import from, besides itself.
const RULE: &[(&str, &[&str])] = &[
    ("base", &[]),
    ("keys", &["base"]),
    ("mem", &["keys", "base"]),
    ("storage", &["keys", "base"]),
    ("schema", &["mem", "storage", "keys", "base"]),
    ("engine", &["schema", "storage", "mem", "keys", "base"]),
    ("api", &["engine", "schema", "storage", "mem", "keys", "base"]),
    ("project", &["api", "engine", "schema", "storage", "mem", "keys", "base"]),
    ("feed", &["api", "engine", "schema", "storage", "mem", "keys", "base"]),
    ("inspect", &["storage", "keys", "base"]),
    ("postgres", &["project", "api", "engine", "schema", "storage", "mem", "keys", "base"]),
    ("kafka", &["project", "feed", "api", "engine", "schema", "storage", "mem", "keys", "base"]),
];

/// Layers whose code must not name redb: the read path (base only names its error
/// and storage-backend types).
const NO_REDB: &[&str] = &["keys", "mem"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module path of a source file: `src/mem/index.rs` is `["mem", "index"]`,
/// `src/mem/mod.rs` is `["mem"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if segs.last().is_some_and(|s| s == "mod" || s == "lib") {
        segs.pop();
    }
    segs
}

/// The code of a file without comments (line and doc comments).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).filter(|l| !l.trim().is_empty())
}

/// Every `crate::a::b...` path named in `code`, and every `super::` path resolved
/// against `module`, as module paths (identifier segments only).
fn named_paths(code: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut segs: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                // `super` of `mem/index.rs` is `mem`; of `mem/mod.rs`, the crate root.
                let mut parent = module.to_vec();
                if !is_mod_file || parent.len() > 1 {
                    parent.pop();
                }
                if is_mod_file && module.len() == 1 {
                    parent.clear();
                }
                parent
            };
            let rest = &code[from..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            segs.extend(path.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
            // A `{` after the path lists several items of one module: the module is
            // what counts.
            out.push(segs);
        }
    }
    out
}

/// The source file a module path points into: the longest prefix that is a file.
fn file_of(src: &Path, segs: &[String]) -> Option<PathBuf> {
    (1..=segs.len()).rev().find_map(|n| {
        let base: PathBuf = segs[..n].iter().collect();
        let file = src.join(&base).with_extension("rs");
        let dir = src.join(&base).join("mod.rs");
        [file, dir].into_iter().find(|p| p.is_file())
    })
}

/// Depth-first search from `node`; a back edge is a cycle, reported with its files.
fn visit(
    node: &PathBuf,
    edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    state: &mut BTreeMap<PathBuf, u8>,
    stack: &mut Vec<PathBuf>,
    problems: &mut Vec<String>,
) {
    state.insert(node.clone(), 1);
    stack.push(node.clone());
    for next in edges.get(node).into_iter().flatten() {
        match state.get(next) {
            Some(1) => {
                let at = stack.iter().position(|p| p == next).unwrap_or(0);
                let cycle: Vec<String> =
                    stack[at..].iter().map(|p| p.display().to_string()).collect();
                problems.push(format!("import cycle: {} -> back", cycle.join(" -> ")));
            }
            Some(_) => {}
            None => visit(next, edges, state, stack, problems),
        }
    }
    stack.pop();
    state.insert(node.clone(), 2);
}

#[test]
fn the_source_tree_keeps_its_dependency_rule() -> Result<(), Box<dyn std::error::Error>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    files.sort();
    let layers: BTreeMap<&str, &[&str]> = RULE.iter().copied().collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut checked = 0;
    for file in &files {
        let module = module_of(&src, file);
        let Some(layer) = module.first().map(String::as_str) else { continue };
        // `bin/` holds programs that use the crate's public API only, as any user does.
        if layer == "testing" || layer == "bin" {
            continue;
        }
        let Some(allowed) = layers.get(layer) else {
            problems.push(format!("{}: in no layer of the rule", file.display()));
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(file)?;
        let code: String = code_lines(&text).collect::<Vec<_>>().join("\n");
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs");
        if NO_REDB.contains(&layer) && code.contains("redb::") {
            problems.push(format!("{}: the read path names redb", file.display()));
        }
        for path in named_paths(&code, &module, is_mod_file) {
            let Some(target) = path.first().map(String::as_str) else { continue };
            if target != layer && !allowed.contains(&target) {
                problems.push(format!(
                    "{}: layer '{layer}' imports from '{target}' (crate::{})",
                    file.display(),
                    path.join("::")
                ));
            }
            if let Some(to) = file_of(&src, &path)
                && &to != file
            {
                edges.entry(file.clone()).or_default().insert(to);
            }
        }
    }
    // No cycle between files: a depth-first search finds any back edge.
    let mut state: BTreeMap<PathBuf, u8> = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut problems);
        }
    }
    assert!(checked > 30, "only {checked} files were checked: is the source tree where expected?");
    assert!(problems.is_empty(), "the dependency rule is broken:\n{}", problems.join("\n"));
    Ok(())
}
