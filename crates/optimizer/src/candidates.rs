//! Candidates: every catalog offer that satisfies a task, in either market, minus blocked places
//! and hosts below the policy's per-GPU floors, priced for the task's node count and duration.
//! Ordered cheapest first; equal costs by the policy's home geography (home, neutral, elsewhere),
//! then by cloud, region, zone and instance type. Ties between the plan's tasks (co-location) are
//! settled after solving, in `ties.rs`.

use rust_decimal::Decimal;
use skyplan_catalog::{AcceleratorFilter, Catalog, Offer, OfferQuery, compare_offers, format_count, money};

use crate::OptimizerError;
use crate::defaults::Geography;
use crate::model::{AlternativeMode, Policy, Requirement, TaskNode};
use crate::spec::normalize_cloud;

/// One way to run a task: an offer, a market, and what it costs.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The catalog offer (one node's shape and place).
    pub offer: &'a Offer,
    /// Spot market.
    pub spot: bool,
    /// Nodes (all in the offer's zone).
    pub nodes: u32,
    /// $/hour for all nodes.
    pub hourly: Decimal,
    /// Hours the task runs here.
    pub duration_hours: f64,
    /// `hourly × duration`.
    pub cost: Decimal,
    /// Which of the task's requirements it satisfies (the first, in order).
    pub requirement: usize,
}

impl Candidate<'_> {
    /// Deterministic order by name: cost, then the offer's place and shape.
    pub fn compare(&self, other: &Self) -> std::cmp::Ordering {
        self.cost
            .cmp(&other.cost)
            .then_with(|| compare_offers(self.offer, other.offer, self.spot))
            .then_with(|| self.spot.cmp(&other.spot))
    }

    /// The order candidates are listed in: cost, then `home`'s rank of the place (home, neutral,
    /// elsewhere), then [`Candidate::compare`]'s names.
    pub fn compare_in(&self, other: &Self, home: &Geography) -> std::cmp::Ordering {
        self.cost
            .cmp(&other.cost)
            .then_with(|| home.rank(self.offer).cmp(&home.rank(other.offer)))
            .then_with(|| self.compare(other))
    }
}

/// A readable form of a requirement for messages (`L4:1 on aws/us-east-1, spot`).
pub fn describe(requirement: &Requirement) -> String {
    let mut parts = Vec::new();
    match (&requirement.accelerator, &requirement.instance_type) {
        (Some((name, count)), _) => parts.push(format!("{name}:{}", format_count(*count))),
        (None, Some(instance_type)) => parts.push(instance_type.clone()),
        (None, None) => parts.push("CPU".to_string()),
    }
    if let Some(cpus) = requirement.cpus {
        parts.push(format!("cpus {cpus}"));
    }
    if let Some(memory) = requirement.memory {
        parts.push(format!("memory {memory} GB"));
    }
    let place: Vec<&str> = [&requirement.cloud, &requirement.region, &requirement.zone]
        .iter()
        .filter_map(|p| p.as_deref())
        .collect();
    let mut text = parts.join(", ");
    if !place.is_empty() {
        text.push_str(&format!(" on {}", place.join("/")));
    }
    if requirement.use_spot {
        text.push_str(", spot");
    }
    if let Some(max) = requirement.max_hourly_cost {
        text.push_str(&format!(", at most {max} $/h"));
    }
    text
}

/// Whether a requirement leaves its host's size to the optimizer, so that the policy's host
/// floors apply: it names an accelerator and no `cpus`, `memory` or `instance_type` (any of those
/// means the user sized the host).
fn leaves_host_open(requirement: &Requirement) -> bool {
    requirement.accelerator.is_some()
        && requirement.cpus.is_none()
        && requirement.memory.is_none()
        && requirement.instance_type.is_none()
}

/// The candidates for one requirement, with the number of matching offers that were blocked.
fn for_requirement<'a>(
    catalog: &'a Catalog,
    task: &TaskNode,
    requirement: &Requirement,
    index: usize,
    policy: &Policy,
) -> Result<(Vec<Candidate<'a>>, usize), OptimizerError> {
    let accelerator = match &requirement.accelerator {
        Some((name, count)) => {
            let canonical = catalog
                .resolve_accelerator(name)
                .map_err(|reason| OptimizerError::Catalog {
                    task: task.name.clone(),
                    reason: Box::new(reason),
                })?;
            AcceleratorFilter::Named {
                name: canonical,
                count: Some(*count),
            }
        }
        None if requirement.instance_type.is_some() => AcceleratorFilter::Any,
        None => AcceleratorFilter::None,
    };
    let nodes = task.num_nodes.max(1);
    let query = OfferQuery {
        accelerator,
        cpus: requirement.cpus,
        memory: requirement.memory,
        cloud: requirement.cloud.as_deref().map(normalize_cloud),
        region: requirement.region.clone(),
        zone: requirement.zone.clone(),
        instance_type: requirement.instance_type.clone(),
        spot: requirement.use_spot,
        max_price: requirement.max_hourly_cost,
    };
    let duration = requirement.duration_hours.unwrap_or(task.duration_hours);
    let mut blocked = 0;
    let mut candidates = Vec::new();
    for offer in catalog.query(&query) {
        if !requirement.pinned && policy.blocked.iter().any(|b| b.blocks(offer, query.spot)) {
            blocked += 1;
            continue;
        }
        let Some(price) = offer.price_for(query.spot) else {
            continue;
        };
        let (hourly, cost) =
            money::task_cost(price, nodes, duration).map_err(|source| OptimizerError::Money {
                what: format!(
                    "task {:?} on {}/{} {}",
                    task.name,
                    offer.cloud,
                    offer.place(),
                    offer.instance_type
                ),
                source,
            })?;
        candidates.push(Candidate {
            offer,
            spot: query.spot,
            nodes,
            hourly,
            duration_hours: duration,
            cost,
            requirement: index,
        });
    }
    if leaves_host_open(requirement) {
        let sized: Vec<Candidate<'a>> = candidates
            .iter()
            .filter(|c| policy.host_floors.admits(c.offer))
            .cloned()
            .collect();
        // A floor is a default, never a reason to fail: without any sized host, take them all.
        if sized.is_empty() && !candidates.is_empty() {
            tracing::debug!(
                task = %task.name,
                requirement = %describe(requirement),
                "no candidate meets the per-GPU host floor; solving this requirement without it"
            );
        } else {
            candidates = sized;
        }
    }
    Ok((candidates, blocked))
}

/// Every candidate for `task`, cheapest first. Errors when none is left.
pub fn candidates<'a>(
    catalog: &'a Catalog,
    task: &TaskNode,
    policy: &Policy,
) -> Result<Vec<Candidate<'a>>, OptimizerError> {
    let default_requirement = [Requirement::default()];
    let requirements: &[Requirement] = if task.requirements.is_empty() {
        &default_requirement
    } else {
        &task.requirements
    };
    let mut all: Vec<Candidate<'a>> = Vec::new();
    let mut blocked_total = 0;
    for (index, requirement) in requirements.iter().enumerate() {
        let (mut found, blocked) = for_requirement(catalog, task, requirement, index, policy)?;
        blocked_total += blocked;
        if task.mode == AlternativeMode::Ordered && !found.is_empty() {
            all = found;
            break;
        }
        all.append(&mut found);
    }
    all.sort_by(|a, b| a.compare_in(b, &policy.home));
    // The same offer may satisfy several any-of requirements: keep its first (cheapest) entry.
    all.dedup_by(|b, a| {
        std::ptr::eq(a.offer, b.offer) && a.spot == b.spot && a.duration_hours == b.duration_hours
    });
    if all.is_empty() {
        let wanted: Vec<String> = requirements.iter().map(describe).collect();
        let joiner = if task.mode == AlternativeMode::Ordered {
            " or else "
        } else {
            " or "
        };
        return Err(OptimizerError::NoCandidates {
            task: task.name.clone(),
            wanted: wanted.join(joiner),
            blocked: blocked_total,
        });
    }
    Ok(all)
}

/// Checks every accelerator name a parsed task file writes against `catalog`, so that an unknown
/// one is an error at the place it is written (`FILE:LINE:COLUMN`) rather than per task.
///
/// ```
/// use skyplan_optimizer::{check_accelerators, spec::parse_task_str};
/// let csv = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n\
///            p5.48xlarge,H100,8,192,2048,98.32,30.0,us-east-1,use1-az1\n";
/// let catalog = skyplan_catalog::Catalog::from_csv("aws", "aws.csv", csv.as_bytes()).unwrap();
/// let ok = parse_task_str("resources:\n  accelerators: H100:8\nrun: x\n", "ok.yaml").unwrap();
/// assert!(check_accelerators(&catalog, &ok).is_ok());
/// let bad = parse_task_str("resources:\n  accelerators: L5\nrun: x\n", "bad.yaml").unwrap();
/// let err = check_accelerators(&catalog, &bad).unwrap_err().to_string();
/// assert!(err.starts_with("bad.yaml:2:17: resources.accelerators: unknown accelerator \"L5\""), "{err}");
/// ```
pub fn check_accelerators(catalog: &Catalog, pipeline: &crate::spec::Pipeline) -> Result<(), OptimizerError> {
    for task in &pipeline.tasks {
        for (name, at) in &task.locations.accelerators {
            if let Err(reason) = catalog.resolve_accelerator(name) {
                return Err(OptimizerError::UnknownAccelerator {
                    at: at.to_string(),
                    reason: Box::new(reason),
                });
            }
        }
    }
    Ok(())
}
