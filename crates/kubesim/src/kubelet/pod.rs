//! The pod a kubelet worker runs: its identity, status updates guarded by its uid, its events, and
//! the phase and conditions derived from its container statuses.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::conditions::set_condition;
use crate::events::record_event;
use crate::store::{Kind, meta_str};

/// IP reported for nodes: processes run on this host.
pub(super) const HOST_IP: &str = "127.0.0.1";

/// A loopback address that none of `taken` is (127.0.X.Y, Y from 2 to 254), so that peers'
/// addresses really differ; processes still run on this host and every 127/8 address reaches it.
pub(super) fn free_pod_ip<'a>(taken: impl Iterator<Item = &'a str>) -> String {
    let used: std::collections::BTreeSet<&str> = taken.collect();
    (0..=255u32)
        .flat_map(|x| (2..=254u32).map(move |y| format!("127.0.{x}.{y}")))
        .find(|ip| !used.contains(ip.as_str()))
        .unwrap_or_else(|| HOST_IP.to_owned())
}

/// Identity of the pod a worker runs.
#[derive(Clone)]
pub(crate) struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The node the pod is bound to.
    pub node: String,
}

/// Applies `edit` to the pod if it still exists with the same uid, then recomputes its phase.
pub(super) fn update_pod(
    cluster: &Cluster,
    pod: &PodRef,
    edit: impl FnOnce(&mut Value),
) -> Option<Arc<Value>> {
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

/// Records an event about the pod (if it still exists with the same uid), from the kubelet on its
/// node.
pub(super) fn event(cluster: &Cluster, pod: &PodRef, event_type: &str, reason: &str, message: &str) {
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

/// The status entry of container `name` in the pod's status list `list`.
pub(super) fn container_status_mut<'a>(pod: &'a mut Value, list: &str, name: &str) -> Option<&'a mut Value> {
    pod["status"][list]
        .as_array_mut()?
        .iter_mut()
        .find(|c| c["name"] == name)
}

/// Derives phase and conditions from container statuses, as the kubelet does.
pub(super) fn recompute_phase(pod: &mut Value) {
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
