//! Jobs of local clusters: starting one process group per node, reading their state from the
//! files they leave (pid, exit code), cancelling them, and killing them on teardown (their logs
//! stream from `logs.rs`).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::process::{process_alive, stop_groups};
use crate::task::{REDACT_AWK, shell_quote};
use crate::{JobState, JobStatus, ProviderError, TaskRun, node_variables};

/// What `jobs/<id>/job.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct JobMeta {
    id: u64,
    name: String,
    pub(super) num_nodes: u32,
    pids: Vec<Option<u32>>,
    started_unix: u64,
}

/// Why a job did not start.
pub(super) enum StartError {
    /// The job id is in use (a concurrent `exec`).
    Taken,
    /// Anything else.
    Failed(ProviderError),
}

impl StartError {
    pub(super) fn into_provider_error(self) -> ProviderError {
        match self {
            StartError::Taken => ProviderError::InvalidRequest {
                message: "job 1 exists already".to_string(),
            },
            StartError::Failed(err) => err,
        }
    }
}

impl From<ProviderError> for StartError {
    fn from(err: ProviderError) -> Self {
        StartError::Failed(err)
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn create_dir_all(path: &Path) -> Result<(), ProviderError> {
    std::fs::create_dir_all(path)
        .map_err(|err| ProviderError::io(format!("creating {}", path.display()), err))
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProviderError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|err| ProviderError::io(format!("writing {}", path.display()), err))
}

fn write_file(path: &Path, text: &str) -> Result<(), ProviderError> {
    std::fs::write(path, text).map_err(|err| ProviderError::io(format!("writing {}", path.display()), err))
}

fn quoted(path: &Path) -> String {
    shell_quote(&path.display().to_string())
}

pub(super) fn jobs_dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("jobs")
}

pub(super) fn log_path(job_dir: &Path, rank: u32) -> PathBuf {
    job_dir.join(format!("node-{rank}.log"))
}

/// The wrapper one node runs: records its pid, runs setup then run (a setup failure ends the
/// job), pipes output through the redaction filter when there are secrets, records the exit code.
fn wrapper_script(job_dir: &Path, rank: u32, run_setup: bool, secret_names: &[&str]) -> String {
    let file = |name: String| quoted(&job_dir.join(name));
    let pid = file(format!("node-{rank}.pid"));
    let pid_tmp = file(format!("node-{rank}.pid.tmp"));
    let exit = file(format!("node-{rank}.exit"));
    let exit_tmp = file(format!("node-{rank}.exit.tmp"));
    let setup = file("setup.sh".to_string());
    let run = file("run.sh".to_string());
    let mut script = format!(
        "# Written by skyplan (local backend): node {rank}. Runs setup, then run; records the exit code.\n\
         echo \"$$\" > {pid_tmp} && mv {pid_tmp} {pid}\n\
         skyplan_job() {{\n"
    );
    if run_setup {
        script.push_str(&format!(
            "  if [ -f {setup} ]; then\n    bash {setup}\n    rc=$?\n    if [ \"$rc\" -ne 0 ]; then\n      \
             echo \"skyplan: setup failed with exit code $rc\" >&2\n      return \"$rc\"\n    fi\n  fi\n"
        ));
    }
    script.push_str(&format!(
        "  if [ -f {run} ]; then\n    bash {run}\n    return $?\n  fi\n  return 0\n}}\n"
    ));
    if secret_names.is_empty() {
        script.push_str("skyplan_job\nrc=$?\n");
    } else {
        let names = shell_quote(&secret_names.join(" "));
        let awk = file("redact.awk".to_string());
        script.push_str(&format!(
            "skyplan_job 2>&1 | SKYPLAN_REDACT_VARS={names} awk -f {awk}\nrc=${{PIPESTATUS[0]}}\n"
        ));
    }
    script.push_str(&format!(
        "echo \"$rc\" > {exit_tmp} && mv {exit_tmp} {exit}\nexit \"$rc\"\n"
    ));
    script
}

/// The next free job id of a cluster.
pub(super) fn next_job_id(cluster_dir: &Path) -> Result<u64, ProviderError> {
    Ok(job_ids(cluster_dir)?.last().map_or(1, |id| id + 1))
}

pub(super) fn job_ids(cluster_dir: &Path) -> Result<Vec<u64>, ProviderError> {
    let dir = jobs_dir(cluster_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(ProviderError::io(format!("listing {}", dir.display()), err)),
    };
    let mut ids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Starts job `id` of the cluster in `cluster_dir`: one detached process group per node.
pub(super) fn start_job(
    cluster_dir: &Path,
    id: u64,
    cluster: &str,
    num_nodes: u32,
    gpus_per_node: f64,
    task: &TaskRun,
    run_setup: bool,
) -> Result<(), StartError> {
    create_dir_all(&jobs_dir(cluster_dir))?;
    let job_dir = jobs_dir(cluster_dir).join(id.to_string());
    match std::fs::create_dir(&job_dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Err(StartError::Taken),
        Err(err) => return Err(ProviderError::io(format!("creating {}", job_dir.display()), err).into()),
    }
    let num_nodes = num_nodes.max(1);
    let setup = task
        .setup
        .as_deref()
        .filter(|s| run_setup && !s.trim().is_empty());
    if let Some(setup) = setup {
        write_file(&job_dir.join("setup.sh"), setup)?;
    }
    if let Some(run) = task.run.as_deref() {
        write_file(&job_dir.join("run.sh"), run)?;
    }
    let secret_names: Vec<&str> = task
        .secrets
        .iter()
        .filter(|(_, v)| !v.expose().is_empty())
        .map(|(k, _)| k.as_str())
        .collect();
    if !secret_names.is_empty() {
        write_file(&job_dir.join("redact.awk"), REDACT_AWK)?;
    }
    let mut meta = JobMeta {
        id,
        name: task.name.clone(),
        num_nodes,
        pids: vec![None; num_nodes as usize],
        started_unix: unix_now(),
    };
    let write_meta = |meta: &JobMeta| -> Result<(), ProviderError> {
        let bytes = serde_json::to_vec_pretty(meta)
            .map_err(|err| ProviderError::state("serializing job metadata", err))?;
        write_atomic(&job_dir.join("job.json"), &bytes)
    };
    write_meta(&meta)?;
    let ips = vec!["127.0.0.1".to_string(); num_nodes as usize];
    for rank in 0..num_nodes {
        let wrapper = job_dir.join(format!("node-{rank}.sh"));
        write_file(
            &wrapper,
            &wrapper_script(&job_dir, rank, setup.is_some(), &secret_names),
        )?;
        let log_file = log_path(&job_dir, rank);
        let log = File::create(&log_file)
            .map_err(|err| ProviderError::io(format!("creating {}", log_file.display()), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| ProviderError::io(format!("opening {}", log_file.display()), err))?;
        let node_dir = cluster_dir.join("nodes").join(rank.to_string());
        create_dir_all(&node_dir)?;
        let mut command = Command::new("bash");
        command
            .arg(&wrapper)
            .current_dir(&node_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: teardown kills the whole tree, and Ctrl-C in the launching
            // terminal does not reach it.
            .process_group(0)
            .envs(&task.envs)
            .envs(task.secrets.iter().map(|(k, v)| (k, v.expose())))
            .envs(node_variables(rank, &ips, gpus_per_node))
            .env("SKYPLAN_CLUSTER_NAME", cluster);
        let mut child = command.spawn().map_err(|err| {
            ProviderError::io(
                format!("starting bash for node {rank} of job {id} on {cluster:?}"),
                err,
            )
        })?;
        meta.pids[rank as usize] = Some(child.id());
        // Reap the process when it ends, so it does not linger as a zombie while we run; if we
        // exit first, init adopts it.
        let _ = std::thread::Builder::new()
            .name(format!("skyplan-reap-{}", child.id()))
            .spawn(move || {
                let _ = child.wait();
            });
    }
    write_meta(&meta)?;
    Ok(())
}

pub(super) fn read_meta(job_dir: &Path) -> Option<JobMeta> {
    std::fs::read(job_dir.join("job.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(super) enum NodeState {
    Exited(i32),
    Running,
    Lost,
}

pub(super) fn node_state(job_dir: &Path, rank: u32, meta: &JobMeta) -> NodeState {
    let exit_path = job_dir.join(format!("node-{rank}.exit"));
    if let Some(code) = read_number::<i32>(&exit_path) {
        return NodeState::Exited(code);
    }
    let pid = read_number::<u32>(&job_dir.join(format!("node-{rank}.pid")))
        .or_else(|| meta.pids.get(rank as usize).copied().flatten());
    let alive = match pid {
        Some(pid) => process_alive(pid),
        // Not started yet, or its starter died before recording it: give it a moment.
        None => unix_now().saturating_sub(meta.started_unix) < 10,
    };
    if alive {
        return NodeState::Running;
    }
    // It may have finished between the two reads.
    match read_number::<i32>(&exit_path) {
        Some(code) => NodeState::Exited(code),
        None => NodeState::Lost,
    }
}

/// The file whose presence marks a job cancelled (written before its processes are stopped).
fn cancelled_marker(job_dir: &Path) -> PathBuf {
    job_dir.join("cancelled")
}

/// Modification time of `path` in unix seconds.
fn modified_unix(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    i64::try_from(modified.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

pub(super) fn job_status(job_dir: &Path, meta: &JobMeta) -> JobStatus {
    let states: Vec<NodeState> = (0..meta.num_nodes)
        .map(|rank| node_state(job_dir, rank, meta))
        .collect();
    let node_exit_codes: Vec<Option<i32>> = states
        .iter()
        .map(|s| match s {
            NodeState::Exited(code) => Some(*code),
            _ => None,
        })
        .collect();
    let (state, exit_code) = if states.iter().any(|s| matches!(s, NodeState::Running)) {
        (JobState::Running, None)
    } else if states.iter().any(|s| matches!(s, NodeState::Lost)) {
        (JobState::Failed, None)
    } else {
        let code = node_exit_codes
            .iter()
            .flatten()
            .copied()
            .find(|c| *c != 0)
            .unwrap_or(0);
        let state = if code == 0 {
            JobState::Succeeded
        } else {
            JobState::Failed
        };
        (state, Some(code))
    };
    let cancelled = modified_unix(&cancelled_marker(job_dir));
    let (state, exit_code) = match cancelled {
        Some(_) => (JobState::Cancelled, None),
        None => (state, exit_code),
    };
    let ended_at = cancelled.or_else(|| {
        state
            .is_finished()
            .then(|| {
                (0..meta.num_nodes)
                    .filter_map(|rank| modified_unix(&job_dir.join(format!("node-{rank}.exit"))))
                    .max()
            })
            .flatten()
    });
    JobStatus {
        id: meta.id,
        name: meta.name.clone(),
        state,
        exit_code,
        node_exit_codes,
        started_at: i64::try_from(meta.started_unix).ok(),
        ended_at,
    }
}

/// Every job of the cluster, oldest first.
pub(super) fn job_statuses(cluster_dir: &Path) -> Result<Vec<JobStatus>, ProviderError> {
    let mut jobs = Vec::new();
    for id in job_ids(cluster_dir)? {
        let job_dir = jobs_dir(cluster_dir).join(id.to_string());
        if let Some(meta) = read_meta(&job_dir) {
            jobs.push(job_status(&job_dir, &meta));
        }
    }
    Ok(jobs)
}

/// The process groups job `id` started (one per node).
fn job_pids(cluster_dir: &Path, id: u64) -> Vec<u32> {
    let job_dir = jobs_dir(cluster_dir).join(id.to_string());
    let mut pids = Vec::new();
    if let Some(meta) = read_meta(&job_dir) {
        pids.extend(meta.pids.iter().flatten());
        for rank in 0..meta.num_nodes {
            pids.extend(read_number::<u32>(&job_dir.join(format!("node-{rank}.pid"))));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Every process group the cluster's jobs started.
fn cluster_pids(cluster_dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = job_ids(cluster_dir)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|id| job_pids(cluster_dir, id))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Cancels the selected jobs of the cluster in `cluster_dir` (see [`crate::Provider::cancel`]):
/// marks each unfinished one cancelled, then stops its process groups.
pub(super) fn cancel_jobs(
    cluster_dir: &Path,
    cluster: &str,
    selection: &crate::JobSelection,
) -> Result<Vec<u64>, ProviderError> {
    let known = job_ids(cluster_dir)?;
    let wanted = match selection {
        crate::JobSelection::All => known.clone(),
        crate::JobSelection::Ids(ids) => {
            if let Some(missing) = ids.iter().find(|id| !known.contains(id)) {
                return Err(ProviderError::NotFound {
                    what: format!("job {missing} on cluster {cluster:?}"),
                });
            }
            ids.clone()
        }
    };
    let mut cancelled = Vec::new();
    for id in wanted {
        let job_dir = jobs_dir(cluster_dir).join(id.to_string());
        let Some(meta) = read_meta(&job_dir) else { continue };
        if job_status(&job_dir, &meta).state.is_finished() || cancelled.contains(&id) {
            continue;
        }
        write_file(&cancelled_marker(&job_dir), &format!("{}\n", unix_now()))?;
        stop_groups(&job_pids(cluster_dir, id));
        cancelled.push(id);
    }
    cancelled.sort_unstable();
    Ok(cancelled)
}

/// Kills every process group of the cluster (TERM, then KILL after 3 s) and removes its
/// directory (renamed to a `.trash-*` name first, so `list()` stops seeing it at once).
pub(super) fn destroy_cluster_dir(root: &Path, dir: &Path) -> Result<(), ProviderError> {
    stop_groups(&cluster_pids(dir));
    let name = dir
        .file_name()
        .map_or_else(|| "cluster".to_string(), |n| n.to_string_lossy().to_string());
    let trash = root.join(format!(".trash-{name}-{:08x}", fastrand::u32(..)));
    match std::fs::rename(dir, &trash) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(ProviderError::io(format!("removing {}", dir.display()), err)),
    }
    let mut last_error = None;
    for _ in 0..10 {
        match std::fs::remove_dir_all(&trash) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // A process killed a moment ago may still have been writing a file.
            Err(err) => last_error = Some(err),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match last_error {
        Some(err) => Err(ProviderError::io(format!("removing {}", trash.display()), err)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn wrapper_pipes_through_redaction_only_with_secrets() {
        let dir = Path::new("/tmp/x y");
        let plain = wrapper_script(dir, 0, true, &[]);
        assert!(plain.contains("'/tmp/x y/setup.sh'") && !plain.contains("awk"));
        let secret = wrapper_script(dir, 1, false, &["HF_TOKEN"]);
        assert!(secret.contains("SKYPLAN_REDACT_VARS='HF_TOKEN' awk"));
        assert!(!secret.contains("setup.sh"));
        assert!(secret.contains("node-1.exit"));
    }
}
