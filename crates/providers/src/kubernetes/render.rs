//! The Kubernetes objects a task becomes, as pure functions: a Secret for its secrets, one Pod
//! per node (GPU request, node affinity on the GPU label, CPU/memory requests, a memory
//! `emptyDir` at `/dev/shm`, node variables, labels naming the cluster and the task's `labels`),
//! a Service for its ports and, for multi-node tasks, a headless Service that gives the pods
//! stable DNS names.
//!
//! # One function, so that `render` shows what `launch` creates
//!
//! [`build_manifests`] is the only place these objects are made: the backend's `provision`
//! creates its output and [`render_manifests`] prints it. Its inputs decide every object, and
//! nothing else is read (no clock, no randomness, no live state):
//!
//! - the [`TaskRun`]: commands, envs, secrets, image, ports, `labels`, nodes. Both take it for
//!   the resource alternative of their placement ([`TaskRun::for_alternative`]).
//! - the cluster name and the namespace. `render` takes `-c NAME` or derives the name from the
//!   task's name without a random part, so that two renders agree.
//! - the [`PodShape`]: accelerator × count, vCPUs and memory through one conversion,
//!   [`PodShape::for_placement`], plus the GPU node label. The backend converts the placement it
//!   is handed and takes the label that [`gpu_node_label`](super::gpu_node_label) picks from the
//!   context's nodes. `render` converts an explicit placement (a Kubernetes instance type such
//!   as `8CPU--32GB--L4:1`, or the one planned on `--context`'s live offers) or, with neither,
//!   the task's first alternative ([`PodShape::for_task`]); with `--context` it picks the label
//!   by the same rule from the same nodes, offline it has none and the affinity uses
//!   [`DEFAULT_GPU_LABEL`](super::DEFAULT_GPU_LABEL) (`skypilot.co/accelerator`).
//! - the request id, an annotation that makes `provision` idempotent. A launch makes one per
//!   attempt; `render` leaves it out unless given one ([`RenderOptions::request_id`]).
//!
//! So the same task, name and shape inputs give the identical Pod; a kubesim test creates a
//! cluster through the backend and compares each created object with the rendered one.
//!
//! Printing differs from creating in secrets only: unless [`RenderOptions::include_secrets`],
//! the Secret is left out (the Pod still refers to it by name), a comment says how to create it
//! (keys only), and secret values written literally into `setup`/`run` are scrubbed.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use skyplan_spec::SecretString;

use super::labels::check_labels;
pub use super::shape::PodShape;
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

/// How [`render_manifests`] prints a cluster's objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Print the Secret with the real values. Off: the Secret is left out, with a comment on how
    /// to create it (keys only), and secret values are scrubbed from every other object.
    pub include_secrets: bool,
    /// The request id annotation a launch puts on every object (left out when `None`: a render is
    /// no provision request, and objects applied from it are not taken for a launch's).
    pub request_id: Option<String>,
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

/// Builds every object of `cluster` running `task` in `namespace` with pods shaped by `shape`,
/// secret values included: what the backend creates, and what [`render_manifests`] prints. Every
/// object carries [`CLUSTER_LABEL`] and the task's `labels` (checked with
/// [`check_labels`](super::check_labels)); `request_id`, when given, is annotated on each.
pub fn build_manifests(
    task: &TaskRun,
    cluster: &str,
    namespace: &str,
    shape: &PodShape,
    request_id: Option<&str>,
) -> Result<Manifests, ProviderError> {
    check_labels(&task.labels)?;
    let nodes = task.num_nodes.max(1);
    // What selects the pods: the cluster label, and the rank for the head pod.
    let selector = |rank: Option<u32>| {
        let mut labels = BTreeMap::from([(CLUSTER_LABEL.to_string(), cluster.to_string())]);
        if let Some(rank) = rank {
            labels.insert(RANK_LABEL.to_string(), rank.to_string());
        }
        labels
    };
    let annotations =
        request_id.map(|id| BTreeMap::from([(REQUEST_ID_ANNOTATION.to_string(), id.to_string())]));
    let metadata = |name: String, rank: Option<u32>| {
        let mut labels = task.labels.clone();
        labels.extend(selector(rank));
        let mut meta = json!({"name": name, "namespace": namespace, "labels": labels});
        if let Some(annotations) = &annotations {
            meta["annotations"] = json!(annotations);
        }
        meta
    };

    let secret = (!task.secrets.is_empty()).then(|| {
        let data: BTreeMap<&str, &str> = task
            .secrets
            .iter()
            .map(|(k, v)| (k.as_str(), SecretString::expose(v)))
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
            "spec": {"clusterIP": "None", "selector": selector(None), "publishNotReadyAddresses": true},
        })
    });

    let script = pod_script(task);
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
            env.push(json!({"name": name, "value": escape_expansion(value)}));
        }
        for name in task.secrets.keys() {
            env.push(json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(cluster), "key": name}}}));
        }
        let mut container = json!({
            "name": CONTAINER,
            "image": image,
            "command": ["bash", "-c", escape_expansion(&script)],
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
        if gpus > 0
            && let Some((key, value)) = shape.affinity_label()
        {
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
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(cluster.to_string(), None),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(Some(0)),
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

/// The objects of [`build_manifests`] (request id from `options`) as multi-document YAML that
/// `kubectl apply -f -` accepts, after comment lines naming the cluster and the pods' shape.
/// Unless `options.include_secrets`, the Secret is left out: a comment gives the
/// `kubectl create secret` line with its keys (never values), and secret values are scrubbed
/// from the other objects.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use skyplan_spec::SecretString;
/// use skyplan_providers::TaskRun;
/// use skyplan_providers::kubernetes::{PodShape, RenderOptions, render_manifests};
/// let mut task = TaskRun::command("hi", "echo hi");
/// task.secrets.insert("HF_TOKEN".into(), SecretString::new("hf_abc"));
/// let yaml = render_manifests(&task, "hi", "default", &PodShape::default(), &RenderOptions::default()).unwrap();
/// assert!(yaml.contains("kind: Pod") && yaml.contains("skyplan.dev/cluster: hi"));
/// assert!(!yaml.contains("kind: Secret") && !yaml.contains("hf_abc"));
/// assert!(yaml.contains("kubectl create secret generic hi-secrets --namespace default --from-literal=HF_TOKEN=..."));
/// let options = RenderOptions { include_secrets: true, ..Default::default() };
/// let yaml = render_manifests(&task, "hi", "default", &PodShape::default(), &options).unwrap();
/// assert!(yaml.contains("kind: Secret") && yaml.contains("HF_TOKEN: hf_abc"));
/// # }
/// ```
pub fn render_manifests(
    task: &TaskRun,
    cluster: &str,
    namespace: &str,
    shape: &PodShape,
    options: &RenderOptions,
) -> Result<String, ProviderError> {
    let mut manifests = build_manifests(task, cluster, namespace, shape, options.request_id.as_deref())?;
    let mut out =
        format!("# Kubernetes objects skyplan creates for cluster {cluster:?} in namespace {namespace:?}.\n");
    let nodes = match shape.affinity_label() {
        Some((key, value)) => format!(", on nodes labeled {key}={value}"),
        None => String::new(),
    };
    out.push_str(&format!("# Each pod: {}{nodes}.\n", shape.summary()));
    if !options.include_secrets {
        if manifests.secret.take().is_some() {
            out.push_str(&secret_comment(task, cluster, namespace));
        }
        let values = task.secret_values();
        if !values.is_empty() {
            for object in manifests
                .headless
                .iter_mut()
                .chain(&mut manifests.pods)
                .chain(&mut manifests.service)
            {
                scrub(object, task);
            }
        }
    } else if manifests.secret.is_some() {
        out.push_str("# The Secret below holds the secret values: keep this output private.\n");
    }
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

/// The comment that stands in for a Secret left out: how to create and label it, keys only.
fn secret_comment(task: &TaskRun, cluster: &str, namespace: &str) -> String {
    let name = secret_name(cluster);
    let keys: Vec<&str> = task.secrets.keys().map(String::as_str).collect();
    let literals: Vec<String> = keys.iter().map(|k| format!("--from-literal={k}=...")).collect();
    let mut labels = task.labels.clone();
    labels.insert(CLUSTER_LABEL.to_string(), cluster.to_string());
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "# Secret {name} ({}) is left out so that no secret value is printed; the pods read it by name.\n\
         # Create it before applying (the label lets `skyplan down` delete it):\n\
         #   kubectl create secret generic {name} --namespace {namespace} {}\n\
         #   kubectl label secret {name} --namespace {namespace} {}\n",
        keys.join(", "),
        literals.join(" "),
        labels.join(" ")
    )
}

/// Replaces the task's secret values in every string of `value` with `<redacted>`.
fn scrub(value: &mut Value, task: &TaskRun) {
    match value {
        Value::String(text) => *text = task.redact(text),
        Value::Array(items) => items.iter_mut().for_each(|item| scrub(item, task)),
        Value::Object(map) => map.values_mut().for_each(|item| scrub(item, task)),
        _ => {}
    }
}

/// `text` escaped against the kubelet's `$(VAR)` expansion of `command` and env values (where
/// `$$` stands for `$`), so bash gets exactly what the task wrote: a `$` before `$` or `(` is
/// doubled (`$$` → `$$$`, `$(date)` → `$$(date)`); any other `$` (`$HOME`, `$?`) means itself
/// to the kubelet and stays as written.
fn escape_expansion(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
            out.push('$');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_survive_the_kubelets_expansion() {
        for (written, escaped) in [
            ("echo $$", "echo $$$"),
            ("x=$(date) $HOME $? ${A}", "x=$$(date) $HOME $? ${A}"),
            ("$$(x) $", "$$$$(x) $"),
            ("$$x", "$$$x"),
        ] {
            assert_eq!(escape_expansion(written), escaped, "{written}");
        }
    }

    #[test]
    fn secrets_are_references_and_left_out_when_shown() {
        let mut task = TaskRun::command("t", "echo $HF_TOKEN; login hf_real");
        task.secrets
            .insert("HF_TOKEN".into(), SecretString::new("hf_real"));
        task.envs.insert("MODEL".into(), "gemma".into());
        let real = build_manifests(&task, "c", "default", &PodShape::default(), Some("r1")).expect("ok");
        let secret = real.secret.as_ref().expect("secret");
        assert_eq!(secret["stringData"]["HF_TOKEN"], "hf_real");
        let pod = real.pods[0]["spec"]["containers"][0]["env"].to_string();
        assert!(!pod.contains("hf_real"), "{pod}");
        assert!(pod.contains("secretKeyRef"), "{pod}");
        assert_eq!(
            real.pods[0]["metadata"]["annotations"][REQUEST_ID_ANNOTATION],
            "r1"
        );

        let shown =
            render_manifests(&task, "c", "ns", &PodShape::default(), &RenderOptions::default()).expect("ok");
        assert!(
            !shown.contains("hf_real") && !shown.contains("kind: Secret"),
            "{shown}"
        );
        assert!(shown.contains("login <redacted>"), "{shown}");
        assert!(
            shown.contains(
                "#   kubectl create secret generic c-secrets --namespace ns --from-literal=HF_TOKEN=...\n"
            ) && shown.contains("#   kubectl label secret c-secrets --namespace ns skyplan.dev/cluster=c\n"),
            "{shown}"
        );
        assert!(!shown.contains(REQUEST_ID_ANNOTATION), "{shown}");
        let options = RenderOptions {
            include_secrets: true,
            request_id: Some("r1".into()),
        };
        let full = render_manifests(&task, "c", "ns", &PodShape::default(), &options).expect("ok");
        assert!(
            full.contains("HF_TOKEN: hf_real") && full.contains("login hf_real"),
            "{full}"
        );
        assert!(full.contains("skyplan.dev/request-id: r1"), "{full}");
    }

    #[test]
    fn task_labels_are_on_every_object_but_not_in_selectors() {
        let mut task = TaskRun::command("t", "echo");
        task.num_nodes = 2;
        task.ports = vec![skyplan_spec::PortRange::single(8000)];
        task.secrets.insert("TOKEN".into(), SecretString::new("x"));
        task.labels.insert("team".into(), "ml".into());
        let m = build_manifests(&task, "lab", "default", &PodShape::default(), None).expect("ok");
        for object in m.objects() {
            assert_eq!(object["metadata"]["labels"]["team"], "ml", "{object}");
            assert_eq!(object["metadata"]["labels"][CLUSTER_LABEL], "lab", "{object}");
        }
        for service in m.headless.iter().chain(&m.service) {
            assert!(service["spec"]["selector"].get("team").is_none(), "{service}");
        }
        task.labels.insert("bad key".into(), "x".into());
        let err =
            build_manifests(&task, "lab", "default", &PodShape::default(), None).expect_err("bad label");
        assert!(err.to_string().contains("label bad key=x"), "{err}");
    }

    #[test]
    fn multi_node_pods_know_their_peers() {
        let mut task = TaskRun::command("t", "echo");
        task.num_nodes = 2;
        let m = build_manifests(&task, "mn", "default", &PodShape::default(), None).expect("ok");
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
    fn gpu_affinity_uses_the_given_label_else_the_default() {
        let task = TaskRun::command("t", "echo");
        let shape = PodShape {
            accelerator: Some("L4".into()),
            gpus: 1.0,
            ..Default::default()
        };
        let affinity = |shape: &PodShape| {
            let m = build_manifests(&task, "g", "default", shape, None).expect("ok");
            m.pods[0]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchExpressions"][0]
                .clone()
        };
        assert_eq!(
            affinity(&shape),
            json!({"key": "skypilot.co/accelerator", "operator": "In", "values": ["l4"]})
        );
        let labeled = shape.with_gpu_label(Some((
            "cloud.google.com/gke-accelerator".into(),
            "nvidia-l4".into(),
        )));
        assert_eq!(affinity(&labeled)["key"], "cloud.google.com/gke-accelerator");
    }

    #[test]
    fn quantities_read_well() {
        assert_eq!(cpu_quantity(7.0), "7");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(memory_quantity(27.0), "27Gi");
        assert_eq!(memory_quantity(0.5), "512Mi");
    }
}
