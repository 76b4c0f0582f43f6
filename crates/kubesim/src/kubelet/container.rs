//! Running one container as a local process group: its log, its status transitions and events, and
//! restarts under the pod's `restartPolicy` with Kubernetes' back-off.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use super::env::{expand, resolve_env};
use super::pod::{PodRef, container_status_mut, event, update_pod};
use crate::cluster::Cluster;
use crate::runtime::kill_group;
use crate::util::{lock, now_rfc3339};

/// How one container run ended.
struct Exit {
    code: i32,
    reason: &'static str,
    message: Option<String>,
    started_at: String,
    finished_at: String,
    container_id: String,
}

impl Exit {
    fn terminated(&self) -> Value {
        let mut terminated = json!({
            "exitCode": self.code, "reason": self.reason, "startedAt": self.started_at,
            "finishedAt": self.finished_at, "containerID": self.container_id,
        });
        if let Some(message) = &self.message {
            terminated["message"] = json!(message);
        }
        terminated
    }
}

/// Which status list a container is in.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Role {
    Init,
    Main,
}

impl Role {
    fn list(self) -> &'static str {
        match self {
            Role::Init => "initContainerStatuses",
            Role::Main => "containerStatuses",
        }
    }
}

/// Copies one output stream of a container into its current log, line by line.
async fn pump<R: AsyncRead + Unpin>(cluster: Arc<Cluster>, key: (String, String), stream: R) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Some(logs) = lock(&cluster.logs).get_mut(&key) {
                    logs.current.push(line);
                }
                cluster.logs_changed();
            }
        }
    }
}

/// Runs one container once. `None` means the pod was deleted (or the container cannot start and
/// must wait), so the caller stops.
///
/// An image listed as unpullable never starts: [`pull_fails`].
/// A process of `container` in pod `pod_name`: `program` with `args`, the container's resolved
/// `env` (and `PATH`, `HOME`, `HOSTNAME`), in its working directory. The one place a container's
/// process is made, for its command and for `exec`.
pub(super) fn container_command(
    pod_name: &str,
    container: &Container,
    env: &std::collections::BTreeMap<String, String>,
    program: &str,
    args: &[String],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
        .env("HOSTNAME", pod_name)
        .envs(env)
        .current_dir(
            container
                .working_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().display().to_string()),
        );
    command
}

async fn run_once(
    cluster: &Arc<Cluster>,
    pod: &PodRef,
    typed: &Pod,
    container: &Container,
    role: Role,
    cancelled: &mut watch::Receiver<bool>,
) -> Option<Exit> {
    let env = match resolve_env(cluster, typed, container) {
        Ok(env) => env,
        Err(message) => {
            update_pod(cluster, pod, |p| {
                if let Some(c) = container_status_mut(p, role.list(), &container.name) {
                    c["state"] =
                        json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}});
                }
            });
            event(cluster, pod, "Warning", "Failed", &format!("Error: {message}"));
            return None;
        }
    };
    let image = container.image.clone().unwrap_or_default();
    if cluster.cannot_pull(&image) {
        pull_fails(cluster, pod, role, &container.name, &image, cancelled).await;
        return None;
    }
    event(
        cluster,
        pod,
        "Normal",
        "Pulled",
        &format!("Container image \"{image}\" recorded by kubesim (images are never pulled)"),
    );
    let key = (pod.uid.clone(), container.name.clone());
    {
        let mut logs = lock(&cluster.logs);
        let entry = logs.entry(key.clone()).or_default();
        if !entry.current.lines.is_empty() || entry.current.finished {
            entry.previous = Some(std::mem::take(&mut entry.current));
        }
    }
    let mut argv: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|a| expand(a, &env))
        .collect();
    let started_at = now_rfc3339();
    if argv.is_empty() {
        // Unknown image entrypoint: an idle container with no process.
        update_pod(cluster, pod, |p| {
            if let Some(c) = container_status_mut(p, role.list(), &container.name) {
                c["state"] = json!({"running": {"startedAt": started_at}});
                c["ready"] = json!(role == Role::Main);
                c["started"] = json!(true);
                c["containerID"] = json!(format!("kubesim://idle-{}", container.name));
            }
        });
        event(
            cluster,
            pod,
            "Normal",
            "Started",
            &format!(
                "Started container {} (kubesim: no command given, idle until deleted)",
                container.name
            ),
        );
        let _ = cancelled.wait_for(|c| *c).await;
        return None;
    }
    let program = argv.remove(0);
    let mut command = container_command(&pod.name, container, &env, &program, &argv);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    event(
        cluster,
        pod,
        "Normal",
        "Created",
        &format!("Created container: {}", container.name),
    );
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let message = format!(
                "failed to start container \"{}\": exec: {program:?}: {err}",
                container.name
            );
            event(cluster, pod, "Warning", "Failed", &format!("Error: {message}"));
            if let Some(logs) = lock(&cluster.logs).get_mut(&key) {
                logs.current.finished = true;
            }
            let now = now_rfc3339();
            return Some(Exit {
                code: 128,
                reason: "StartError",
                message: Some(message),
                started_at: now.clone(),
                finished_at: now,
                container_id: String::new(),
            });
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let container_id = format!("kubesim://{pid}");
    {
        let mut runtimes = lock(&cluster.runtimes);
        let runtime = runtimes.get_mut(&pod.uid);
        match runtime {
            Some(r) if !*r.cancel.borrow() && !r.terminating => {
                r.groups.insert(container.name.clone(), pid);
            }
            _ => {
                kill_group(pid);
                return None;
            }
        }
    }
    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(cluster.clone(), key.clone(), s)));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(cluster.clone(), key.clone(), s)));
    update_pod(cluster, pod, |p| {
        if let Some(c) = container_status_mut(p, role.list(), &container.name) {
            c["state"] = json!({"running": {"startedAt": started_at}});
            c["ready"] = json!(role == Role::Main);
            c["started"] = json!(true);
            c["containerID"] = json!(container_id);
        }
    });
    event(
        cluster,
        pod,
        "Normal",
        "Started",
        &format!("Started container {}", container.name),
    );
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        _ = cancelled.wait_for(|c| *c) => None,
    };
    // Like a container runtime, end everything left in the container when its main process exits.
    kill_group(pid);
    if status.is_none() {
        let _ = child.wait().await;
    }
    for pump in [stdout, stderr].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
    }
    if let Some(runtime) = lock(&cluster.runtimes).get_mut(&pod.uid) {
        runtime.groups.remove(&container.name);
    }
    if let Some(logs) = lock(&cluster.logs).get_mut(&key) {
        logs.current.finished = true;
    }
    cluster.logs_changed();
    let status = status?;
    if *cancelled.borrow() {
        return None;
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Some(Exit {
        code,
        reason: if code == 0 { "Completed" } else { "Error" },
        message: None,
        started_at,
        finished_at: now_rfc3339(),
        container_id,
    })
}

/// Runs a container until it ends for good under the pod's restart policy.
/// Returns the final exit code, or `None` if the pod was deleted.
pub(super) async fn run_with_restarts(
    cluster: Arc<Cluster>,
    pod: PodRef,
    typed: Arc<Pod>,
    container: Container,
    role: Role,
    mut cancelled: watch::Receiver<bool>,
) -> Option<i32> {
    let policy = typed
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let mut restarts = 0u32;
    loop {
        let exit = run_once(&cluster, &pod, &typed, &container, role, &mut cancelled).await?;
        let restart = match policy.as_str() {
            "Always" => role == Role::Main,
            "OnFailure" => exit.code != 0,
            _ => false,
        } || (role == Role::Init && exit.code != 0 && policy != "Never");
        // A pod being deleted gracefully starts nothing again.
        let restart = restart
            && !lock(&cluster.runtimes)
                .get(&pod.uid)
                .is_some_and(|r| r.terminating);
        if !restart {
            update_pod(&cluster, &pod, |p| {
                if let Some(c) = container_status_mut(p, role.list(), &container.name) {
                    c["state"] = json!({"terminated": exit.terminated()});
                    c["ready"] = json!(false);
                    c["started"] = json!(false);
                }
            });
            return Some(exit.code);
        }
        let backoff = Duration::from_secs((10u64 << restarts.min(5)).min(300));
        restarts += 1;
        update_pod(&cluster, &pod, |p| {
            if let Some(c) = container_status_mut(p, role.list(), &container.name) {
                let message = format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    backoff.as_secs(),
                    container.name,
                    pod.name,
                    pod.namespace,
                    pod.uid
                );
                c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}});
                c["lastState"] = json!({"terminated": exit.terminated()});
                c["ready"] = json!(false);
                c["started"] = json!(false);
                c["restartCount"] = json!(restarts);
            }
        });
        event(
            &cluster,
            &pod,
            "Warning",
            "BackOff",
            &format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                container.name, pod.name, pod.namespace, pod.uid
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancelled.wait_for(|c| *c) => return None,
        }
    }
}

/// A container whose image cannot be pulled, as the kubelet shows it: `ErrImagePull` with the
/// pull error, then `ImagePullBackOff` (events `Failed` and `BackOff`), until the pod is deleted.
async fn pull_fails(
    cluster: &Arc<Cluster>,
    pod: &PodRef,
    role: Role,
    name: &str,
    image: &str,
    cancelled: &mut watch::Receiver<bool>,
) {
    let failure = format!(
        "failed to pull and unpack image \"{image}\": not found (kubesim: the image matches unpullable_images)"
    );
    event(
        cluster,
        pod,
        "Normal",
        "Pulling",
        &format!("Pulling image \"{image}\""),
    );
    event(
        cluster,
        pod,
        "Warning",
        "Failed",
        &format!("Failed to pull image \"{image}\": {failure}"),
    );
    event(cluster, pod, "Warning", "Failed", "Error: ErrImagePull");
    let set = |reason: &str, message: String| {
        update_pod(cluster, pod, |p| {
            if let Some(c) = container_status_mut(p, role.list(), name) {
                c["state"] = json!({"waiting": {"reason": reason, "message": message}});
            }
        });
    };
    set("ErrImagePull", failure);
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = cancelled.wait_for(|c| *c) => return,
    }
    set("ImagePullBackOff", format!("Back-off pulling image \"{image}\""));
    event(
        cluster,
        pod,
        "Normal",
        "BackOff",
        &format!("Back-off pulling image \"{image}\""),
    );
    event(cluster, pod, "Warning", "Failed", "Error: ImagePullBackOff");
    let _ = cancelled.wait_for(|c| *c).await;
}
