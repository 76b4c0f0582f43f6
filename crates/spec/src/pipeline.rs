//! Task files as pipelines: multi-document YAML becomes a chain, `depends_on` makes it a DAG;
//! and the command-line overrides (`--env`, `--infra`, `--gpus`, `--use-spot`, ...) applied to
//! every task of a pipeline.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use skyplan_catalog::Amount;

use super::env::{is_valid_env_name, reserved_env_reason};
use super::error::{Position, SpecError};
use super::infra::{Infra, parse_accelerator, parse_infra, parse_positive_amount};
use super::resources::AcceleratorSpec;
use super::task::{MAX_NUM_NODES, NUM_NODES_EXPECTED, SecretString, TaskSpec, parse_task};
use super::yaml::{Ctx, Node, Value, closest, quote_short};

/// The tasks of one task file and the order between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pipeline {
    /// The pipeline name (a first document holding only `name`), or the task's name for a
    /// single-task file.
    pub name: Option<String>,
    /// The tasks in document order.
    pub tasks: Vec<TaskSpec>,
    /// Edges parent → child, as indices into `tasks`, sorted, without duplicates.
    pub edges: Vec<(usize, usize)>,
}

impl Pipeline {
    /// A pipeline of one task.
    pub fn single(task: TaskSpec) -> Self {
        Pipeline {
            name: task.name.clone(),
            tasks: vec![task],
            edges: Vec::new(),
        }
    }

    /// The parents of task `task_idx` (tasks that must finish first).
    pub fn parents(&self, task_idx: usize) -> Vec<usize> {
        self.edges
            .iter()
            .filter(|(_, child)| *child == task_idx)
            .map(|(parent, _)| *parent)
            .collect()
    }

    /// The tasks in an order where every parent comes before its children (ties by index), or
    /// `None` when the edges have a cycle or point outside `tasks`.
    pub fn topological_order(&self) -> Option<Vec<usize>> {
        let n = self.tasks.len();
        if self.edges.iter().any(|&(a, b)| a >= n || b >= n) {
            return None;
        }
        let (order, _) = kahn(n, &self.edges);
        (order.len() == n).then_some(order)
    }

    /// Applies command-line overrides to every task, then checks that no env or secret is left
    /// without a value. Call it even without overrides (with `TaskOverrides::default()`): a null
    /// env in the file must be supplied with `--env NAME=VALUE`.
    pub fn apply_overrides(&mut self, overrides: &TaskOverrides) -> Result<(), SpecError> {
        let parsed = ParsedOverrides::parse(overrides)?;
        for task in &mut self.tasks {
            parsed.apply(overrides, task);
        }
        self.check_values()
    }

    /// Fails with [`SpecError::MissingValue`] for the first env or secret without a value.
    pub fn check_values(&self) -> Result<(), SpecError> {
        self.tasks.iter().try_for_each(TaskSpec::check_values)
    }

    /// Every secret value of every task, longest first (see [`TaskSpec::secret_values`]).
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = self.tasks.iter().flat_map(TaskSpec::secret_values).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        values
    }
}

/// Values from the command line that replace or add to what the task file says
/// (`skyplan launch TASK.yaml --env K=V --infra aws --gpus L4:1 --use-spot`). They apply to every
/// task and to every `any_of`/`ordered` alternative. `Debug` shows env names, never values.
#[derive(Clone, Default, PartialEq)]
pub struct TaskOverrides {
    /// `--env NAME=VALUE`: sets an env (or a secret declared under `secrets`); may add new ones.
    pub envs: Vec<(String, String)>,
    /// `--secret NAME=VALUE`: sets or adds a secret.
    pub secrets: Vec<(String, String)>,
    /// `--infra CLOUD[/REGION[/ZONE]]`.
    pub infra: Option<String>,
    /// `--gpus NAME[:COUNT]`.
    pub gpus: Option<String>,
    /// `--use-spot` / `--no-use-spot`.
    pub use_spot: Option<bool>,
    /// `--cpus N[+]`.
    pub cpus: Option<String>,
    /// `--memory N[+]`.
    pub memory: Option<String>,
    /// `--num-nodes N`.
    pub num_nodes: Option<u32>,
    /// `--instance-type TYPE`.
    pub instance_type: Option<String>,
    /// `--image-id IMAGE`.
    pub image_id: Option<String>,
    /// `--disk-size GB`.
    pub disk_size_gb: Option<u32>,
}

impl fmt::Debug for TaskOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(k, _)| format!("{k}=<redacted>"))
                .collect::<Vec<_>>()
        };
        f.debug_struct("TaskOverrides")
            .field("envs", &names(&self.envs))
            .field("secrets", &names(&self.secrets))
            .field("infra", &self.infra)
            .field("gpus", &self.gpus)
            .field("use_spot", &self.use_spot)
            .field("cpus", &self.cpus)
            .field("memory", &self.memory)
            .field("num_nodes", &self.num_nodes)
            .field("instance_type", &self.instance_type)
            .field("image_id", &self.image_id)
            .field("disk_size_gb", &self.disk_size_gb)
            .finish()
    }
}

/// Parses `--env NAME=VALUE` (the value may be empty and may contain `=`). The error never
/// shows the value.
///
/// ```
/// use skyplan_spec::parse_env_override;
/// assert_eq!(parse_env_override("A=b=c").unwrap(), ("A".to_string(), "b=c".to_string()));
/// assert!(parse_env_override("A").is_err());
/// ```
pub fn parse_env_override(text: &str) -> Result<(String, String), SpecError> {
    parse_pair("--env", text)
}

/// Parses `--secret NAME=VALUE`, with the rules of [`parse_env_override`]; errors name
/// `--secret`. The error never shows the value.
///
/// ```
/// use skyplan_spec::parse_secret_override;
/// assert_eq!(parse_secret_override("HF_TOKEN=hf_x").unwrap().0, "HF_TOKEN");
/// assert!(parse_secret_override("=x").unwrap_err().to_string().starts_with("--secret: "));
/// ```
pub fn parse_secret_override(text: &str) -> Result<(String, String), SpecError> {
    parse_pair("--secret", text)
}

fn parse_pair(flag: &'static str, text: &str) -> Result<(String, String), SpecError> {
    let bad = |name: &str| SpecError::InvalidOverride {
        flag,
        expected: "NAME=VALUE with NAME made of letters, digits and _ (e.g. MODEL_NAME=gemma)".to_string(),
        found: quote_short(name),
        hint: None,
    };
    let Some((name, value)) = text.split_once('=') else {
        // No `=`: the whole text is a name, so it is safe to show.
        return Err(bad(text));
    };
    let name = name.trim();
    if !is_valid_env_name(name) {
        return Err(bad(name));
    }
    if let Some(reason) = reserved_env_reason(name) {
        return Err(SpecError::ReservedOverride {
            flag,
            name: name.to_string(),
            reason: reason.to_string(),
        });
    }
    Ok((name.to_string(), value.to_string()))
}

/// Overrides parsed and checked before any task is touched.
struct ParsedOverrides {
    location: Option<Infra>,
    accelerator: Option<(String, f64)>,
    cpus: Option<Amount>,
    memory: Option<Amount>,
}

impl ParsedOverrides {
    fn parse(o: &TaskOverrides) -> Result<Self, SpecError> {
        let invalid = |flag: &'static str, value: &str, expected: String| SpecError::InvalidOverride {
            flag,
            expected,
            found: quote_short(value),
            hint: None,
        };
        for (name, _) in &o.envs {
            parse_pair("--env", &format!("{name}="))?;
        }
        for (name, _) in &o.secrets {
            parse_pair("--secret", &format!("{name}="))?;
        }
        let location = o
            .infra
            .as_deref()
            .map(|text| {
                parse_infra(text).map_err(|e| SpecError::InvalidOverride {
                    flag: "--infra",
                    expected: e.expected,
                    found: quote_short(text),
                    hint: e.hint,
                })
            })
            .transpose()?;
        let accelerator = o
            .gpus
            .as_deref()
            .map(|text| parse_accelerator(text).map_err(|expected| invalid("--gpus", text, expected)))
            .transpose()?;
        let amount = |flag, text: &Option<String>| {
            text.as_deref()
                .map(|t| parse_positive_amount(t).map_err(|expected| invalid(flag, t, expected)))
                .transpose()
        };
        let cpus = amount("--cpus", &o.cpus)?;
        let memory = amount("--memory", &o.memory)?;
        if let Some(nodes) = o.num_nodes.filter(|n| !(1..=MAX_NUM_NODES).contains(n)) {
            return Err(invalid(
                "--num-nodes",
                &nodes.to_string(),
                NUM_NODES_EXPECTED.to_string(),
            ));
        }
        if o.disk_size_gb == Some(0) {
            return Err(invalid(
                "--disk-size",
                "0",
                "a positive whole number of GB".to_string(),
            ));
        }
        Ok(ParsedOverrides {
            location,
            accelerator,
            cpus,
            memory,
        })
    }

    fn apply(&self, o: &TaskOverrides, task: &mut TaskSpec) {
        if let Some(nodes) = o.num_nodes {
            task.num_nodes = nodes;
        }
        for (name, value) in &o.envs {
            if task.secrets.contains_key(name) && !task.envs.contains_key(name) {
                task.secrets
                    .insert(name.clone(), Some(SecretString::new(value.clone())));
            } else {
                task.envs.insert(name.clone(), Some(value.clone()));
            }
        }
        for (name, value) in &o.secrets {
            task.envs.remove(name);
            task.secrets
                .insert(name.clone(), Some(SecretString::new(value.clone())));
        }
        let resources = &mut task.resources;
        let entries = resources.any_of.iter_mut().chain(resources.ordered.iter_mut());
        for entry in entries {
            if self.location.is_some() {
                (entry.cloud, entry.region, entry.zone) = (None, None, None);
            }
            if self.accelerator.is_some() {
                entry.accelerators = None;
            }
            if o.use_spot.is_some() {
                entry.use_spot = None;
            }
            if self.cpus.is_some() {
                entry.cpus = None;
            }
            if self.memory.is_some() {
                entry.memory = None;
            }
            if o.instance_type.is_some() {
                entry.instance_type = None;
            }
            if o.image_id.is_some() {
                entry.image_id = None;
            }
            if o.disk_size_gb.is_some() {
                entry.disk_size_gb = None;
            }
        }
        let base = &mut resources.base;
        if let Some(infra) = &self.location {
            (base.cloud, base.region, base.zone) =
                (infra.cloud.clone(), infra.region.clone(), infra.zone.clone());
        }
        if let Some((name, count)) = &self.accelerator {
            base.accelerators = Some(AcceleratorSpec::One(name.clone(), *count));
        }
        base.use_spot = o.use_spot.or(base.use_spot);
        base.cpus = self.cpus.or(base.cpus);
        base.memory = self.memory.or(base.memory);
        base.instance_type = o.instance_type.clone().or(base.instance_type.take());
        base.image_id = o.image_id.clone().or(base.image_id.take());
        base.disk_size_gb = o.disk_size_gb.or(base.disk_size_gb);
    }
}

/// Kahn's algorithm: the order found (ties by index) and each node's remaining in-degree.
fn kahn(n: usize, edges: &[(usize, usize)]) -> (Vec<usize>, Vec<usize>) {
    let mut in_degree = vec![0usize; n];
    for &(_, child) in edges {
        in_degree[child] += 1;
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| in_degree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(next) = ready.pop_first() {
        order.push(next);
        for &(parent, child) in edges {
            if parent == next {
                in_degree[child] -= 1;
                if in_degree[child] == 0 {
                    ready.insert(child);
                }
            }
        }
    }
    (order, in_degree)
}

/// One cycle among the tasks Kahn's algorithm could not order, parent → child, first task
/// repeated at the end.
fn find_cycle(edges: &[(usize, usize)], remaining: &[usize]) -> Vec<usize> {
    // Every remaining task has a remaining parent: walk parents until one repeats.
    let Some(&start) = remaining.iter().min() else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(parent) = edges
            .iter()
            .filter(|(p, c)| *c == current && remaining.contains(p))
            .map(|(p, _)| *p)
            .min()
        else {
            return path;
        };
        if let Some(pos) = path.iter().position(|&t| t == parent) {
            // path[i + 1] is a parent of path[i], and path[pos] a parent of the last one.
            let mut cycle = vec![path[pos]];
            cycle.extend(path[pos + 1..].iter().rev().copied());
            cycle.push(path[pos]);
            return cycle;
        }
        path.push(parent);
        current = parent;
    }
}

fn is_header(node: &Node) -> bool {
    matches!(&node.value, Value::Map(entries) if entries.len() == 1 && entries[0].0.value == Value::Str("name".into()))
}

fn task_label(tasks: &[TaskSpec], idx: usize) -> String {
    tasks[idx]
        .name
        .clone()
        .unwrap_or_else(|| format!("task #{}", idx + 1))
}

/// Builds a pipeline from the documents of one file.
///
/// A first document holding only `name`, followed by others, names the pipeline (SkyPilot's
/// rule) — unless a later task's `depends_on` names it, which makes it a task.
pub(crate) fn build_pipeline(ctx: Ctx<'_>, docs: &[Node]) -> Result<Pipeline, SpecError> {
    let file_only = Position {
        file: ctx.file.to_string(),
        line: None,
        column: None,
    };
    if docs.is_empty() {
        return Err(SpecError::NoTask {
            at: Box::new(file_only),
        });
    }
    let mut tasks: Vec<TaskSpec> = docs
        .iter()
        .map(|doc| parse_task(ctx, doc))
        .collect::<Result<_, _>>()?;
    let mut name = None;
    if tasks.len() > 1 && is_header(&docs[0]) {
        let header_name = tasks[0].name.clone();
        let referenced = tasks[1..]
            .iter()
            .any(|t| t.depends_on.iter().any(|d| Some(d) == header_name.as_ref()));
        if !referenced {
            name = header_name;
            tasks.remove(0);
        }
    }
    let edges = if tasks.iter().any(|t| !t.depends_on.is_empty()) {
        declared_edges(&tasks, name.as_deref())?
    } else {
        (1..tasks.len()).map(|i| (i - 1, i)).collect()
    };
    if let Some(empty) = tasks.iter().find(|t| t.is_empty()) {
        return Err(SpecError::NothingToRun {
            at: Box::new(empty.locations.task.clone()),
        });
    }
    let name = name.or_else(|| {
        if tasks.len() == 1 {
            tasks[0].name.clone()
        } else {
            None
        }
    });
    Ok(Pipeline { name, tasks, edges })
}

/// The edges `depends_on` declares. `header` is the pipeline name taken from a name-only first
/// document: a dependency close to it gets it as a hint (naming it exactly makes it a task).
fn declared_edges(tasks: &[TaskSpec], header: Option<&str>) -> Result<Vec<(usize, usize)>, SpecError> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (idx, task) in tasks.iter().enumerate() {
        let Some(name) = task.name.as_deref() else {
            continue;
        };
        if let Some(&first) = by_name.get(name) {
            return Err(SpecError::DuplicateTaskName {
                at: task
                    .locations
                    .name
                    .clone()
                    .unwrap_or_else(|| task.locations.task.clone())
                    .into(),
                name: name.to_string(),
                first_line: tasks[first]
                    .locations
                    .name
                    .as_ref()
                    .and_then(|p| p.line)
                    .unwrap_or(0),
            });
        }
        by_name.insert(name, idx);
    }
    let mut edges = Vec::new();
    for (child_idx, task) in tasks.iter().enumerate() {
        for (k, dependency) in task.depends_on.iter().enumerate() {
            let at = task
                .locations
                .depends_on
                .get(k)
                .cloned()
                .unwrap_or_else(|| task.locations.task.clone());
            let Some(&parent) = by_name.get(dependency.as_str()) else {
                let known: Vec<&str> = by_name.keys().copied().collect();
                return Err(SpecError::UnknownDependency {
                    at: Box::new(at.clone()),
                    path: if task.depends_on.len() > 1 {
                        format!("depends_on[{k}]")
                    } else {
                        "depends_on".to_string()
                    },
                    name: dependency.clone(),
                    hint: closest(dependency, known.iter().copied().chain(header)).map(str::to_string),
                    known: if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                });
            };
            if parent == child_idx {
                return Err(SpecError::Cycle {
                    at: Box::new(at),
                    cycle: format!("{dependency} -> {dependency}"),
                });
            }
            edges.push((parent, child_idx));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let (order, in_degree) = kahn(tasks.len(), &edges);
    if order.len() < tasks.len() {
        let remaining: Vec<usize> = (0..tasks.len()).filter(|&i| in_degree[i] > 0).collect();
        let cycle = find_cycle(&edges, &remaining);
        let first = cycle.first().copied().unwrap_or(0);
        let task = &tasks[first];
        return Err(SpecError::Cycle {
            at: task
                .locations
                .depends_on
                .first()
                .cloned()
                .unwrap_or_else(|| task.locations.task.clone())
                .into(),
            cycle: cycle
                .iter()
                .map(|&i| task_label(tasks, i))
                .collect::<Vec<_>>()
                .join(" -> "),
        });
    }
    Ok(edges)
}

#[cfg(test)]
mod tests;
