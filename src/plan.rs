//! From task files to plans: turns a parsed [`Pipeline`] into the optimizer's [`TaskGraph`] and
//! solves it on a catalog with the embedded egress prices. What `skyplan launch --dryrun` and
//! `skyplan optimize` run.

use skyplan_catalog::Catalog;
use skyplan_optimizer::spec::{AlternativeMode as SpecMode, Pipeline};
use skyplan_optimizer::{AlternativeMode, Plan, Policy, Requirement, TaskGraph, TaskNode};

use crate::Error;

/// The optimizer's graph for a pipeline: one node per task (its resource alternatives as
/// requirements), one edge per dependency carrying the parent's `outputs` GB (or, if the parent
/// declares none, the child's `inputs` GB).
pub fn graph_from_pipeline(pipeline: &Pipeline) -> TaskGraph {
    let mut graph = TaskGraph::default();
    let ids: Vec<_> = pipeline
        .tasks
        .iter()
        .enumerate()
        .map(|(index, task)| {
            let alternatives = task.alternatives();
            let requirements = alternatives
                .requests
                .iter()
                .map(|r| Requirement {
                    cloud: r.cloud.clone(),
                    region: r.region.clone(),
                    zone: r.zone.clone(),
                    accelerator: r.accelerator.clone(),
                    cpus: r.cpus,
                    memory: r.memory,
                    instance_type: r.instance_type.clone(),
                    use_spot: r.use_spot,
                    max_hourly_cost: r.max_hourly_cost,
                    duration_hours: None,
                })
                .collect();
            let node = TaskNode {
                name: task.name.clone().unwrap_or_else(|| format!("task-{index}")),
                requirements,
                mode: match alternatives.mode {
                    SpecMode::Ordered => AlternativeMode::Ordered,
                    SpecMode::Single | SpecMode::AnyOf => AlternativeMode::AnyOf,
                },
                num_nodes: task.num_nodes.max(1),
                duration_hours: task.duration_hours,
            };
            graph.add_task(node)
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

/// The default policy: minimize cost, with the embedded egress prices.
pub fn default_policy() -> Result<Policy, Error> {
    Ok(Policy {
        egress: crate::embedded::egress()?,
        ..Policy::default()
    })
}

/// Plans a pipeline on `catalog` under `policy`.
///
/// ```
/// let catalog = skyplan::load_catalog(None).unwrap();
/// let pipeline = skyplan::optimizer::spec::parse_task_str("resources:\n  accelerators: L4:1\n", "task.yaml").unwrap();
/// let plan = skyplan::plan::plan_pipeline(&catalog, &pipeline, &skyplan::plan::default_policy().unwrap()).unwrap();
/// assert_eq!(plan.tasks[0].chosen.instance_type, "g2-standard-4");
/// ```
pub fn plan_pipeline(catalog: &Catalog, pipeline: &Pipeline, policy: &Policy) -> Result<Plan, Error> {
    Ok(skyplan_optimizer::solve(
        catalog,
        &graph_from_pipeline(pipeline),
        policy,
    )?)
}
