//! skyplan's one integration-test binary. Each module is one concern:
#![allow(clippy::unwrap_used)] // tests fail loudly by design

/// Shared helpers: running the CLI, temporary directories.
mod util;

/// The embedded catalog built from the real snapshots: traps in the data and cross-checks.
mod catalog_data;

/// `skyplan show-gpus`: tables, `--json`, filters, and errors for bad input.
mod show_gpus;

/// `skyplan launch --dryrun` and `optimize`: plans, overrides, and bad task files.
mod launch_dryrun;

/// `skyplan launch` on the local provider, with `status`, `logs` and `down`.
mod launch_local;

/// `skyplan launch` on kubesim clusters and this machine: live capacity in the dry run, the
/// dry run's place provisioned at attempt 1, pipelines launched as planned.
#[cfg(all(feature = "kubesim", feature = "kubernetes"))]
mod launch_kubernetes;

/// `skyplan render --target kubernetes`: stable names, secrets, labels, placements, `--context`.
#[cfg(feature = "kubernetes")]
mod render;

/// `skyplan launch`, `status`, `down`, `check` and `catalog refresh` on AWS: the real SDK
/// against a local moto, configured only through the standard AWS environment variables.
#[cfg(feature = "aws-testing")]
mod launch_aws;

/// Money that cannot be computed (huge durations, catalog and cluster prices near `Decimal::MAX`)
/// is a located error with exit code 1, never a panic.
mod hardening_money;

/// Rules of the house: every source file starts with a `//!` line.
mod house;
