//! Errors from reading task YAML and applying command-line overrides: each names the file, the
//! field path, the line and column when known, and what was expected.

use std::fmt;
use std::path::PathBuf;

use super::yaml::quote_short;

/// Where in a task file something is: `task.yaml:5:3`, or just `task.yaml` when the line is
/// unknown (e.g. a value set by a command-line override).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// The file name as given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: Option<u32>,
    /// 1-based column (in characters).
    pub column: Option<u32>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

fn did_you_mean(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!("; did you mean {h:?}?"))
        .unwrap_or_default()
}

fn unknown_key_help(hint: &Option<String>, expected: &str) -> String {
    match hint {
        Some(hint) => format!("did you mean {hint:?}?"),
        None => format!("expected one of: {expected}"),
    }
}

/// How to supply a missing value: `--env NAME=VALUE` for an env, `--secret NAME=VALUE` (or
/// `--env`) for a declared secret.
fn supply_hint(path: &str, name: &str) -> String {
    if path.starts_with("secrets.") {
        format!("--secret {name}=VALUE (or --env {name}=VALUE)")
    } else {
        format!("--env {name}=VALUE")
    }
}

/// Errors from parsing task specs and applying overrides.
///
/// Messages are one line, lower-case, and start with the position: `task.yaml:5:3: resources.cpus:
/// expected ..., found ...`. Secret values never appear in them.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The task file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML (or not UTF-8).
    #[error("{at}: invalid YAML: {message}")]
    Yaml {
        /// Where the YAML parser stopped.
        at: Box<Position>,
        /// The YAML parser's message.
        message: String,
    },
    /// The file holds no task (it is empty, or only a pipeline name).
    #[error("{at}: no task found; expected a mapping with task fields such as resources, setup and run")]
    NoTask {
        /// The file.
        at: Box<Position>,
    },
    /// A key that the schema does not know.
    #[error("{at}: {path}: unknown key; {}", unknown_key_help(hint, expected))]
    UnknownKey {
        /// The key's position.
        at: Box<Position>,
        /// The full path of the unknown key, e.g. `resources.acclerators`.
        path: String,
        /// A close known key (possibly in another section, e.g. `resources.accelerators`).
        hint: Option<String>,
        /// The keys allowed here, comma-separated.
        expected: String,
    },
    /// The same key twice in one mapping.
    #[error("{at}: {path}: duplicate key; the first one is on line {first_line}")]
    DuplicateKey {
        /// The second occurrence.
        at: Box<Position>,
        /// The key's full path.
        path: String,
        /// The line of the first occurrence.
        first_line: u32,
    },
    /// A value of the wrong type or out of range.
    #[error("{at}: {path}: expected {expected}, found {found}{}", did_you_mean(hint))]
    InvalidValue {
        /// The value's position.
        at: Box<Position>,
        /// The field path, e.g. `resources.any_of[1].cpus`.
        path: String,
        /// What would have been accepted.
        expected: String,
        /// What was there (quoted when a string; only the kind for secrets).
        found: String,
        /// A close valid value, if any.
        hint: Option<String>,
    },
    /// Two fields that cannot be used together, or a combination without a clear meaning.
    #[error("{at}: {path}: {message}")]
    Conflict {
        /// The position of the second field.
        at: Box<Position>,
        /// The field path.
        path: String,
        /// What conflicts and what to do instead.
        message: String,
    },
    /// A task with nothing to do: no `run`, no `setup` and no `resources` (`{}`, a document with
    /// only `name`, or only `envs`).
    #[error(
        "{at}: nothing to run: give at least one of run, setup or resources (a task with only \
         resources brings up a cluster for `skyplan exec`)"
    )]
    NothingToRun {
        /// Where the task's document starts.
        at: Box<Position>,
    },
    /// An env or secret whose name skyplan reserves (`PATH`, `SKYPLAN_*`, ...).
    #[error("{at}: {path}: reserved name; {reason}")]
    ReservedEnv {
        /// The name's position.
        at: Box<Position>,
        /// `envs.NAME` or `secrets.NAME`.
        path: String,
        /// Why the name is reserved and what to do instead.
        reason: String,
    },
    /// `--env` or `--secret` with a name skyplan reserves.
    #[error("{flag} {name}: reserved name; {reason}")]
    ReservedOverride {
        /// `--env` or `--secret`.
        flag: &'static str,
        /// The name as given.
        name: String,
        /// Why the name is reserved and what to do instead.
        reason: String,
    },
    /// An env or secret declared with a null value and not supplied on the command line.
    #[error("{at}: {path}: no value given; pass {}", supply_hint(path, name))]
    MissingValue {
        /// Where the env is declared.
        at: Box<Position>,
        /// `envs.NAME` or `secrets.NAME`.
        path: String,
        /// The env's name.
        name: String,
    },
    /// `depends_on` names a task that is not in the file.
    #[error(
        "{at}: {path}: no task named {} in this file{}; named tasks: {known}",
        quote_short(name),
        did_you_mean(hint)
    )]
    UnknownDependency {
        /// The position of the dependency name.
        at: Box<Position>,
        /// The field path, e.g. `depends_on[0]`.
        path: String,
        /// The name as written.
        name: String,
        /// A close task name, if any.
        hint: Option<String>,
        /// The task names in the file, comma-separated (or `none`).
        known: String,
    },
    /// Two tasks share a name while `depends_on` needs names to be unique.
    #[error(
        "{at}: name: task name {} is also used on line {first_line}; names must be unique when depends_on is used",
        quote_short(name)
    )]
    DuplicateTaskName {
        /// The second task's `name`.
        at: Box<Position>,
        /// The name.
        name: String,
        /// The line of the first task with that name.
        first_line: u32,
    },
    /// The `depends_on` edges form a cycle.
    #[error("{at}: depends_on: dependency cycle {cycle}")]
    Cycle {
        /// The `depends_on` of one task on the cycle.
        at: Box<Position>,
        /// The cycle, e.g. `train -> eval -> train`.
        cycle: String,
    },
    /// A command-line override that cannot be parsed (`--env`, `--gpus`, `--infra`, ...).
    #[error("{flag}: expected {expected}, found {found}{}", did_you_mean(hint))]
    InvalidOverride {
        /// The flag, e.g. `--gpus`.
        flag: &'static str,
        /// What would have been accepted.
        expected: String,
        /// What was given (never an env value).
        found: String,
        /// A close valid value, if any.
        hint: Option<String>,
    },
}

impl SpecError {
    /// The position the error points at, if it has one.
    pub fn position(&self) -> Option<&Position> {
        match self {
            SpecError::Io { .. } | SpecError::InvalidOverride { .. } | SpecError::ReservedOverride { .. } => {
                None
            }
            SpecError::Yaml { at, .. }
            | SpecError::NoTask { at }
            | SpecError::NothingToRun { at }
            | SpecError::ReservedEnv { at, .. }
            | SpecError::UnknownKey { at, .. }
            | SpecError::DuplicateKey { at, .. }
            | SpecError::InvalidValue { at, .. }
            | SpecError::Conflict { at, .. }
            | SpecError::MissingValue { at, .. }
            | SpecError::UnknownDependency { at, .. }
            | SpecError::DuplicateTaskName { at, .. }
            | SpecError::Cycle { at, .. } => Some(at),
        }
    }

    /// The field path the error is about (e.g. `resources.accelerators`), if it has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            SpecError::UnknownKey { path, .. }
            | SpecError::DuplicateKey { path, .. }
            | SpecError::InvalidValue { path, .. }
            | SpecError::Conflict { path, .. }
            | SpecError::MissingValue { path, .. }
            | SpecError::ReservedEnv { path, .. }
            | SpecError::UnknownDependency { path, .. } => Some(path),
            SpecError::DuplicateTaskName { .. } => Some("name"),
            SpecError::Cycle { .. } => Some("depends_on"),
            SpecError::Io { .. }
            | SpecError::Yaml { .. }
            | SpecError::NoTask { .. }
            | SpecError::NothingToRun { .. } => None,
            SpecError::InvalidOverride { flag, .. } | SpecError::ReservedOverride { flag, .. } => Some(flag),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_display() {
        let mut at = Position {
            file: "task.yaml".into(),
            line: Some(5),
            column: Some(3),
        };
        assert_eq!(at.to_string(), "task.yaml:5:3");
        at.column = None;
        assert_eq!(at.to_string(), "task.yaml:5");
        at.line = None;
        assert_eq!(at.to_string(), "task.yaml");
    }
}
