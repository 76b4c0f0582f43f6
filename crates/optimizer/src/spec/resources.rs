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
use skyplan_catalog::{Amount, parse_accelerator_request};

use super::error::SpecError;
use super::yaml::{Ctx, Entry, Node, Value, child, closest, describe, index, scalar_text};

/// Cloud names `infra` and `cloud` accept, canonical spelling (`k8s` is an alias of
/// `kubernetes`).
pub const KNOWN_CLOUDS: &[&str] = &[
    "aws",
    "gcp",
    "azure",
    "lambda",
    "runpod",
    "nebius",
    "kubernetes",
    "local",
];

const INFRA_EXPECTED: &str = "CLOUD, CLOUD/REGION or CLOUD/REGION/ZONE (e.g. aws/us-east-1, gcp/*/us-central1-a, \
     k8s/my-context) where CLOUD is one of aws, gcp, azure, lambda, runpod, nebius, kubernetes (k8s), local or *";
const CLOUD_EXPECTED: &str = "one of aws, gcp, azure, lambda, runpod, nebius, kubernetes (k8s), local";
const ACCELERATOR_EXPECTED: &str = "NAME:COUNT with a positive number, e.g. L4:1";
const ACCELERATORS_EXPECTED: &str =
    "NAME:COUNT (e.g. L4:1), a mapping {NAME: COUNT}, a set {L4, A10G} or a list [L4:1, A10G:1]";
const AMOUNT_EXPECTED: &str = "a positive number, optionally followed by + (e.g. 4 or 4+)";
const PORTS_EXPECTED: &str = "a port 1-65535, a range like 8000-8010, or a list of them";
const DISK_EXPECTED: &str = "a positive whole number of GB, e.g. 256";
const COST_EXPECTED: &str = "a non-negative number of dollars per hour, e.g. 2.5";
const RESOURCES_EXPECTED: &str = "a mapping of resource fields (accelerators, cpus, infra, ...)";

/// Keys of `resources` and of each `any_of` / `ordered` entry.
const RESOURCE_KEYS: &[&str] = &[
    "infra",
    "cloud",
    "region",
    "zone",
    "accelerators",
    "cpus",
    "memory",
    "instance_type",
    "use_spot",
    "disk_size",
    "ports",
    "image_id",
    "labels",
    "max_hourly_cost",
    "any_of",
    "ordered",
    "disk_tier",
    "network_tier",
    "autostop",
    "job_recovery",
];

/// Task-level keys, for a hint when one is written inside `resources` by mistake.
const TASK_KEYS_ELSEWHERE: &[(&str, &str)] = &[
    ("name", "name (at the top level)"),
    ("envs", "envs (at the top level)"),
    ("secrets", "secrets (at the top level)"),
    ("num_nodes", "num_nodes (at the top level)"),
    ("setup", "setup (at the top level)"),
    ("run", "run (at the top level)"),
    ("workdir", "workdir (at the top level)"),
    ("file_mounts", "file_mounts (at the top level)"),
];

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
/// use skyplan_optimizer::spec::PortRange;
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

/// How the requests of [`Alternatives`] relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlternativeMode {
    /// Exactly one request.
    Single,
    /// Any of the requests: the cheapest feasible one wins.
    AnyOf,
    /// The requests in order of preference: the first feasible one wins.
    Ordered,
}

/// The concrete resource requests a task may run on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternatives {
    /// How the requests relate; `Single` whenever there is one request.
    pub mode: AlternativeMode,
    /// At least one request, without duplicates, in the order written.
    pub requests: Vec<ResourceRequest>,
}

/// One concrete way to run a task: every field final, `None` meaning "any".
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        let (outer, entries): (AlternativeMode, Vec<ResourceFields>) = if !self.any_of.is_empty() {
            (
                AlternativeMode::AnyOf,
                self.any_of.iter().map(|e| self.base.overridden_by(e)).collect(),
            )
        } else if !self.ordered.is_empty() {
            (
                AlternativeMode::Ordered,
                self.ordered.iter().map(|e| self.base.overridden_by(e)).collect(),
            )
        } else {
            (AlternativeMode::Single, vec![self.base.clone()])
        };
        let mut mode = outer;
        let mut requests: Vec<ResourceRequest> = Vec::new();
        for fields in &entries {
            let options = match &fields.accelerators {
                None => vec![None],
                Some(spec) => {
                    if mode == AlternativeMode::Single {
                        mode = match spec {
                            AcceleratorSpec::One(..) => AlternativeMode::Single,
                            AcceleratorSpec::AnyOf(_) => AlternativeMode::AnyOf,
                            AcceleratorSpec::Ordered(_) => AlternativeMode::Ordered,
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
        if requests.len() == 1 {
            mode = AlternativeMode::Single;
        }
        Alternatives { mode, requests }
    }
}

/// A parsed `infra` value; `None` parts mean any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Infra {
    /// Canonical lowercase cloud (`kubernetes` for `k8s`).
    pub cloud: Option<String>,
    /// Region, or the kubeconfig context for Kubernetes.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
}

/// Why an `infra` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraError {
    /// The accepted forms.
    pub expected: String,
    /// For a misspelled cloud, the infra string with the cloud corrected.
    pub hint: Option<String>,
}

/// Parses `aws`, `aws/us-east-1`, `gcp/*/us-central1-a`, `k8s/my/context` or `*`; `*` or an
/// absent part means any. For Kubernetes everything after `k8s/` is the context.
///
/// ```
/// use skyplan_optimizer::spec::parse_infra;
/// let infra = parse_infra("k8s/my-ctx").unwrap();
/// assert_eq!((infra.cloud.as_deref(), infra.region.as_deref()), (Some("kubernetes"), Some("my-ctx")));
/// assert_eq!(parse_infra("awz").unwrap_err().hint.as_deref(), Some("aws"));
/// ```
pub fn parse_infra(text: &str) -> Result<Infra, InfraError> {
    let trimmed = text.trim();
    let bad = || InfraError {
        expected: INFRA_EXPECTED.to_string(),
        hint: None,
    };
    if trimmed.is_empty() {
        return Err(bad());
    }
    let (head, rest) = match trimmed.split_once('/') {
        Some((head, rest)) => (head, Some(rest)),
        None => (trimmed, None),
    };
    let cloud = if head == "*" {
        None
    } else {
        match canonical_cloud(head) {
            Some(cloud) => Some(cloud),
            None => {
                let hint = closest(head, KNOWN_CLOUDS.iter().copied().chain(["k8s"]))
                    .map(|c| rest.map(|r| format!("{c}/{r}")).unwrap_or_else(|| c.to_string()));
                return Err(InfraError {
                    expected: INFRA_EXPECTED.to_string(),
                    hint,
                });
            }
        }
    };
    let any = |part: &str| (part != "*").then(|| part.to_string());
    let Some(rest) = rest else {
        return Ok(Infra {
            cloud,
            region: None,
            zone: None,
        });
    };
    if cloud.as_deref() == Some("kubernetes") {
        let context = rest.trim();
        if context.is_empty() {
            return Err(bad());
        }
        return Ok(Infra {
            cloud,
            region: any(context),
            zone: None,
        });
    }
    let parts: Vec<&str> = rest.split('/').map(str::trim).collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let region = parts.first().and_then(|p| any(p));
    let zone = parts.get(1).and_then(|p| any(p));
    Ok(Infra { cloud, region, zone })
}

/// The canonical name of a cloud (`K8s` → `kubernetes`), or `None` when unknown.
pub fn canonical_cloud(name: &str) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    if lower == "k8s" {
        return Some("kubernetes".to_string());
    }
    KNOWN_CLOUDS.contains(&lower.as_str()).then_some(lower)
}

/// Parses `NAME[:COUNT]` (count 1 when absent), as `accelerators: L4:1` and `--gpus` take it.
/// Names are not checked against known accelerators here (the catalog does that, with hints),
/// but must not hold YAML punctuation: `"{L4, A10G}"` in quotes is a mistake, not a name.
pub fn parse_accelerator(text: &str) -> Result<(String, f64), String> {
    let (name, count) = parse_accelerator_request(text).map_err(|_| ACCELERATOR_EXPECTED.to_string())?;
    if name.contains(['{', '}', '[', ']', ',', ':', '"', '\'']) {
        return Err(ACCELERATOR_EXPECTED.to_string());
    }
    Ok((name, count.unwrap_or(1.0)))
}

/// Parses an `Amount` (`4`, `4+`) that must be positive.
pub fn parse_positive_amount(text: &str) -> Result<Amount, String> {
    match text.parse::<Amount>() {
        Ok(amount) if amount.value > 0.0 => Ok(amount),
        _ => Err(AMOUNT_EXPECTED.to_string()),
    }
}

/// Where the accelerators of one mapping were written, for errors found after parsing.
struct Parsed<'n> {
    fields: ResourceFields,
    accelerators_node: Option<&'n Node>,
}

/// Parses the `resources` node (null = no requirements).
pub(crate) fn parse_resources(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<ResourcesSpec, SpecError> {
    let mut any_of_node = None;
    let mut ordered_node = None;
    let base = parse_fields(ctx, node, path, true, &mut any_of_node, &mut ordered_node)?;
    let mut spec = ResourcesSpec {
        base: base.fields,
        ..ResourcesSpec::default()
    };
    if let (Some(_), Some((ordered_key, _))) = (any_of_node, ordered_node) {
        return Err(SpecError::Conflict {
            at: ctx.at(ordered_key),
            path: child(path, "ordered"),
            message: "cannot be combined with any_of; use one of them".to_string(),
        });
    }
    for (list_node, is_any_of) in [(any_of_node, true), (ordered_node, false)]
        .into_iter()
        .filter_map(|(n, any)| n.map(|(_, v)| (v, any)))
    {
        let name = if is_any_of { "any_of" } else { "ordered" };
        let list_path = child(path, name);
        let Value::Seq(items) = &list_node.value else {
            return Err(ctx.invalid(list_node, &list_path, "a non-empty list of resource mappings"));
        };
        if items.is_empty() {
            return Err(ctx.invalid(list_node, &list_path, "a non-empty list of resource mappings"));
        }
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = index(&list_path, i);
            if !matches!(item.value, Value::Map(_)) {
                return Err(ctx.invalid(item, &item_path, RESOURCES_EXPECTED));
            }
            let (mut nested_any, mut nested_ordered) = (None, None);
            let parsed = parse_fields(ctx, item, &item_path, false, &mut nested_any, &mut nested_ordered)?;
            // Reject the two accelerator mixes without one clear meaning (see the module docs).
            let inherited = parsed
                .fields
                .accelerators
                .as_ref()
                .or(spec.base.accelerators.as_ref());
            let at_node = parsed
                .accelerators_node
                .or(base.accelerators_node)
                .unwrap_or(item);
            let at_path = if parsed.accelerators_node.is_some() {
                child(&item_path, "accelerators")
            } else {
                child(path, "accelerators")
            };
            match (is_any_of, inherited) {
                (true, Some(AcceleratorSpec::Ordered(_))) => {
                    return Err(SpecError::Conflict {
                        at: ctx.at(at_node),
                        path: at_path,
                        message: "an ordered accelerator list cannot be used inside any_of; \
                                  use a set like {L4, A10G}, or list the alternatives under ordered"
                            .to_string(),
                    });
                }
                (false, Some(AcceleratorSpec::AnyOf(_))) => {
                    return Err(SpecError::Conflict {
                        at: ctx.at(at_node),
                        path: at_path,
                        message: "an accelerator set cannot be used inside ordered; \
                                  use a list like [L4:1, A10G:1], or list the alternatives under any_of"
                            .to_string(),
                    });
                }
                _ => {}
            }
            entries.push(parsed.fields);
        }
        if is_any_of {
            spec.any_of = entries;
        } else {
            spec.ordered = entries;
        }
    }
    Ok(spec)
}

type KeyValue<'n> = Option<(&'n Node, &'n Node)>;

fn parse_fields<'n>(
    ctx: Ctx<'_>,
    node: &'n Node,
    path: &str,
    top: bool,
    any_of: &mut KeyValue<'n>,
    ordered: &mut KeyValue<'n>,
) -> Result<Parsed<'n>, SpecError> {
    let entries = ctx.mapping(node, path, RESOURCES_EXPECTED)?;
    let mut fields = ResourceFields::default();
    let mut accelerators_node = None;
    let mut infra: Option<&Entry<'n>> = None;
    let mut old_style: Option<&Entry<'n>> = None;
    for entry in &entries {
        let field_path = child(path, &entry.key);
        let value = entry.value;
        match entry.key.as_str() {
            "infra" => {
                infra = Some(entry);
                if value.value == Value::Null {
                    continue;
                }
                let text = ctx.string(value, &field_path, INFRA_EXPECTED)?;
                let infra = parse_infra(&text).map_err(|e| SpecError::InvalidValue {
                    at: ctx.at(value),
                    path: field_path.clone(),
                    expected: e.expected,
                    found: describe(value),
                    hint: e.hint,
                })?;
                (fields.cloud, fields.region, fields.zone) = (infra.cloud, infra.region, infra.zone);
            }
            "cloud" => {
                old_style = old_style.or(Some(entry));
                if let Some(text) = ctx.opt_string(value, &field_path, CLOUD_EXPECTED)? {
                    if text.trim() == "*" {
                        continue;
                    }
                    fields.cloud = Some(canonical_cloud(&text).ok_or_else(|| SpecError::InvalidValue {
                        at: ctx.at(value),
                        path: field_path.clone(),
                        expected: CLOUD_EXPECTED.to_string(),
                        found: describe(value),
                        hint: closest(&text, KNOWN_CLOUDS.iter().copied().chain(["k8s"])).map(str::to_string),
                    })?);
                }
            }
            "region" | "zone" => {
                old_style = old_style.or(Some(entry));
                let text = ctx.opt_string(value, &field_path, "a name, e.g. us-east-1")?;
                let text = text
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty() && t != "*");
                if entry.key == "region" {
                    fields.region = text;
                } else {
                    fields.zone = text;
                }
            }
            "accelerators" => {
                accelerators_node = Some(value);
                fields.accelerators = parse_accelerators(ctx, value, &field_path)?;
            }
            "cpus" => fields.cpus = parse_amount(ctx, value, &field_path)?,
            "memory" => fields.memory = parse_amount(ctx, value, &field_path)?,
            "instance_type" => {
                fields.instance_type = ctx.opt_string(value, &field_path, "an instance type name")?
            }
            "use_spot" => {
                fields.use_spot = match value.value {
                    Value::Null => None,
                    _ => Some(ctx.boolean(value, &field_path)?),
                }
            }
            "disk_size" => fields.disk_size_gb = parse_disk_size(ctx, value, &field_path)?,
            "ports" => fields.ports = parse_ports(ctx, value, &field_path)?,
            "image_id" => {
                fields.image_id =
                    ctx.opt_string(value, &field_path, "an image id, e.g. docker:ubuntu:22.04")?
            }
            "labels" => fields.labels = parse_labels(ctx, value, &field_path)?,
            "max_hourly_cost" => fields.max_hourly_cost = parse_cost(ctx, value, &field_path)?,
            "disk_tier" => check_choice(
                ctx,
                value,
                &field_path,
                &["low", "medium", "high", "ultra", "best"],
            )?,
            "network_tier" => check_choice(ctx, value, &field_path, &["standard", "best"])?,
            "autostop" => check_autostop(ctx, value, &field_path)?,
            "job_recovery" => check_job_recovery(ctx, value, &field_path)?,
            "any_of" | "ordered" if top => {
                let slot = if entry.key == "any_of" {
                    &mut *any_of
                } else {
                    &mut *ordered
                };
                *slot = Some((entry.key_node, value));
            }
            "any_of" | "ordered" => {
                return Err(SpecError::Conflict {
                    at: ctx.at(entry.key_node),
                    path: field_path,
                    message: "any_of and ordered cannot be nested; write every alternative in one list"
                        .to_string(),
                });
            }
            _ => return Err(ctx.unknown_key(entry, path, RESOURCE_KEYS, TASK_KEYS_ELSEWHERE)),
        }
    }
    if let (Some(infra), Some(old)) = (infra, old_style) {
        let later = if old.key_node.line > infra.key_node.line
            || (old.key_node.line == infra.key_node.line && old.key_node.column > infra.key_node.column)
        {
            old
        } else {
            infra
        };
        return Err(SpecError::Conflict {
            at: ctx.at(later.key_node),
            path: child(path, &later.key),
            message: format!(
                "{} cannot be combined with {}; write the location once, e.g. infra: aws/us-east-1",
                if later.key == "infra" {
                    "infra"
                } else {
                    later.key.as_str()
                },
                if later.key == "infra" {
                    old.key.as_str()
                } else {
                    "infra"
                },
            ),
        });
    }
    Ok(Parsed {
        fields,
        accelerators_node,
    })
}

fn parse_accelerators(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<Option<AcceleratorSpec>, SpecError> {
    let one = |item: &Node, item_path: &str| -> Result<(String, f64), SpecError> {
        let text = ctx.string(item, item_path, ACCELERATOR_EXPECTED)?;
        parse_accelerator(&text).map_err(|expected| ctx.invalid(item, item_path, expected))
    };
    match &node.value {
        Value::Null => Ok(None),
        Value::Str(_) => one(node, path).map(|(name, count)| Some(AcceleratorSpec::One(name, count))),
        Value::Map(_) => {
            let entries = ctx.mapping(node, path, ACCELERATORS_EXPECTED)?;
            if entries.is_empty() {
                return Err(ctx.invalid(node, path, ACCELERATORS_EXPECTED));
            }
            let mut list = Vec::with_capacity(entries.len());
            for entry in &entries {
                let entry_path = child(path, &entry.key);
                let accelerator = if entry.value.value == Value::Null {
                    // A set member: `{L4, A10G}`, or `{L4:1, A10G:1}` (plain scalars with colons).
                    one(entry.key_node, &entry_path)?
                } else {
                    let (name, _) = one(entry.key_node, &entry_path)?;
                    if entry.key.contains(':') {
                        return Err(ctx.invalid(
                            entry.key_node,
                            &entry_path,
                            "NAME: COUNT without a count in the name",
                        ));
                    }
                    (name, parse_count(ctx, entry.value, &entry_path)?)
                };
                list.push(accelerator);
            }
            Ok(Some(if list.len() == 1 {
                let (name, count) = list.remove(0);
                AcceleratorSpec::One(name, count)
            } else {
                AcceleratorSpec::AnyOf(list)
            }))
        }
        Value::Seq(items) => {
            if items.is_empty() {
                return Err(ctx.invalid(node, path, ACCELERATORS_EXPECTED));
            }
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item_path = index(path, i);
                match &item.value {
                    Value::Map(_) => match parse_accelerators(ctx, item, &item_path)? {
                        Some(AcceleratorSpec::One(name, count)) => list.push((name, count)),
                        _ => return Err(ctx.invalid(item, &item_path, ACCELERATOR_EXPECTED)),
                    },
                    _ => list.push(one(item, &item_path)?),
                }
            }
            Ok(Some(if list.len() == 1 {
                let (name, count) = list.remove(0);
                AcceleratorSpec::One(name, count)
            } else {
                AcceleratorSpec::Ordered(list)
            }))
        }
        Value::Bool(_) | Value::Int(_) | Value::Float(_) => {
            Err(ctx.invalid(node, path, ACCELERATORS_EXPECTED))
        }
    }
}

fn parse_count(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<f64, SpecError> {
    let count = match &node.value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    count
        .filter(|c| c.is_finite() && *c > 0.0)
        .ok_or_else(|| ctx.invalid(node, path, "a positive accelerator count, e.g. 1"))
}

fn parse_amount(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<Option<Amount>, SpecError> {
    if node.value == Value::Null {
        return Ok(None);
    }
    let text = match &node.value {
        Value::Int(_) | Value::Float(_) | Value::Str(_) => scalar_text(node),
        _ => None,
    };
    text.and_then(|t| parse_positive_amount(&t).ok())
        .map(Some)
        .ok_or_else(|| ctx.invalid(node, path, AMOUNT_EXPECTED))
}

fn parse_disk_size(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<Option<u32>, SpecError> {
    let size = match &node.value {
        Value::Null => return Ok(None),
        Value::Int(i) => u32::try_from(*i).ok(),
        Value::Float(f) if f.fract() == 0.0 && *f >= 1.0 && *f <= f64::from(u32::MAX) => Some(*f as u32),
        Value::Str(s) => s.trim().trim_end_matches("GB").trim().parse::<u32>().ok(),
        _ => None,
    };
    size.filter(|s| *s > 0)
        .map(Some)
        .ok_or_else(|| ctx.invalid(node, path, DISK_EXPECTED))
}

fn parse_ports(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<Option<Vec<PortRange>>, SpecError> {
    let one = |item: &Node, item_path: &str| -> Result<PortRange, SpecError> {
        match &item.value {
            Value::Int(_) | Value::Str(_) => scalar_text(item)
                .ok_or_else(|| ctx.invalid(item, item_path, PORTS_EXPECTED))?
                .parse::<PortRange>()
                .map_err(|expected| ctx.invalid(item, item_path, expected)),
            _ => Err(ctx.invalid(item, item_path, PORTS_EXPECTED)),
        }
    };
    match &node.value {
        Value::Null => Ok(None),
        Value::Seq(items) => {
            let mut ports = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let range = one(item, &index(path, i))?;
                if !ports.contains(&range) {
                    ports.push(range);
                }
            }
            Ok(Some(ports))
        }
        _ => Ok(Some(vec![one(node, path)?])),
    }
}

fn parse_labels(
    ctx: Ctx<'_>,
    node: &Node,
    path: &str,
) -> Result<Option<BTreeMap<String, String>>, SpecError> {
    if node.value == Value::Null {
        return Ok(None);
    }
    let mut labels = BTreeMap::new();
    for entry in ctx.mapping(node, path, "a mapping of label names to values")? {
        let entry_path = child(path, &entry.key);
        let value = match &entry.value.value {
            Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => scalar_text(entry.value),
            _ => None,
        }
        .ok_or_else(|| ctx.invalid(entry.value, &entry_path, "a string value"))?;
        labels.insert(entry.key, value);
    }
    Ok(Some(labels))
}

fn parse_cost(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<Option<Decimal>, SpecError> {
    let text = match &node.value {
        Value::Null => return Ok(None),
        Value::Int(_) | Value::Float(_) => scalar_text(node),
        Value::Str(s) => Some(s.trim().trim_start_matches('$').trim().to_string()),
        _ => None,
    };
    text.and_then(|t| {
        Decimal::from_str(&t)
            .or_else(|_| Decimal::from_scientific(&t))
            .ok()
    })
    .filter(|d| !d.is_sign_negative())
    .map(Some)
    .ok_or_else(|| ctx.invalid(node, path, COST_EXPECTED))
}

fn check_choice(ctx: Ctx<'_>, node: &Node, path: &str, choices: &[&str]) -> Result<(), SpecError> {
    if node.value == Value::Null {
        return Ok(());
    }
    let expected = format!("one of {}", choices.join(", "));
    let text = ctx.string(node, path, &expected)?;
    if choices.contains(&text.trim().to_ascii_lowercase().as_str()) {
        return Ok(());
    }
    Err(SpecError::InvalidValue {
        at: ctx.at(node),
        path: path.to_string(),
        expected,
        found: describe(node),
        hint: closest(&text, choices.iter().copied()).map(str::to_string),
    })
}

fn check_autostop(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<(), SpecError> {
    const EXPECTED: &str = "true, false, idle minutes (e.g. 10), a duration like 1h, \
                            or a mapping with idle_minutes, down, wait_for";
    match &node.value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Int(i) if *i >= 0 => Ok(()),
        Value::Str(s)
            if super::task::parse_duration_hours(s).is_ok() || super::yaml::parse_bool(s).is_some() =>
        {
            Ok(())
        }
        Value::Map(_) => {
            for entry in ctx.mapping(node, path, EXPECTED)? {
                let entry_path = child(path, &entry.key);
                match entry.key.as_str() {
                    "idle_minutes" => match entry.value.value {
                        Value::Int(i) if i >= 0 => {}
                        _ => return Err(ctx.invalid(entry.value, &entry_path, "a whole number of minutes")),
                    },
                    "down" => {
                        ctx.boolean(entry.value, &entry_path)?;
                    }
                    "wait_for" => {
                        check_choice(ctx, entry.value, &entry_path, &["jobs_and_ssh", "jobs", "none"])?;
                    }
                    "hook" | "hook_timeout" => {}
                    _ => {
                        return Err(ctx.unknown_key(
                            &entry,
                            path,
                            &["idle_minutes", "down", "wait_for", "hook", "hook_timeout"],
                            &[],
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Err(ctx.invalid(node, path, EXPECTED)),
    }
}

fn check_job_recovery(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<(), SpecError> {
    const STRATEGIES: &[&str] = &["failover", "eager_next_region", "none"];
    match &node.value {
        Value::Null => Ok(()),
        Value::Str(_) => check_choice(ctx, node, path, STRATEGIES),
        Value::Map(_) => {
            for entry in ctx.mapping(node, path, "a strategy name or a mapping")? {
                let entry_path = child(path, &entry.key);
                match entry.key.as_str() {
                    "strategy" => check_choice(ctx, entry.value, &entry_path, STRATEGIES)?,
                    "max_restarts_on_errors" => match entry.value.value {
                        Value::Int(i) if i >= 0 => {}
                        _ => return Err(ctx.invalid(entry.value, &entry_path, "a whole number, e.g. 3")),
                    },
                    "recover_on_exit_codes" => {}
                    _ => {
                        return Err(ctx.unknown_key(
                            &entry,
                            path,
                            &["strategy", "max_restarts_on_errors", "recover_on_exit_codes"],
                            &[],
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Err(ctx.invalid(
            node,
            path,
            "a strategy name (failover, eager_next_region) or a mapping",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::load_documents;

    fn resources(yaml: &str) -> Result<ResourcesSpec, SpecError> {
        let docs = load_documents(yaml, "r.yaml")?;
        let node = docs.into_iter().next().unwrap_or_else(Node::null);
        parse_resources(Ctx { file: "r.yaml" }, &node, "resources")
    }

    #[track_caller]
    fn error(yaml: &str) -> String {
        resources(yaml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("no error for {yaml:?}"))
    }

    fn accel(name: &str, count: f64) -> Option<(String, f64)> {
        Some((name.to_string(), count))
    }

    #[test]
    fn infra_forms() {
        let p = |s: &str| {
            let infra = parse_infra(s).unwrap();
            (infra.cloud, infra.region, infra.zone)
        };
        let s = |v: &str| Some(v.to_string());
        assert_eq!(p("aws"), (s("aws"), None, None));
        assert_eq!(p("AWS/us-east-1"), (s("aws"), s("us-east-1"), None));
        assert_eq!(
            p("aws/us-east-1/us-east-1a"),
            (s("aws"), s("us-east-1"), s("us-east-1a"))
        );
        assert_eq!(p("gcp/*/us-central1-a"), (s("gcp"), None, s("us-central1-a")));
        assert_eq!(p("k8s"), (s("kubernetes"), None, None));
        assert_eq!(p("kubernetes"), (s("kubernetes"), None, None));
        assert_eq!(p("k8s/my-ctx"), (s("kubernetes"), s("my-ctx"), None));
        assert_eq!(
            p("k8s/arn:aws:eks:us-east-1:1:cluster/prod"),
            (s("kubernetes"), s("arn:aws:eks:us-east-1:1:cluster/prod"), None)
        );
        assert_eq!(p("*"), (None, None, None));
        assert_eq!(p("*/us-east-1"), (None, s("us-east-1"), None));
        assert!(parse_infra("").is_err());
        assert!(parse_infra("aws//x").is_err());
        assert!(parse_infra("aws/a/b/c").is_err());
        assert!(parse_infra("k8s/").is_err());
        assert_eq!(
            parse_infra("awz/us-east-1").unwrap_err().hint.as_deref(),
            Some("aws/us-east-1")
        );
    }

    #[test]
    fn unknown_cloud_in_infra_is_located_with_hint() {
        assert_eq!(
            error("infra: awz/us-east-1\n"),
            format!(
                "r.yaml:1:8: resources.infra: expected {INFRA_EXPECTED}, found \"awz/us-east-1\"; did you mean \"aws/us-east-1\"?"
            )
        );
        assert!(error("cloud: gpc\n").ends_with("found \"gpc\"; did you mean \"gcp\"?"));
    }

    #[test]
    fn infra_conflicts_with_cloud() {
        assert_eq!(
            error("infra: aws\ncloud: gcp\n"),
            "r.yaml:2:1: resources.cloud: cloud cannot be combined with infra; write the location once, e.g. infra: aws/us-east-1"
        );
        // Old style alone is fine.
        let spec = resources("cloud: k8s\nregion: my-ctx\n").unwrap();
        assert_eq!(spec.base.cloud.as_deref(), Some("kubernetes"));
        assert_eq!(spec.base.region.as_deref(), Some("my-ctx"));
    }

    #[test]
    fn accelerator_forms() {
        let single = |yaml: &str| resources(yaml).unwrap().alternatives();
        for yaml in [
            "accelerators: H100:8\n",
            "accelerators: {H100: 8}\n",
            "accelerators:\n  H100: 8\n",
        ] {
            let alts = single(yaml);
            assert_eq!(alts.mode, AlternativeMode::Single, "{yaml}");
            assert_eq!(alts.requests[0].accelerator, accel("H100", 8.0), "{yaml}");
        }
        assert_eq!(
            single("accelerators: H100\n").requests[0].accelerator,
            accel("H100", 1.0)
        );
        assert_eq!(single("accelerators: [L4:2]\n").mode, AlternativeMode::Single);

        let set = single("accelerators: {L4, A10G:2}\n");
        assert_eq!(set.mode, AlternativeMode::AnyOf);
        let names: Vec<_> = set.requests.iter().map(|r| r.accelerator.clone()).collect();
        assert_eq!(names, vec![accel("L4", 1.0), accel("A10G", 2.0)]);

        let map = single("accelerators: {L4: 1, A10G: 2}\n");
        assert_eq!(map.mode, AlternativeMode::AnyOf);
        assert_eq!(map.requests.len(), 2);

        let list = single("accelerators: [L4:1, {A10G: 1}, T4]\n");
        assert_eq!(list.mode, AlternativeMode::Ordered);
        let names: Vec<_> = list.requests.iter().map(|r| r.accelerator.clone()).collect();
        assert_eq!(
            names,
            vec![accel("L4", 1.0), accel("A10G", 1.0), accel("T4", 1.0)]
        );
    }

    #[test]
    fn bad_accelerators() {
        assert_eq!(
            error("accelerators: L4:x\n"),
            "r.yaml:1:15: resources.accelerators: expected NAME:COUNT with a positive number, e.g. L4:1, found \"L4:x\""
        );
        assert!(error("accelerators: L4:0\n").contains("found \"L4:0\""));
        assert!(
            error("accelerators: {L4: -1}\n")
                .starts_with("r.yaml:1:20: resources.accelerators.L4: expected a positive")
        );
        assert!(
            error("accelerators: [L4:1, 3]\n")
                .starts_with("r.yaml:1:22: resources.accelerators[1]: expected")
        );
        assert!(error("accelerators: []\n").contains("found a list"));
        assert!(error("accelerators: 4\n").contains("found 4"));
        assert!(error("accelerators: \"{L4, A10G}\"\n").contains("found \"{L4, A10G}\""));
        assert!(error("accelerators: L4:1:2\n").contains("found \"L4:1:2\""));
    }

    #[test]
    fn amounts() {
        let spec = resources("cpus: 4+\nmemory: 16\n").unwrap();
        assert_eq!(spec.base.cpus, Some(Amount::at_least(4.0)));
        assert_eq!(spec.base.memory, Some(Amount::exactly(16.0)));
        assert_eq!(
            resources("cpus: 0.5\n").unwrap().base.cpus,
            Some(Amount::exactly(0.5))
        );
        assert_eq!(
            error("cpus: -1\n"),
            "r.yaml:1:7: resources.cpus: expected a positive number, optionally followed by + (e.g. 4 or 4+), found -1"
        );
        assert!(error("memory: lots\n").contains("resources.memory: expected a positive number"));
        assert!(error("cpus: 0\n").contains("found 0"));
    }

    #[test]
    fn ports() {
        let ports = |yaml: &str| resources(yaml).unwrap().base.ports.unwrap();
        assert_eq!(ports("ports: 8000\n"), vec![PortRange::single(8000)]);
        assert_eq!(
            ports("ports: \"8000-8010\"\n"),
            vec![PortRange {
                start: 8000,
                end: 8010
            }]
        );
        assert_eq!(ports("ports: [80, 443, 8000-8002, 80]\n").len(), 3);
        assert_eq!(
            error("ports: 99999\n"),
            "r.yaml:1:8: resources.ports: expected a port 1-65535, a range like 8000-8010, or a list of them, found 99999"
        );
        assert!(error("ports: [80, 0]\n").starts_with("r.yaml:1:13: resources.ports[1]: expected"));
        assert!(error("ports: 9000-8000\n").contains("first port is not above its last"));
        assert!(error("ports: 1.5\n").contains("found 1.5"));
        assert_eq!(PortRange { start: 1, end: 3 }.to_string(), "1-3");
    }

    #[test]
    fn other_fields() {
        let spec = resources(
            "instance_type: p5.48xlarge\nuse_spot: yes\ndisk_size: 256\nimage_id: docker:ubuntu\n\
             labels: {team: ml, tier: 1}\nmax_hourly_cost: 2.5\ndisk_tier: best\nautostop: 10m\n\
             job_recovery: {strategy: failover, max_restarts_on_errors: 3}\n",
        )
        .unwrap();
        let request = &spec.alternatives().requests[0];
        assert_eq!(request.instance_type.as_deref(), Some("p5.48xlarge"));
        assert!(request.use_spot);
        assert_eq!(request.disk_size_gb, Some(256));
        assert_eq!(request.docker_image(), Some("ubuntu"));
        assert_eq!(request.labels.get("tier").map(String::as_str), Some("1"));
        assert_eq!(request.max_hourly_cost, Some(Decimal::new(25, 1)));
        assert!(
            error("use_spot: maybe\n")
                .contains("resources.use_spot: expected true or false, found \"maybe\"")
        );
        assert!(error("disk_size: -5\n").contains("resources.disk_size: expected a positive whole number"));
        assert!(
            error("max_hourly_cost: -1\n").contains("resources.max_hourly_cost: expected a non-negative")
        );
        assert!(error("disk_tier: fast\n").contains("expected one of low, medium, high, ultra, best"));
        assert!(
            error("autostop: {idle: 3}\n")
                .contains("resources.autostop.idle: unknown key; did you mean \"idle_minutes\"?")
        );
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            error("acclerators: L4\n"),
            "r.yaml:1:1: resources.acclerators: unknown key; did you mean \"accelerators\"?"
        );
        assert_eq!(
            error("cpus: 2\nenvs: {}\n"),
            "r.yaml:2:1: resources.envs: unknown key; did you mean \"envs (at the top level)\"?"
        );
        assert!(error("qqq: 1\n").contains("unknown key; expected one of: infra, cloud,"));
    }

    #[test]
    fn any_of_expansion() {
        let spec = resources(
            "cpus: 8+\ninfra: aws/us-east-1\nany_of:\n  - accelerators: {L4, A10G}\n  - infra: gcp\n    accelerators: T4\n  - region: us-west-2\n",
        )
        .unwrap();
        let alts = spec.alternatives();
        assert_eq!(alts.mode, AlternativeMode::AnyOf);
        let got: Vec<_> = alts
            .requests
            .iter()
            .map(|r| (r.cloud.clone(), r.region.clone(), r.accelerator.clone(), r.cpus))
            .collect();
        let s = |v: &str| Some(v.to_string());
        let cpus = Some(Amount::at_least(8.0));
        assert_eq!(
            got,
            vec![
                (s("aws"), s("us-east-1"), accel("L4", 1.0), cpus),
                (s("aws"), s("us-east-1"), accel("A10G", 1.0), cpus),
                (s("gcp"), None, accel("T4", 1.0), cpus),
                (s("aws"), s("us-west-2"), None, cpus),
            ]
        );
    }

    #[test]
    fn ordered_expansion() {
        let spec = resources(
            "use_spot: true\nordered:\n  - accelerators: [H100:8, A100-80GB:8]\n  - accelerators: A100:8\n    use_spot: false\n",
        )
        .unwrap();
        let alts = spec.alternatives();
        assert_eq!(alts.mode, AlternativeMode::Ordered);
        let got: Vec<_> = alts
            .requests
            .iter()
            .map(|r| (r.accelerator.clone(), r.use_spot))
            .collect();
        assert_eq!(
            got,
            vec![
                (accel("H100", 8.0), true),
                (accel("A100-80GB", 8.0), true),
                (accel("A100", 8.0), false)
            ]
        );
        // One entry is just a single request.
        assert_eq!(
            resources("ordered:\n  - cpus: 2\n").unwrap().alternatives().mode,
            AlternativeMode::Single
        );
        // No resources at all: one unconstrained request.
        let empty = resources("").unwrap().alternatives();
        assert_eq!((empty.mode, empty.requests.len()), (AlternativeMode::Single, 1));
    }

    #[test]
    fn ambiguous_mixes_are_rejected() {
        assert!(
            error("any_of:\n  - cpus: 2\nordered:\n  - cpus: 4\n")
                .starts_with("r.yaml:3:1: resources.ordered: cannot be combined with any_of")
        );
        assert!(
            error("any_of:\n  - accelerators: [L4, T4]\n")
                .starts_with("r.yaml:2:19: resources.any_of[0].accelerators: an ordered accelerator list cannot be used inside any_of")
        );
        assert!(
            error("accelerators: {L4, T4}\nordered:\n  - cpus: 2\n").starts_with(
                "r.yaml:1:15: resources.accelerators: an accelerator set cannot be used inside ordered"
            )
        );
        assert!(
            error("any_of:\n  - any_of: []\n")
                .contains("resources.any_of[0].any_of: any_of and ordered cannot be nested")
        );
        assert!(error("any_of: []\n").contains("resources.any_of: expected a non-empty list"));
        assert!(
            error("any_of: [4]\n").contains("resources.any_of[0]: expected a mapping of resource fields")
        );
        // Built in code, the outer mode wins.
        let spec = ResourcesSpec {
            base: ResourceFields {
                accelerators: Some(AcceleratorSpec::AnyOf(vec![
                    ("L4".into(), 1.0),
                    ("T4".into(), 1.0),
                ])),
                ..ResourceFields::default()
            },
            ordered: vec![
                ResourceFields::default(),
                ResourceFields {
                    cpus: Some(Amount::exactly(2.0)),
                    ..ResourceFields::default()
                },
            ],
            any_of: vec![],
        };
        let alts = spec.alternatives();
        assert_eq!((alts.mode, alts.requests.len()), (AlternativeMode::Ordered, 4));
    }

    #[test]
    fn requests_serialize() {
        let spec = resources("accelerators: L4:1\ncpus: 4+\nports: 8000\nmax_hourly_cost: 1.25\n").unwrap();
        let json = serde_json::to_value(&spec.alternatives().requests[0]).unwrap();
        assert_eq!(json["accelerator"], serde_json::json!(["L4", 1.0]));
        assert_eq!(json["cpus"], serde_json::json!("4+"));
        assert_eq!(json["ports"], serde_json::json!([{"start": 8000, "end": 8000}]));
        assert_eq!(json["max_hourly_cost"], serde_json::json!("1.25"));
    }
}
