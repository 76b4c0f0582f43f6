//! What a task file may hold (the parser's budget: nesting, values, documents, aliases), and the
//! YAML library's errors turned into ours: located, one line, cut short, and a breached limit
//! named with its value instead of the library's debug output.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Budget, MessageFormatter, UserMessageFormatter};

use crate::error::{Position, SpecError};

/// Limits on what one task file may hold, far above any real task file and low enough that a
/// hostile or runaway file fails fast with a message naming the limit.
mod limits {
    /// Nesting of lists and mappings.
    pub const DEPTH: usize = 64;
    /// Values (scalars, lists and mappings) in the whole file.
    pub const NODES: usize = 250_000;
    /// Documents (`---`).
    pub const DOCUMENTS: usize = 1_024;
    /// Parser events (about two per value).
    pub const EVENTS: usize = 1_000_000;
    /// Aliases (`*name`) and anchors (`&name`).
    pub const ALIASES: usize = 10_000;
    /// Bytes of scalar text.
    pub const SCALAR_BYTES: usize = 64 * 1024 * 1024;
    /// Merge keys (`<<`).
    pub const MERGE_KEYS: usize = 10_000;
}

pub(super) fn task_file_budget() -> Budget {
    let mut budget = Budget::default();
    budget.max_depth = limits::DEPTH;
    budget.flow_nesting_limit = limits::DEPTH;
    budget.max_nodes = limits::NODES;
    budget.max_documents = limits::DOCUMENTS;
    budget.max_events = limits::EVENTS;
    budget.max_aliases = limits::ALIASES;
    budget.max_anchors = limits::ALIASES;
    budget.max_total_scalar_bytes = limits::SCALAR_BYTES;
    budget.max_merge_keys = limits::MERGE_KEYS;
    budget
}

/// A budget breach in our words: which limit, and its value.
fn budget_message(breach: &BudgetBreach) -> String {
    let limit = match breach {
        BudgetBreach::Depth { .. } => {
            format!("it nests lists and mappings deeper than {} levels", limits::DEPTH)
        }
        BudgetBreach::Nodes { .. } => format!("it holds more than {} values", limits::NODES),
        BudgetBreach::Documents { .. } => format!("it holds more than {} documents", limits::DOCUMENTS),
        BudgetBreach::Events { .. } => format!("it holds more than {} YAML events", limits::EVENTS),
        BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
            format!("it uses aliases (*name) too often (at most {})", limits::ALIASES)
        }
        BudgetBreach::Anchors { .. } => format!("it defines more than {} anchors (&name)", limits::ALIASES),
        BudgetBreach::ScalarBytes { .. } => {
            format!(
                "it holds more than {} MiB of text",
                limits::SCALAR_BYTES / (1024 * 1024)
            )
        }
        BudgetBreach::MergeKeys { .. } => format!("it uses more than {} merge keys (<<)", limits::MERGE_KEYS),
        _ => "it is too large or too complex".to_string(),
    };
    format!("the file is beyond what a task file may hold: {limit}")
}

/// The longest YAML parser message kept (it may quote the input).
const MAX_MESSAGE_CHARS: usize = 200;

pub(super) fn yaml_error(error: &serde_saphyr::Error, file: &str) -> SpecError {
    let inner = error.without_snippet();
    let location = inner.location().or_else(|| error.location());
    let message = match inner {
        serde_saphyr::Error::Budget { breach, .. } => budget_message(breach),
        _ => UserMessageFormatter.format_message(inner).into_owned(),
    };
    let message = if message.contains("recursion limit exceeded") {
        budget_message(&BudgetBreach::Depth { depth: limits::DEPTH })
    } else {
        message
    };
    let mut message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if message.chars().count() == MAX_MESSAGE_CHARS {
        message.push('…');
    }
    SpecError::Yaml {
        at: Box::new(Position {
            file: file.to_string(),
            line: location
                .map(|l| l.line())
                .and_then(|l| u32::try_from(l).ok())
                .filter(|&l| l > 0),
            column: location
                .map(|l| l.column())
                .and_then(|c| u32::try_from(c).ok())
                .filter(|&c| c > 0),
        }),
        message,
    }
}
