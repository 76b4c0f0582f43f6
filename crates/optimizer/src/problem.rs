//! The solvers' shared input: [`Problem`] gathers every task's candidates (shared between tasks
//! with identical requirements), their interned locations with egress rates as floats, capacity
//! use per candidate, the considered groups, and the graph's edges in index form. Built once per
//! solve; read by every algorithm (`solve.rs`, `greedy.rs`, `ilp.rs`, `ties.rs`).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use rust_decimal::Decimal;
use skyplan_catalog::Catalog;

use crate::OptimizerError;
use crate::candidates::{Candidate, candidates};
use crate::egress::{EgressKind, EgressPrices, Location};
use crate::model::{Policy, TaskGraph};
use crate::plan::{ConsideredGroup, Placement};

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
    pub groups: Vec<Rc<Grouping>>,
    pub locs: Locations,
    /// Every edge (from, to, GB).
    pub edges: Vec<(usize, usize, f64)>,
    /// Edges whose data costs money somewhere.
    pub priced: Vec<(usize, usize, f64)>,
    /// Task positions in topological order.
    pub topo: Vec<usize>,
}

impl Problem<'_> {
    /// Whether some candidate uses a capacity row (then the integer program runs).
    pub fn capacitated(&self) -> bool {
        self.usage.iter().any(|kind| kind.iter().any(|u| !u.is_empty()))
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

/// Considered groups (unmarked) and each candidate's group index.
pub(crate) type Grouping = (Vec<ConsideredGroup>, Vec<usize>);

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
