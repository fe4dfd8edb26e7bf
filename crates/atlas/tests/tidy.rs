//! Tidy checks: the mechanical house rules, enforced as a test so CI keeps them.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["crates", "fuzz"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} files: is the walk broken?", files.len());
    files
}

#[test]
fn every_file_says_what_it_is_for() {
    let missing: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            !text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!"))
        })
        .collect();
    assert!(missing.is_empty(), "files without a leading //! line: {missing:?}");
}

#[test]
fn no_leftovers() {
    // Built from pieces so that this file does not match itself.
    let banned = [
        ["db", "g!("].concat(),
        ["to", "do!("].concat(),
        ["unimpl", "emented!("].concat(),
        ["#[ig", "nore"].concat(),
    ];
    let mut hits = Vec::new();
    for path in all_rust_files() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for b in &banned {
                if line.contains(b.as_str()) {
                    hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(hits.is_empty(), "leftovers:\n{}", hits.join("\n"));
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    let crates = root().join("crates");
    let mut checked = 0;
    for entry in fs::read_dir(&crates).into_iter().flatten().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest) {
            assert!(
                text.contains("[lints]\nworkspace = true"),
                "{} does not use the workspace lints",
                manifest.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 4);
}

#[cfg(unix)]
#[test]
fn scripts_are_executable() {
    use std::os::unix::fs::PermissionsExt;
    for script in [".ci/run", "scripts/test"] {
        let mode = fs::metadata(root().join(script)).map(|m| m.permissions().mode()).unwrap_or(0);
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
}
