//! The solver front door: builds candidates, picks the cheapest exact algorithm that applies
//! (a sort for one task or independent tasks, dynamic programming for chains, the integer program
//! otherwise), and assembles the [`Plan`]. Deterministic for the same inputs.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use rust_decimal::Decimal;
use skyplan_catalog::Catalog;

use crate::candidates::{Candidate, candidates};
use crate::egress::{EgressKind, EgressPrices, Location};
use crate::model::{Objective, Policy, TaskGraph};
use crate::plan::{ConsideredGroup, Placement, Plan, PlannedTask, SolverKind};
use crate::{OptimizerError, ilp};

/// Interned locations with their egress rates as floats (for the solvers' inner loops).
#[derive(Debug, Default)]
pub(crate) struct Locations {
    pub list: Vec<Location>,
    index: HashMap<(String, String), u32>,
    pub cloud: Vec<u32>,
    clouds: HashMap<String, u32>,
    pub inter_region: Vec<f64>,
    pub internet: Vec<f64>,
}

impl Locations {
    fn intern(&mut self, cloud: &str, region: &str, egress: &EgressPrices) -> u32 {
        if let Some(&id) = self.index.get(&(cloud.to_string(), region.to_string())) {
            return id;
        }
        let id = self.list.len() as u32;
        let location = Location {
            cloud: cloud.to_string(),
            region: region.to_string(),
        };
        let next_cloud = self.clouds.len() as u32;
        let cloud_id = *self
            .clouds
            .entry(cloud.to_ascii_lowercase())
            .or_insert(next_cloud);
        self.cloud.push(cloud_id);
        self.inter_region
            .push(to_f64(egress.rate(&location, EgressKind::InterRegion)));
        self.internet
            .push(to_f64(egress.rate(&location, EgressKind::Internet)));
        self.index.insert((cloud.to_string(), region.to_string()), id);
        self.list.push(location);
        id
    }

    /// $/GB from `a` to `b`.
    pub fn rate(&self, a: u32, b: u32) -> f64 {
        let (a, b) = (a as usize, b as usize);
        if a == b {
            0.0
        } else if self.cloud[a] == self.cloud[b] {
            self.inter_region[a]
        } else {
            self.internet[a]
        }
    }

    /// The largest rate any transfer can cost.
    pub fn max_rate(&self) -> f64 {
        self.internet
            .iter()
            .chain(&self.inter_region)
            .copied()
            .fold(0.0, f64::max)
    }
}

pub(crate) fn to_f64(value: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    value.to_f64().unwrap_or(f64::MAX)
}

/// Everything the algorithms need, indexed by task position (graph order).
pub(crate) struct Problem<'a> {
    pub names: Vec<String>,
    /// Per task its candidates, cheapest first (shared by tasks with identical requirements).
    pub cands: Vec<Rc<Vec<Candidate<'a>>>>,
    /// Per task, per candidate: its location.
    pub cand_loc: Vec<Rc<Vec<u32>>>,
    /// Per task, per candidate: (capacity row, amount) pairs with amount > 0.
    pub usage: Vec<Rc<Usage>>,
    /// Per task: the considered groups (unmarked) and each candidate's group.
    groups: Vec<Rc<Grouping>>,
    pub locs: Locations,
    /// Every edge (from, to, GB).
    pub edges: Vec<(usize, usize, f64)>,
    /// Edges whose data costs money somewhere.
    pub priced: Vec<(usize, usize, f64)>,
    /// Task positions in topological order.
    pub topo: Vec<usize>,
}

impl Problem<'_> {
    pub fn capacitated(&self) -> bool {
        self.usage.iter().any(|kind| kind.iter().any(|u| !u.is_empty()))
    }
}

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
    let (choice, solver) = if policy.force_ilp || capacitated {
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
    let mut plan = assemble(&problem, &choice, policy, solver);
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
    let choice = greedy(&problem, policy).ok_or_else(|| OptimizerError::Infeasible {
        reason: "greedy placement ran out of capacity or deadline".to_string(),
    })?;
    let mut plan = assemble(&problem, &choice, policy, SolverKind::Greedy);
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

pub(crate) fn build_problem<'a>(
    catalog: &'a Catalog,
    graph: &TaskGraph,
    policy: &Policy,
) -> Result<Problem<'a>, OptimizerError> {
    let g = &graph.graph;
    let topo = petgraph::algo::toposort(g, None)
        .map_err(|cycle| OptimizerError::Cycle {
            task: g[cycle.node_id()].name.clone(),
        })?
        .into_iter()
        .map(|id| id.index())
        .collect();
    let mut locs = Locations::default();
    let n = g.node_count();
    let (mut cands, mut cand_loc, mut usage) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut groups, mut names) = (Vec::with_capacity(n), Vec::with_capacity(n));
    // Tasks with identical requirements share one candidate list (large pipelines repeat a few
    // kinds of task many times).
    let mut shared: HashMap<String, Shared<'a>> = HashMap::new();
    for id in g.node_indices() {
        let task = &g[id];
        let key =
            serde_json::to_string(&(&task.requirements, task.mode, task.num_nodes, task.duration_hours))
                .unwrap_or_else(|_| format!("{id:?}"));
        let entry = match shared.get(&key) {
            Some(entry) => entry.clone(),
            None => {
                let found = candidates(catalog, task, policy)?;
                let locations: Vec<u32> = found
                    .iter()
                    .map(|c| locs.intern(&c.offer.cloud, &c.offer.region, &policy.egress))
                    .collect();
                let used: Vec<Vec<(usize, f64)>> = found
                    .iter()
                    .map(|c| {
                        policy
                            .capacity
                            .iter()
                            .enumerate()
                            .map(|(row, limit)| (row, limit.usage(c.offer, c.spot) * f64::from(c.nodes)))
                            .filter(|(_, amount)| *amount > 0.0)
                            .collect()
                    })
                    .collect();
                let grouping = considered_groups(&found);
                let entry = (
                    Rc::new(found),
                    Rc::new(locations),
                    Rc::new(used),
                    Rc::new(grouping),
                );
                shared.insert(key, entry.clone());
                entry
            }
        };
        cands.push(entry.0);
        cand_loc.push(entry.1);
        usage.push(entry.2);
        groups.push(entry.3);
        names.push(task.name.clone());
    }
    let edges: Vec<(usize, usize, f64)> = graph
        .edges()
        .map(|(a, b, gb)| (a.index(), b.index(), gb))
        .collect();
    let priced = if policy.egress.is_free() {
        Vec::new()
    } else {
        edges.iter().copied().filter(|e| e.2 > 0.0).collect()
    };
    Ok(Problem {
        names,
        cands,
        cand_loc,
        usage,
        groups,
        locs,
        edges,
        priced,
        topo,
    })
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

/// Greedy placement; `None` if some task finds no candidate within capacity and deadline.
pub(crate) fn greedy(problem: &Problem<'_>, policy: &Policy) -> Option<Vec<usize>> {
    let n = problem.cands.len();
    let mut left: Vec<f64> = policy.capacity.iter().map(|c| c.limit).collect();
    let mut parents: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for &(a, b, gb) in &problem.priced {
        parents[b].push((a, gb));
    }
    let deadline = match policy.objective {
        Objective::CostWithDeadline { hours } => hours,
        _ => f64::INFINITY,
    };
    let mut choice = vec![usize::MAX; n];
    for &task in &problem.topo {
        let mut best: Option<(f64, usize)> = None;
        for (i, c) in problem.cands[task].iter().enumerate() {
            if c.duration_hours > deadline + 1e-9
                || problem.usage[task][i]
                    .iter()
                    .any(|&(row, amount)| amount > left[row] + 1e-9)
            {
                continue;
            }
            let loc = problem.cand_loc[task][i];
            let egress: f64 = parents[task]
                .iter()
                .map(|&(p, gb)| gb * problem.locs.rate(problem.cand_loc[p][choice[p]], loc))
                .sum();
            let value = to_f64(c.cost) + egress;
            if best.is_none_or(|(v, _)| value < v - 1e-12) {
                best = Some((value, i));
            }
        }
        let (_, pick) = best?;
        for &(row, amount) in &problem.usage[task][pick] {
            left[row] -= amount;
        }
        choice[task] = pick;
    }
    Some(choice)
}

/// Builds the plan for a chosen candidate per task.
pub(crate) fn assemble(problem: &Problem<'_>, choice: &[usize], policy: &Policy, solver: SolverKind) -> Plan {
    let mut tasks = Vec::with_capacity(choice.len());
    let mut compute_cost = Decimal::ZERO;
    for (task, &pick) in choice.iter().enumerate() {
        let cands = &problem.cands[task];
        let chosen = &cands[pick];
        compute_cost += chosen.cost;
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
        egress_cost += policy.egress.per_gb(from, to) * Decimal::try_from(gb).unwrap_or_default();
    }
    let mut finish = vec![0.0f64; choice.len()];
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); choice.len()];
    for &(a, b, _) in &problem.edges {
        parents[b].push(a);
    }
    for &task in &problem.topo {
        let ready = parents[task].iter().map(|&p| finish[p]).fold(0.0, f64::max);
        finish[task] = ready + problem.cands[task][choice[task]].duration_hours;
    }
    Plan {
        tasks,
        total_cost: (compute_cost + egress_cost).normalize(),
        compute_cost: compute_cost.normalize(),
        egress_cost: egress_cost.normalize(),
        makespan_hours: finish.iter().copied().fold(0.0, f64::max),
        objective: policy.objective,
        solver,
        solve_ms: 0.0,
        mip_gap: None,
        hit_time_limit: false,
    }
}

/// Considered groups (unmarked) and each candidate's group index.
type Grouping = (Vec<ConsideredGroup>, Vec<usize>);

/// One task kind's shared data: candidates, their locations, capacity use and grouping.
type Shared<'a> = (Rc<Vec<Candidate<'a>>>, Rc<Vec<u32>>, Rc<Usage>, Rc<Grouping>);

/// Per candidate: (capacity row, amount) pairs with amount > 0.
pub(crate) type Usage = Vec<Vec<(usize, f64)>>;

/// One group per (cloud, accelerator, market), in order of each group's cheapest candidate, and
/// each candidate's group.
fn considered_groups(cands: &[Candidate<'_>]) -> Grouping {
    let mut index: BTreeMap<(&str, Option<&str>, u64, bool), usize> = BTreeMap::new();
    let mut groups: Vec<ConsideredGroup> = Vec::new();
    let mut group_of = Vec::with_capacity(cands.len());
    for c in cands {
        let key = (
            c.offer.cloud.as_str(),
            c.offer.accelerator.as_deref(),
            c.offer.accelerator_count.to_bits(),
            c.spot,
        );
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(ConsideredGroup {
                cheapest: Placement::from_candidate(c),
                candidates: 0,
                chosen: false,
            });
            groups.len() - 1
        });
        groups[g].candidates += 1;
        group_of.push(g);
    }
    (groups, group_of)
}
