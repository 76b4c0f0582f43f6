//! Admission: how a request body becomes a stored object.
//!
//! Bodies are decoded through the `k8s-openapi` types (wrong types → `400 BadRequest` worded like the
//! API server), fields the types do not know are found by comparing the body with its typed round trip
//! (`fieldValidation=Strict`, the simulator's default, answers `400 BadRequest`; `Warn` answers with a
//! `Warning` header; `Ignore` drops them), then metadata is filled in, kind-specific defaults applied
//! (as the real API server's defaulting and admission plugins do) and the object validated (`422
//! Invalid` with field causes).
//!
//! The simulator defaults to `Strict` where Kubernetes 1.27+ defaults to `Warn`, so that a typo in a
//! test manifest fails loudly instead of being silently ignored.

mod admit;
mod decode;
mod defaults;
mod validate;

pub(crate) use admit::{admit_create, admit_update, merge_patch};
pub(crate) use decode::{FieldValidation, decode};
pub(crate) use defaults::node_from_spec;

#[cfg(test)]
mod tests;
