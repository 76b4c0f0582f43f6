//! The integer program for general DAGs and shared capacity, solved by HiGHS through `good_lp`.
//!
//! The formulation is kept small on purpose:
//! - candidates are pruned to one per (location, capacity use, duration): the rest are dominated;
//!   a candidate whose extra cost over the task's cheapest exceeds the most egress could ever save
//!   is dropped too (only for tasks that touch no capacity row, where the swap is always allowed);
//! - identical tasks without edges are aggregated into one integer variable per candidate;
//! - egress is priced between *locations*, not candidate pairs: per edge one variable per shared
//!   cloud (the saving of staying in that cloud) and per shared region (the saving of staying in
//!   that region), so an edge adds O(locations) variables instead of O(candidates²);
//! - uncapacitated offers never appear in capacity rows;
//! - the greedy plan is the warm start.

use std::collections::HashMap;

use good_lp::{Expression, ProblemVariables, SolverModel, Variable, constraint, variable};
use highs::HighsModelStatus;
use skyplan_catalog::{MoneyError, money};

use crate::OptimizerError;
use crate::greedy::greedy;
use crate::model::{Objective, Policy};
use crate::problem::{Problem, to_f64};

/// A candidate's identity across tasks: (offer address, spot, nodes, duration bits).
type CandidateId = (usize, bool, u32, u64);

/// What the integer program returns.
pub(crate) struct Outcome {
    pub choice: Vec<usize>,
    pub gap: Option<f64>,
    pub hit_time_limit: bool,
}

/// Locations that can be dropped for every task at once: `l` is dominated by another location
/// `l'` of the same cloud when every task that can run at `l` runs at `l'` for no more, and data
/// leaving `l'` costs no more than leaving `l`. Moving every task from `l` to `l'` together keeps
/// all co-locations (and may add some), so some optimal plan never uses `l`. Locations touched by
/// a capacity row are never dropped nor used to drop others; only for the cost objective.
fn dominated_locations(problem: &Problem<'_>, policy: &Policy) -> Vec<bool> {
    let n_locs = problem.locs.list.len();
    let mut dominated = vec![false; n_locs];
    if !matches!(policy.objective, Objective::Cost) {
        return dominated;
    }
    let mut capacitated = vec![false; n_locs];
    // Cheapest cost per location, once per distinct candidate list (tasks with the same
    // requirements share one).
    let mut kinds: HashMap<usize, Vec<f64>> = HashMap::new();
    for task in 0..problem.cands.len() {
        for (i, usage) in problem.usage[task].iter().enumerate() {
            if !usage.is_empty() {
                capacitated[problem.cand_loc[task][i] as usize] = true;
            }
        }
        // Tasks with identical requirements share one candidate list: one cost vector per list.
        kinds
            .entry(std::rc::Rc::as_ptr(&problem.cands[task]) as usize)
            .or_insert_with(|| {
                let mut best = vec![f64::INFINITY; n_locs];
                for (i, c) in problem.cands[task].iter().enumerate() {
                    let slot = &mut best[problem.cand_loc[task][i] as usize];
                    *slot = slot.min(to_f64(c.cost));
                }
                best
            });
    }
    let costs: Vec<Vec<f64>> = kinds.into_values().collect();
    let locs = &problem.locs;
    for l in 0..n_locs {
        if capacitated[l] {
            continue;
        }
        dominated[l] = (0..n_locs).any(|d| {
            d != l
                && !dominated[d]
                && !capacitated[d]
                && locs.cloud[d] == locs.cloud[l]
                && locs.inter_region[d] <= locs.inter_region[l]
                && locs.internet[d] <= locs.internet[l]
                && costs.iter().all(|kind| kind[l].is_infinite() || kind[d] <= kind[l])
                // Mutual domination (a tie): drop only the later location.
                && !(d > l
                    && locs.inter_region[d] == locs.inter_region[l]
                    && locs.internet[d] == locs.internet[l]
                    && costs.iter().all(|kind| kind[d] == kind[l]))
        });
    }
    dominated
}

/// (location, capacity use as (row, amount bits), duration bits): candidates with equal keys are
/// interchangeable except for cost.
type DominanceKey = (u32, Vec<(usize, u64)>, u64);

/// Kept candidates per task after dominance and egress-bound pruning.
fn prune(problem: &Problem<'_>, policy: &Policy) -> Vec<Vec<usize>> {
    let deadline = match policy.objective {
        Objective::CostWithDeadline { hours } => hours,
        _ => f64::INFINITY,
    };
    let durations_matter = !matches!(policy.objective, Objective::Cost);
    let dropped = dominated_locations(problem, policy);
    let max_rate = problem.locs.max_rate();
    let mut incident_gb = vec![0.0f64; problem.cands.len()];
    for &(a, b, gb) in &problem.priced {
        incident_gb[a] += gb;
        incident_gb[b] += gb;
    }
    (0..problem.cands.len())
        .map(|task| {
            let mut seen: HashMap<DominanceKey, ()> = HashMap::new();
            let mut kept = Vec::new();
            let uncapacitated = problem.usage[task].iter().all(Vec::is_empty);
            let mut cheapest: Option<f64> = None;
            for (i, c) in problem.cands[task].iter().enumerate() {
                let loc = problem.cand_loc[task][i];
                if c.duration_hours > deadline + 1e-9 || dropped[loc as usize] {
                    continue;
                }
                let cost = to_f64(c.cost);
                if !durations_matter
                    && uncapacitated
                    && cheapest.is_some_and(|best| cost - best > incident_gb[task] * max_rate + 1e-9)
                {
                    break; // sorted by cost: every later candidate is dominated too
                }
                let usage: Vec<(usize, u64)> = problem.usage[task][i]
                    .iter()
                    .map(|&(r, a)| (r, a.to_bits()))
                    .collect();
                let duration_key = if durations_matter {
                    c.duration_hours.to_bits()
                } else {
                    0
                };
                if seen.insert((loc, usage, duration_key), ()).is_none() {
                    cheapest.get_or_insert(cost);
                    kept.push(i);
                }
            }
            kept
        })
        .collect()
}

/// Solves the placement as an integer program.
pub(crate) fn solve(problem: &Problem<'_>, policy: &Policy) -> Result<Outcome, OptimizerError> {
    let n = problem.cands.len();
    let kept = prune(problem, policy);
    tracing::debug!(
        tasks = n,
        kept = kept.iter().map(Vec::len).sum::<usize>(),
        all = problem.cands.iter().map(|c| c.len()).sum::<usize>(),
        "integer program candidates after pruning"
    );
    if let Some(task) = kept.iter().position(Vec::is_empty) {
        return Err(OptimizerError::Infeasible {
            reason: format!(
                "task {:?} has no candidate that finishes within the deadline",
                problem.names[task]
            ),
        });
    }
    // Costs reach HiGHS as floats: refuse amounts it cannot compare exactly (or at all).
    for (task, kept_here) in kept.iter().enumerate() {
        if let Some(c) = kept_here
            .iter()
            .map(|&i| &problem.cands[task][i])
            .find(|c| c.cost > money::MAX_SOLVER_COST)
        {
            return Err(OptimizerError::Money {
                what: format!(
                    "task {:?} on {}/{} {}",
                    problem.names[task],
                    c.offer.cloud,
                    c.offer.place(),
                    c.offer.instance_type
                ),
                source: MoneyError::beyond_solver(c.cost),
            });
        }
    }
    let time_matters = !matches!(policy.objective, Objective::Cost);

    // Aggregate identical edge-free tasks (not under the time objective, where each task's
    // duration feeds the makespan on its own).
    let mut has_edge = vec![false; n];
    for &(a, b, _) in &problem.edges {
        has_edge[a] = true;
        has_edge[b] = true;
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    {
        let mut by_signature: HashMap<Vec<CandidateId>, usize> = HashMap::new();
        for task in 0..n {
            if has_edge[task] || matches!(policy.objective, Objective::Time) {
                groups.push(vec![task]);
                continue;
            }
            let signature: Vec<CandidateId> = kept[task]
                .iter()
                .map(|&i| {
                    let c = &problem.cands[task][i];
                    (
                        std::ptr::from_ref(c.offer) as usize,
                        c.spot,
                        c.nodes,
                        c.duration_hours.to_bits(),
                    )
                })
                .collect();
            match by_signature.get(&signature) {
                Some(&g) => groups[g].push(task),
                None => {
                    by_signature.insert(signature, groups.len());
                    groups.push(vec![task]);
                }
            }
        }
    }

    let mut vars = ProblemVariables::new();
    // HiGHS columns are the variables in the order they are added.
    let mut column_of: HashMap<Variable, usize> = HashMap::new();
    let mut add = |vars: &mut ProblemVariables, def: good_lp::VariableDefinition| {
        let var = vars.add(def);
        let next = column_of.len();
        column_of.insert(var, next);
        var
    };
    // x[group][k] for kept[group representative][k].
    let mut x: Vec<Vec<Variable>> = Vec::with_capacity(groups.len());
    let mut group_of = vec![0usize; n];
    for (g, members) in groups.iter().enumerate() {
        let rep = members[0];
        for &t in members {
            group_of[t] = g;
        }
        let size = members.len() as f64;
        x.push(
            kept[rep]
                .iter()
                .map(|_| {
                    if members.len() == 1 {
                        add(&mut vars, variable().binary())
                    } else {
                        add(&mut vars, variable().integer().min(0).max(size))
                    }
                })
                .collect(),
        );
    }
    let mut objective = Expression::with_capacity(x.iter().map(Vec::len).sum());
    let mut constraints = Vec::new();
    for (g, members) in groups.iter().enumerate() {
        let rep = members[0];
        let mut once = Expression::with_capacity(x[g].len());
        for (k, &i) in kept[rep].iter().enumerate() {
            objective.add_mul(to_f64(problem.cands[rep][i].cost), x[g][k]);
            once.add_mul(1.0, x[g][k]);
        }
        constraints.push(constraint!(once == members.len() as f64));
    }
    // Capacity rows: only candidates that use them appear.
    let mut rows: Vec<Expression> = (0..policy.capacity.len())
        .map(|_| Expression::with_capacity(16))
        .collect();
    let mut row_used = vec![false; policy.capacity.len()];
    for (g, members) in groups.iter().enumerate() {
        let rep = members[0];
        for (k, &i) in kept[rep].iter().enumerate() {
            for &(row, amount) in &problem.usage[rep][i] {
                rows[row].add_mul(amount, x[g][k]);
                row_used[row] = true;
            }
        }
    }
    for (row, expression) in rows.into_iter().enumerate() {
        if row_used[row] {
            constraints.push(constraint!(expression <= policy.capacity[row].limit));
        }
    }
    // Egress at the location level.
    let location_sum = |task: usize, wanted: &dyn Fn(u32) -> bool| -> Expression {
        let g = group_of[task];
        let mut e = Expression::with_capacity(4);
        for (k, &i) in kept[task].iter().enumerate() {
            if wanted(problem.cand_loc[task][i]) {
                e.add_mul(1.0, x[g][k]);
            }
        }
        e
    };
    for &(a, b, gb) in &problem.priced {
        let locs_a: Vec<u32> = dedup(kept[a].iter().map(|&i| problem.cand_loc[a][i]));
        let locs_b: Vec<u32> = dedup(kept[b].iter().map(|&i| problem.cand_loc[b][i]));
        // Pay the internet rate from wherever `a` runs...
        for (k, &i) in kept[a].iter().enumerate() {
            let rate = problem.locs.internet[problem.cand_loc[a][i] as usize];
            if rate > 0.0 {
                objective.add_mul(gb * rate, x[group_of[a]][k]);
            }
        }
        // ...minus the saving of staying within a cloud...
        let clouds_b: Vec<u32> = dedup(locs_b.iter().map(|&l| problem.locs.cloud[l as usize]));
        for cloud in dedup(locs_a.iter().map(|&l| problem.locs.cloud[l as usize])) {
            if !clouds_b.contains(&cloud) {
                continue;
            }
            let saving = |l: u32| problem.locs.internet[l as usize] - problem.locs.inter_region[l as usize];
            let max_saving = locs_a
                .iter()
                .filter(|&&l| problem.locs.cloud[l as usize] == cloud)
                .map(|&l| saving(l))
                .fold(0.0, f64::max);
            if max_saving <= 0.0 {
                continue;
            }
            let u = add(&mut vars, variable().min(0));
            objective.add_mul(-gb, u);
            let mut from_a = Expression::with_capacity(4);
            for (k, &i) in kept[a].iter().enumerate() {
                let l = problem.cand_loc[a][i];
                if problem.locs.cloud[l as usize] == cloud {
                    from_a.add_mul(saving(l), x[group_of[a]][k]);
                }
            }
            constraints.push(constraint!(u <= from_a));
            let in_b = location_sum(b, &|l| problem.locs.cloud[l as usize] == cloud);
            constraints.push(constraint!(u <= max_saving * in_b));
        }
        // ...minus the saving of staying within a region.
        for &l in locs_a.iter().filter(|l| locs_b.contains(l)) {
            let rate = problem.locs.inter_region[l as usize];
            if rate <= 0.0 {
                continue;
            }
            let w = add(&mut vars, variable().min(0));
            objective.add_mul(-gb * rate, w);
            constraints.push(constraint!(w <= location_sum(a, &|m| m == l)));
            constraints.push(constraint!(w <= location_sum(b, &|m| m == l)));
        }
    }
    // Makespan, for time objectives and deadlines.
    if time_matters {
        let m = add(&mut vars, variable().min(0));
        let starts: Vec<Variable> = (0..n).map(|_| add(&mut vars, variable().min(0))).collect();
        let duration = |task: usize| -> Expression {
            let g = group_of[task];
            let mut e = Expression::with_capacity(kept[task].len());
            for (k, &i) in kept[task].iter().enumerate() {
                e.add_mul(problem.cands[task][i].duration_hours, x[g][k]);
            }
            e
        };
        for &(a, b, _) in &problem.edges {
            constraints.push(constraint!(starts[b] >= starts[a] + duration(a)));
        }
        for (task, &start) in starts.iter().enumerate() {
            constraints.push(constraint!(m >= start + duration(task)));
        }
        match policy.objective {
            Objective::Time => {
                // Lexicographic: an hour of makespan outweighs any cost difference.
                let weight = 1.0
                    + problem
                        .cands
                        .iter()
                        .map(|c| c.last().map_or(0.0, |c| to_f64(c.cost)))
                        .sum::<f64>();
                objective.add_mul(weight, m);
            }
            Objective::CostWithDeadline { hours } => constraints.push(constraint!(m <= hours)),
            Objective::Cost => {}
        }
    }

    // Warm start from the greedy plan (x only; HiGHS completes the continuous part).
    let warm = greedy(problem, policy).map(|choice| {
        let mut values: HashMap<Variable, f64> = HashMap::new();
        for (task, &pick) in choice.iter().enumerate() {
            if let Some(k) = kept[task].iter().position(|&i| i == pick) {
                *values.entry(x[group_of[task]][k]).or_default() += 1.0;
            }
        }
        values
    });

    let columns = vars.len();
    let mut model = vars.minimise(objective).using(good_lp::solvers::highs::highs);
    for c in constraints {
        model.add_constraint(c);
    }
    let mut highs = model
        .try_into_inner()
        .map_err(|e| OptimizerError::Solver(e.to_string()))?;
    highs.set_option("time_limit", policy.time_limit.as_secs_f64().max(0.001));
    highs.set_option("mip_rel_gap", policy.mip_gap.max(0.0));
    highs.set_option("threads", 1);
    // The warm start already gives a good incumbent and the root LP is usually integral: skip the
    // expensive primal heuristics (options unknown to an older HiGHS are ignored).
    let _ = highs.try_set_option("mip_heuristic_run_feasibility_jump", false);
    // Our model is already reduced; HiGHS's presolve found little here and cost more than the
    // whole root solve on 1,000-task DAGs (0.3 s of 0.7 s).
    let _ = highs.try_set_option("presolve", "off");
    // SKYPLAN_SOLVER_LOG=1 shows HiGHS's own log (for diagnosing slow solves).
    let log = std::env::var_os("SKYPLAN_SOLVER_LOG").is_some();
    highs.set_option("output_flag", log);
    highs.set_option("log_to_console", log);
    if let Some(values) = warm {
        let mut cols = vec![0.0; columns];
        for (var, value) in values {
            if let Some(slot) = column_of.get(&var).and_then(|&c| cols.get_mut(c)) {
                *slot = value;
            }
        }
        let _ = highs.try_set_solution(Some(&cols), None, None, None);
    }
    let solved = highs
        .try_solve()
        .map_err(|e| OptimizerError::Solver(format!("{e:?}")))?;
    let status = solved.status();
    let hit_time_limit = matches!(status, HighsModelStatus::ReachedTimeLimit);
    match status {
        HighsModelStatus::Optimal | HighsModelStatus::ReachedTimeLimit => {}
        HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => {
            return Err(OptimizerError::Infeasible {
                reason: infeasibility_hint(policy),
            });
        }
        other => {
            return Err(OptimizerError::Solver(format!(
                "HiGHS stopped with status {other:?}"
            )));
        }
    }
    let solution = solved.get_solution();
    let values = solution.columns();
    if values.len() < columns || matches!(solved.primal_solution_status(), highs::HighsSolutionStatus::None) {
        return Err(OptimizerError::Solver(format!(
            "HiGHS found no solution ({status:?})"
        )));
    }
    let gap = solved.mip_gap();
    let mut choice = vec![0usize; n];
    for (g, members) in groups.iter().enumerate() {
        let rep = members[0];
        let mut slots: Vec<usize> = Vec::with_capacity(members.len());
        for (k, &i) in kept[rep].iter().enumerate() {
            let column = column_of.get(&x[g][k]).copied().unwrap_or(usize::MAX);
            let count = values.get(column).copied().unwrap_or(0.0).round().max(0.0) as usize;
            slots.extend(std::iter::repeat_n(i, count));
        }
        for (j, &task) in members.iter().enumerate() {
            choice[task] = slots.get(j).copied().unwrap_or(kept[rep][0]);
        }
    }
    Ok(Outcome {
        choice,
        gap: (hit_time_limit || gap > policy.mip_gap)
            .then_some(gap)
            .filter(|g| g.is_finite()),
        hit_time_limit,
    })
}

fn dedup(items: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = items.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn infeasibility_hint(policy: &Policy) -> String {
    let mut parts: Vec<String> = policy
        .capacity
        .iter()
        .map(|c| format!("{} ≤ {}", c.name, c.limit))
        .collect();
    if let Objective::CostWithDeadline { hours } = policy.objective {
        parts.push(format!("deadline {hours} h"));
    }
    if parts.is_empty() {
        "the tasks cannot all be placed".to_string()
    } else {
        format!("the tasks do not fit within {}", parts.join(", "))
    }
}
