//! The optimizer crate's error type.

/// Errors from building candidates or solving a placement.
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// A task file could not be parsed or validated.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A requirement names something the catalog does not know (e.g. an accelerator).
    /// The catalog's complaint is part of the message (not a separate cause, so it is said once).
    #[error("task {task:?}: {reason}")]
    Catalog {
        /// The task.
        task: String,
        /// The catalog's complaint.
        reason: Box<skyplan_catalog::CatalogError>,
    },
    /// An accelerator written in a task file that the catalog does not know, located where it
    /// is written ([`check_accelerators`](crate::check_accelerators)).
    #[error("{at}: resources.accelerators: {reason}")]
    UnknownAccelerator {
        /// `FILE:LINE:COLUMN` of the name.
        at: String,
        /// The catalog's complaint (the name, cut short, and the closest known one).
        reason: Box<skyplan_catalog::CatalogError>,
    },
    /// No offer satisfies a task (after blocked places are removed).
    #[error("task {task:?}: no offer satisfies {wanted}{}", if *blocked > 0 { format!(" ({blocked} matching offers are blocked)") } else { String::new() })]
    NoCandidates {
        /// The task.
        task: String,
        /// What it asked for, readable.
        wanted: String,
        /// How many offers matched but were blocked.
        blocked: usize,
    },
    /// The tasks together cannot fit the capacity limits or the deadline.
    #[error("no placement satisfies every constraint: {reason}")]
    Infeasible {
        /// Which constraint, as far as known.
        reason: String,
    },
    /// The task graph has a cycle.
    #[error("the task graph has a cycle through task {task:?}")]
    Cycle {
        /// A task on the cycle.
        task: String,
    },
    /// The egress price file is malformed.
    #[error("{file}:{line}: {message}")]
    EgressFile {
        /// File name.
        file: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A cost cannot be computed: a product or sum of money too large to represent exactly, or a
    /// quantity (hours, GB) that is not a finite non-negative number.
    #[error("{what}: the cost cannot be computed")]
    Money {
        /// Whose cost, e.g. `task "train" on aws/us-east-1 p5.48xlarge`.
        what: String,
        /// The computation, naming its inputs.
        #[source]
        source: skyplan_catalog::MoneyError,
    },
    /// The solver failed without a solution.
    #[error("the solver failed: {0}")]
    Solver(String),
}
