//! Ties between equal-cost choices, settled after any algorithm has chosen (sort, chain DP,
//! integer program, greedy), so that every path follows one rule.
//!
//! Among a task's candidates of exactly the same cost (`Decimal`, not floats), the plan prefers:
//! 1. a location (cloud + region) that more of the plan's *other* tasks use;
//! 2. a region of the policy's home geography (then neutral places, then the rest);
//! 3. names (cloud, region, zone, instance type).
//!
//! (2) and (3) are already the candidates' order (`candidates.rs`), so each algorithm's "first
//! cheapest" follows them; this pass adds (1) and repairs the integer program's arbitrary choice
//! among ties. A task moves only to a candidate of equal compute cost whose egress to and from its
//! neighbours is exactly unchanged, that fits the capacity left, and that does not lengthen the
//! makespan: the plan's cost (and, for time objectives, its makespan) never changes. Each move
//! strictly raises the number of co-located task pairs, or keeps it and moves one task earlier in
//! its list, so the passes end; they are capped all the same.

use std::cmp::Reverse;

use rust_decimal::Decimal;
use skyplan_catalog::money;

use crate::model::Policy;
use crate::problem::Problem;

/// At most this many passes over the tasks (each pass visits them in topological order).
const MAX_PASSES: usize = 32;

/// Moves tasks of `choice` (a candidate index per task) to their preferred equal-cost candidate.
pub(crate) fn settle(problem: &Problem<'_>, policy: &Policy, choice: &mut [usize]) {
    let n = choice.len();
    let loc_of = |task: usize, i: usize| problem.cand_loc[task][i] as usize;
    let mut at = vec![0u32; problem.locs.list.len()];
    let mut left: Vec<f64> = policy.capacity.iter().map(|c| c.limit).collect();
    for task in 0..n {
        at[loc_of(task, choice[task])] += 1;
        for &(row, amount) in &problem.usage[task][choice[task]] {
            left[row] -= amount;
        }
    }
    // Per task its priced edges: (other task, GB, whether this task is the source).
    let mut incident: Vec<Vec<(usize, f64, bool)>> = vec![Vec::new(); n];
    for &(a, b, gb) in &problem.priced {
        incident[a].push((b, gb, true));
        incident[b].push((a, gb, false));
    }
    // The exact egress bill of `task`'s edges were it at `loc` (as `assemble` prices it); `None`
    // when it cannot be computed (then the task does not move: `assemble` reports the amount).
    let egress = |task: usize, loc: usize, choice: &[usize]| -> Option<Decimal> {
        let edges = incident[task].iter().map(|&(other, gb, outgoing)| {
            let here = &problem.locs.list[loc];
            let there = &problem.locs.list[loc_of(other, choice[other])];
            let rate = if outgoing {
                policy.egress.per_gb(here, there)
            } else {
                policy.egress.per_gb(there, here)
            };
            money::times(rate, gb, "GB")
        });
        edges
            .collect::<Result<Vec<Decimal>, _>>()
            .and_then(money::sum)
            .ok()
    };
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b, _) in &problem.edges {
        parents[b].push(a);
    }
    let makespan = |choice: &[usize]| -> f64 {
        let mut finish = vec![0.0f64; n];
        for &task in &problem.topo {
            let ready = parents[task].iter().map(|&p| finish[p]).fold(0.0, f64::max);
            finish[task] = ready + problem.cands[task][choice[task]].duration_hours;
        }
        finish.into_iter().fold(0.0, f64::max)
    };
    let mut current_makespan = makespan(choice);

    for _ in 0..MAX_PASSES {
        let mut moved = false;
        for &task in &problem.topo {
            let cands = &problem.cands[task];
            let pick = choice[task];
            let cost = cands[pick].cost;
            let (start, end) = (
                cands.partition_point(|c| c.cost < cost),
                cands.partition_point(|c| c.cost <= cost),
            );
            if end - start < 2 {
                continue;
            }
            let here = loc_of(task, pick);
            let others = |loc: usize| at[loc] - u32::from(loc == here);
            let Some(old_egress) = egress(task, here, choice) else {
                continue;
            };
            let freed = |row: usize| -> f64 {
                problem.usage[task][pick]
                    .iter()
                    .filter(|u| u.0 == row)
                    .map(|u| u.1)
                    .sum()
            };
            let mut best = ((Reverse(others(here)), pick), current_makespan);
            for j in start..end {
                let loc = loc_of(task, j);
                let key = (Reverse(others(loc)), j);
                if key >= best.0 {
                    continue;
                }
                let fits = problem.usage[task][j]
                    .iter()
                    .all(|&(row, amount)| amount <= left[row] + freed(row) + 1e-9);
                if !fits || egress(task, loc, choice) != Some(old_egress) {
                    continue;
                }
                let mut span = current_makespan;
                if cands[j].duration_hours != cands[pick].duration_hours {
                    choice[task] = j;
                    span = makespan(choice);
                    choice[task] = pick;
                    if span > current_makespan + 1e-9 {
                        continue;
                    }
                }
                best = (key, span);
            }
            let ((_, to), span) = best;
            if to == pick {
                continue;
            }
            for &(row, amount) in &problem.usage[task][pick] {
                left[row] += amount;
            }
            for &(row, amount) in &problem.usage[task][to] {
                left[row] -= amount;
            }
            at[here] -= 1;
            at[loc_of(task, to)] += 1;
            choice[task] = to;
            current_makespan = span;
            moved = true;
        }
        if !moved {
            return;
        }
    }
    tracing::debug!(passes = MAX_PASSES, "tie settling stopped at its pass limit");
}
