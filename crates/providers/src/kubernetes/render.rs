//! The Kubernetes objects a task becomes, as pure functions: a Secret for its secrets, one Pod
//! per node (GPU request, node affinity on the GPU label, CPU/memory requests, a memory
//! `emptyDir` at `/dev/shm`, node variables, labels naming the cluster), a Service for its ports
//! and, for multi-node tasks, a headless Service that gives the pods stable DNS names. The
//! backend creates exactly these objects; `skyplan render` prints them as YAML with secret
//! values replaced by `<redacted>`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use skyplan_optimizer::spec::SecretString;

use crate::{CLUSTER_LABEL, ProviderError, TaskRun, node_variables};

/// Label with the node rank on every pod.
pub const RANK_LABEL: &str = "skyplan.dev/node-rank";
/// Annotation with the request id that created the cluster (too long for a label value).
pub const REQUEST_ID_ANNOTATION: &str = "skyplan.dev/request-id";
/// Annotation with the task name on every pod.
pub const TASK_ANNOTATION: &str = "skyplan.dev/task";
/// Image used when the task names no `docker:` image.
pub const DEFAULT_IMAGE: &str = "ubuntu:24.04";
/// Name of the container in every pod.
pub const CONTAINER: &str = "task";
/// Placeholder for secret values in rendered output.
pub const REDACTED: &str = "<redacted>";

/// What each pod asks for: the placement's shape and, for GPUs, the node label to require.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodShape {
    /// Canonical accelerator name.
    pub accelerator: Option<String>,
    /// GPUs per pod.
    pub gpus: f64,
    /// CPU cores per pod.
    pub vcpus: Option<f64>,
    /// Memory per pod, GiB.
    pub memory_gib: Option<f64>,
    /// Required node label `(key, value)` for the GPU model, e.g.
    /// `("cloud.google.com/gke-accelerator", "nvidia-l4")`. Without it (rendering offline) the
    /// affinity uses `skypilot.co/accelerator` = the lower-case model name.
    pub gpu_label: Option<(String, String)>,
}

impl PodShape {
    /// The shape a task asks for in its first resource alternative (offline: no live node
    /// labels, so the GPU affinity uses `skypilot.co/accelerator`).
    ///
    /// ```
    /// # #[cfg(feature = "kubernetes")] {
    /// use skyplan_optimizer::spec::parse_task_str;
    /// let pipeline = parse_task_str("resources:\n  accelerators: L4:1\n  cpus: 4+\nrun: x\n", "t.yaml").unwrap();
    /// let shape = skyplan_providers::kubernetes::PodShape::for_task(&pipeline.tasks[0]);
    /// assert_eq!((shape.accelerator.as_deref(), shape.gpus, shape.vcpus), (Some("L4"), 1.0, Some(4.0)));
    /// # }
    /// ```
    pub fn for_task(spec: &skyplan_optimizer::spec::TaskSpec) -> Self {
        let alternatives = spec.alternatives();
        let Some(first) = alternatives.requests.first() else {
            return PodShape::default();
        };
        let (accelerator, gpus) = match &first.accelerator {
            Some((name, count)) => (
                Some(
                    skyplan_catalog::canonical_accelerator_with_memory(name, None)
                        .unwrap_or_else(|| name.clone()),
                ),
                *count,
            ),
            None => (None, 0.0),
        };
        PodShape {
            accelerator,
            gpus,
            vcpus: first.cpus.map(|a| a.value),
            memory_gib: first.memory.map(|a| a.value),
            gpu_label: None,
        }
    }
}

/// Every object of one cluster, as JSON values in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    /// The Secret holding the task's secrets, if it has any.
    pub secret: Option<Value>,
    /// The headless Service naming the pods (multi-node tasks only).
    pub headless: Option<Value>,
    /// One Pod per node, by rank.
    pub pods: Vec<Value>,
    /// The Service exposing the task's ports from the head pod, if it has ports.
    pub service: Option<Value>,
}

impl Manifests {
    /// Every object, in creation order.
    pub fn objects(&self) -> Vec<&Value> {
        self.secret
            .iter()
            .chain(&self.headless)
            .chain(&self.pods)
            .chain(&self.service)
            .collect()
    }
}

/// Name of the Secret of a cluster.
pub fn secret_name(cluster: &str) -> String {
    format!("{cluster}-secrets")
}

/// Name of the pod of rank `rank`.
pub fn pod_name(cluster: &str, rank: u32) -> String {
    format!("{cluster}-{rank}")
}

/// Name of the headless Service of a multi-node cluster.
pub fn headless_name(cluster: &str) -> String {
    format!("{cluster}-nodes")
}

/// The address other nodes reach rank `rank` at: the pod's DNS name under the headless Service
/// (`CLUSTER-RANK.CLUSTER-nodes`), known before the pods are scheduled.
pub fn node_address(cluster: &str, rank: u32) -> String {
    format!("{}.{}", pod_name(cluster, rank), headless_name(cluster))
}

/// The pod's script: `setup` in a subshell (a failure ends the job with its exit code), then
/// `run`.
pub fn pod_script(task: &TaskRun) -> String {
    let mut script = String::from("set -o pipefail\n");
    if let Some(setup) = task.setup.as_deref().filter(|s| !s.trim().is_empty()) {
        script.push_str("(\n");
        script.push_str(setup.trim_end());
        script.push_str("\n) || exit $?\n");
    }
    if let Some(run) = task.run.as_deref() {
        script.push_str(run.trim_end());
        script.push('\n');
    }
    script
}

fn cpu_quantity(cores: f64) -> String {
    let milli = (cores * 1000.0).round() as i64;
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn memory_quantity(gib: f64) -> String {
    let mib = (gib * 1024.0).round() as i64;
    if mib % 1024 == 0 {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

/// Builds every object of `cluster` running `task` in `namespace` with pods shaped by `shape`.
/// With `reveal_secrets` false, secret values are `<redacted>` and secrets written literally into
/// `setup`/`run` are scrubbed (for showing); the backend passes true to create the objects.
pub fn build_manifests(
    task: &TaskRun,
    cluster: &str,
    namespace: &str,
    shape: &PodShape,
    request_id: Option<&str>,
    reveal_secrets: bool,
) -> Result<Manifests, ProviderError> {
    let nodes = task.num_nodes.max(1);
    let labels = |rank: Option<u32>| {
        let mut labels = BTreeMap::from([(CLUSTER_LABEL.to_string(), cluster.to_string())]);
        if let Some(rank) = rank {
            labels.insert(RANK_LABEL.to_string(), rank.to_string());
        }
        labels
    };
    let annotations =
        request_id.map(|id| BTreeMap::from([(REQUEST_ID_ANNOTATION.to_string(), id.to_string())]));
    let metadata = |name: String, rank: Option<u32>| {
        let mut meta = json!({"name": name, "namespace": namespace, "labels": labels(rank)});
        if let Some(annotations) = &annotations {
            meta["annotations"] = json!(annotations);
        }
        meta
    };

    let secret = (!task.secrets.is_empty()).then(|| {
        let data: BTreeMap<&str, &str> = task
            .secrets
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if reveal_secrets {
                        SecretString::expose(v)
                    } else {
                        REDACTED
                    },
                )
            })
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(secret_name(cluster), None),
            "type": "Opaque",
            "stringData": data,
        })
    });

    let addresses: Vec<String> = if nodes > 1 {
        (0..nodes).map(|rank| node_address(cluster, rank)).collect()
    } else {
        vec!["127.0.0.1".to_string()]
    };
    let headless = (nodes > 1).then(|| {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(headless_name(cluster), None),
            "spec": {"clusterIP": "None", "selector": labels(None), "publishNotReadyAddresses": true},
        })
    });

    let script = if reveal_secrets {
        pod_script(task)
    } else {
        task.redact(&pod_script(task))
    };
    let image = task.docker_image().unwrap_or(DEFAULT_IMAGE);
    let mut ports: Vec<u16> = Vec::new();
    for range in &task.ports {
        if u32::from(range.end) - u32::from(range.start) >= 100 {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "port range {}-{} is too large for a Kubernetes Service (at most 100 ports)",
                    range.start, range.end
                ),
            });
        }
        ports.extend(range.start..=range.end);
    }
    ports.sort_unstable();
    ports.dedup();

    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(cpus) = shape.vcpus.filter(|c| *c > 0.0) {
        requests.insert("cpu".into(), json!(cpu_quantity(cpus)));
    }
    if let Some(memory) = shape.memory_gib.filter(|m| *m > 0.0) {
        requests.insert("memory".into(), json!(memory_quantity(memory)));
    }
    let gpus = shape.gpus.ceil() as i64;
    if gpus > 0 {
        requests.insert(super::capacity::GPU_RESOURCE.into(), json!(gpus.to_string()));
        limits.insert(super::capacity::GPU_RESOURCE.into(), json!(gpus.to_string()));
    }
    let mut resources = json!({"requests": requests});
    if !limits.is_empty() {
        resources["limits"] = Value::Object(limits);
    }

    let mut pods = Vec::new();
    for rank in 0..nodes {
        let mut env = Vec::new();
        for (name, value) in node_variables(rank, &addresses, shape.gpus) {
            env.push(json!({"name": name, "value": value}));
        }
        for (name, value) in &task.envs {
            env.push(json!({"name": name, "value": value}));
        }
        for name in task.secrets.keys() {
            env.push(json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(cluster), "key": name}}}));
        }
        let mut container = json!({
            "name": CONTAINER,
            "image": image,
            "command": ["bash", "-c", script],
            "env": env,
            "resources": resources,
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        });
        if rank == 0 && !ports.is_empty() {
            container["ports"] = json!(
                ports
                    .iter()
                    .map(|p| json!({"containerPort": p, "protocol": "TCP"}))
                    .collect::<Vec<_>>()
            );
        }
        let mut spec = json!({
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
        });
        if nodes > 1 {
            spec["hostname"] = json!(pod_name(cluster, rank));
            spec["subdomain"] = json!(headless_name(cluster));
        }
        if let Some(model) = &shape.accelerator
            && gpus > 0
        {
            let (key, value) = shape
                .gpu_label
                .clone()
                .unwrap_or_else(|| ("skypilot.co/accelerator".to_string(), model.to_ascii_lowercase()));
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]}}});
            // GPU nodes are commonly tainted so that only GPU pods land there.
            spec["tolerations"] =
                json!([{"key": super::capacity::GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]);
        }
        let mut pod_metadata = metadata(pod_name(cluster, rank), Some(rank));
        pod_metadata["annotations"][TASK_ANNOTATION] = json!(task.name);
        pods.push(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_metadata,
            "spec": spec,
        }));
    }

    let service = (!ports.is_empty()).then(|| {
        let selector = labels(Some(0));
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(cluster.to_string(), None),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": ports.iter().map(|p| json!({"name": format!("port-{p}"), "port": p, "targetPort": p, "protocol": "TCP"})).collect::<Vec<_>>(),
            },
        })
    });
    Ok(Manifests {
        secret,
        headless,
        pods,
        service,
    })
}

/// The manifests of [`build_manifests`] as multi-document YAML that `kubectl apply -f -`
/// accepts, secret values redacted.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use skyplan_providers::TaskRun;
/// use skyplan_providers::kubernetes::{PodShape, render_manifests};
/// let yaml = render_manifests(&TaskRun::command("hi", "echo hi"), "hi", "default", &PodShape::default()).unwrap();
/// assert!(yaml.contains("kind: Pod") && yaml.contains("skyplan.dev/cluster: hi"));
/// # }
/// ```
pub fn render_manifests(
    task: &TaskRun,
    cluster: &str,
    namespace: &str,
    shape: &PodShape,
) -> Result<String, ProviderError> {
    let manifests = build_manifests(task, cluster, namespace, shape, None, false)?;
    let mut out =
        format!("# Kubernetes objects skyplan creates for cluster {cluster:?} (secret values redacted).\n");
    for object in manifests.objects() {
        let yaml = serde_saphyr::to_string(object).map_err(|err| ProviderError::InvalidRequest {
            message: format!("rendering manifests: {err}"),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_references_and_redacted_when_shown() {
        let mut task = TaskRun::command("t", "echo $HF_TOKEN");
        task.secrets
            .insert("HF_TOKEN".into(), SecretString::new("hf_real"));
        task.envs.insert("MODEL".into(), "gemma".into());
        let shown = build_manifests(&task, "c", "default", &PodShape::default(), None, false).expect("ok");
        assert!(!shown.objects().iter().any(|o| o.to_string().contains("hf_real")));
        let real =
            build_manifests(&task, "c", "default", &PodShape::default(), Some("r1"), true).expect("ok");
        let secret = real.secret.expect("secret");
        assert_eq!(secret["stringData"]["HF_TOKEN"], "hf_real");
        let pod = real.pods[0].to_string();
        assert!(!pod.contains("hf_real"), "{pod}");
        assert!(pod.contains("secretKeyRef"), "{pod}");
        assert_eq!(
            real.pods[0]["metadata"]["annotations"][REQUEST_ID_ANNOTATION],
            "r1"
        );
    }

    #[test]
    fn multi_node_pods_know_their_peers() {
        let mut task = TaskRun::command("t", "echo");
        task.num_nodes = 2;
        let m = build_manifests(&task, "mn", "default", &PodShape::default(), None, true).expect("ok");
        assert_eq!(m.pods.len(), 2);
        assert!(m.headless.is_some());
        let env = m.pods[1]["spec"]["containers"][0]["env"]
            .as_array()
            .expect("env")
            .clone();
        let get = |n: &str| env.iter().find(|e| e["name"] == n).map(|e| e["value"].clone());
        assert_eq!(get("SKYPLAN_NODE_RANK"), Some(json!("1")));
        assert_eq!(
            get("SKYPLAN_NODE_IPS"),
            Some(json!("mn-0.mn-nodes\nmn-1.mn-nodes"))
        );
    }

    #[test]
    fn quantities_read_well() {
        assert_eq!(cpu_quantity(7.0), "7");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(memory_quantity(27.0), "27Gi");
        assert_eq!(memory_quantity(0.5), "512Mi");
    }
}
