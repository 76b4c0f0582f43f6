//! The `resources` section of a task: where it may run (`infra` or `cloud/region/zone`), what it
//! needs (`accelerators`, `cpus`, `memory`, ...), and its alternatives (`any_of`, `ordered`, and
//! accelerator sets and lists), expanded into concrete [`ResourceRequest`]s for the optimizer.
//!
//! # Alternatives
//!
//! - `accelerators: {L4, A10G}` (a set, or a mapping with several entries) is *any of*: the
//!   optimizer picks the cheapest. `accelerators: [L4:1, A10G:1]` (a list) is *ordered*: the first
//!   feasible one wins.
//! - `any_of:` / `ordered:` entries override the base fields; the others are inherited. Location
//!   fields override top-down: an entry that sets `cloud` (or `infra`) drops the base region and
//!   zone, one that sets `region` drops the base zone.
//! - An accelerator set inside `any_of` expands in place (still any of). An accelerator list inside
//!   `ordered` expands in place, in order. The two other mixes (a list inside `any_of`, a set
//!   inside `ordered`) have no single clear meaning and are rejected when parsing; built in code,
//!   the outer mode wins ([`ResourcesSpec::alternatives`] never fails).
//! - `any_of` and `ordered` together are an error, as are nested ones.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use skyplan_catalog::Amount;

use super::infra::PORTS_EXPECTED;

/// An inclusive range of TCP ports; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortRange {
    /// First port, 1..=65535.
    pub start: u16,
    /// Last port, `start..=65535`.
    pub end: u16,
}

impl PortRange {
    /// One port.
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }
}

/// Parses `8000` or `8000-8010`; the error says what was expected.
///
/// ```
/// use skyplan_spec::PortRange;
/// assert_eq!("8000-8010".parse::<PortRange>().unwrap(), PortRange { start: 8000, end: 8010 });
/// assert!("99999".parse::<PortRange>().is_err());
/// ```
impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let port = |part: &str| match part.trim().parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => u16::try_from(p).map_err(|_| PORTS_EXPECTED.to_string()),
            _ => Err(PORTS_EXPECTED.to_string()),
        };
        let range = match text.split_once('-') {
            Some((start, end)) => PortRange {
                start: port(start)?,
                end: port(end)?,
            },
            None => PortRange::single(port(text)?),
        };
        if range.start > range.end {
            return Err("a port range whose first port is not above its last, e.g. 8000-8010".to_string());
        }
        Ok(range)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// The `accelerators` field: one accelerator, or several alternatives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceleratorSpec {
    /// `H100:8`, `H100` (count 1) or `{H100: 8}`.
    One(String, f64),
    /// A set `{L4, A10G}` or a mapping with several entries: any of them, cheapest wins.
    AnyOf(Vec<(String, f64)>),
    /// A list `[L4:1, A10G:1]`: in order of preference, first feasible wins.
    Ordered(Vec<(String, f64)>),
}

impl AcceleratorSpec {
    /// The accelerators in the order written.
    pub fn options(&self) -> Vec<(String, f64)> {
        match self {
            AcceleratorSpec::One(name, count) => vec![(name.clone(), *count)],
            AcceleratorSpec::AnyOf(list) | AcceleratorSpec::Ordered(list) => list.clone(),
        }
    }
}

/// One resource mapping as written: the base `resources` or one `any_of` / `ordered` entry.
/// `None` means "not set here" (inherited from the base in an entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceFields {
    /// Canonical lowercase cloud (`kubernetes` for `k8s`); `None` = any.
    pub cloud: Option<String>,
    /// Region, or the kubeconfig context for Kubernetes; `None` = any.
    pub region: Option<String>,
    /// Zone; `None` = any.
    pub zone: Option<String>,
    /// Requested accelerators.
    pub accelerators: Option<AcceleratorSpec>,
    /// vCPUs per node.
    pub cpus: Option<Amount>,
    /// Memory per node in GiB.
    pub memory: Option<Amount>,
    /// A specific instance type.
    pub instance_type: Option<String>,
    /// Spot (preemptible) capacity.
    pub use_spot: Option<bool>,
    /// Boot disk size in GB.
    pub disk_size_gb: Option<u32>,
    /// Ports to open.
    pub ports: Option<Vec<PortRange>>,
    /// VM image, or a container image when it starts with `docker:`.
    pub image_id: Option<String>,
    /// Labels / tags for the created resources.
    pub labels: Option<BTreeMap<String, String>>,
    /// Upper bound on the hourly price of one node.
    pub max_hourly_cost: Option<Decimal>,
}

impl ResourceFields {
    /// These fields with `entry`'s set fields on top (see the module docs for the location rule).
    pub fn overridden_by(&self, entry: &ResourceFields) -> ResourceFields {
        let (cloud, region, zone) = if entry.cloud.is_some() {
            (entry.cloud.clone(), entry.region.clone(), entry.zone.clone())
        } else if entry.region.is_some() {
            (self.cloud.clone(), entry.region.clone(), entry.zone.clone())
        } else if entry.zone.is_some() {
            (self.cloud.clone(), self.region.clone(), entry.zone.clone())
        } else {
            (self.cloud.clone(), self.region.clone(), self.zone.clone())
        };
        ResourceFields {
            cloud,
            region,
            zone,
            accelerators: entry.accelerators.clone().or_else(|| self.accelerators.clone()),
            cpus: entry.cpus.or(self.cpus),
            memory: entry.memory.or(self.memory),
            instance_type: entry.instance_type.clone().or_else(|| self.instance_type.clone()),
            use_spot: entry.use_spot.or(self.use_spot),
            disk_size_gb: entry.disk_size_gb.or(self.disk_size_gb),
            ports: entry.ports.clone().or_else(|| self.ports.clone()),
            image_id: entry.image_id.clone().or_else(|| self.image_id.clone()),
            labels: entry.labels.clone().or_else(|| self.labels.clone()),
            max_hourly_cost: entry.max_hourly_cost.or(self.max_hourly_cost),
        }
    }

    fn request(&self, accelerator: Option<(String, f64)>) -> ResourceRequest {
        ResourceRequest {
            cloud: self.cloud.clone(),
            region: self.region.clone(),
            zone: self.zone.clone(),
            accelerator,
            cpus: self.cpus,
            memory: self.memory,
            instance_type: self.instance_type.clone(),
            use_spot: self.use_spot.unwrap_or(false),
            disk_size_gb: self.disk_size_gb,
            ports: self.ports.clone().unwrap_or_default(),
            image_id: self.image_id.clone(),
            labels: self.labels.clone().unwrap_or_default(),
            max_hourly_cost: self.max_hourly_cost,
            duration_hours: None,
            pinned: false,
        }
    }
}

/// The parsed `resources` section: base fields plus `any_of` or `ordered` entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourcesSpec {
    /// The fields written directly under `resources`.
    pub base: ResourceFields,
    /// `any_of` entries (overrides of `base`); the optimizer picks the cheapest.
    pub any_of: Vec<ResourceFields>,
    /// `ordered` entries (overrides of `base`); the first feasible one wins.
    pub ordered: Vec<ResourceFields>,
}

/// How a task's resource requests relate, from the task file to the optimizer (one enum for
/// both; a single request is `AnyOf` of one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlternativeMode {
    /// Any of the requests: the optimizer picks the cheapest feasible one.
    #[default]
    AnyOf,
    /// The requests in order of preference: the first with a feasible, unblocked offer wins.
    Ordered,
}

/// The concrete resource requests a task may run on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternatives {
    /// How the requests relate; `AnyOf` whenever there is one request.
    pub mode: AlternativeMode,
    /// At least one request, without duplicates, in the order written.
    pub requests: Vec<ResourceRequest>,
}

/// One concrete way to run a task: every field final, `None` meaning "any". The one request
/// type from the task file to the optimizer (which calls it `skyplan_optimizer::Requirement`) and on to
/// the providers.
///
/// ```
/// use skyplan_spec::ResourceRequest;
/// let needs_l4 = ResourceRequest { accelerator: Some(("L4".into(), 1.0)), ..Default::default() };
/// assert!(needs_l4.cloud.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceRequest {
    /// Canonical lowercase cloud (`kubernetes` for `k8s`); `None` = any.
    pub cloud: Option<String>,
    /// Region; for Kubernetes the kubeconfig context. `None` = any.
    pub region: Option<String>,
    /// Zone; `None` = any.
    pub zone: Option<String>,
    /// Accelerator name as written (not canonicalised) and count per node.
    pub accelerator: Option<(String, f64)>,
    /// vCPUs per node.
    pub cpus: Option<Amount>,
    /// Memory per node in GiB.
    pub memory: Option<Amount>,
    /// A specific instance type.
    pub instance_type: Option<String>,
    /// Spot capacity.
    pub use_spot: bool,
    /// Boot disk size in GB.
    pub disk_size_gb: Option<u32>,
    /// Ports to open.
    pub ports: Vec<PortRange>,
    /// VM image, or container image when it starts with `docker:`.
    pub image_id: Option<String>,
    /// Labels for created resources.
    pub labels: BTreeMap<String, String>,
    /// Upper bound on the hourly price of one node.
    pub max_hourly_cost: Option<Decimal>,
    /// Runtime on this kind of resource, overriding the task's duration (for `time` objectives;
    /// not a task-file field).
    pub duration_hours: Option<f64>,
    /// Already running where this request points: the policy's blocks do not apply to it (a
    /// launcher re-solving the rest of a pipeline after a failure keeps its launched tasks in
    /// place even when a block covers their place; the others still avoid it). Not a task-file
    /// field.
    pub pinned: bool,
}

impl ResourceRequest {
    /// The container image when `image_id` is `docker:IMAGE`.
    pub fn docker_image(&self) -> Option<&str> {
        self.image_id.as_deref().and_then(|id| id.strip_prefix("docker:"))
    }
}

impl ResourcesSpec {
    /// Expands accelerator sets/lists and `any_of`/`ordered` into concrete requests (see the
    /// module docs for the rules). Always at least one request.
    pub fn alternatives(&self) -> Alternatives {
        // `None` until the entries or an accelerator set or list decide it.
        let (outer, entries): (Option<AlternativeMode>, Vec<ResourceFields>) = if !self.any_of.is_empty() {
            (
                Some(AlternativeMode::AnyOf),
                self.any_of.iter().map(|e| self.base.overridden_by(e)).collect(),
            )
        } else if !self.ordered.is_empty() {
            (
                Some(AlternativeMode::Ordered),
                self.ordered.iter().map(|e| self.base.overridden_by(e)).collect(),
            )
        } else {
            (None, vec![self.base.clone()])
        };
        let mut mode = outer;
        let mut requests: Vec<ResourceRequest> = Vec::new();
        for fields in &entries {
            let options = match &fields.accelerators {
                None => vec![None],
                Some(spec) => {
                    if mode.is_none() {
                        mode = match spec {
                            AcceleratorSpec::One(..) => None,
                            AcceleratorSpec::AnyOf(_) => Some(AlternativeMode::AnyOf),
                            AcceleratorSpec::Ordered(_) => Some(AlternativeMode::Ordered),
                        };
                    }
                    spec.options().into_iter().map(Some).collect()
                }
            };
            for accelerator in options {
                let request = fields.request(accelerator);
                if !requests.contains(&request) {
                    requests.push(request);
                }
            }
        }
        let mode = match mode {
            Some(mode) if requests.len() > 1 => mode,
            _ => AlternativeMode::AnyOf,
        };
        Alternatives { mode, requests }
    }
}
