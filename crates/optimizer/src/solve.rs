//! The solver front door: builds the [`Problem`], picks the cheapest exact algorithm that applies
//! (a sort for one task or independent tasks, dynamic programming for chains, the integer program
//! otherwise), settles equal-cost ties by one rule (`ties.rs`), and assembles the [`Plan`].
//! Deterministic for the same inputs.

use std::collections::HashMap;
use std::time::Instant;

use rust_decimal::Decimal;
use skyplan_catalog::{Catalog, money};

use crate::greedy::greedy;
use crate::model::{Objective, Policy, TaskGraph};
use crate::plan::{Placement, Plan, PlannedTask, SolverKind};
use crate::problem::{Problem, build_problem, to_f64};
use crate::{OptimizerError, ilp, ties};

/// Places every task of `graph` on the catalog's offers under `policy`.
///
/// ```
/// use skyplan_catalog::Catalog;
/// use skyplan_optimizer::{solve, Policy, Requirement, TaskGraph, TaskNode};
/// let csv = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\n\
///            g6.xlarge,L4,1,4,16,0.8048,0.30,us-east-1\n\
///            g6.xlarge,L4,1,4,16,0.8500,0.28,us-west-2\n";
/// let catalog = Catalog::from_csv("aws", "aws.csv", csv.as_bytes()).unwrap();
/// let mut graph = TaskGraph::default();
/// graph.add_task(TaskNode::new("serve", vec![Requirement {
///     accelerator: Some(("L4".into(), 1.0)), ..Default::default() }]));
/// let plan = solve(&catalog, &graph, &Policy::default()).unwrap();
/// assert_eq!(plan.tasks[0].chosen.region, "us-east-1");
/// assert_eq!(plan.total_cost.to_string(), "0.8048");
/// ```
pub fn solve(catalog: &Catalog, graph: &TaskGraph, policy: &Policy) -> Result<Plan, OptimizerError> {
    let start = Instant::now();
    let problem = build_problem(catalog, graph, policy)?;
    let n = problem.cands.len();
    let capacitated = problem.capacitated();
    let mut gap = None;
    let mut hit_time_limit = false;
    let (mut choice, solver) = if policy.force_ilp || capacitated {
        let outcome = ilp::solve(&problem, policy)?;
        gap = outcome.gap;
        hit_time_limit = outcome.hit_time_limit;
        (outcome.choice, SolverKind::IlpHighs)
    } else {
        match policy.objective {
            Objective::Cost if problem.priced.is_empty() => {
                (independent(&problem, f64::INFINITY)?, kind_for(n))
            }
            Objective::CostWithDeadline { hours } if problem.edges.is_empty() => {
                (independent(&problem, hours)?, kind_for(n))
            }
            Objective::Time if problem.edges.is_empty() => {
                let makespan = problem
                    .cands
                    .iter()
                    .map(|c| c.iter().map(|c| c.duration_hours).fold(f64::INFINITY, f64::min))
                    .fold(0.0, f64::max);
                (independent(&problem, makespan)?, kind_for(n))
            }
            Objective::Cost if is_chain_forest(&problem) => (chain_dp(&problem), SolverKind::ChainDp),
            _ => {
                let outcome = ilp::solve(&problem, policy)?;
                gap = outcome.gap;
                hit_time_limit = outcome.hit_time_limit;
                (outcome.choice, SolverKind::IlpHighs)
            }
        }
    };
    ties::settle(&problem, policy, &mut choice);
    let mut plan = assemble(&problem, &choice, policy, solver)?;
    plan.mip_gap = gap;
    plan.hit_time_limit = hit_time_limit;
    plan.solve_ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(plan)
}

/// Greedy per-task placement in topological order: each task takes its cheapest candidate given
/// where its parents went and the capacity left. Fast and feasible when it succeeds, not optimal;
/// the integer program starts from it, and benchmarks compare against it.
pub fn solve_greedy(catalog: &Catalog, graph: &TaskGraph, policy: &Policy) -> Result<Plan, OptimizerError> {
    let start = Instant::now();
    let problem = build_problem(catalog, graph, policy)?;
    let mut choice = greedy(&problem, policy).ok_or_else(|| OptimizerError::Infeasible {
        reason: "greedy placement ran out of capacity or deadline".to_string(),
    })?;
    ties::settle(&problem, policy, &mut choice);
    let mut plan = assemble(&problem, &choice, policy, SolverKind::Greedy)?;
    plan.solve_ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(plan)
}

fn kind_for(tasks: usize) -> SolverKind {
    if tasks == 1 {
        SolverKind::Single
    } else {
        SolverKind::Independent
    }
}

/// Each task alone: its cheapest candidate that finishes within `max_hours`.
fn independent(problem: &Problem<'_>, max_hours: f64) -> Result<Vec<usize>, OptimizerError> {
    problem
        .cands
        .iter()
        .enumerate()
        .map(|(task, cands)| {
            cands
                .iter()
                .position(|c| c.duration_hours <= max_hours + 1e-9)
                .ok_or_else(|| OptimizerError::Infeasible {
                    reason: format!(
                        "task {:?} cannot finish within {max_hours} hours",
                        problem.names[task]
                    ),
                })
        })
        .collect()
}

/// Whether priced edges form vertex-disjoint paths (each task at most one priced parent and child).
fn is_chain_forest(problem: &Problem<'_>) -> bool {
    let n = problem.cands.len();
    let (mut ins, mut outs) = (vec![0u32; n], vec![0u32; n]);
    for &(a, b, _) in &problem.priced {
        outs[a] += 1;
        ins[b] += 1;
    }
    ins.iter().chain(&outs).all(|&d| d <= 1)
}

/// Exact DP along each path: the state is the previous task's location.
fn chain_dp(problem: &Problem<'_>) -> Vec<usize> {
    let n = problem.cands.len();
    let mut next: Vec<Option<(usize, f64)>> = vec![None; n];
    let mut has_parent = vec![false; n];
    for &(a, b, gb) in &problem.priced {
        next[a] = Some((b, gb));
        has_parent[b] = true;
    }
    // Per task: (location, candidate index, cost) of the cheapest candidate at each location.
    let best_at = |task: usize| -> Vec<(u32, usize, f64)> {
        let mut seen: HashMap<u32, ()> = HashMap::new();
        let mut out = Vec::new();
        for (i, c) in problem.cands[task].iter().enumerate() {
            let loc = problem.cand_loc[task][i];
            if seen.insert(loc, ()).is_none() {
                out.push((loc, i, to_f64(c.cost)));
            }
        }
        out
    };
    let mut choice = vec![0usize; n];
    for start in (0..n).filter(|&t| !has_parent[t]) {
        // Walk the path.
        let mut path = vec![(start, 0.0)];
        while let Some((child, gb)) = next[path[path.len() - 1].0] {
            path.push((child, gb));
        }
        let mut layers: Vec<Vec<(u32, usize, f64)>> = Vec::with_capacity(path.len());
        let mut back: Vec<Vec<usize>> = Vec::with_capacity(path.len());
        let mut totals: Vec<f64> = Vec::new();
        for (step, &(task, gb)) in path.iter().enumerate() {
            let layer = best_at(task);
            if step == 0 {
                totals = layer.iter().map(|e| e.2).collect();
                back.push(vec![0; layer.len()]);
            } else {
                let previous = &layers[step - 1];
                let mut new_totals = Vec::with_capacity(layer.len());
                let mut pointers = Vec::with_capacity(layer.len());
                for &(loc, _, cost) in &layer {
                    let mut best = (f64::INFINITY, 0usize);
                    for (p, &(prev_loc, _, _)) in previous.iter().enumerate() {
                        let value = totals[p] + gb * problem.locs.rate(prev_loc, loc);
                        if value < best.0 - 1e-12 {
                            best = (value, p);
                        }
                    }
                    new_totals.push(best.0 + cost);
                    pointers.push(best.1);
                }
                totals = new_totals;
                back.push(pointers);
            }
            layers.push(layer);
        }
        let mut at = (0..totals.len()).fold(
            0,
            |best, i| if totals[i] < totals[best] - 1e-12 { i } else { best },
        );
        for step in (0..path.len()).rev() {
            choice[path[step].0] = layers[step][at].1;
            at = back[step][at];
        }
    }
    choice
}

/// Builds the plan for a chosen candidate per task; errors when a total cannot be represented.
pub(crate) fn assemble(
    problem: &Problem<'_>,
    choice: &[usize],
    policy: &Policy,
    solver: SolverKind,
) -> Result<Plan, OptimizerError> {
    let mut tasks = Vec::with_capacity(choice.len());
    let mut compute_cost = Decimal::ZERO;
    for (task, &pick) in choice.iter().enumerate() {
        let cands = &problem.cands[task];
        let chosen = &cands[pick];
        compute_cost = money::add(compute_cost, chosen.cost).map_err(|source| OptimizerError::Money {
            what: format!("the plan's compute cost (adding task {:?})", problem.names[task]),
            source,
        })?;
        let alternatives = cands
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != pick)
            .take(policy.alternatives)
            .map(|(_, c)| Placement::from_candidate(c))
            .collect();
        tasks.push(PlannedTask {
            name: problem.names[task].clone(),
            chosen: Placement::from_candidate(chosen),
            alternatives,
            cost: chosen.cost,
            duration_hours: chosen.duration_hours,
            considered: {
                let (groups, group_of) = &*problem.groups[task];
                let mut groups = groups.clone();
                if let Some(group) = groups.get_mut(group_of[pick]) {
                    group.chosen = true;
                }
                groups
            },
        });
    }
    let mut egress_cost = Decimal::ZERO;
    for &(a, b, gb) in &problem.priced {
        let from = &problem.locs.list[problem.cand_loc[a][choice[a]] as usize];
        let to = &problem.locs.list[problem.cand_loc[b][choice[b]] as usize];
        let what = || {
            format!(
                "egress from task {:?} to task {:?}",
                problem.names[a], problem.names[b]
            )
        };
        let edge = money::times(policy.egress.per_gb(from, to), gb, "GB")
            .map_err(|source| OptimizerError::Money { what: what(), source })?;
        egress_cost = money::add(egress_cost, edge).map_err(|source| OptimizerError::Money {
            what: format!("the plan's egress cost (adding {})", what()),
            source,
        })?;
    }
    let total_cost = money::add(compute_cost, egress_cost).map_err(|source| OptimizerError::Money {
        what: "the plan's total cost (compute + egress)".to_string(),
        source,
    })?;
    let mut finish = vec![0.0f64; choice.len()];
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); choice.len()];
    for &(a, b, _) in &problem.edges {
        parents[b].push(a);
    }
    for &task in &problem.topo {
        let ready = parents[task].iter().map(|&p| finish[p]).fold(0.0, f64::max);
        finish[task] = ready + problem.cands[task][choice[task]].duration_hours;
    }
    Ok(Plan {
        tasks,
        total_cost: total_cost.normalize(),
        compute_cost: compute_cost.normalize(),
        egress_cost: egress_cost.normalize(),
        makespan_hours: finish.iter().copied().fold(0.0, f64::max),
        objective: policy.objective,
        solver,
        solve_ms: 0.0,
        mip_gap: None,
        hit_time_limit: false,
    })
}
