//! The optimizer's input, independent of YAML: a DAG of tasks with resource requirements
//! ([`TaskGraph`]) and a [`Policy`] (objective, blocked places, shared capacity, egress prices).
//! Rust users build these directly; `skyplan launch` builds them from task files.

use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use skyplan_catalog::Offer;

use crate::defaults::{Geography, HostFloors};
use crate::egress::EgressPrices;

/// What a task needs from one place (empty fields accept anything): the task file's
/// [`ResourceRequest`](crate::spec::ResourceRequest), one type under the optimizer's name.
pub use crate::spec::ResourceRequest as Requirement;

pub use crate::spec::AlternativeMode;

/// One task of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskNode {
    /// Name, unique within the graph for readable plans (not enforced).
    pub name: String,
    /// Alternatives; an empty list means "any CPU machine".
    pub requirements: Vec<Requirement>,
    /// How the alternatives combine.
    pub mode: AlternativeMode,
    /// Nodes, all in one zone; cost and capacity scale with it.
    pub num_nodes: u32,
    /// Expected runtime in hours (default 1).
    pub duration_hours: f64,
}

impl TaskNode {
    /// A one-node, one-hour task with the given requirements (any of them).
    pub fn new(name: impl Into<String>, requirements: Vec<Requirement>) -> Self {
        TaskNode {
            name: name.into(),
            requirements,
            mode: AlternativeMode::AnyOf,
            num_nodes: 1,
            duration_hours: 1.0,
        }
    }
}

/// Identifies a task in a [`TaskGraph`].
pub type TaskId = NodeIndex;

/// A DAG of tasks; an edge carries the GB of data the parent hands the child.
///
/// ```
/// use skyplan_optimizer::{Requirement, TaskGraph, TaskNode};
/// let mut graph = TaskGraph::default();
/// let prep = graph.add_task(TaskNode::new("prep", vec![]));
/// let train = graph.add_task(TaskNode::new("train", vec![Requirement {
///     accelerator: Some(("H100".into(), 8.0)), ..Default::default() }]));
/// graph.add_edge(prep, train, 50.0);
/// assert_eq!(graph.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskGraph {
    pub(crate) graph: DiGraph<TaskNode, f64>,
}

impl TaskGraph {
    /// Adds a task and returns its id.
    pub fn add_task(&mut self, task: TaskNode) -> TaskId {
        self.graph.add_node(task)
    }

    /// Adds a dependency `from -> to` carrying `gigabytes` of data.
    pub fn add_edge(&mut self, from: TaskId, to: TaskId, gigabytes: f64) {
        self.graph.add_edge(from, to, gigabytes.max(0.0));
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no tasks.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The task with id `id`.
    pub fn task(&self, id: TaskId) -> &TaskNode {
        &self.graph[id]
    }

    /// Task ids in insertion order.
    pub fn task_ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.graph.node_indices()
    }

    /// Edges as (from, to, gigabytes).
    pub fn edges(&self) -> impl Iterator<Item = (TaskId, TaskId, f64)> + '_ {
        self.graph.edge_indices().filter_map(|e| {
            let (a, b) = self.graph.edge_endpoints(e)?;
            Some((a, b, self.graph[e]))
        })
    }
}

/// What to minimize.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Objective {
    /// Total dollars: compute for each task's duration plus egress (default).
    #[default]
    Cost,
    /// Makespan: the longest path of task durations (ties broken by cost).
    Time,
    /// Dollars, subject to the makespan staying within `hours`.
    CostWithDeadline {
        /// The deadline in hours.
        hours: f64,
    },
}

impl Objective {
    /// Short name for tables and JSON (`cost`, `time`, `cost_with_deadline`).
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Cost => "cost",
            Objective::Time => "time",
            Objective::CostWithDeadline { .. } => "cost_with_deadline",
        }
    }
}

/// A place or shape not to use (after a failure, or by policy). Empty fields are wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Blocked {
    /// Cloud.
    pub cloud: Option<String>,
    /// Region (Kubernetes context).
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: Option<String>,
    /// Canonical accelerator name.
    pub accelerator: Option<String>,
    /// Only the spot (`Some(true)`) or on-demand (`Some(false)`) market.
    pub spot: Option<bool>,
}

impl Blocked {
    /// Whether this pattern blocks `offer` in the given market.
    pub fn blocks(&self, offer: &Offer, spot: bool) -> bool {
        offer.is_at(
            self.cloud.as_deref(),
            self.region.as_deref(),
            self.zone.as_deref(),
            self.instance_type.as_deref(),
        ) && self
            .accelerator
            .as_deref()
            .is_none_or(|a| offer.accelerator.as_deref() == Some(a))
            && self.spot.is_none_or(|s| s == spot)
    }
}

/// What a capacity row counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityResource {
    /// Accelerators (optionally only one canonical model).
    Gpus {
        /// Only this accelerator, or all.
        accelerator: Option<String>,
    },
    /// vCPUs.
    Vcpus,
}

/// A limit shared by all tasks: free GPUs of a cluster, or a GPU/vCPU quota of a cloud region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityLimit {
    /// Name shown in plans and errors (e.g. `k8s/gke-l4 free GPUs`).
    pub name: String,
    /// Cloud the limit applies to.
    pub cloud: String,
    /// Region (or cluster context); `None` for a cloud-wide quota.
    pub region: Option<String>,
    /// Only the spot (`Some(true)`) or on-demand (`Some(false)`) market.
    pub spot: Option<bool>,
    /// What is counted.
    pub resource: CapacityResource,
    /// How much is available.
    pub limit: f64,
}

impl CapacityLimit {
    /// How much of this limit one node of `offer` uses (0 if out of scope).
    pub fn usage(&self, offer: &Offer, spot: bool) -> f64 {
        let in_scope = offer.is_at(Some(&self.cloud), self.region.as_deref(), None, None)
            && self.spot.is_none_or(|s| s == spot);
        if !in_scope {
            return 0.0;
        }
        match &self.resource {
            CapacityResource::Gpus { accelerator } => {
                let model_ok = accelerator
                    .as_deref()
                    .is_none_or(|a| offer.accelerator.as_deref() == Some(a));
                if model_ok { offer.accelerator_count } else { 0.0 }
            }
            CapacityResource::Vcpus => offer.vcpus.unwrap_or(0.0),
        }
    }
}

/// How to place: objective, constraints, and solver limits.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What to minimize.
    pub objective: Objective,
    /// Places and shapes not to use.
    pub blocked: Vec<Blocked>,
    /// Capacity and quota rows shared by all tasks.
    pub capacity: Vec<CapacityLimit>,
    /// Egress $/GB between locations.
    pub egress: EgressPrices,
    /// Wall-clock limit for the integer program; the best plan found is returned with its gap.
    pub time_limit: Duration,
    /// Relative MIP gap at which HiGHS may stop (default 1e-4, HiGHS's own default; 0 = prove
    /// optimality exactly).
    pub mip_gap: f64,
    /// Ranked alternatives kept per task for failover and display.
    pub alternatives: usize,
    /// Use the integer program even where a fast exact path applies (for cross-checks).
    pub force_ilp: bool,
    /// Per-GPU host floors for requirements that name an accelerator but not the host's size
    /// (default: the documented table; [`HostFloors::off`] turns them off).
    pub host_floors: HostFloors,
    /// Where equal-cost work goes: among choices of equal total cost, the plan prefers the
    /// locations its other tasks use, then regions of this geography, then names (default:
    /// [`Geography::us`]; [`Geography::none`] leaves ties to names alone). Never changes a cost.
    pub home: Geography,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            objective: Objective::Cost,
            blocked: Vec::new(),
            capacity: Vec::new(),
            egress: EgressPrices::default(),
            time_limit: Duration::from_secs(30),
            mip_gap: 1e-4,
            alternatives: 10,
            force_ilp: false,
            host_floors: HostFloors::default(),
            home: Geography::default(),
        }
    }
}

impl TaskGraph {
    /// The graph for a parsed task file: one node per task (its resource alternatives as
    /// requirements; unnamed tasks are called `task-N`), one edge per dependency carrying the
    /// parent's `outputs` GB (or, if the parent declares none, the child's `inputs` GB).
    pub fn from_pipeline(pipeline: &crate::spec::Pipeline) -> Self {
        let mut graph = TaskGraph::default();
        let ids: Vec<TaskId> = pipeline
            .tasks
            .iter()
            .enumerate()
            .map(|(index, task)| {
                let alternatives = task.alternatives();
                graph.add_task(TaskNode {
                    name: task.name.clone().unwrap_or_else(|| format!("task-{index}")),
                    requirements: alternatives.requests.clone(),
                    mode: alternatives.mode,
                    num_nodes: task.num_nodes.max(1),
                    duration_hours: task.duration_hours,
                })
            })
            .collect();
        for &(parent, child) in &pipeline.edges {
            let (Some(&from), Some(&to)) = (ids.get(parent), ids.get(child)) else {
                continue;
            };
            let outputs = pipeline.tasks[parent].outputs_gb;
            let gigabytes = if outputs > 0.0 {
                outputs
            } else {
                pipeline.tasks[child].inputs_gb
            };
            graph.add_edge(from, to, gigabytes);
        }
        graph
    }
}
