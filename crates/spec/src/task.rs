//! One task of a task file: the top-level fields (`name`, `envs`, `secrets`, `setup`, `run`,
//! `resources`, ...) and our extensions (`depends_on`, `inputs`/`outputs` sizes, `duration`), with
//! the secret handling that keeps secret values out of logs, plans and `--json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use skyplan_catalog::money::MAX_DURATION_HOURS;

pub use super::env::is_valid_env_name;
use super::env::parse_env_entry;
use super::error::{Position, SpecError};
pub use super::file_mounts::FileMount;
use super::file_mounts::parse_file_mounts;
use super::resources::{Alternatives, ResourcesSpec};
use super::resources_parse::{accelerator_positions, parse_resources};
pub use super::secret::{REDACTED, SecretString, is_secret_env, redact_text};
use super::yaml::{Ctx, Node, Value, child, describe_kind, index, scalar_text};

/// The most nodes one task may ask for (`num_nodes`, `--num-nodes`): more is a typo, not a plan,
/// and a backend would be asked to create every one of them.
pub const MAX_NUM_NODES: u32 = 1000;

/// What `num_nodes` accepts.
pub(crate) const NUM_NODES_EXPECTED: &str = "a whole number of nodes from 1 to 1000, e.g. 2";

/// Top-level keys of a task.
const TASK_KEYS: &[&str] = &[
    "name",
    "workdir",
    "num_nodes",
    "envs",
    "secrets",
    "file_mounts",
    "setup",
    "run",
    "resources",
    "config",
    "depends_on",
    "inputs",
    "outputs",
    "duration",
];

/// Resource keys, for a hint when one is written at the top level by mistake.
const RESOURCE_KEYS_ELSEWHERE: &[(&str, &str)] = &[
    ("accelerators", "resources.accelerators"),
    ("gpus", "resources.accelerators"),
    ("cpus", "resources.cpus"),
    ("memory", "resources.memory"),
    ("infra", "resources.infra"),
    ("cloud", "resources.cloud"),
    ("region", "resources.region"),
    ("zone", "resources.zone"),
    ("instance_type", "resources.instance_type"),
    ("use_spot", "resources.use_spot"),
    ("disk_size", "resources.disk_size"),
    ("ports", "resources.ports"),
    ("image_id", "resources.image_id"),
    ("labels", "resources.labels"),
    ("max_hourly_cost", "resources.max_hourly_cost"),
    ("any_of", "resources.any_of"),
    ("ordered", "resources.ordered"),
];

const DURATION_EXPECTED: &str =
    "a positive number of hours up to 1000000, or a duration like 90m, 2h, 1h30m or 30s";
const DATA_EXPECTED: &str = "a size in GB (e.g. 100), or a one-entry mapping {PATH_OR_URI: SIZE_GB}";

/// Where things were written, for errors found after parsing (missing env values, unknown
/// dependencies). Empty for tasks built in code.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpecLocations {
    /// Where the task's document starts.
    pub task: Position,
    /// Where `name` is.
    pub name: Option<Position>,
    /// Where each env is declared.
    pub envs: BTreeMap<String, Position>,
    /// Where each secret is declared.
    pub secrets: BTreeMap<String, Position>,
    /// Where each `depends_on` entry is, parallel to [`TaskSpec::depends_on`].
    pub depends_on: Vec<Position>,
    /// Where `resources` is, when it holds at least one field.
    pub resources: Option<Position>,
    /// Where each accelerator name is written (as written, first occurrence), in `resources` and
    /// its `any_of` / `ordered` entries: to locate a name the catalog does not know.
    pub accelerators: BTreeMap<String, Position>,
}

/// One task, as SkyPilot's task YAML describes it (plus `depends_on`, `inputs`/`outputs` sizes
/// and `duration`).
///
/// `Debug` and `Serialize` redact secrets and token-like envs ([`is_secret_env`]).
#[derive(Clone, PartialEq)]
pub struct TaskSpec {
    /// Task name; needed to be referenced by `depends_on`.
    pub name: Option<String>,
    /// Local directory synced to the node's working directory.
    pub workdir: Option<String>,
    /// Nodes, all placed together. Default 1.
    pub num_nodes: u32,
    /// Environment; `None` = declared without a value, to be given with `--env NAME=VALUE`.
    /// Values of token-like names ([`is_secret_env`]) are secrets.
    pub envs: BTreeMap<String, Option<String>>,
    /// Secret environment; `None` = to be given with `--env NAME=VALUE`.
    pub secrets: BTreeMap<String, Option<SecretString>>,
    /// Remote path → what to put there.
    pub file_mounts: BTreeMap<String, FileMount>,
    /// Commands run once when the node is set up.
    pub setup: Option<String>,
    /// Commands that are the job.
    pub run: Option<String>,
    /// What the task needs and where it may run.
    pub resources: ResourcesSpec,
    /// Names of tasks in the same file that must finish first (our extension).
    pub depends_on: Vec<String>,
    /// Data read, in GB (drives egress cost on DAG edges). Default 0.
    pub inputs_gb: f64,
    /// Data written, in GB. Default 0.
    pub outputs_gb: f64,
    /// Where the inputs are, when given as `{URI: SIZE}`.
    pub inputs_uri: Option<String>,
    /// Where the outputs go, when given as `{URI: SIZE}`.
    pub outputs_uri: Option<String>,
    /// Expected run time in hours (our extension). Default 1.
    pub duration_hours: f64,
    /// The task's `config` section, as written.
    pub config: Option<serde_json::Value>,
    /// Where fields were written, for later errors.
    pub locations: SpecLocations,
}

impl Default for TaskSpec {
    fn default() -> Self {
        TaskSpec {
            name: None,
            workdir: None,
            num_nodes: 1,
            envs: BTreeMap::new(),
            secrets: BTreeMap::new(),
            file_mounts: BTreeMap::new(),
            setup: None,
            run: None,
            resources: ResourcesSpec::default(),
            depends_on: Vec::new(),
            inputs_gb: 0.0,
            outputs_gb: 0.0,
            inputs_uri: None,
            outputs_uri: None,
            duration_hours: 1.0,
            config: None,
            locations: SpecLocations::default(),
        }
    }
}

impl TaskSpec {
    /// The concrete resource requests this task may run on.
    pub fn alternatives(&self) -> Alternatives {
        self.resources.alternatives()
    }

    /// Whether the task has nothing to do: no `run`, no `setup` (blank scripts count as none)
    /// and no `resources` field. Such a task is rejected when a file is parsed.
    pub fn is_empty(&self) -> bool {
        let blank = |script: &Option<String>| script.as_deref().is_none_or(|s| s.trim().is_empty());
        blank(&self.run)
            && blank(&self.setup)
            && self.locations.resources.is_none()
            && self.resources == ResourcesSpec::default()
    }

    /// Whether the env or secret `name` is secret (declared under `secrets`, or token-like).
    pub fn is_secret(&self, name: &str) -> bool {
        self.secrets.contains_key(name) || is_secret_env(name)
    }

    /// Every secret value (from `secrets` and token-like envs), longest first, for scrubbing
    /// text with [`redact_text`].
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .secrets
            .values()
            .flatten()
            .map(SecretString::expose)
            .chain(
                self.envs
                    .iter()
                    .filter(|(name, _)| is_secret_env(name))
                    .filter_map(|(_, value)| value.as_deref()),
            )
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        values
    }

    /// `envs` with the values of token-like names replaced by `<redacted>`.
    fn envs_with_secrets_redacted(&self) -> BTreeMap<String, Option<String>> {
        self.envs
            .iter()
            .map(|(name, value)| {
                let shown = value.as_ref().map(|v| {
                    if is_secret_env(name) {
                        REDACTED.to_string()
                    } else {
                        v.clone()
                    }
                });
                (name.clone(), shown)
            })
            .collect()
    }

    /// Envs and secrets together, secret values replaced by `<redacted>`; for display.
    pub fn redacted_envs(&self) -> BTreeMap<String, Option<String>> {
        let mut out = self.envs_with_secrets_redacted();
        for (name, value) in &self.secrets {
            out.insert(name.clone(), value.as_ref().map(|_| REDACTED.to_string()));
        }
        out
    }

    /// `text` with this task's secret values replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        redact_text(text, &self.secret_values())
    }

    /// The environment the task's processes get: envs and secrets with their real values (null
    /// ones left out). Hand it to the process or a Kubernetes Secret; never log it.
    pub fn expose_env(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .envs
            .iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name.clone(), v)))
            .collect();
        for (name, value) in &self.secrets {
            if let Some(value) = value {
                out.insert(name.clone(), value.expose().to_string());
            }
        }
        out
    }

    /// The first env or secret still without a value, as a [`SpecError::MissingValue`].
    pub fn check_values(&self) -> Result<(), SpecError> {
        let missing_env = self
            .envs
            .iter()
            .find(|(_, v)| v.is_none())
            .map(|(name, _)| ("envs", name));
        let missing_secret = self
            .secrets
            .iter()
            .find(|(_, v)| v.is_none())
            .map(|(name, _)| ("secrets", name));
        let Some((section, name)) = missing_env.or(missing_secret) else {
            return Ok(());
        };
        let at = match section {
            "envs" => self.locations.envs.get(name),
            _ => self.locations.secrets.get(name),
        }
        .cloned()
        .unwrap_or_else(|| self.locations.task.clone());
        Err(SpecError::MissingValue {
            at: Box::new(at),
            path: child(section, name),
            name: name.clone(),
        })
    }
}

/// A view of a task with secrets redacted, for `Debug` and `Serialize`.
#[derive(Debug, Serialize)]
struct RedactedTask<'a> {
    name: &'a Option<String>,
    workdir: &'a Option<String>,
    num_nodes: u32,
    envs: BTreeMap<String, Option<String>>,
    secrets: &'a BTreeMap<String, Option<SecretString>>,
    file_mounts: &'a BTreeMap<String, FileMount>,
    setup: &'a Option<String>,
    run: &'a Option<String>,
    resources: &'a ResourcesSpec,
    depends_on: &'a Vec<String>,
    inputs_gb: f64,
    outputs_gb: f64,
    inputs_uri: &'a Option<String>,
    outputs_uri: &'a Option<String>,
    duration_hours: f64,
    config: &'a Option<serde_json::Value>,
}

impl TaskSpec {
    fn redacted_view(&self) -> RedactedTask<'_> {
        RedactedTask {
            name: &self.name,
            workdir: &self.workdir,
            num_nodes: self.num_nodes,
            envs: self.envs_with_secrets_redacted(),
            secrets: &self.secrets,
            file_mounts: &self.file_mounts,
            setup: &self.setup,
            run: &self.run,
            resources: &self.resources,
            depends_on: &self.depends_on,
            inputs_gb: self.inputs_gb,
            outputs_gb: self.outputs_gb,
            inputs_uri: &self.inputs_uri,
            outputs_uri: &self.outputs_uri,
            duration_hours: self.duration_hours,
            config: &self.config,
        }
    }
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.redacted_view();
        f.write_str("TaskSpec ")?;
        fmt::Debug::fmt(&view, f)
    }
}

impl Serialize for TaskSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted_view().serialize(serializer)
    }
}

/// Parses a duration into hours: a bare number is hours; otherwise number+unit parts (`s`, `m`,
/// `h`, `d` and their long forms), e.g. `90m`, `1h30m`, `1.5h`. Must be positive and at most
/// [`skyplan_catalog::money::MAX_DURATION_HOURS`] (1,000,000 hours): longer is a typo, and far
/// longer cannot be priced.
///
/// ```
/// use skyplan_spec::parse_duration_hours;
/// assert_eq!(parse_duration_hours("90m").unwrap(), 1.5);
/// assert_eq!(parse_duration_hours("1h30m").unwrap(), 1.5);
/// assert_eq!(parse_duration_hours("2").unwrap(), 2.0);
/// assert!(parse_duration_hours("0s").is_err() && parse_duration_hours("soon").is_err());
/// assert!(parse_duration_hours("1e30").is_err() && parse_duration_hours("1000001h").is_err());
/// ```
pub fn parse_duration_hours(text: &str) -> Result<f64, String> {
    let bad = || DURATION_EXPECTED.to_string();
    let in_range = |hours: f64| hours.is_finite() && hours > 0.0 && hours <= MAX_DURATION_HOURS;
    let text = text.trim();
    if let Ok(hours) = text.parse::<f64>() {
        return if in_range(hours) { Ok(hours) } else { Err(bad()) };
    }
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let per_hour = match rest[..unit_len].to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0 / 3600.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 1.0 / 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 1.0,
            "d" | "day" | "days" => 24.0,
            _ => return Err(bad()),
        };
        total += number * per_hour;
        rest = rest[unit_len..].trim_start();
    }
    if in_range(total) { Ok(total) } else { Err(bad()) }
}

/// Parses a data size in GB: a number, or a string with an optional `MB`/`GB`/`TB` unit.
fn parse_size_gb(text: &str) -> Option<f64> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, scale) = if let Some(n) = lower.strip_suffix("tb") {
        (n, 1000.0)
    } else if let Some(n) = lower.strip_suffix("gb") {
        (n, 1.0)
    } else if let Some(n) = lower.strip_suffix("mb") {
        (n, 0.001)
    } else {
        (lower.as_str(), 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|n| n.is_finite() && *n >= 0.0)
}

/// Parses one task document.
pub(crate) fn parse_task(ctx: Ctx<'_>, node: &Node) -> Result<TaskSpec, SpecError> {
    const EXPECTED: &str = "a mapping of task fields (name, resources, setup, run, ...)";
    if !matches!(node.value, Value::Map(_)) {
        return Err(ctx.invalid(node, "task", EXPECTED));
    }
    let entries = ctx.mapping(node, "", EXPECTED)?;
    let mut task = TaskSpec {
        locations: SpecLocations {
            task: ctx.pos(node),
            ..SpecLocations::default()
        },
        ..TaskSpec::default()
    };
    for entry in &entries {
        let path = entry.key.as_str();
        let value = entry.value;
        match path {
            "name" => {
                task.name = match value.value {
                    Value::Null => None,
                    _ => Some(
                        ctx.non_empty_string(value, path, "a task name")?
                            .trim()
                            .to_string(),
                    ),
                };
                task.locations.name = Some(ctx.pos(value));
            }
            "workdir" => task.workdir = ctx.opt_string(value, path, "a local directory path")?,
            "num_nodes" => {
                let nodes = match &value.value {
                    Value::Null => Some(1),
                    Value::Int(i) => u32::try_from(*i).ok(),
                    Value::Str(s) => s.trim().parse::<u32>().ok(),
                    _ => None,
                };
                task.num_nodes = nodes
                    .filter(|n| (1..=MAX_NUM_NODES).contains(n))
                    .ok_or_else(|| ctx.invalid(value, path, NUM_NODES_EXPECTED))?;
            }
            "envs" | "secrets" => {
                if !matches!(value.value, Value::Map(_) | Value::Null) {
                    // Never echo the value: it may be a secret written in the wrong place.
                    return Err(ctx.invalid_found(
                        value,
                        path,
                        "a mapping of NAME: value",
                        describe_kind(value),
                    ));
                }
                for env in ctx.mapping(value, path, "a mapping of NAME: value")? {
                    let text = parse_env_entry(ctx, path, &env)?;
                    if path == "envs" {
                        task.envs.insert(env.key.clone(), text);
                        task.locations.envs.insert(env.key, ctx.pos(env.key_node));
                    } else {
                        task.secrets.insert(env.key.clone(), text.map(SecretString::new));
                        task.locations.secrets.insert(env.key, ctx.pos(env.key_node));
                    }
                }
            }
            "file_mounts" => task.file_mounts = parse_file_mounts(ctx, value, path)?,
            "setup" => task.setup = ctx.opt_string(value, path, "a shell script (string)")?,
            "run" => task.run = ctx.opt_string(value, path, "a shell script (string)")?,
            "resources" => {
                task.resources = parse_resources(ctx, value, path)?;
                task.locations.accelerators = accelerator_positions(ctx, value);
                if matches!(&value.value, Value::Map(fields) if !fields.is_empty()) {
                    task.locations.resources = Some(ctx.pos(entry.key_node));
                }
            }
            "config" => {
                task.config = match value.value {
                    Value::Null => None,
                    Value::Map(_) => Some(ctx.json_of(value, path)?),
                    _ => return Err(ctx.invalid(value, path, "a mapping")),
                }
            }
            "depends_on" => {
                let items: Vec<&Node> = match &value.value {
                    Value::Null => Vec::new(),
                    Value::Seq(items) => items.iter().collect(),
                    _ => vec![value],
                };
                let is_list = matches!(value.value, Value::Seq(_));
                for (i, item) in items.into_iter().enumerate() {
                    let item_path = if is_list { index(path, i) } else { path.to_string() };
                    let name =
                        ctx.non_empty_string(item, &item_path, "a task name or a list of task names")?;
                    task.depends_on.push(name.trim().to_string());
                    task.locations.depends_on.push(ctx.pos(item));
                }
            }
            "inputs" | "outputs" => {
                let (uri, size) = parse_data(ctx, value, path)?;
                if path == "inputs" {
                    (task.inputs_uri, task.inputs_gb) = (uri, size);
                } else {
                    (task.outputs_uri, task.outputs_gb) = (uri, size);
                }
            }
            "duration" => {
                task.duration_hours = match &value.value {
                    Value::Null => 1.0,
                    Value::Int(_) | Value::Float(_) | Value::Str(_) => scalar_text(value)
                        .and_then(|t| parse_duration_hours(&t).ok())
                        .ok_or_else(|| ctx.invalid(value, path, DURATION_EXPECTED))?,
                    _ => return Err(ctx.invalid(value, path, DURATION_EXPECTED)),
                }
            }
            _ => return Err(ctx.unknown_key(entry, "", TASK_KEYS, RESOURCE_KEYS_ELSEWHERE)),
        }
    }
    if let Some(name) = task.secrets.keys().find(|name| task.envs.contains_key(*name)) {
        let at = task.locations.secrets.get(name).cloned().unwrap_or_default();
        return Err(SpecError::Conflict {
            at: Box::new(at),
            path: child("secrets", name),
            message: "is also declared under envs; declare it once".to_string(),
        });
    }
    Ok(task)
}

fn parse_data(ctx: Ctx<'_>, node: &Node, path: &str) -> Result<(Option<String>, f64), SpecError> {
    let size = |n: &Node, p: &str| -> Result<f64, SpecError> {
        match &n.value {
            Value::Null => Ok(0.0),
            Value::Int(_) | Value::Float(_) | Value::Str(_) => scalar_text(n)
                .and_then(|t| parse_size_gb(&t))
                .ok_or_else(|| ctx.invalid(n, p, DATA_EXPECTED)),
            _ => Err(ctx.invalid(n, p, DATA_EXPECTED)),
        }
    };
    match &node.value {
        Value::Map(_) => {
            let entries = ctx.mapping(node, path, DATA_EXPECTED)?;
            match entries.as_slice() {
                [entry] => Ok((
                    Some(entry.key.clone()),
                    size(entry.value, &child(path, &entry.key))?,
                )),
                _ => Err(ctx.invalid_found(
                    node,
                    path,
                    DATA_EXPECTED,
                    format!("a mapping with {} entries", entries.len()),
                )),
            }
        }
        _ => Ok((None, size(node, path)?)),
    }
}

#[cfg(test)]
mod tests;
