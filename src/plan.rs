//! From task files to plans: turns a parsed [`Pipeline`] into the optimizer's [`TaskGraph`]
//! ([`TaskGraph::from_pipeline`]) and solves it on a catalog with the embedded egress prices. What `skyplan launch --dryrun` and
//! `skyplan optimize` run.

use skyplan_catalog::Catalog;
use skyplan_optimizer::spec::Pipeline;
use skyplan_optimizer::{Plan, Policy, TaskGraph};

use crate::Error;

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
    skyplan_optimizer::check_accelerators(catalog, pipeline)?;
    Ok(skyplan_optimizer::solve(
        catalog,
        &TaskGraph::from_pipeline(pipeline),
        policy,
    )?)
}
