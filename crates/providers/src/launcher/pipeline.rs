//! Pipelines as planned: a [`PipelineRequest`] (tasks, each on its own cluster, and the data
//! edges between them) and a [`PipelineRun`], the state of launching one [`LaunchPlan`] — which
//! task runs where, which are done, which were skipped because a parent failed. Re-solving after
//! a failure keeps launched tasks fixed where they are.

use std::collections::BTreeSet;

use serde::Serialize;
use skyplan_optimizer::{Placement, Plan, Requirement, TaskGraph, TaskNode};
use skyplan_spec::Pipeline;

use super::LaunchPlan;
use crate::{ProviderError, TaskRun};

/// One task to launch on its own cluster.
#[derive(Debug, Clone)]
pub struct LaunchTask {
    /// Cluster name for this task.
    pub cluster: String,
    /// The task's requirements, as the optimizer takes them.
    pub node: TaskNode,
    /// What to run, per resource alternative of `node` (index = [`Placement::alternative`]);
    /// a single entry serves every alternative.
    pub runs: Vec<TaskRun>,
}

impl LaunchTask {
    /// What to run on a placement that satisfies alternative `alternative`.
    pub fn run_for(&self, alternative: usize) -> Option<&TaskRun> {
        self.runs.get(alternative).or_else(|| match self.runs.len() {
            1 => self.runs.first(),
            _ => None,
        })
    }
}

/// Tasks to launch together, planned jointly.
#[derive(Debug, Clone)]
pub struct PipelineRequest {
    /// The pipeline's name (its tasks' clusters are this name, or `NAME-N` for several tasks).
    pub name: String,
    /// The tasks, in file order.
    pub tasks: Vec<LaunchTask>,
    /// Dependencies `(parent, child, gigabytes)` by task index.
    pub edges: Vec<(usize, usize, f64)>,
}

impl PipelineRequest {
    /// One task on cluster `cluster`.
    pub fn single(cluster: &str, node: TaskNode, run: TaskRun) -> Self {
        PipelineRequest {
            name: cluster.to_string(),
            tasks: vec![LaunchTask {
                cluster: cluster.to_string(),
                node,
                runs: vec![run],
            }],
            edges: Vec::new(),
        }
    }

    /// The request for a parsed task file: task `i` runs on cluster `name` (one task) or
    /// `name-(i+1)`; each task's runs are built per resource alternative. Fails when an env or
    /// secret has no value.
    pub fn from_pipeline(pipeline: &Pipeline, name: &str) -> Result<Self, ProviderError> {
        let graph = TaskGraph::from_pipeline(pipeline);
        let nodes: Vec<TaskNode> = graph.task_ids().map(|id| graph.task(id).clone()).collect();
        let edges = graph
            .edges()
            .map(|(a, b, gb)| (a.index(), b.index(), gb))
            .collect();
        let single = pipeline.tasks.len() == 1;
        let mut tasks = Vec::with_capacity(nodes.len());
        for (index, (spec, node)) in pipeline.tasks.iter().zip(nodes).enumerate() {
            let alternatives = node.requirements.len().max(1);
            let runs = (0..alternatives)
                .map(|alternative| TaskRun::for_alternative(spec, alternative))
                .collect::<Result<Vec<_>, _>>()?;
            tasks.push(LaunchTask {
                cluster: if single {
                    name.to_string()
                } else {
                    format!("{name}-{}", index + 1)
                },
                node,
                runs,
            });
        }
        Ok(PipelineRequest {
            name: name.to_string(),
            tasks,
            edges,
        })
    }

    /// The name shown while planning.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The optimizer's graph of these tasks.
    pub fn graph(&self) -> TaskGraph {
        let mut graph = TaskGraph::default();
        let ids: Vec<_> = self
            .tasks
            .iter()
            .map(|t| graph.add_task(t.node.clone()))
            .collect();
        for &(a, b, gb) in &self.edges {
            if let (Some(&from), Some(&to)) = (ids.get(a), ids.get(b)) {
                graph.add_edge(from, to, gb);
            }
        }
        graph
    }

    /// Task indices with every parent before its children (`None` on a cycle).
    pub fn topological_order(&self) -> Option<Vec<usize>> {
        let graph = self.graph();
        topological(&graph)
    }

    /// The parents of task `index`.
    pub fn parents(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges.iter().filter(move |e| e.1 == index).map(|e| e.0)
    }
}

fn topological(graph: &TaskGraph) -> Option<Vec<usize>> {
    let n = graph.len();
    let mut indegree = vec![0usize; n];
    let edges: Vec<(usize, usize)> = graph.edges().map(|(a, b, _)| (a.index(), b.index())).collect();
    for &(_, b) in &edges {
        indegree[b] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(next) = ready.pop_first() {
        order.push(next);
        for &(a, b) in &edges {
            if a == next {
                indegree[b] -= 1;
                if indegree[b] == 0 {
                    ready.insert(b);
                }
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// Where one task of a pipeline run stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskProgress {
    /// Not launched yet.
    Pending,
    /// Provisioned here; its job runs.
    Launched {
        /// Where it runs.
        placement: Placement,
    },
    /// Its job ended with exit code 0.
    Succeeded {
        /// Where it ran.
        placement: Placement,
    },
    /// Its launch or its job failed.
    Failed {
        /// Where it ran, if it got that far.
        placement: Option<Placement>,
        /// What went wrong.
        reason: String,
    },
    /// Never started: a parent failed (or was skipped).
    Skipped {
        /// The failed ancestor.
        because: String,
    },
}

/// The state of launching one plan: the first plan, the current one (after re-solves), and each
/// task's progress.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    /// The request.
    pub request: PipelineRequest,
    /// The plan shown before launching.
    pub first: LaunchPlan,
    /// The plan after the last re-solve (equal to `first` when nothing failed).
    pub current: Plan,
    /// Per task, in request order.
    pub tasks: Vec<TaskProgress>,
    /// Places blocked by failures so far (shared by every task's re-solves).
    pub(super) blocked: Vec<skyplan_optimizer::Blocked>,
    /// Launch id, unique to this run: request ids derive from it.
    pub(super) launch_id: String,
}

impl PipelineRun {
    /// A run of `plan` for `request`, nothing launched yet.
    pub fn new(request: PipelineRequest, plan: LaunchPlan) -> Self {
        let tasks = vec![TaskProgress::Pending; request.tasks.len()];
        PipelineRun {
            current: plan.plan.clone(),
            request,
            first: plan,
            tasks,
            blocked: Vec::new(),
            launch_id: format!("{:016x}", fastrand::u64(..)),
        }
    }

    /// The failed or skipped parent that stops task `index`, if any.
    pub fn blocked_by(&self, index: usize) -> Option<String> {
        self.request
            .parents(index)
            .find_map(|parent| match self.tasks.get(parent)? {
                TaskProgress::Failed { .. } => Some(self.request.tasks[parent].node.name.clone()),
                TaskProgress::Skipped { because } => Some(because.clone()),
                _ => None,
            })
    }

    /// Whether every parent of task `index` succeeded.
    pub fn ready(&self, index: usize) -> bool {
        self.request
            .parents(index)
            .all(|p| matches!(self.tasks.get(p), Some(TaskProgress::Succeeded { .. })))
    }

    /// Records that task `index`'s job ended (`success` = exit code 0).
    pub fn finish(&mut self, index: usize, success: bool, reason: impl Into<String>) {
        let Some(state) = self.tasks.get_mut(index) else {
            return;
        };
        let placement = match state {
            TaskProgress::Launched { placement } => Some(placement.clone()),
            _ => None,
        };
        *state = match (success, placement) {
            (true, Some(placement)) => TaskProgress::Succeeded { placement },
            (_, placement) => TaskProgress::Failed {
                placement,
                reason: reason.into(),
            },
        };
    }

    /// Records that task `index` will not start because `because` failed.
    pub fn skip(&mut self, index: usize, because: String) {
        if let Some(state) = self.tasks.get_mut(index) {
            *state = TaskProgress::Skipped { because };
        }
    }

    /// Where task `index` runs (or ran), once launched.
    pub fn placement(&self, index: usize) -> Option<&Placement> {
        match self.tasks.get(index)? {
            TaskProgress::Launched { placement } | TaskProgress::Succeeded { placement } => Some(placement),
            TaskProgress::Failed { placement, .. } => placement.as_ref(),
            _ => None,
        }
    }

    /// The graph for a re-solve: tasks already launched are pinned to their placement (a
    /// constraint, not a variable), the rest keep their requirements.
    pub(super) fn pinned_graph(&self) -> TaskGraph {
        let mut request = self.request.clone();
        for (index, task) in request.tasks.iter_mut().enumerate() {
            if let Some(placement) = self.placement(index) {
                task.node.requirements = vec![pin(placement)];
                task.node.mode = skyplan_optimizer::AlternativeMode::AnyOf;
            }
        }
        request.graph()
    }

    /// What ran (or runs) where, with the plan's $/h: one line per launched task.
    pub fn ran(&self) -> Vec<(String, Placement)> {
        (0..self.tasks.len())
            .filter_map(|i| {
                Some((
                    self.request.tasks[i].node.name.clone(),
                    self.placement(i)?.clone(),
                ))
            })
            .collect()
    }
}

/// A requirement only `placement` satisfies, exempt from blocks (the task runs there).
fn pin(placement: &Placement) -> Requirement {
    Requirement {
        cloud: Some(placement.cloud.clone()),
        region: Some(placement.region.clone()),
        zone: placement.zone.clone(),
        accelerator: placement
            .accelerator
            .clone()
            .map(|name| (name, placement.accelerator_count)),
        instance_type: Some(placement.instance_type.clone()),
        use_spot: placement.use_spot,
        pinned: true,
        ..Requirement::default()
    }
}
