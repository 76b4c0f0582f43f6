//! Rules of the house that a test can hold: every Rust source file says why it exists in a `//!`
//! line at its top (STYLE.md §2), and CLI tests start the binary only through the isolating helper.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "crates", "tests", "benches", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| path.strip_prefix(root).unwrap_or(path).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line at the top: {missing:?}"
    );
}

/// Every CLI test runs the binary through `util::skyplan_command`, which keeps it away from this
/// machine's kubeconfig, GPUs and cloud accounts: a test that starts it another way could plan
/// onto (and create pods on) whatever cluster the developer's `~/.kube/config` names.
#[test]
fn cli_tests_start_the_binary_only_through_the_isolating_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("tests"), &mut files);
    let needle = concat!("CARGO_BIN_EXE", "_skyplan");
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| !path.ends_with("util.rs") && !path.ends_with("house.rs"))
        .filter(|path| std::fs::read_to_string(path).unwrap_or_default().contains(needle))
        .map(|path| path.strip_prefix(root).unwrap_or(path).display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "start skyplan through util::skyplan_command: {offenders:?}"
    );
}
