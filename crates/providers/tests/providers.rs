//! Integration tests of skyplan-providers, one module per concern (needs features `testing` and
//! `local`: `cargo test -p skyplan-providers --all-features`).

/// Shared helpers: temporary homes, small catalogs, launchers.
mod util;

/// The aws backend with the real EC2 SDK against a local moto: contract, multi-node, spot,
/// failover over the wire, throttling, crash recovery, spot prices.
#[cfg(feature = "aws-testing")]
mod aws;
/// The shared provider contract, run against the fake and the local backend.
mod conformance;
/// The failover launcher against the fake provider: capacity, quota, invalid, transient errors.
mod failover;
/// Faults at every step (partial creation, cleanup, status, teardown), and fake jobs in time.
mod faults;
/// The kubernetes backend against kubesim: contract, failover between clusters, render.
#[cfg(feature = "kubernetes")]
mod kubernetes;
/// Graceful deletion, unpullable images and slow container starts on the kubernetes backend.
#[cfg(feature = "kubernetes")]
mod kubernetes_pods;
/// `render` against the kubernetes backend on kubesim: equal objects, labels, the seed snapshot.
#[cfg(feature = "kubernetes")]
mod kubernetes_render;
/// The local backend end to end: multi-node runs, status, logs, exec, down, secrets.
mod local;
/// The state store: concurrent launches and consistency; crash recovery through `down`; damaged,
/// foreign and read-only stores and bad rows.
mod store;
