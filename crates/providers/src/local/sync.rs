//! What the `local` backend copies onto a node before setup: the task's `workdir` into the
//! node's working directory, and each local `file_mounts` source to its path. A "node" of a local
//! cluster is this machine, so an absolute mount path is that path here; a relative one (or
//! `~/...`) is inside the node's working directory. Bucket mounts never reach here (the
//! capabilities refuse them).

use std::path::{Path, PathBuf};

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
        copy_dir(workdir, node_dir)?;
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
            copy_dir(&source, &target)?;
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

/// Copies the directory `from` into `to` (recursively; symlinks as symlinks).
fn copy_dir(from: &Path, to: &Path) -> Result<(), ProviderError> {
    let io = |what: &str, path: &Path, err| ProviderError::io(format!("{what} {}", path.display()), err);
    super::jobs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| io("reading", from, e))? {
        let entry = entry.map_err(|e| io("reading", from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| io("reading", &source, e))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(|e| io("reading", &source, e))?;
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(link, &target).map_err(|e| io("linking", &target, e))?;
        } else if kind.is_dir() {
            copy_dir(&source, &target)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| io("copying", &source, e))?;
        }
    }
    Ok(())
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
        assert!(err.to_string().contains("file_mounts /x: source"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
