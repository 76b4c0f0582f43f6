//! `Plan`: the optimizer's output. Per task the chosen placement, its cost and ranked
//! alternatives for failover; totals; which solver ran and how long it took. Serializes to the
//! `--json` shape; the root crate renders it as the "considered resources" table.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::candidates::Candidate;
use crate::model::Objective;

/// One concrete place to run a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Cloud.
    pub cloud: String,
    /// Region (Kubernetes context).
    pub region: String,
    /// Zone, if any.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: String,
    /// Canonical accelerator name, if any.
    pub accelerator: Option<String>,
    /// Accelerators per node.
    #[serde(serialize_with = "skyplan_catalog::serialize_count")]
    pub accelerator_count: f64,
    /// vCPUs per node, when known.
    pub vcpus: Option<f64>,
    /// Memory per node in GiB, when known.
    pub memory_gib: Option<f64>,
    /// Spot market.
    pub use_spot: bool,
    /// $/hour for all nodes.
    #[serde(with = "rust_decimal::serde::str")]
    pub hourly_price: Decimal,
    /// Nodes.
    pub num_nodes: u32,
    /// Which of the task's requirements (resource alternatives, in order) it satisfies.
    #[serde(default)]
    pub alternative: usize,
}

impl Placement {
    pub(crate) fn from_candidate(candidate: &Candidate<'_>) -> Self {
        let offer = candidate.offer;
        Placement {
            cloud: offer.cloud.clone(),
            region: offer.region.clone(),
            zone: offer.zone.clone(),
            instance_type: offer.instance_type.clone(),
            accelerator: offer.accelerator.clone(),
            accelerator_count: offer.accelerator_count,
            vcpus: offer.vcpus,
            memory_gib: offer.memory_gib,
            use_spot: candidate.spot,
            hourly_price: candidate.hourly,
            num_nodes: candidate.nodes,
            alternative: candidate.requirement,
        }
    }

    /// `accelerator:count`, or `-` for CPU-only placements.
    pub fn accelerator_label(&self) -> String {
        match &self.accelerator {
            Some(name) => format!("{name}:{}", skyplan_catalog::format_count(self.accelerator_count)),
            None => "-".to_string(),
        }
    }
}

/// The cheapest offer of one (cloud, accelerator, market) group that a task could use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsideredGroup {
    /// The group's cheapest placement.
    pub cheapest: Placement,
    /// How many candidates the group has.
    pub candidates: usize,
    /// Whether the chosen placement belongs to this group.
    pub chosen: bool,
}

/// One task's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedTask {
    /// Task name.
    pub name: String,
    /// Where it runs.
    pub chosen: Placement,
    /// Next-best placements, cheapest first (excluding the chosen one), for failover.
    pub alternatives: Vec<Placement>,
    /// Compute cost for its duration.
    #[serde(with = "rust_decimal::serde::str")]
    pub cost: Decimal,
    /// Hours it runs on the chosen placement.
    pub duration_hours: f64,
    /// One row per (cloud, accelerator, market) group, cheapest first.
    pub considered: Vec<ConsideredGroup>,
}

/// Which algorithm produced a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SolverKind {
    /// One task: a sort of its candidates.
    Single,
    /// Tasks that do not interact (no priced edges, no shared capacity): a sort per task.
    Independent,
    /// Chains without shared capacity: dynamic programming over locations.
    ChainDp,
    /// The integer program, solved by HiGHS.
    IlpHighs,
    /// Greedy per-task choice in topological order (for comparisons; not optimal).
    Greedy,
}

/// A placement for every task of a graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Per task, in graph order.
    pub tasks: Vec<PlannedTask>,
    /// Compute plus egress.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_cost: Decimal,
    /// Compute only.
    #[serde(with = "rust_decimal::serde::str")]
    pub compute_cost: Decimal,
    /// Egress between tasks.
    #[serde(with = "rust_decimal::serde::str")]
    pub egress_cost: Decimal,
    /// Longest path of task durations, hours.
    pub makespan_hours: f64,
    /// The objective, by name.
    #[serde(serialize_with = "objective_name")]
    pub objective: Objective,
    /// The algorithm used.
    pub solver: SolverKind,
    /// Wall-clock solve time in milliseconds (candidates included).
    pub solve_ms: f64,
    /// Relative MIP gap when the integer program stopped early (time limit), else `None`.
    pub mip_gap: Option<f64>,
    /// Whether the solver hit its time limit.
    pub hit_time_limit: bool,
}

fn objective_name<S: serde::Serializer>(objective: &Objective, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(objective.name())
}

impl Plan {
    /// The planned task named `name`.
    pub fn task(&self, name: &str) -> Option<&PlannedTask> {
        self.tasks.iter().find(|t| t.name == name)
    }
}
