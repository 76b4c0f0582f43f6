//! Greedy placement: each task in topological order takes its cheapest candidate given where its
//! parents went and the capacity left. Not optimal; the integer program's warm start and
//! `solve_greedy`'s algorithm.

use crate::model::{Objective, Policy};
use crate::problem::{Problem, to_f64};

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
