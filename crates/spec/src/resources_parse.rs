//! Parsing the `resources` section of a task file into [`ResourcesSpec`]: every field checked
//! with its file, line and column, unknown keys with a "did you mean" hint, and the `any_of` /
//! `ordered` mixes that have no clear meaning rejected.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use skyplan_catalog::Amount;

use super::error::{Position, SpecError};
use super::infra::{
    ACCELERATOR_EXPECTED, AMOUNT_EXPECTED, CLOUD_EXPECTED, INFRA_EXPECTED, KNOWN_CLOUDS, PORTS_EXPECTED,
    canonical_cloud, parse_accelerator, parse_infra, parse_positive_amount,
};
use super::resources::{AcceleratorSpec, PortRange, ResourceFields, ResourcesSpec};
use super::yaml::{Ctx, Entry, Node, Value, child, closest, describe, index, scalar_text};

const ACCELERATORS_EXPECTED: &str =
    "NAME:COUNT (e.g. L4:1), a mapping {NAME: COUNT}, a set {L4, A10G} or a list [L4:1, A10G:1]";
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

/// Where each accelerator name of a `resources` node is written (first occurrence; names as
/// written, e.g. `l4` in `accelerators: l4:1`), in `resources` and in its `any_of` / `ordered`
/// entries. For errors found after parsing, such as a name the catalog does not know.
pub(crate) fn accelerator_positions(ctx: Ctx<'_>, node: &Node) -> BTreeMap<String, Position> {
    let mut positions = BTreeMap::new();
    let mut record = |name_node: &Node| {
        if let Some((name, _)) = scalar_text(name_node).and_then(|t| parse_accelerator(&t).ok()) {
            positions.entry(name).or_insert_with(|| ctx.pos(name_node));
        }
    };
    let mut mappings = vec![node];
    if let Value::Map(entries) = &node.value {
        for (key, value) in entries {
            if matches!(&key.value, Value::Str(k) if k == "any_of" || k == "ordered")
                && let Value::Seq(items) = &value.value
            {
                mappings.extend(items);
            }
        }
    }
    for mapping in mappings {
        let Value::Map(entries) = &mapping.value else {
            continue;
        };
        let accelerators = entries
            .iter()
            .filter(|(key, _)| key.value == Value::Str("accelerators".into()))
            .map(|(_, value)| value);
        for value in accelerators {
            let items: Vec<&Node> = match &value.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![value],
            };
            for item in items {
                match &item.value {
                    Value::Map(pairs) => pairs.iter().for_each(|(name, _)| record(name)),
                    _ => record(item),
                }
            }
        }
    }
    positions
}

#[cfg(test)]
mod tests;
