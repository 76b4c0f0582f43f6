//! What the `local` backend copies onto a node before setup: the task's `workdir` into the
//! node's working directory, and each local `file_mounts` source to its path. A "node" of a local
//! cluster is this machine, so an absolute mount path is that path here; a relative one (or
//! `~/...`) is inside the node's working directory. Bucket mounts never reach here (the
//! capabilities refuse them).

use std::path::{Path, PathBuf};

use crate::sync::{Manifest, directory_files};
use crate::{ProviderError, TaskRun};

/// Copies `task.workdir` and the local `file_mounts` for the node whose working directory is
/// `node_dir`. Sources that do not exist are an [`ProviderError::InvalidRequest`] naming the
/// field.
pub(super) fn sync_task_files(task: &TaskRun, node_dir: &Path) -> Result<(), ProviderError> {
    if let Some(workdir) = &task.workdir {
        if !workdir.is_dir() {
            return Err(ProviderError::InvalidRequest {
                message: format!("workdir {}: not a directory", workdir.display()),
            });
        }
        sync_dir(workdir, node_dir, &manifest_path(node_dir, "workdir"))?;
    }
    for (path, mount) in &task.file_mounts {
        let Some(source) = mount.local_source() else {
            return Err(ProviderError::Unsupported {
                message: format!(
                    "file_mounts {path} ({}) is not supported on local",
                    mount.describe()
                ),
            });
        };
        let source = expand_home(source);
        let target = mount_target(path, node_dir);
        let metadata = std::fs::metadata(&source).map_err(|err| ProviderError::InvalidRequest {
            message: format!("file_mounts {path}: source {}: {err}", source.display()),
        })?;
        if let Some(parent) = target.parent() {
            super::jobs::create_dir_all(parent)?;
        }
        if metadata.is_dir() {
            sync_dir(&source, &target, &manifest_path(node_dir, path))?;
        } else {
            std::fs::copy(&source, &target).map_err(|err| {
                ProviderError::io(
                    format!("copying {} to {}", source.display(), target.display()),
                    err,
                )
            })?;
        }
    }
    Ok(())
}

/// Where mount path `path` lands for the node working in `node_dir`.
fn mount_target(path: &str, node_dir: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        node_dir.join(rest)
    } else if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        node_dir.join(path)
    }
}

/// `~/x` → `$HOME/x` for sources on this machine.
fn expand_home(source: &str) -> PathBuf {
    match (source.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(source),
    }
}

/// Where the manifest of what was last synced to `target` (`workdir`, or a mount path) of the
/// node working in `node_dir` is kept: beside the node's directory, not in it, so the job never
/// sees it.
fn manifest_path(node_dir: &Path, target: &str) -> PathBuf {
    let node = node_dir
        .file_name()
        .map_or_else(|| "node".to_string(), |n| n.to_string_lossy().into_owned());
    let name: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    node_dir
        .with_file_name(format!("{node}.sync"))
        .join(format!("{name}.json"))
}

/// Syncs the directory `from` into `to`: only files new or changed since the last sync (by
/// size and modification time), removing what was deleted since; `.gitignore` and
/// `.skyignore` apply (see [`crate::sync`]). Symlinks are copied as symlinks.
fn sync_dir(from: &Path, to: &Path, manifest_file: &Path) -> Result<(), ProviderError> {
    let io = |what: &str, path: &Path, err| ProviderError::io(format!("{what} {}", path.display()), err);
    let started = std::time::Instant::now();
    let files = directory_files(from)?;
    // A target that vanished (a new cluster, or removed by hand) gets everything again.
    let manifest = if to.is_dir() {
        Manifest::load(manifest_file)
    } else {
        Manifest::default()
    };
    let changes = manifest.changes(&files);
    super::jobs::create_dir_all(to)?;
    for file in &changes.send {
        let (source, target) = (from.join(&file.path), to.join(&file.path));
        if let Some(parent) = target.parent() {
            super::jobs::create_dir_all(parent)?;
        }
        if file.symlink {
            let link = std::fs::read_link(&source).map_err(|e| io("reading", &source, e))?;
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(link, &target).map_err(|e| io("linking", &target, e))?;
        } else {
            // Replace, not write through: a running job may hold the old file open.
            let _ = std::fs::remove_file(&target);
            std::fs::copy(&source, &target).map_err(|e| io("copying", &source, e))?;
        }
    }
    for path in &changes.remove {
        let target = to.join(path);
        match std::fs::remove_file(&target) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io("removing", &target, err)),
        }
    }
    tracing::debug!(
        from = %from.display(),
        to = %to.display(),
        files = files.len(),
        sent = changes.send.len(),
        bytes = changes.bytes(),
        removed = changes.remove.len(),
        seconds = started.elapsed().as_secs_f64(),
        "synced a directory"
    );
    Manifest::of(&files).save(manifest_file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_spec::FileMount;

    #[test]
    fn mounts_land_where_the_task_says() {
        let root = std::env::temp_dir().join(format!("skyplan-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let source = root.join("src");
        std::fs::create_dir_all(source.join("sub")).expect("dirs");
        std::fs::write(source.join("sub/a.txt"), "a").expect("file");
        std::fs::write(root.join("one.txt"), "one").expect("file");
        let node = root.join("node");
        let absolute = root.join("abs/data");
        let mut task = TaskRun::command("t", "true");
        task.file_mounts.insert(
            absolute.display().to_string(),
            FileMount::Source(source.display().to_string()),
        );
        task.file_mounts.insert(
            "rel/one.txt".into(),
            FileMount::Source(root.join("one.txt").display().to_string()),
        );
        sync_task_files(&task, &node).expect("synced");
        assert_eq!(
            std::fs::read_to_string(absolute.join("sub/a.txt")).expect("copied"),
            "a"
        );
        assert_eq!(
            std::fs::read_to_string(node.join("rel/one.txt")).expect("copied"),
            "one"
        );

        task.file_mounts.insert(
            "/x".into(),
            FileMount::Source(root.join("missing").display().to_string()),
        );
        let err = sync_task_files(&task, &node).expect_err("missing source");
        task.file_mounts.remove("/x");

        // A resync sends only what changed and removes what was deleted; ignored files stay out.
        std::fs::write(source.join(".skyignore"), "*.tmp\n").expect("file");
        std::fs::write(source.join("scratch.tmp"), "x").expect("file");
        std::fs::write(source.join("sub/b.txt"), "b").expect("file");
        std::fs::remove_file(source.join("sub/a.txt")).expect("rm");
        sync_task_files(&task, &node).expect("resynced");
        assert!(absolute.join("sub/b.txt").exists());
        assert!(
            !absolute.join("sub/a.txt").exists(),
            "a deleted file stays deleted"
        );
        assert!(!absolute.join("scratch.tmp").exists(), ".skyignore is honoured");
        assert!(err.to_string().contains("file_mounts /x: source"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
