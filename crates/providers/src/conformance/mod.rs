//! The contract every [`Provider`] must keep, as async checks any backend's tests can run
//! (feature `testing`). Each check panics with a message naming the broken rule, and cleans up
//! the clusters it made.
//!
//! A backend's test supplies a request factory: given a cluster name, a [`ProvisionRequest`]
//! with a placement the backend can serve (best with two nodes, so that every rule is checked
//! on every rank), and, where the backend serves more than one place, a factory for another
//! place (region, context). The checks set the cluster name, request id and a `run` that
//! prints [`MARKER`] and the node rank (`echo MARKER rank $SKYPLAN_NODE_RANK`).
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use skyplan_providers::fake::{placement, FakeProvider};
//! use skyplan_providers::{conformance, ProvisionRequest, TaskRun};
//! let fake = FakeProvider::new("aws");
//! let at = |region: &'static str| {
//!     move |cluster: &str| ProvisionRequest {
//!         request_id: String::new(),
//!         cluster: cluster.to_string(),
//!         placement: placement("aws", region, None, "m6i.large"),
//!         task: TaskRun::default(),
//!     }
//! };
//! let (here, there) = (at("us-east-1"), at("eu-north-1"));
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! runtime.block_on(conformance::run_all(&fake, &here, Some(&there)));
//! # }
//! ```

mod jobs;
mod lifecycle;
mod queue;

use std::time::Duration;

use futures::StreamExt;

use crate::{
    ClusterStatus, JobState, LogLine, LogOptions, Provider, ProviderError, ProvisionRequest, TeardownOutcome,
};

pub use jobs::{
    capabilities_match_unsupported, exec_keeps_to_capabilities, failing_job_reports_exit_code,
    log_options_select_lines, provision_returns_while_the_job_runs, teardown_stops_a_running_job,
};
pub use lifecycle::{
    conflicting_request_is_rejected, list_finds_cluster_by_label, logs_contain_run_output,
    provision_is_idempotent, status_follows_lifecycle, teardown_is_idempotent, teardown_leaves_nothing,
};
pub use queue::cancel_stops_a_running_job;

/// Printed by every conformance task's `run`.
pub const MARKER: &str = "skyplan-conformance";

/// Builds a request for a cluster name.
pub type RequestFactory<'a> = &'a (dyn Fn(&str) -> ProvisionRequest + Send + Sync);

/// How long a check waits for a job to finish (or start).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A script that prints, then runs far longer than any check waits.
fn long_run() -> String {
    format!("echo {MARKER} started rank $SKYPLAN_NODE_RANK\nsleep 600\necho {MARKER} finished")
}

fn cluster_name(check: &str) -> String {
    format!("conf-{check}-{:06x}", fastrand::u32(..0x100_0000))
}

fn request(factory: RequestFactory<'_>, cluster: &str) -> ProvisionRequest {
    with_run(
        factory,
        cluster,
        &format!("echo {MARKER} rank $SKYPLAN_NODE_RANK"),
    )
}

/// The conformance request for `cluster` with `run` as its script.
fn with_run(factory: RequestFactory<'_>, cluster: &str, run: &str) -> ProvisionRequest {
    let mut request = factory(cluster);
    request.cluster = cluster.to_string();
    request.request_id = format!("{cluster}-request-1");
    request.task.name = "conformance".to_string();
    request.task.run = Some(run.to_string());
    request
}

fn node_count(request: &ProvisionRequest) -> u32 {
    request.placement.num_nodes.max(request.task.num_nodes).max(1)
}

async fn provision(provider: &dyn Provider, request: &ProvisionRequest) {
    if let Err(err) = provider.provision(request).await {
        panic!(
            "{}: provision of {:?} failed: {err}",
            provider.id(),
            request.cluster
        );
    }
}

async fn cleanup(provider: &dyn Provider, cluster: &str) {
    let _ = provider.teardown(cluster.into()).await;
}

/// Waits for job `id` (the newest when `None`) to finish.
async fn wait_for_job(
    provider: &dyn Provider,
    cluster: &str,
    id: Option<u64>,
) -> Result<ClusterStatus, ProviderError> {
    let finished = move |s: &ClusterStatus| {
        id.map_or_else(|| s.latest_job(), |id| s.job(id))
            .is_some_and(|j| j.state.is_finished())
    };
    provider.wait_until(cluster.into(), &finished, JOB_TIMEOUT).await
}

/// Every line of a log stream, bounded by [`JOB_TIMEOUT`].
async fn read_logs(
    provider: &dyn Provider,
    cluster: &str,
    options: &LogOptions,
) -> Result<Vec<LogLine>, ProviderError> {
    let stream = provider.logs(cluster.into(), options).await?;
    let lines: Vec<Result<LogLine, ProviderError>> = tokio::time::timeout(JOB_TIMEOUT, stream.collect())
        .await
        .map_err(|_| ProviderError::Timeout {
            what: "the log stream to end".to_string(),
            seconds: JOB_TIMEOUT.as_secs_f64(),
        })?;
    lines.into_iter().collect()
}

/// Every check, one after another; `elsewhere` makes requests for another place the provider
/// serves (conflicting names are checked across places then).
pub async fn run_all(
    provider: &dyn Provider,
    factory: RequestFactory<'_>,
    elsewhere: Option<RequestFactory<'_>>,
) {
    provision_is_idempotent(provider, factory).await;
    conflicting_request_is_rejected(provider, factory, elsewhere).await;
    teardown_is_idempotent(provider, factory).await;
    status_follows_lifecycle(provider, factory).await;
    list_finds_cluster_by_label(provider, factory).await;
    logs_contain_run_output(provider, factory).await;
    teardown_leaves_nothing(provider, factory).await;
    failing_job_reports_exit_code(provider, factory).await;
    log_options_select_lines(provider, factory).await;
    provision_returns_while_the_job_runs(provider, factory).await;
    teardown_stops_a_running_job(provider, factory).await;
    exec_keeps_to_capabilities(provider, factory).await;
    cancel_stops_a_running_job(provider, factory).await;
    capabilities_match_unsupported(provider, factory).await;
}
