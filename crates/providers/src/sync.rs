//! Workdir sync, shared by the backends: which files of a local directory are sent (its
//! `.gitignore` and `.skyignore` files honoured as SkyPilot does, `.git` itself never sent), and
//! a manifest of what was sent last (size and modification time per file), so that a resync
//! sends only what changed and removes what was deleted.
//!
//! ```
//! use skyplan_providers::sync::{Manifest, directory_files};
//! let dir = std::env::temp_dir().join(format!("skyplan-sync-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("train.py"), "print(1)\n").unwrap();
//! std::fs::write(dir.join("big.bin"), "data").unwrap();
//! std::fs::write(dir.join(".skyignore"), "*.bin\n").unwrap();
//! let files = directory_files(&dir).unwrap();
//! let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
//! assert_eq!(names, [".skyignore", "train.py"]);
//! let first = Manifest::default().changes(&files);
//! assert_eq!(first.send.len(), 2);
//! let after = Manifest::of(&files);
//! assert!(after.changes(&files).send.is_empty());
//! # let _ = std::fs::remove_dir_all(dir);
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ProviderError;

/// One file of a synced directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFile {
    /// Path relative to the directory, `/`-separated.
    pub path: String,
    /// Size in bytes (of the link itself for a symlink).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub modified_ns: u128,
    /// Whether it is a symlink (sent as a link, not followed).
    pub symlink: bool,
}

/// The files of `dir` to send, sorted by path: every regular file and symlink, except what a
/// `.gitignore` or `.skyignore` in the directory (or a subdirectory) excludes, and `.git/`.
pub fn directory_files(dir: &Path) -> Result<Vec<SyncFile>, ProviderError> {
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .parents(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .ignore(false)
        .add_custom_ignore_filename(".skyignore")
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = entry.map_err(|err| ProviderError::InvalidRequest {
            message: format!("reading {}: {err}", dir.display()),
        })?;
        let Some(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            continue;
        }
        let metadata = std::fs::symlink_metadata(entry.path())
            .map_err(|err| ProviderError::io(format!("reading {}", entry.path().display()), err))?;
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let Some(path) = relative.to_str() else {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "{}: file names must be UTF-8 to be synced",
                    entry.path().display()
                ),
            });
        };
        let modified_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        files.push(SyncFile {
            path: path.to_string(),
            size: metadata.len(),
            modified_ns,
            symlink: kind.is_symlink(),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// What was sent last: per relative path, its size and modification time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    files: BTreeMap<String, (u64, u128)>,
}

/// What a resync must do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes<'a> {
    /// Files new or changed since the manifest.
    pub send: Vec<&'a SyncFile>,
    /// Paths in the manifest that are gone (or now ignored).
    pub remove: Vec<String>,
}

impl Changes<'_> {
    /// Bytes the changed files hold.
    pub fn bytes(&self) -> u64 {
        self.send.iter().map(|f| f.size).sum()
    }
}

impl Manifest {
    /// The manifest of `files` once sent.
    pub fn of(files: &[SyncFile]) -> Self {
        Manifest {
            files: files
                .iter()
                .map(|f| (f.path.clone(), (f.size, f.modified_ns)))
                .collect(),
        }
    }

    /// What differs between the manifest and `files` now.
    pub fn changes<'a>(&self, files: &'a [SyncFile]) -> Changes<'a> {
        let send = files
            .iter()
            .filter(|f| self.files.get(&f.path) != Some(&(f.size, f.modified_ns)))
            .collect();
        let remove = self
            .files
            .keys()
            .filter(|p| files.binary_search_by(|f| f.path.as_str().cmp(p)).is_err())
            .cloned()
            .collect();
        Changes { send, remove }
    }

    /// Reads a manifest written by [`Manifest::save`]; a missing or unreadable one is empty
    /// (everything is sent again).
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Writes the manifest to `path` (its directory is created).
    pub fn save(&self, path: &Path) -> Result<(), ProviderError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| ProviderError::io(format!("creating {}", parent.display()), err))?;
        }
        let bytes = serde_json::to_vec(self)
            .map_err(|err| ProviderError::state("serializing a sync manifest", err))?;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|err| ProviderError::io(format!("writing {}", path.display()), err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_and_skyignore_apply_in_subdirectories_and_git_is_never_sent() {
        let dir = std::env::temp_dir().join(format!("skyplan-sync-ignore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["src", "data", ".git", "src/__pycache__"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (path, text) in [
            (".gitignore", "__pycache__/\n*.log\n"),
            ("src/train.py", "x"),
            ("src/__pycache__/train.pyc", "x"),
            ("run.log", "x"),
            (".git/HEAD", "x"),
            ("data/.skyignore", "raw*\n"),
            ("data/raw.csv", "x"),
            ("data/small.csv", "x"),
        ] {
            std::fs::write(dir.join(path), text).unwrap();
        }
        let files = directory_files(&dir).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            [".gitignore", "data/.skyignore", "data/small.csv", "src/train.py"]
        );
        let manifest = Manifest::of(&files);
        std::fs::write(dir.join("src/train.py"), "changed").unwrap();
        std::fs::remove_file(dir.join("data/small.csv")).unwrap();
        let now = directory_files(&dir).unwrap();
        let changes = manifest.changes(&now);
        let sent: Vec<&str> = changes.send.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(sent, ["src/train.py"]);
        assert_eq!(changes.remove, ["data/small.csv"]);
        assert_eq!(changes.bytes(), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
