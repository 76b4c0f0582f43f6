//! Environment variable names and the `envs` / `secrets` sections: what a valid name is, which
//! names a task may not set (the node's shell needs its own `PATH`, `HOME`, ...; every backend sets
//! `SKYPLAN_NODE_RANK`, `SKYPILOT_NUM_NODES`, ...), and how each entry is read.

use super::error::SpecError;
use super::yaml::{Ctx, Entry, Value, child, describe_kind, scalar_text};

/// Names a task may not set in `envs`, `secrets`, `--env` or `--secret`: the node's shell and
/// account own them, and replacing them breaks the job before it starts (`PATH=/x` leaves no
/// `bash` to run). `LD_LIBRARY_PATH` and friends are left alone: CUDA setups set them on purpose.
pub const RESERVED_ENV_NAMES: &[&str] = &["PATH", "HOME", "USER", "SHELL", "PWD"];

/// Variables skyplan sets on every node (under its own and SkyPilot's names) or uses in the
/// job scripts; a task may not set them. Other `SKYPLAN_*` names (e.g. a test's own) are free.
pub const RESERVED_NODE_VARIABLES: &[&str] = &[
    "SKYPLAN_NODE_RANK",
    "SKYPLAN_NODE_IPS",
    "SKYPLAN_NUM_NODES",
    "SKYPLAN_NUM_GPUS_PER_NODE",
    "SKYPLAN_CLUSTER_NAME",
    "SKYPLAN_REDACT_VARS",
    "SKYPLAN_LINE_PREFIX",
    "SKYPILOT_NODE_RANK",
    "SKYPILOT_NODE_IPS",
    "SKYPILOT_NUM_NODES",
    "SKYPILOT_NUM_GPUS_PER_NODE",
];

/// Whether `name` is a valid environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a task may not set the env `name` ([`RESERVED_ENV_NAMES`], [`RESERVED_NODE_VARIABLES`]),
/// or `None` when it may. Names are case-sensitive, as the environment is.
///
/// ```
/// use skyplan_spec::reserved_env_reason;
/// assert!(reserved_env_reason("PATH").unwrap().contains("export PATH="));
/// assert!(reserved_env_reason("SKYPLAN_NODE_RANK").unwrap().contains("on every node"));
/// assert_eq!(reserved_env_reason("SKYPLAN_TEST_PIDFILE"), None);
/// assert_eq!(reserved_env_reason("MODEL_NAME"), None);
/// assert_eq!(reserved_env_reason("path"), None);
/// ```
pub fn reserved_env_reason(name: &str) -> Option<&'static str> {
    if RESERVED_NODE_VARIABLES.contains(&name) {
        return Some(if name.starts_with("SKYPILOT_") {
            "skyplan sets it on every node (SkyPilot's name for the SKYPLAN_* variable); \
             choose another name"
        } else {
            "skyplan sets it on every node (SKYPLAN_NODE_RANK, SKYPLAN_NODE_IPS, SKYPLAN_NUM_NODES, \
             ...) or uses it in the job script; choose another name"
        });
    }
    match name {
        "PATH" => Some(
            "the node's shell finds bash and every program through its own PATH; extend it in \
             setup or run instead (export PATH=/my/bin:$PATH)",
        ),
        "HOME" | "USER" | "SHELL" | "PWD" => Some(
            "the node sets it for the account and directory the task runs in; if the task needs \
             another value, export it in setup or run",
        ),
        _ => None,
    }
}

/// The expected form of an env name, for messages.
pub(crate) const ENV_NAME_EXPECTED: &str =
    "an env name made of letters, digits and _, not starting with a digit";

/// Reads one `envs` or `secrets` entry (`section` is `envs` or `secrets`): the name must be valid
/// and not reserved; the value a scalar (`None` for null: to be given on the command line). The
/// value is never echoed in an error: it may be a secret.
pub(crate) fn parse_env_entry(
    ctx: Ctx<'_>,
    section: &str,
    env: &Entry<'_>,
) -> Result<Option<String>, SpecError> {
    let env_path = child(section, &env.key);
    if !is_valid_env_name(&env.key) {
        return Err(ctx.invalid(env.key_node, &env_path, ENV_NAME_EXPECTED));
    }
    if let Some(reason) = reserved_env_reason(&env.key) {
        return Err(SpecError::ReservedEnv {
            at: ctx.at(env.key_node),
            path: env_path,
            reason: reason.to_string(),
        });
    }
    match &env.value.value {
        Value::Null => Ok(None),
        Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => Ok(scalar_text(env.value)),
        _ => Err(ctx.invalid_found(
            env.value,
            &env_path,
            "a string, number, boolean or null",
            describe_kind(env.value),
        )),
    }
}

#[cfg(test)]
mod tests;
