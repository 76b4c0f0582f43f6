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

/// State that must not trap the user: a damaged or foreign `state.db`, bad rows, a home that is
/// a file or read-only; `status` and `down` keep working and say what happened.
mod hardening_state;

/// `skyplan launch` on kubesim clusters and this machine: live capacity in the dry run, the
/// dry run's place provisioned at attempt 1, pipelines launched as planned.
#[cfg(all(feature = "kubesim", feature = "kubernetes"))]
mod launch_kubernetes;

/// Kubernetes failing under a running CLI: Ctrl-C during a Pending provision, the API server gone.
#[cfg(all(feature = "kubesim", feature = "kubernetes"))]
mod kubernetes_failures;

/// Kubernetes configuration and dependencies gone wrong: timeouts and namespaces out of range,
/// servers without a scheme, silent credential plugins and API servers, a damaged store over a
/// kubesim cluster, `skyplan kubesim` stopped by SIGTERM.
#[cfg(all(feature = "kubesim", feature = "kubernetes"))]
mod hardening_kube;

/// `skyplan render --target kubernetes`: stable names, secrets, labels, placements, `--context`.
#[cfg(feature = "kubernetes")]
mod render;

/// `skyplan launch`, `status`, `down`, `check` and `catalog refresh` on AWS: the real SDK
/// against a local moto, configured only through the standard AWS environment variables.
#[cfg(feature = "aws-testing")]
mod launch_aws;

/// `down` reports only what it verified; AWS plans only on `SKYPLAN_AWS_REGIONS` and finds a
/// cluster where it was recorded; an auth failure leads the error and ends the calls.
#[cfg(feature = "aws-testing")]
mod down_aws;

/// Bad input through the CLI: empty task files, node counts, reserved env names, flag errors
/// naming their flag, huge and deep files, clusters too big for this machine, `render --secret`.
mod hardening_input;

/// Money that cannot be computed (huge durations, catalog and cluster prices near `Decimal::MAX`)
/// is a located error with exit code 1, never a panic.
mod hardening_money;

/// Rules of the house: every source file starts with a `//!` line.
mod house;
