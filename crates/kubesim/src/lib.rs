//! kubesim: a local Kubernetes API simulator for tests and demos.
#![allow(missing_docs)]
pub mod config;
pub mod error;
pub mod quantity;
pub mod scheduler;
