//! Task specs and the placement optimizer.
//!
//! A [`TaskGraph`] (built in Rust, or from SkyPilot task YAML via [`spec`]) and a [`Policy`] go
//! in; a [`Plan`] comes out: the cheapest feasible placement of every task on the catalog's
//! offers, with ranked alternatives for failover. Exact fast paths handle one task, independent
//! tasks and chains; everything else (DAGs with priced egress, shared capacity, time objectives)
//! is an integer program solved by HiGHS.
//!
//! The optimizer does no IO and is deterministic: it gets data and returns a plan.

mod candidates;
mod defaults;
pub mod egress;
mod error;
mod greedy;
mod ilp;
mod model;
mod plan;
mod problem;
mod solve;
mod ties;

pub use candidates::{Candidate, candidates, check_accelerators, describe};
pub use defaults::{Geography, HostFloor, HostFloors};
pub use egress::{EgressKind, EgressPrices, Location};
pub use error::OptimizerError;
pub use model::{
    AlternativeMode, Blocked, CapacityLimit, CapacityResource, Objective, Policy, Requirement, TaskGraph,
    TaskId, TaskNode,
};
pub use plan::{ConsideredGroup, Placement, Plan, PlannedTask, SolverKind};
/// The task file model (the `skyplan-spec` crate), re-exported for embedders.
pub use skyplan_spec as spec;
pub use skyplan_spec::normalize_cloud;
pub use solve::{solve, solve_greedy};

#[cfg(test)]
mod tests;
