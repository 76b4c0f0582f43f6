//! What each pod of a cluster asks for: [`PodShape`], made by one conversion
//! ([`PodShape::for_placement`], which [`PodShape::for_task`] goes through too) from the
//! placement the backend is handed, or from the task when `render` has no placement, plus the
//! GPU node label the affinity requires. Pure; see the [`render`](super::render) module docs for
//! why these inputs and nothing else decide the Pod.

use skyplan_optimizer::Placement;
use skyplan_spec::TaskSpec;

use super::KUBERNETES;
use super::capacity::GPU_LABELS;

/// The node label a GPU pod requires when no cluster was read: SkyPilot's
/// `skypilot.co/accelerator`, valued with the lower-case model name (`l4`).
pub const DEFAULT_GPU_LABEL: &str = GPU_LABELS[0].0;

/// What each pod asks for: the placement's shape and, for GPUs, the node label to require.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodShape {
    /// Canonical accelerator name.
    pub accelerator: Option<String>,
    /// GPUs per pod.
    pub gpus: f64,
    /// CPU cores per pod (requested when set).
    pub vcpus: Option<f64>,
    /// Memory per pod, GiB (requested when set).
    pub memory_gib: Option<f64>,
    /// Required node label `(key, value)` for the GPU model, e.g.
    /// `("cloud.google.com/gke-accelerator", "nvidia-l4")`: what
    /// [`gpu_node_label`](super::gpu_node_label) finds on a context's nodes. Without it the
    /// affinity uses [`DEFAULT_GPU_LABEL`] = the lower-case model name.
    pub gpu_label: Option<(String, String)>,
}

impl PodShape {
    /// The one conversion: the shape of the pods for `placement` — its accelerator and count, and
    /// its vCPUs and memory as requests (a Kubernetes offer's instance type `8CPU--32GB--L4:1`
    /// is exactly that). No GPU label: add the live one with [`PodShape::with_gpu_label`].
    ///
    /// ```
    /// # #[cfg(all(feature = "kubernetes", feature = "testing"))] {
    /// use skyplan_providers::fake::placement;
    /// use skyplan_providers::kubernetes::PodShape;
    /// let mut placed = placement("kubernetes", "alpha", None, "8CPU--32GB--L4:1");
    /// (placed.accelerator, placed.accelerator_count) = (Some("L4".into()), 1.0);
    /// (placed.vcpus, placed.memory_gib) = (Some(8.0), Some(32.0));
    /// let shape = PodShape::for_placement(&placed);
    /// assert_eq!((shape.accelerator.as_deref(), shape.gpus, shape.vcpus, shape.memory_gib), (Some("L4"), 1.0, Some(8.0), Some(32.0)));
    /// # }
    /// ```
    pub fn for_placement(placement: &Placement) -> Self {
        let accelerator = placement
            .accelerator
            .as_deref()
            .filter(|_| placement.accelerator_count > 0.0)
            .map(|name| {
                skyplan_catalog::canonical_accelerator_with_memory(name, None)
                    .unwrap_or_else(|| name.to_string())
            });
        PodShape {
            gpus: if accelerator.is_some() {
                placement.accelerator_count
            } else {
                0.0
            },
            accelerator,
            vcpus: placement.vcpus.filter(|c| *c > 0.0),
            memory_gib: placement.memory_gib.filter(|m| *m > 0.0),
            gpu_label: None,
        }
    }

    /// Offline, with no placement: the shape the task's first resource alternative asks for
    /// (its accelerator, and its `cpus`/`memory` minimums as requests), through
    /// [`task_placement`] and [`PodShape::for_placement`].
    ///
    /// ```
    /// # #[cfg(feature = "kubernetes")] {
    /// use skyplan_spec::parse_task_str;
    /// let pipeline = parse_task_str("resources:\n  accelerators: L4:1\n  cpus: 4+\nrun: x\n", "t.yaml").unwrap();
    /// let shape = skyplan_providers::kubernetes::PodShape::for_task(&pipeline.tasks[0]);
    /// assert_eq!((shape.accelerator.as_deref(), shape.gpus, shape.vcpus), (Some("L4"), 1.0, Some(4.0)));
    /// # }
    /// ```
    pub fn for_task(spec: &TaskSpec) -> Self {
        Self::for_placement(&task_placement(spec))
    }

    /// The same shape with GPU pods held to nodes labeled `label` (`None`: the default label).
    pub fn with_gpu_label(mut self, label: Option<(String, String)>) -> Self {
        self.gpu_label = label;
        self
    }

    /// The node label `(key, value)` GPU pods require, `None` for CPU pods.
    pub fn affinity_label(&self) -> Option<(String, String)> {
        let model = self.accelerator.as_deref().filter(|_| self.gpus > 0.0)?;
        Some(
            self.gpu_label
                .clone()
                .unwrap_or_else(|| (DEFAULT_GPU_LABEL.to_string(), model.to_ascii_lowercase())),
        )
    }

    /// One line for people: `L4:1, 8 CPUs, 32 GiB` (or `no CPU or memory request`).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(model) = self.accelerator.as_deref().filter(|_| self.gpus > 0.0) {
            parts.push(format!("{model}:{}", skyplan_catalog::format_count(self.gpus)));
        }
        match (self.vcpus, self.memory_gib) {
            (None, None) => parts.push("no CPU or memory request".to_string()),
            (cpus, gib) => {
                parts.push(cpus.map_or("no CPU request".to_string(), |c| {
                    format!("{} CPUs", skyplan_catalog::format_count(c))
                }));
                parts.push(gib.map_or("no memory request".to_string(), |m| {
                    format!("{} GiB", skyplan_catalog::format_count(m))
                }));
            }
        }
        parts.join(", ")
    }
}

/// What a task's first resource alternative asks for, as a Kubernetes placement (alternative 0,
/// region = the alternative's context if it names one, price 0): the placement `render` uses
/// when it is given none. `cpus: 4+` becomes 4 vCPUs; unset `cpus`/`memory` stay unset.
pub fn task_placement(spec: &TaskSpec) -> Placement {
    let alternatives = spec.alternatives();
    let first = alternatives.requests.first();
    let (accelerator, accelerator_count) = match first.and_then(|r| r.accelerator.as_ref()) {
        Some((name, count)) => (Some(name.clone()), *count),
        None => (None, 0.0),
    };
    let vcpus = first.and_then(|r| r.cpus).map(|a| a.value);
    let memory_gib = first.and_then(|r| r.memory).map(|a| a.value);
    Placement {
        cloud: KUBERNETES.to_string(),
        region: first.and_then(|r| r.region.clone()).unwrap_or_default(),
        zone: None,
        instance_type: first.and_then(|r| r.instance_type.clone()).unwrap_or_default(),
        accelerator,
        accelerator_count,
        vcpus,
        memory_gib,
        use_spot: false,
        hourly_price: rust_decimal::Decimal::ZERO,
        num_nodes: spec.num_nodes.max(1),
        alternative: 0,
    }
}
