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

mod container;
mod env;
mod exec;
mod pod;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use tokio::sync::watch;

use self::container::{Role, run_with_restarts};
pub(crate) use self::exec::exec_command;
pub(crate) use self::pod::PodRef;
use self::pod::{HOST_IP, free_pod_ip, update_pod};
use crate::cluster::Cluster;
use crate::conditions::set_condition;
use crate::runtime::{PodRuntime, group_alive, kill_group, term_group};
use crate::store::{Kind, meta_str};
use crate::util::{lock, now_rfc3339};

/// Stops a pod's containers: no more starts or restarts, and every process group is killed.
pub(crate) fn kill_pod(cluster: &Cluster, uid: &str) {
    // Gone from the runtimes too: its IP is free again, and a container that was about to start
    // finds no runtime and starts nothing.
    if let Some(runtime) = lock(&cluster.runtimes).remove(uid) {
        runtime.cancel.send_replace(true);
        for pgid in runtime.groups.values() {
            kill_group(*pgid);
        }
    }
    lock(&cluster.logs).retain(|(pod_uid, _), _| pod_uid != uid);
    cluster.logs_changed();
}

/// Terminates a pod gracefully, as the kubelet does after a graceful delete: no more starts or
/// restarts, `SIGTERM` to every container's process group, `SIGKILL` (through [`kill_pod`]) once
/// `grace` has passed or nothing runs any more,
/// and the pod object (already carrying its `deletionTimestamp`) is removed once nothing of it
/// runs.
pub(crate) fn terminate_pod(cluster: Arc<Cluster>, pod: PodRef, grace: std::time::Duration) {
    let groups: Vec<i32> = match lock(&cluster.runtimes).get_mut(&pod.uid) {
        Some(runtime) => {
            runtime.terminating = true;
            runtime.groups.values().copied().collect()
        }
        None => Vec::new(),
    };
    for group in &groups {
        term_group(*group);
    }
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && groups.iter().any(|g| group_alive(*g)) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        kill_pod(&cluster, &pod.uid);
        cluster.write(|store| {
            let same = store
                .get(Kind::Pod, &pod.namespace, &pod.name)
                .is_some_and(|p| meta_str(p, "uid") == pod.uid);
            if same {
                store.delete(Kind::Pod, &pod.namespace, &pod.name);
            }
        });
    });
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
            let mut runtimes = lock(&cluster.runtimes);
            let ip = free_pod_ip(runtimes.values().map(|r| r.ip.as_str()));
            runtimes.insert(
                uid,
                PodRuntime {
                    cancel,
                    groups: HashMap::new(),
                    terminating: false,
                    ip,
                },
            );
            drop(runtimes);
            tokio::spawn(run_pod(cluster.clone(), pod, cancelled));
        }
        tokio::select! {
            _ = cluster.kubelet_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
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
    let pod_ip = lock(&cluster.runtimes)
        .get(&pod.uid)
        .map_or_else(|| HOST_IP.to_owned(), |r| r.ip.clone());
    update_pod(&cluster, &pod, |p| {
        p["status"]["hostIP"] = json!(HOST_IP);
        p["status"]["hostIPs"] = json!([{"ip": HOST_IP}]);
        p["status"]["podIP"] = json!(pod_ip);
        p["status"]["podIPs"] = json!([{"ip": pod_ip}]);
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
    // A cluster may be slow to start containers (image pulls, sandboxes): Pending meanwhile.
    if let Some(delay) = cluster.container_start_delay {
        let mut cancelled = cancelled.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancelled.wait_for(|c| *c) => return,
        }
    }
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
mod tests;
