//! Server-side printing: `meta.k8s.io/v1` `Table` answers for `kubectl get`.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io`; the columns and cell wording
//! follow the real API server's printers for pods, nodes, namespaces, services, secrets and events.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::store::{Kind, meta_str};
use crate::util::{age_seconds, human_duration};

/// Whether the client asked for a Table.
pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.contains("as=Table") && accept.contains("g=meta.k8s.io"))
}

fn age(object: &Value) -> String {
    human_duration(age_seconds(meta_str(object, "creationTimestamp")))
}

fn none_if_empty(text: &str) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text.to_owned()
    }
}

/// The STATUS column of `kubectl get pods` (kubectl's `printPod` logic).
pub(crate) fn pod_status(pod: &Value) -> String {
    let status = &pod["status"];
    let mut reason = status["reason"]
        .as_str()
        .or(status["phase"].as_str())
        .unwrap_or("Unknown")
        .to_owned();
    let init = status["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut initializing = false;
    for (i, c) in init.iter().enumerate() {
        let terminated = &c["state"]["terminated"];
        let waiting = &c["state"]["waiting"];
        if terminated["exitCode"] == 0 && !terminated.is_null() {
            continue;
        }
        initializing = true;
        reason = if !terminated.is_null() {
            format!("Init:{}", terminated["reason"].as_str().unwrap_or("Error"))
        } else if waiting["reason"].as_str().is_some_and(|r| r != "PodInitializing") {
            format!("Init:{}", waiting["reason"].as_str().unwrap_or_default())
        } else {
            format!("Init:{i}/{}", init.len())
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in status["containerStatuses"].as_array().into_iter().flatten().rev() {
            let state = &c["state"];
            if let Some(waiting) = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = waiting.to_owned();
            } else if !state["terminated"].is_null() {
                reason = match state["terminated"]["reason"].as_str() {
                    Some(r) if !r.is_empty() => r.to_owned(),
                    _ => format!("ExitCode:{}", state["terminated"]["exitCode"]),
                };
            } else if !state["running"].is_null() && c["ready"] == true {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        reason = "Terminating".into();
    }
    reason
}

fn column(name: &str, kind: &str, description: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn columns_and_cells(kind: Kind, object: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = json!(meta_str(object, "name"));
    match kind {
        Kind::Pod => {
            let statuses = object["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = object["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().filter_map(|c| c["restartCount"].as_i64()).sum();
            (
                vec![
                    column("Name", "string", "Name of the pod", 0),
                    column(
                        "Ready",
                        "string",
                        "The aggregate readiness state of this pod for accepting traffic.",
                        0,
                    ),
                    column(
                        "Status",
                        "string",
                        "The aggregate status of the containers in this pod.",
                        0,
                    ),
                    column(
                        "Restarts",
                        "string",
                        "The number of times the containers in this pod have been restarted.",
                        0,
                    ),
                    column("Age", "string", "Time since the pod was created", 0),
                    column("IP", "string", "The IP address assigned to the pod", 1),
                    column("Node", "string", "The name of the node the pod is bound to", 1),
                    column(
                        "Nominated Node",
                        "string",
                        "The node the pod is nominated to run on",
                        1,
                    ),
                    column("Readiness Gates", "string", "The pod's readiness gates", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(object)),
                    json!(restarts.to_string()),
                    json!(age(object)),
                    json!(none_if_empty(
                        object["status"]["podIP"].as_str().unwrap_or_default()
                    )),
                    json!(none_if_empty(
                        object["spec"]["nodeName"].as_str().unwrap_or_default()
                    )),
                    json!("<none>"),
                    json!("<none>"),
                ],
            )
        }
        Kind::Node => {
            let ready = object["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map(|c| {
                    if c["status"] == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let status = if object["spec"]["unschedulable"] == true {
                format!("{ready},SchedulingDisabled")
            } else {
                ready.into()
            };
            let info = &object["status"]["nodeInfo"];
            let internal_ip = object["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .and_then(|a| a["address"].as_str())
                .unwrap_or_default();
            (
                vec![
                    column("Name", "string", "Name of the node", 0),
                    column("Status", "string", "The status of the node", 0),
                    column("Roles", "string", "The roles of the node", 0),
                    column("Age", "string", "Time since the node was created", 0),
                    column("Version", "string", "Kubelet version", 0),
                    column("Internal-IP", "string", "Internal IP of the node", 1),
                    column("External-IP", "string", "External IP of the node", 1),
                    column("OS-Image", "string", "OS image reported by the node", 1),
                    column(
                        "Kernel-Version",
                        "string",
                        "Kernel version reported by the node",
                        1,
                    ),
                    column(
                        "Container-Runtime",
                        "string",
                        "Container runtime reported by the node",
                        1,
                    ),
                ],
                vec![
                    name,
                    json!(status),
                    json!("<none>"),
                    json!(age(object)),
                    info["kubeletVersion"].clone(),
                    json!(none_if_empty(internal_ip)),
                    json!("<none>"),
                    info["osImage"].clone(),
                    info["kernelVersion"].clone(),
                    info["containerRuntimeVersion"].clone(),
                ],
            )
        }
        Kind::Namespace => (
            vec![
                column("Name", "string", "Name", 0),
                column("Status", "string", "The status of the namespace", 0),
                column("Age", "string", "Age", 0),
            ],
            vec![name, object["status"]["phase"].clone(), json!(age(object))],
        ),
        Kind::Service => {
            let ports: Vec<String> = object["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            (
                vec![
                    column("Name", "string", "Name", 0),
                    column("Type", "string", "The type of service", 0),
                    column("Cluster-IP", "string", "The cluster IP", 0),
                    column("External-IP", "string", "External IPs", 0),
                    column("Port(s)", "string", "Service ports", 0),
                    column("Age", "string", "Age", 0),
                ],
                vec![
                    name,
                    object["spec"]["type"].clone(),
                    object["spec"]["clusterIP"].clone(),
                    json!("<none>"),
                    json!(none_if_empty(&ports.join(","))),
                    json!(age(object)),
                ],
            )
        }
        Kind::Secret => (
            vec![
                column("Name", "string", "Name", 0),
                column("Type", "string", "Type", 0),
                column("Data", "string", "Number of keys", 0),
                column("Age", "string", "Age", 0),
            ],
            vec![
                name,
                object["type"].clone(),
                json!(object["data"].as_object().map_or(0, |d| d.len()).to_string()),
                json!(age(object)),
            ],
        ),
        Kind::Event => {
            let involved = &object["involvedObject"];
            (
                vec![
                    column("Last Seen", "string", "Time since the event was last seen", 0),
                    column("Type", "string", "Event type", 0),
                    column("Reason", "string", "Event reason", 0),
                    column("Object", "string", "The object the event is about", 0),
                    column("Message", "string", "Event message", 0),
                ],
                vec![
                    json!(human_duration(age_seconds(
                        object["lastTimestamp"].as_str().unwrap_or_default()
                    ))),
                    object["type"].clone(),
                    object["reason"].clone(),
                    json!(format!(
                        "{}/{}",
                        involved["kind"].as_str().unwrap_or_default().to_lowercase(),
                        involved["name"].as_str().unwrap_or_default()
                    )),
                    object["message"].clone(),
                ],
            )
        }
    }
}

/// A `Table` of `objects` of `kind`.
pub(crate) fn table(kind: Kind, objects: &[Arc<Value>], resource_version: u64) -> Value {
    let columns = columns_and_cells(kind, &json!({"metadata": {}})).0;
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": columns_and_cells(kind, o).1, "object": Value::clone(o)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_reads_like_kubectl() {
        let pod = |statuses: Value| json!({"metadata": {}, "status": {"phase": "Running", "containerStatuses": statuses}});
        assert_eq!(
            pod_status(&pod(json!([{"ready": true, "state": {"running": {}}}]))),
            "Running"
        );
        assert_eq!(
            pod_status(&pod(
                json!([{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
            )),
            "CrashLoopBackOff"
        );
        assert_eq!(
            pod_status(&pod(
                json!([{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}])
            )),
            "Completed"
        );
        let init = json!({"metadata": {}, "status": {"phase": "Pending", "initContainerStatuses": [{"state": {"running": {}}}]}});
        assert_eq!(pod_status(&init), "Init:0/1");
    }

    #[test]
    fn tables_have_one_cell_per_column() {
        for kind in Kind::ALL {
            let t = table(kind, &[Arc::new(json!({"metadata": {"name": "x"}}))], 7);
            assert_eq!(
                t["columnDefinitions"].as_array().unwrap().len(),
                t["rows"][0]["cells"].as_array().unwrap().len()
            );
        }
    }
}
