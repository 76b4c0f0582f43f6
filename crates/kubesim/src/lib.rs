//! kubesim: a local Kubernetes API simulator for tests and demos.
//!
//! No real cluster is reachable from our machines or CI, yet the Kubernetes backend must be tested
//! over the wire with the real `kube` client and users want to try bursting without a cluster. kubesim
//! is an HTTP server that speaks the subset of the Kubernetes REST API (JSON only) that skyplan and
//! `kubectl get/describe/logs/delete` use, for one or more simulated clusters:
//!
//! - **API server** ([`api`](self) internals): discovery and an OpenAPI v3 document (schemas from
//!   `k8s-openapi`, so `kubectl` validates and explains), namespaces, nodes, pods (with `status`
//!   and `log`), services, secrets and events; list with label/field selectors and pagination,
//!   watch with resourceVersion semantics (as `Table`s when asked, for `kubectl get -w`),
//!   graceful deletion (`deletionTimestamp`, Terminating for the grace period), `Status` errors
//!   with the real codes and reasons.
//! - **Scheduler** ([`scheduler`]): a pure core binding pending pods to nodes by resource requests,
//!   nodeSelector, required node affinity and taints/tolerations, wording `FailedScheduling` events
//!   as kube-scheduler does.
//! - **Kubelet**: runs each container's `command`/`args` as a local process with the pod's
//!   environment (Secrets resolved) and a loopback address of its own, so logs and exit codes are
//!   real; SIGTERM then SIGKILL after the grace period on deletion. Images are recorded, never
//!   pulled: images matching a cluster's `unpullable_images` fail with `ErrImagePull` /
//!   `ImagePullBackOff` as the kubelet reports them.
//!
//! Each cluster is served under `/clusters/<name>`; [`RunningSim::kubeconfig_yaml`] gives a
//! kubeconfig with one context per cluster. `/version` answers `v1.33.0-kubesim` and every answer
//! carries a `Server: kubesim/...` header, so nobody mistakes it for a real cluster.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), skyplan_kubesim::Error> {
//! use skyplan_kubesim::{ClustersFile, SimOptions, Simulator};
//!
//! let clusters = ClustersFile::from_yaml_str(
//!     "clusters:\n  - name: demo\n    nodes:\n      - name: gpu-node\n        allocatable: {cpu: 8, memory: 32Gi, nvidia.com/gpu: 1}\n",
//! )?;
//! let sim = Simulator::start(clusters, SimOptions::default()).await?;
//! let url = sim.cluster_url("demo").expect("cluster exists");
//! assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/clusters/demo"));
//! assert!(sim.kubeconfig_yaml().contains("current-context: demo"));
//! sim.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Deliberately absent: authentication, API groups other than core `v1`, server-side apply and JSON
//! patch (merge and strategic-merge patches are both applied as JSON merge patches), list
//! snapshots (a continued paginated list reads the objects as they are now), OpenAPI v2,
//! preemption, and container isolation (processes run on the host).

mod api;
mod cluster;
mod conditions;
pub mod config;
mod discovery;
mod error;
mod events;
mod kubelet;
mod objects;
mod openapi;
pub mod quantity;
mod runtime;
pub mod scheduler;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod util;

pub use config::{ClusterSpec, ClustersFile, NodeSpec, TaintSpec};
pub use error::{Error, Result};
pub use quantity::{Quantity, QuantityError};
pub use server::{RunningSim, SimOptions, Simulator, run_foreground};
