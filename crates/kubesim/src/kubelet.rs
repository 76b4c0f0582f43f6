//! The fake kubelet: runs the containers of bound pods as local processes.
//!
//! Each container's `command` + `args` (with `$(VAR)` references expanded) runs in its own process
//! group with only the pod's environment (`value`, `valueFrom.secretKeyRef`, `valueFrom.fieldRef`,
//! `envFrom.secretRef`) plus `PATH`, `HOME` and `HOSTNAME`. Its stdout and stderr become the
//! container log, its exit code the container's `terminated` state. Init containers run first, in
//! order; `restartPolicy` is honoured with Kubernetes' back-off (10 s doubling to 5 min). The image
//! is recorded, never pulled. Deleting a pod kills its process groups.
//!
//! A container with neither `command` nor `args` cannot run (the image's entrypoint is unknown): it
//! is shown `Running` with no process and no logs until the pod is deleted, so pods such as `nginx`
//! still look alive in demos.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::conditions::set_condition;
use crate::events::record_event;
use crate::runtime::{PodRuntime, kill_group};
use crate::store::{Kind, meta_str};
use crate::util::{lock, now_rfc3339};

/// IP reported for pods and nodes: processes run on this host.
pub(crate) const HOST_IP: &str = "127.0.0.1";

/// Stops a pod's containers: no more starts or restarts, and every process group is killed.
pub(crate) fn kill_pod(cluster: &Cluster, uid: &str) {
    if let Some(runtime) = lock(&cluster.runtimes).get_mut(uid) {
        runtime.cancel.send_replace(true);
        for pgid in runtime.groups.values() {
            kill_group(*pgid);
        }
    }
    lock(&cluster.logs).retain(|(pod_uid, _), _| pod_uid != uid);
    cluster.logs_changed();
}

/// Kills every process of every pod (shutdown).
pub(crate) fn kill_all(cluster: &Cluster) {
    let uids: Vec<String> = lock(&cluster.runtimes).keys().cloned().collect();
    for uid in uids {
        kill_pod(cluster, &uid);
    }
}

/// Starts pods bound to a node of this cluster whenever the cluster changes, until shutdown.
pub(crate) async fn kubelet_loop(cluster: Arc<Cluster>) {
    let mut shutdown = cluster.shutdown.clone();
    loop {
        let to_start: Vec<Value> = cluster.read(|store| {
            let runtimes = lock(&cluster.runtimes);
            store
                .list(Kind::Pod, None)
                .filter(|p| {
                    let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
                    !node.is_empty()
                        && p["status"]["phase"] == "Pending"
                        && store.get(Kind::Node, "", node).is_some()
                        && !runtimes.contains_key(meta_str(p, "uid"))
                })
                .map(|p| Value::clone(p))
                .collect()
        });
        for pod in to_start {
            let uid = meta_str(&pod, "uid").to_owned();
            let (cancel, cancelled) = watch::channel(false);
            lock(&cluster.runtimes).insert(
                uid,
                PodRuntime {
                    cancel,
                    groups: HashMap::new(),
                },
            );
            tokio::spawn(run_pod(cluster.clone(), pod, cancelled));
        }
        tokio::select! {
            _ = cluster.kubelet_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Identity of the pod a worker runs.
#[derive(Clone)]
struct PodRef {
    namespace: String,
    name: String,
    uid: String,
    node: String,
}

/// Applies `edit` to the pod if it still exists with the same uid, then recomputes its phase.
fn update_pod(cluster: &Cluster, pod: &PodRef, edit: impl FnOnce(&mut Value)) -> Option<Arc<Value>> {
    cluster.write(|store| {
        store.modify(Kind::Pod, &pod.namespace, &pod.name, |p| {
            if meta_str(p, "uid") != pod.uid {
                return false;
            }
            edit(p);
            recompute_phase(p);
            true
        })
    })
}

fn event(cluster: &Cluster, pod: &PodRef, event_type: &str, reason: &str, message: &str) {
    cluster.write(|store| {
        if let Some(object) = store.get(Kind::Pod, &pod.namespace, &pod.name).cloned()
            && meta_str(&object, "uid") == pod.uid
        {
            record_event(
                store,
                &object,
                event_type,
                reason,
                message,
                "kubelet",
                Some(&pod.node),
            );
        }
    });
}

fn container_status_mut<'a>(pod: &'a mut Value, list: &str, name: &str) -> Option<&'a mut Value> {
    pod["status"][list]
        .as_array_mut()?
        .iter_mut()
        .find(|c| c["name"] == name)
}

/// Derives phase and conditions from container statuses, as the kubelet does.
fn recompute_phase(pod: &mut Value) {
    if matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
        return;
    }
    let state = |c: &Value, s: &str| !c["state"][s].is_null();
    let init: Vec<Value> = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let main: Vec<Value> = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let initialized = init
        .iter()
        .all(|c| state(c, "terminated") && c["state"]["terminated"]["exitCode"] == 0);
    let all_terminated = !main.is_empty() && main.iter().all(|c| state(c, "terminated"));
    let any_started = main.iter().any(|c| {
        state(c, "running") || state(c, "terminated") || c["restartCount"].as_i64().unwrap_or(0) > 0
    });
    let phase = if all_terminated {
        if main.iter().all(|c| c["state"]["terminated"]["exitCode"] == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if initialized && any_started {
        "Running"
    } else {
        "Pending"
    };
    pod["status"]["phase"] = json!(phase);
    let ready = !main.is_empty() && main.iter().all(|c| c["ready"] == true);
    set_condition(
        pod,
        "Initialized",
        if initialized { "True" } else { "False" },
        None,
        None,
    );
    match phase {
        "Succeeded" | "Failed" => {
            let reason = if phase == "Succeeded" {
                "PodCompleted"
            } else {
                "PodFailed"
            };
            set_condition(pod, "PodReadyToStartContainers", "False", None, None);
            set_condition(pod, "ContainersReady", "False", Some(reason), None);
            set_condition(pod, "Ready", "False", Some(reason), None);
        }
        _ => {
            let (status, reason) = if ready {
                ("True", None)
            } else {
                ("False", Some("ContainersNotReady"))
            };
            set_condition(pod, "ContainersReady", status, reason, None);
            set_condition(pod, "Ready", status, reason, None);
        }
    }
}

/// Resolves a container's environment; `Err` carries the kubelet's `CreateContainerConfigError` message.
fn resolve_env(
    cluster: &Cluster,
    pod: &Pod,
    container: &Container,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let secret = |name: &str| -> Option<Secret> {
        cluster.read(|store| {
            store
                .get(Kind::Secret, &namespace, name)
                .and_then(|s| serde_json::from_value(Value::clone(s)).ok())
        })
    };
    let mut env = BTreeMap::new();
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.secret_ref {
            match secret(&reference.name) {
                Some(s) => {
                    for (key, value) in s.data.unwrap_or_default() {
                        env.insert(
                            format!("{}{key}", source.prefix.clone().unwrap_or_default()),
                            String::from_utf8_lossy(&value.0).into_owned(),
                        );
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", reference.name)),
            }
        }
        if source.config_map_ref.is_some() {
            return Err(
                "envFrom.configMapRef is not simulated by kubesim (ConfigMaps are not served)".into(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(reference) = &from.secret_key_ref {
                let found = secret(&reference.name);
                let value = found.as_ref().and_then(|s| s.data.as_ref()?.get(&reference.key));
                match (found.as_ref(), value) {
                    (_, Some(v)) => String::from_utf8_lossy(&v.0).into_owned(),
                    _ if reference.optional == Some(true) => continue,
                    (None, _) => return Err(format!("secret \"{}\" not found", reference.name)),
                    (Some(_), None) => {
                        return Err(format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            reference.key, reference.name
                        ));
                    }
                }
            } else if let Some(field) = &from.field_ref {
                let meta = &pod.metadata;
                match field.field_path.as_str() {
                    "metadata.name" => meta.name.clone().unwrap_or_default(),
                    "metadata.namespace" => namespace.clone(),
                    "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                    "spec.nodeName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                    "spec.serviceAccountName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_default(),
                    "status.podIP" | "status.hostIP" => HOST_IP.to_owned(),
                    path => {
                        let label = path
                            .strip_prefix("metadata.labels['")
                            .and_then(|p| p.strip_suffix("']"));
                        let annotation = path
                            .strip_prefix("metadata.annotations['")
                            .and_then(|p| p.strip_suffix("']"));
                        match (label, annotation) {
                            (Some(key), _) => meta
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(key).cloned())
                                .unwrap_or_default(),
                            (_, Some(key)) => meta
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(key).cloned())
                                .unwrap_or_default(),
                            _ => return Err(format!("unsupported fieldRef {path:?}")),
                        }
                    }
                }
            } else {
                return Err(format!(
                    "env {}: only secretKeyRef and fieldRef are simulated by kubesim",
                    var.name
                ));
            }
        } else {
            expand(var.value.as_deref().unwrap_or_default(), &env)
        };
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` references as Kubernetes does (`$$` escapes, unknown references stay).
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(close) = rest.strip_prefix("$(").and_then(|r| r.find(')')) {
            let name = &rest[2..2 + close];
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[..3 + close]),
            }
            rest = &rest[3 + close..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

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
enum Role {
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
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&argv)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
        .env("HOSTNAME", &pod.name)
        .envs(&env)
        .current_dir(
            container
                .working_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().display().to_string()),
        )
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
            Some(r) if !*r.cancel.borrow() => {
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
async fn run_with_restarts(
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

/// Runs one pod: init containers in order, then all containers together.
async fn run_pod(cluster: Arc<Cluster>, object: Value, cancelled: watch::Receiver<bool>) {
    let Ok(typed) = serde_json::from_value::<Pod>(object.clone()) else {
        return;
    };
    let typed = Arc::new(typed);
    let pod = PodRef {
        namespace: meta_str(&object, "namespace").to_owned(),
        name: meta_str(&object, "name").to_owned(),
        uid: meta_str(&object, "uid").to_owned(),
        node: object["spec"]["nodeName"].as_str().unwrap_or_default().to_owned(),
    };
    let spec = typed.spec.clone().unwrap_or_default();
    let init = spec.init_containers.clone().unwrap_or_default();
    let waiting = if init.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let initial = |c: &Container, reason: &str| {
        json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
               "state": {"waiting": {"reason": reason}}, "lastState": {}})
    };
    update_pod(&cluster, &pod, |p| {
        p["status"]["hostIP"] = json!(HOST_IP);
        p["status"]["hostIPs"] = json!([{"ip": HOST_IP}]);
        p["status"]["podIP"] = json!(HOST_IP);
        p["status"]["podIPs"] = json!([{"ip": HOST_IP}]);
        p["status"]["startTime"] = json!(now_rfc3339());
        set_condition(p, "PodReadyToStartContainers", "True", None, None);
        if !init.is_empty() {
            p["status"]["initContainerStatuses"] = json!(
                init.iter()
                    .map(|c| initial(c, "PodInitializing"))
                    .collect::<Vec<_>>()
            );
        }
        p["status"]["containerStatuses"] = json!(
            spec.containers
                .iter()
                .map(|c| initial(c, waiting))
                .collect::<Vec<_>>()
        );
    });
    for container in init {
        let code = run_with_restarts(
            cluster.clone(),
            pod.clone(),
            typed.clone(),
            container,
            Role::Init,
            cancelled.clone(),
        )
        .await;
        match code {
            Some(0) => {}
            Some(_) => {
                update_pod(&cluster, &pod, |p| p["status"]["phase"] = json!("Failed"));
                return;
            }
            None => return,
        }
    }
    let runs = spec.containers.iter().map(|c| {
        tokio::spawn(run_with_restarts(
            cluster.clone(),
            pod.clone(),
            typed.clone(),
            c.clone(),
            Role::Main,
            cancelled.clone(),
        ))
    });
    futures::future::join_all(runs).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variable_references() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y $(B) $$(A) $", &env), "x1y $(B) $(A) $");
    }

    #[test]
    fn phase_follows_container_states() {
        let mut pod = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "a", "ready": true, "state": {"running": {}}},
            {"name": "b", "ready": false, "state": {"terminated": {"exitCode": 0}}}
        ]}});
        recompute_phase(&mut pod);
        assert_eq!(pod["status"]["phase"], "Running");
        pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
        recompute_phase(&mut pod);
        assert_eq!(pod["status"]["phase"], "Failed");
        pod["status"]["containerStatuses"][0]["state"] = json!({"running": {}});
        recompute_phase(&mut pod);
        assert_eq!(pod["status"]["phase"], "Failed", "terminal phases stick");
    }
}
