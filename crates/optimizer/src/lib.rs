//! Task specs and the placement optimizer (work in progress: see the optimizer issue).
pub mod spec;
