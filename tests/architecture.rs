//! ARCHITECTURE.md is a codemap: every path it names exists, and every source
//! file of the crate and the kernels crate is named in it (as a path, or as
//! `file.rs` in the paragraph of a folder it names), so a module cannot be
//! added, moved or removed without the map following.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn codemap() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is at the top level")
}

/// The backticked spans of the text that look like repository paths.
fn named_paths(text: &str) -> Vec<String> {
    const TOP: [&str; 8] = ["src/", "crates/", "grammar/", "tests/", "benches/", "docs/", "examples/", "fuzz/"];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| TOP.iter().any(|top| s.starts_with(top)) && !s.contains(char::is_whitespace) && !s.contains('*'))
        .map(|s| s.trim_end_matches([',', '.', ':']).to_string())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_path_the_codemap_names_exists() {
    let text = codemap();
    let paths = named_paths(&text);
    assert!(paths.len() > 20, "the codemap names only {} paths", paths.len());
    let missing: Vec<&String> = paths.iter().filter(|p| !root().join(p).exists()).collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
}

#[test]
fn every_source_file_is_on_the_codemap() {
    let text = codemap();
    let named = named_paths(&text);
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    if let Ok(crates) = std::fs::read_dir(root().join("crates")) {
        for krate in crates.flatten() {
            rust_files(&krate.path().join("src"), &mut files);
        }
    }
    let mut unmapped = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        let folder = relative.rsplit_once('/').map(|(dir, _)| format!("{dir}/")).unwrap_or_default();
        let name = relative.rsplit('/').next().unwrap();
        let on_map = named.contains(&relative) || (named.contains(&folder) && (name == "mod.rs" || text.contains(&format!("`{name}`"))));
        if !on_map {
            unmapped.push(relative);
        }
    }
    unmapped.sort();
    assert!(unmapped.is_empty(), "source files missing from ARCHITECTURE.md: {unmapped:#?}");
}
