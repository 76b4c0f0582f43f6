//! Providers, the failover launcher and the state store: everything between a [`Plan`] and a
//! running task.
//!
//! - [`Provider`]: the object-safe async trait every backend implements (`local` here; cloud and
//!   Kubernetes backends behind their own features), with typed [`ProviderError`]s whose
//!   [`ProviderError::failover`] decides what the launcher does next.
//! - [`Launcher`]: solves with the optimizer, provisions the best placement, and on a capacity or
//!   quota error blocks the right scope, re-solves and tries the next, keeping the history.
//! - [`StateStore`]: clusters, jobs and attempts in SQLite under `SKYPLAN_HOME`.
//! - [`LocalProvider`] (feature `local`, default): processes on this machine.
//! - `KubernetesProvider` (feature `kubernetes`): pods on kubeconfig contexts, priced by
//!   config, with live free capacity; `kubernetes::render_manifests` prints the objects it
//!   creates (`kubernetes::build_manifests`, one function for both).
//! - `AwsProvider` (feature `aws`): EC2 instances through `aws-sdk-ec2`, status and logs from
//!   their console output, spot prices for the catalog overlay; `aws::testing` (feature
//!   `aws-testing`) runs a local moto with a fault-injecting, instance-emulating proxy.
//! - `fake` and `conformance` (feature `testing`): a recording, error-injecting provider, and the
//!   contract tests every backend must pass.
//!
//! Providers never choose where to run, and the optimizer never sees a provider: the launcher is
//! the only place where the two meet.
//!
//! ```
//! use std::sync::Arc;
//! use skyplan_catalog::Catalog;
//! use skyplan_optimizer::{Policy, TaskNode};
//! use skyplan_providers::{Launcher, LaunchRequest, LocalProvider, LogOptions, NoProgress, Provider,
//!     StateStore, TaskRun};
//! use futures::StreamExt;
//!
//! let home = std::env::temp_dir().join(format!("skyplan-lib-doc-{}", std::process::id()));
//! let local = Arc::new(LocalProvider::new(&home));
//! let store = Arc::new(StateStore::open(&home).unwrap());
//! let launcher = Launcher::new(Catalog::default(), Policy::default(), store).with_provider(local.clone());
//! let request = LaunchRequest {
//!     cluster: "hello".into(),
//!     task: TaskNode::new("hello", vec![]),
//!     run: TaskRun::command("hello", "echo hello from rank $SKYPLAN_NODE_RANK"),
//! };
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! runtime.block_on(async {
//!     launcher.launch(&request, &NoProgress).await.unwrap();
//!     let options = LogOptions { follow: true, ..Default::default() };
//!     let lines: Vec<_> = local.logs("hello".into(), &options).await.unwrap().collect().await;
//!     assert_eq!(lines[0].as_ref().unwrap().text, "hello from rank 0");
//!     assert!(launcher.down("hello").await.unwrap().found());
//! });
//! # let _ = std::fs::remove_dir_all(home);
//! ```
//!
//! [`Plan`]: skyplan_optimizer::Plan

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
#[cfg(feature = "testing")]
pub mod fake;
mod jobs;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
mod launcher;
#[cfg(feature = "local")]
mod local;
mod provider;
mod registry;
mod store;
pub mod sync;
mod task;

#[cfg(feature = "aws")]
pub use aws::{AWS, AwsProvider, AwsSettings};
pub use error::{FailoverAction, ProviderError, Scope};
#[cfg(feature = "kubernetes")]
pub use kubernetes::{KUBERNETES, KubernetesConfig, KubernetesProvider};
pub use launcher::{
    Attempt, Backoff, ClusterView, DisabledCloud, DownOutcome, LaunchError, LaunchEvent, LaunchOutcome,
    LaunchPlan, LaunchRequest, LaunchTask, Launcher, LineProgress, NoProgress, PipelineRequest, PipelineRun,
    Progress, Providers, ShownState, StatusReport, TaskProgress, Unlisted, check_cluster_name,
    describe_action, describe_placement, refresh_cluster, status_report, teardown_cluster,
};
#[cfg(feature = "local")]
pub use local::{Gpu, LOCAL, LocalProvider, detect_gpus, machine_offers, parse_nvidia_smi};
pub use provider::{
    CLUSTER_LABEL, Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary,
    JobSelection, JobState, JobStatus, LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider,
    ProvisionRequest, StatusPredicate, TeardownOutcome, UnavailableProvider,
};
pub use registry::{Backends, KNOWN_CLOUDS};
pub use store::{
    AttemptRecord, ClusterRecord, JobRecord, RecordStatus, StateStore, StoreOptions, StoreRecovery,
};
pub use task::{TaskRun, node_variables, shell_quote};

/// A placement for unit tests.
#[cfg(test)]
pub(crate) fn test_placement(
    cloud: &str,
    region: &str,
    zone: Option<&str>,
    instance_type: &str,
) -> skyplan_optimizer::Placement {
    skyplan_optimizer::Placement {
        cloud: cloud.into(),
        region: region.into(),
        zone: zone.map(Into::into),
        instance_type: instance_type.into(),
        accelerator: None,
        accelerator_count: 0.0,
        vcpus: Some(2.0),
        memory_gib: Some(8.0),
        use_spot: false,
        hourly_price: rust_decimal::Decimal::ONE,
        num_nodes: 1,
        alternative: 0,
    }
}
