//! Kind-specific defaults, as the API server's defaulting and admission plugins apply them (pods,
//! services, secrets, node status), and the node objects of a clusters file.

use serde_json::{Map, Value, json};

use crate::config::NodeSpec;
use crate::discovery::GIT_VERSION;
use crate::status::ApiError;
use crate::store::{Kind, Store};
use crate::util::{new_uid, now_rfc3339};

/// The object at `key`, replacing whatever else is there with an empty object.
pub(super) fn object_mut<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !value[key].is_object() {
        value[key] = json!({});
    }
    match value.get_mut(key) {
        Some(Value::Object(map)) => map,
        _ => unreachable!("just made an object"),
    }
}

/// Inserts `value` at `key` unless a non-null value is already there.
pub(super) fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_owned(), value);
    }
}

/// API defaulting and the DefaultTolerationSeconds plugin for a pod; a pod without a phase gets
/// `Pending` and its QoS class.
pub(super) fn default_pod(pod: &mut Value) {
    let spec = object_mut(pod, "spec");
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(spec, "priority", json!(0));
    set_default(spec, "serviceAccountName", json!("default"));
    if spec.get("tolerations").is_none() {
        // What the DefaultTolerationSeconds admission plugin adds.
        spec.insert(
            "tolerations".into(),
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]),
        );
    }
    for list in ["initContainers", "containers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = container.as_object_mut() else {
                continue;
            };
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let tag_latest = !image.contains(':') || image.ends_with(":latest");
            set_default(
                c,
                "imagePullPolicy",
                json!(if tag_latest && !image.contains('@') {
                    "Always"
                } else {
                    "IfNotPresent"
                }),
            );
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            let resources = c.entry("resources").or_insert_with(|| json!({}));
            // Requests default to limits (API defaulting).
            if let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() {
                let requests = resources
                    .as_object_mut()
                    .map(|r| r.entry("requests").or_insert_with(|| json!({})));
                if let Some(Value::Object(requests)) = requests {
                    for (name, quantity) in limits {
                        requests.entry(name).or_insert(quantity);
                    }
                }
            }
        }
    }
    if pod["status"]["phase"].is_null() {
        let qos = qos_class(pod);
        pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| pod["spec"][*l].as_array().into_iter().flatten())
        .collect();
    let is_empty = |v: &Value| v.as_object().is_none_or(Map::is_empty);
    if containers
        .iter()
        .all(|c| is_empty(&c["resources"]["requests"]) && is_empty(&c["resources"]["limits"]))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        ["cpu", "memory"]
            .iter()
            .all(|r| !limits[*r].is_null() && requests[*r] == limits[*r])
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// Service defaults, with the next free cluster IP (`10.96.x.y`).
pub(super) fn default_service(service: &mut Value, store: &Store) {
    let spec = object_mut(service, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let used: std::collections::BTreeSet<String> = store
            .list(Kind::Service, None)
            .filter_map(|s| s["spec"]["clusterIP"].as_str().map(str::to_owned))
            .collect();
        let ip = (1..65_000u32)
            .map(|n| format!("10.96.{}.{}", n / 250, n % 250 + 1))
            .find(|ip| !used.contains(ip));
        if let Some(ip) = ip {
            spec.insert("clusterIP".into(), json!(ip));
        }
    }
    let ip = spec["clusterIP"].clone();
    spec.insert("clusterIPs".into(), json!([ip]));
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = port.as_object_mut() {
            set_default(p, "protocol", json!("TCP"));
            let number = p.get("port").cloned().unwrap_or(Value::Null);
            set_default(p, "targetPort", number);
        }
    }
    service["status"] = json!({"loadBalancer": {}});
}

/// Folds `stringData` into `data` (base64) and defaults the type to `Opaque`.
pub(super) fn default_secret(secret: &mut Value) -> Result<(), ApiError> {
    use k8s_openapi::ByteString;
    let string_data = secret.as_object_mut().and_then(|s| s.remove("stringData"));
    if let Some(Value::Object(string_data)) = string_data {
        let data = object_mut(secret, "data");
        for (key, value) in string_data {
            let bytes = ByteString(value.as_str().unwrap_or_default().as_bytes().to_vec());
            data.insert(
                key,
                serde_json::to_value(bytes).map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
    }
    if let Some(s) = secret.as_object_mut() {
        set_default(s, "type", json!("Opaque"));
    }
    Ok(())
}

/// Node labels and status as a ready kubelet would post them.
pub(super) fn default_node_status(node: &mut Value) {
    let name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let meta = node["metadata"].as_object_mut();
    if let Some(meta) = meta {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            set_default(labels, "kubernetes.io/hostname", json!(name));
            set_default(labels, "kubernetes.io/os", json!("linux"));
            set_default(labels, "kubernetes.io/arch", json!("amd64"));
            set_default(labels, "beta.kubernetes.io/os", json!("linux"));
            set_default(labels, "beta.kubernetes.io/arch", json!("amd64"));
        }
    }
    let now = now_rfc3339();
    let status = object_mut(node, "status");
    let capacity = status
        .get("capacity")
        .or(status.get("allocatable"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    set_default(status, "capacity", capacity.clone());
    set_default(status, "allocatable", capacity);
    if let Some(Value::Object(capacity)) = status.get_mut("capacity") {
        set_default(capacity, "pods", json!("110"));
    }
    if let Some(Value::Object(allocatable)) = status.get_mut("allocatable") {
        set_default(allocatable, "pods", json!("110"));
    }
    set_default(
        status,
        "conditions",
        json!([
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubesim simulated kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}
        ]),
    );
    set_default(
        status,
        "addresses",
        json!([{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}]),
    );
    set_default(
        status,
        "nodeInfo",
        json!({
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "kubesim", "osImage": "kubesim simulated node (processes run on the host)",
            "containerRuntimeVersion": "kubesim://0.1.0", "kubeletVersion": GIT_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"
        }),
    );
}

/// The node object for one entry of a clusters file.
pub(crate) fn node_from_spec(spec: &NodeSpec, name: &str) -> Value {
    let allocatable: Map<String, Value> = spec
        .allocatable
        .iter()
        .map(|(k, q)| (k.clone(), json!(q.as_str())))
        .collect();
    let taints: Vec<Value> = spec
        .taints
        .iter()
        .map(|t| {
            let mut taint = json!({"key": t.key, "effect": t.effect});
            if !t.value.is_empty() {
                taint["value"] = json!(t.value);
            }
            taint
        })
        .collect();
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": spec.labels, "uid": new_uid(), "creationTimestamp": now_rfc3339()},
        "spec": {},
        "status": {"capacity": allocatable, "allocatable": allocatable},
    });
    if !taints.is_empty() {
        node["spec"]["taints"] = json!(taints);
    }
    default_node_status(&mut node);
    node
}
