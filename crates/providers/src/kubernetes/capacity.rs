//! Live capacity of a cluster, as pure functions over its nodes and pods: what each node has free
//! (allocatable minus the requests of Running and Pending pods bound to it), which GPU model a
//! node carries (from skypilot.co, GKE, Karpenter or GPU Feature Discovery labels), and the
//! offers and capacity rows that follow for the optimizer. No IO here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skyplan_catalog::{Offer, canonical_accelerator_with_memory};
use skyplan_optimizer::{CapacityLimit, CapacityResource};

use super::KUBERNETES;
use super::config::Pricing;

/// The extended resource name of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Node labels naming the GPU model, in the order they are trusted, each with the label giving
/// the GPU memory in MiB where the labeller sets one.
pub const GPU_LABELS: [(&str, Option<&str>); 4] = [
    ("skypilot.co/accelerator", None),
    ("cloud.google.com/gke-accelerator", None),
    (
        "karpenter.k8s.aws/instance-gpu-name",
        Some("karpenter.k8s.aws/instance-gpu-memory"),
    ),
    ("nvidia.com/gpu.product", Some("nvidia.com/gpu.memory")),
];

/// The node label that identifies a GPU model, and the canonical model it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GpuLabel {
    /// Label key, e.g. `cloud.google.com/gke-accelerator`.
    pub key: String,
    /// Label value, e.g. `nvidia-l4`.
    pub value: String,
    /// Canonical accelerator name, e.g. `L4`.
    pub model: String,
}

/// The GPU model of a node with these labels, from the first known label that names one.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use std::collections::BTreeMap;
/// use skyplan_providers::kubernetes::detect_gpu;
/// let labels = BTreeMap::from([("nvidia.com/gpu.product".to_string(), "NVIDIA-A100-SXM4-80GB".to_string())]);
/// assert_eq!(detect_gpu(&labels).unwrap().model, "A100-80GB");
/// # }
/// ```
pub fn detect_gpu(labels: &BTreeMap<String, String>) -> Option<GpuLabel> {
    GPU_LABELS.iter().find_map(|(key, memory_key)| {
        let value = labels.get(*key)?;
        let memory_mib = memory_key
            .and_then(|k| labels.get(k))
            .and_then(|m| m.trim().parse::<u64>().ok());
        let model = canonical_accelerator_with_memory(value, memory_mib)?;
        Some(GpuLabel {
            key: (*key).to_string(),
            value: value.clone(),
            model,
        })
    })
}

/// A quantity in base units (cores, bytes, count): `7910m` → 7.91, `27Gi` → 27×2³⁰, `1e3` → 1000;
/// `None` for text that is not a finite, non-negative amount (`1e400Gi`, `-4`).
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, scale) in suffixes {
        if let Some(number) = text.strip_suffix(suffix) {
            return number
                .parse::<f64>()
                .ok()
                .map(|n| n * scale)
                .filter(|v| v.is_finite() && *v >= 0.0);
        }
    }
    let value = text.parse::<f64>().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

fn quantity(map: Option<&BTreeMap<String, Quantity>>, name: &str) -> f64 {
    map.and_then(|m| m.get(name))
        .and_then(|q| parse_quantity(&q.0))
        .unwrap_or(0.0)
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What one node has, and has free, right now.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFree {
    /// Node name.
    pub name: String,
    /// Its GPU model, when it has GPUs and a known label.
    pub gpu: Option<GpuLabel>,
    /// Allocatable GPUs.
    pub gpus: f64,
    /// Allocatable CPU cores.
    pub cpus: f64,
    /// Allocatable memory, GiB.
    pub memory_gib: f64,
    /// Free GPUs.
    pub free_gpus: f64,
    /// Free CPU cores.
    pub free_cpus: f64,
    /// Free memory, GiB.
    pub free_memory_gib: f64,
}

/// Requests of one pod: (GPUs, cores, bytes). Limits count where requests are absent (as
/// Kubernetes defaults requests to limits).
fn pod_requests(pod: &Pod) -> (f64, f64, f64) {
    let Some(spec) = &pod.spec else {
        return (0.0, 0.0, 0.0);
    };
    let mut total = (0.0, 0.0, 0.0);
    for container in &spec.containers {
        let resources = container.resources.as_ref();
        let get = |name: &str| {
            let request = quantity(resources.and_then(|r| r.requests.as_ref()), name);
            if request > 0.0 {
                request
            } else {
                quantity(resources.and_then(|r| r.limits.as_ref()), name)
            }
        };
        total.0 += get(GPU_RESOURCE);
        total.1 += get("cpu");
        total.2 += get("memory");
    }
    total
}

/// Every schedulable node with its free capacity: allocatable minus the requests of Running and
/// Pending pods bound to it (finished pods hold nothing). Nodes marked unschedulable are left out.
pub fn free_capacity(nodes: &[Node], pods: &[Pod]) -> Vec<NodeFree> {
    let mut used: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for pod in pods {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if !matches!(phase, "Running" | "Pending") {
            continue;
        }
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let (g, c, m) = pod_requests(pod);
        let entry = used.entry(node).or_default();
        entry.0 += g;
        entry.1 += c;
        entry.2 += m;
    }
    let mut out = Vec::new();
    for node in nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            continue;
        }
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let gpus = quantity(allocatable, GPU_RESOURCE).floor();
        let cpus = quantity(allocatable, "cpu");
        let memory_gib = quantity(allocatable, "memory") / GIB;
        let (used_gpus, used_cpus, used_memory) = used.get(name).copied().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        out.push(NodeFree {
            name: name.to_string(),
            gpu: if gpus > 0.0 { detect_gpu(&labels) } else { None },
            gpus,
            cpus,
            memory_gib,
            free_gpus: (gpus - used_gpus).max(0.0).floor(),
            free_cpus: (cpus - used_cpus).max(0.0),
            free_memory_gib: (memory_gib - used_memory / GIB).max(0.0),
        });
    }
    out
}

/// The instance type name of a slice, SkyPilot's way: `7CPU--27GB--L4:1`, `4CPU--16GB`.
pub fn instance_type(vcpus: f64, memory_gib: f64, gpu: Option<(&str, f64)>) -> String {
    let base = format!(
        "{}CPU--{}GB",
        skyplan_catalog::format_count(vcpus),
        skyplan_catalog::format_count(memory_gib)
    );
    match gpu {
        Some((model, count)) => format!("{base}--{model}:{}", skyplan_catalog::format_count(count)),
        None => base,
    }
}

/// The sizes a Kubernetes instance type (as [`instance_type`] names it) stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceSize {
    /// CPU cores.
    pub vcpus: f64,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// GPU model and count.
    pub gpu: Option<(String, f64)>,
}

/// The sizes an instance type of [`instance_type`] names: `7CPU--27GB--L4:1` → 7 cores, 27 GiB
/// and one L4; `None` for any other name.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use skyplan_providers::kubernetes::capacity::{SliceSize, parse_instance_type};
/// let size = parse_instance_type("7CPU--27GB--L4:1").unwrap();
/// assert_eq!((size.vcpus, size.memory_gib, size.gpu), (7.0, 27.0, Some(("L4".to_string(), 1.0))));
/// assert_eq!(parse_instance_type("4CPU--16GB"), Some(SliceSize { vcpus: 4.0, memory_gib: 16.0, gpu: None }));
/// assert_eq!(parse_instance_type("g6.xlarge"), None);
/// # }
/// ```
pub fn parse_instance_type(name: &str) -> Option<SliceSize> {
    let mut parts = name.split("--");
    let number = |text: Option<&str>, suffix: &str| {
        let value: f64 = text?.strip_suffix(suffix)?.parse().ok()?;
        (value.is_finite() && value > 0.0).then_some(value)
    };
    let vcpus = number(parts.next(), "CPU")?;
    let memory_gib = number(parts.next(), "GB")?;
    let gpu = match parts.next() {
        None => None,
        Some(gpu) => {
            let (model, count) = gpu.rsplit_once(':')?;
            let count: f64 = count.parse().ok()?;
            if model.is_empty() || !count.is_finite() || count <= 0.0 {
                return None;
            }
            Some((model.to_string(), count))
        }
    };
    parts.next().is_none().then_some(SliceSize {
        vcpus,
        memory_gib,
        gpu,
    })
}

/// One offer of `context`: a pod of `vcpus` cores and `memory_gib` GiB (and `gpu` = model ×
/// count), named by [`instance_type`] and priced by `pricing`. A slice whose price cannot be
/// computed (a node reporting absurd quantities) has no price, so it is not offered, with a
/// warning naming the computation. Prices in `config.yaml` are bounded when read, so this takes
/// quantities beyond any real node.
pub fn slice_offer(
    context: &str,
    vcpus: f64,
    memory_gib: f64,
    gpu: Option<(&str, f64)>,
    pricing: &Pricing,
) -> Offer {
    let instance_type = instance_type(vcpus, memory_gib, gpu);
    let price = pricing
        .price(
            gpu.map(|(m, _)| m),
            gpu.map_or(0.0, |(_, c)| c),
            vcpus,
            memory_gib,
        )
        .map_err(|err| {
            tracing::warn!("kubernetes context {context}: {instance_type} is not offered: its price {err}");
        })
        .ok();
    Offer {
        cloud: KUBERNETES.to_string(),
        region: context.to_string(),
        zone: None,
        instance_type,
        accelerator: gpu.map(|(m, _)| m.to_string()),
        accelerator_count: gpu.map_or(0.0, |(_, c)| c),
        vcpus: Some(vcpus),
        memory_gib: Some(memory_gib),
        accelerator_memory_mib: None,
        price,
        spot_price: None,
    }
}

/// The node label GPU pods of `model` require on a context with these nodes: the smallest
/// `(key, value)` among the labels that name `model` on its nodes (so the same nodes always
/// give the same label); `None` when no node has `model`. The backend and `render --context`
/// both choose with this.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use skyplan_providers::kubernetes::{GpuLabel, NodeFree, gpu_node_label};
/// let node = NodeFree {
///     name: "n".into(),
///     gpu: Some(GpuLabel { key: "cloud.google.com/gke-accelerator".into(), value: "nvidia-l4".into(), model: "L4".into() }),
///     gpus: 1.0, cpus: 8.0, memory_gib: 32.0, free_gpus: 1.0, free_cpus: 8.0, free_memory_gib: 32.0,
/// };
/// assert_eq!(gpu_node_label(&[node.clone()], "L4"), Some(("cloud.google.com/gke-accelerator".into(), "nvidia-l4".into())));
/// assert_eq!(gpu_node_label(&[node], "H100"), None);
/// # }
/// ```
pub fn gpu_node_label(nodes: &[NodeFree], model: &str) -> Option<(String, String)> {
    nodes
        .iter()
        .filter_map(|n| n.gpu.as_ref())
        .filter(|g| g.model == model)
        .map(|g| (g.key.clone(), g.value.clone()))
        .min()
}

/// Offers and capacity rows of one context, from its nodes' free capacity.
///
/// - Per GPU model, one offer per GPU count from 1 to the most GPUs free on a single node (a pod
///   must fit one node), with that count's proportional share of the node's CPU and memory
///   (capped by what is free), and a capacity row with the context's free GPUs of that model.
/// - A model with no GPU free anywhere still gets offers for the shapes its nodes have (and no
///   capacity row), so that the launcher tries it, `provision` answers at once with
///   `InsufficientCapacity` naming what is taken, and the failover history says why the cluster
///   was skipped. Its offers are the same price, so the optimizer tries it in the same order.
/// - CPU offers of 1, 2, 4, ... vCPUs (4 GiB each) up to the largest free CPU-only node (any
///   node when there are none), with that node's free memory as a cap.
pub fn context_offers(
    context: &str,
    nodes: &[NodeFree],
    pricing: &Pricing,
) -> (Vec<Offer>, Vec<CapacityLimit>) {
    let mut offers = Vec::new();
    let mut capacity = Vec::new();
    let mut models: BTreeMap<&str, Vec<&NodeFree>> = BTreeMap::new();
    for node in nodes {
        if let Some(gpu) = &node.gpu {
            models.entry(gpu.model.as_str()).or_default().push(node);
        }
    }
    let offer = |vcpus: f64, memory_gib: f64, gpu: Option<(&str, f64)>| {
        slice_offer(context, vcpus, memory_gib, gpu, pricing)
    };
    for (model, model_nodes) in &models {
        let total_free: f64 = model_nodes.iter().map(|n| n.free_gpus).sum();
        let full = total_free < 1.0;
        let most = model_nodes
            .iter()
            .map(|n| if full { n.gpus } else { n.free_gpus })
            .fold(0.0, f64::max);
        let mut count = 1.0;
        while count <= most {
            // The node offering the biggest share for `count` GPUs.
            let best = model_nodes
                .iter()
                .filter(|n| (if full { n.gpus } else { n.free_gpus }) >= count)
                .map(|n| {
                    let share = count / n.gpus;
                    let (cpus, memory) = if full {
                        (n.cpus * share, n.memory_gib * share)
                    } else {
                        (
                            (n.cpus * share).min(n.free_cpus),
                            (n.memory_gib * share).min(n.free_memory_gib),
                        )
                    };
                    (cpus.floor().max(0.0), memory.floor().max(0.0))
                })
                .fold(None::<(f64, f64)>, |best, s| match best {
                    Some(b) if (b.0, b.1) >= (s.0, s.1) => Some(b),
                    _ => Some(s),
                });
            if let Some((cpus, memory)) = best
                && cpus >= 1.0
            {
                offers.push(offer(cpus, memory, Some((model, count))));
            }
            count += 1.0;
        }
        // A full model keeps its shapes (so `show-gpus` lists them) with a limit of 0 free
        // GPUs, so that plans skip it now instead of discovering it at launch.
        {
            capacity.push(CapacityLimit {
                name: format!("k8s/{context} free {model} GPUs"),
                cloud: KUBERNETES.to_string(),
                region: Some(context.to_string()),
                spot: None,
                resource: CapacityResource::Gpus {
                    accelerator: Some((*model).to_string()),
                },
                limit: total_free,
            });
        }
    }
    let cpu_only: Vec<&NodeFree> = nodes.iter().filter(|n| n.gpus < 1.0).collect();
    let pool: Vec<&NodeFree> = if cpu_only.is_empty() {
        nodes.iter().collect()
    } else {
        cpu_only
    };
    if let Some(largest) = pool.iter().max_by(|a, b| {
        a.free_cpus
            .total_cmp(&b.free_cpus)
            .then(a.free_memory_gib.total_cmp(&b.free_memory_gib))
    }) {
        let max_cpus = largest.free_cpus.floor();
        let mut sizes = Vec::new();
        let mut n = 1.0;
        while n <= max_cpus {
            sizes.push(n);
            n *= 2.0;
        }
        if max_cpus >= 1.0 && sizes.last() != Some(&max_cpus) {
            sizes.push(max_cpus);
        }
        for cpus in sizes {
            let memory = (cpus * 4.0).min(largest.free_memory_gib.floor());
            if memory >= 1.0 {
                offers.push(offer(cpus, memory, None));
            }
        }
    }
    (offers, capacity)
}

/// Why nothing of `model` × `count` with `cpus` and `memory_gib` fits a node of the context now,
/// in the scheduler's words (`0/3 nodes are available: 1 Insufficient nvidia.com/gpu, ...`);
/// `None` when some node fits.
pub fn fit_error(
    nodes: &[NodeFree],
    model: Option<&str>,
    count: f64,
    cpus: f64,
    memory_gib: f64,
) -> Option<String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for node in nodes {
        let mut node_reasons = Vec::new();
        if let Some(model) = model
            && node.gpu.as_ref().map(|g| g.model.as_str()) != Some(model)
        {
            node_reasons.push("node(s) didn't match Pod's node affinity/selector".to_string());
        } else {
            if count > node.free_gpus {
                node_reasons.push(format!("Insufficient {GPU_RESOURCE}"));
            }
            if cpus > node.free_cpus + 1e-9 {
                node_reasons.push("Insufficient cpu".to_string());
            }
            if memory_gib > node.free_memory_gib + 1e-9 {
                node_reasons.push("Insufficient memory".to_string());
            }
        }
        if node_reasons.is_empty() {
            return None;
        }
        for reason in node_reasons {
            *reasons.entry(reason).or_default() += 1;
        }
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    Some(format!(
        "0/{} nodes are available: {}.",
        nodes.len(),
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, cpu: &str, memory: &str, gpus: u32) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus.to_string()}},
        }))
        .expect("node")
    }

    fn pod(node: &str, phase: &str, gpus: u32, cpu: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p-{node}")},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {
                "requests": {"cpu": cpu, "memory": "1Gi"}, "limits": {"nvidia.com/gpu": gpus.to_string()}}}]},
            "status": {"phase": phase},
        }))
        .expect("pod")
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("7910m"), Some(7.91));
        assert_eq!(parse_quantity("27Gi"), Some(27.0 * GIB));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("1e400Gi"), None, "not a finite amount");
        assert_eq!(parse_quantity("-4"), None, "negative");
    }

    #[test]
    fn every_label_family_is_detected() {
        let detect = |pairs: &[(&str, &str)]| {
            let labels = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            detect_gpu(&labels).map(|g| (g.key, g.model))
        };
        assert_eq!(
            detect(&[("cloud.google.com/gke-accelerator", "nvidia-l4")]),
            Some(("cloud.google.com/gke-accelerator".into(), "L4".into()))
        );
        assert_eq!(
            detect(&[("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")]).map(|g| g.1),
            Some("H100".into())
        );
        assert_eq!(
            detect(&[
                ("karpenter.k8s.aws/instance-gpu-name", "a100"),
                ("karpenter.k8s.aws/instance-gpu-memory", "81920")
            ])
            .map(|g| g.1),
            Some("A100-80GB".into())
        );
        assert_eq!(
            detect(&[("skypilot.co/accelerator", "t4")]).map(|g| g.1),
            Some("T4".into())
        );
        assert_eq!(detect(&[("pool", "cpu")]), None);
    }

    #[test]
    fn free_capacity_subtracts_running_and_pending_pods() {
        let nodes = [
            node(
                "big",
                json!({"cloud.google.com/gke-accelerator": "nvidia-l4"}),
                "48",
                "192Gi",
                4,
            ),
            node("cpu", json!({}), "4", "16Gi", 0),
        ];
        let pods = [
            pod("big", "Running", 2, "8"),
            pod("big", "Pending", 1, "4"),
            pod("big", "Succeeded", 1, "4"),
        ];
        let free = free_capacity(&nodes, &pods);
        assert_eq!(free[0].free_gpus, 1.0);
        assert_eq!(free[0].free_cpus, 36.0);
        assert_eq!(free[0].free_memory_gib, 190.0);
        let (offers, capacity) = context_offers("ctx", &free, &Pricing::default());
        let names: Vec<&str> = offers.iter().map(|o| o.instance_type.as_str()).collect();
        assert_eq!(
            names,
            ["12CPU--48GB--L4:1", "1CPU--4GB", "2CPU--8GB", "4CPU--16GB"]
        );
        assert_eq!(capacity.len(), 1);
        assert_eq!(capacity[0].limit, 1.0);
        assert_eq!(fit_error(&free, Some("L4"), 1.0, 2.0, 8.0), None);
        assert_eq!(
            fit_error(&free, Some("L4"), 2.0, 2.0, 8.0).as_deref(),
            Some(
                "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector."
            )
        );
    }

    #[test]
    fn a_full_model_keeps_its_shapes_with_a_zero_capacity_row() {
        let nodes = [node(
            "l4",
            json!({"cloud.google.com/gke-accelerator": "nvidia-l4"}),
            "8",
            "32Gi",
            1,
        )];
        let free = free_capacity(&nodes, &[pod("l4", "Running", 1, "1")]);
        let (offers, capacity) = context_offers("ctx", &free, &Pricing::default());
        assert_eq!(offers[0].instance_type, "8CPU--32GB--L4:1");
        assert_eq!(capacity.len(), 1);
        assert_eq!(capacity[0].limit, 0.0);
        assert_eq!(capacity[0].usage(&offers[0], false), 1.0);
    }

    #[test]
    fn a_slice_that_cannot_be_priced_is_not_offered() {
        let pricing = Pricing {
            vcpu_hour: skyplan_catalog::money::MAX_HOURLY_PRICE,
            ..Pricing::default()
        };
        assert!(slice_offer("ctx", 1e25, 4.0, None, &pricing).price.is_none());
        let offer = slice_offer("ctx", 2.0, 4.0, None, &pricing);
        assert_eq!(offer.price, Some(rust_decimal::Decimal::from(2_000_000)));
    }
}
