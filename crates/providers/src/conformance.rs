//! The contract every [`Provider`] must keep, as async checks any backend's tests can run
//! (feature `testing`). Each check panics with a message naming the broken rule, and cleans up
//! the clusters it made.
//!
//! A backend's test supplies a request factory: given a cluster name, a [`ProvisionRequest`]
//! with a placement the backend can serve. The checks set the cluster name, request id and a
//! `run` that prints [`MARKER`] and the node rank (`echo MARKER rank $SKYPLAN_NODE_RANK`).
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use skyplan_providers::fake::{placement, FakeProvider};
//! use skyplan_providers::{conformance, ProvisionRequest, TaskRun};
//! let fake = FakeProvider::new("aws");
//! let factory = |cluster: &str| ProvisionRequest {
//!     request_id: String::new(),
//!     cluster: cluster.to_string(),
//!     placement: placement("aws", "us-east-1", Some("use1-az1"), "m6i.large"),
//!     task: TaskRun::default(),
//! };
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! runtime.block_on(conformance::run_all(&fake, &factory));
//! # }
//! ```

use std::time::Duration;

use futures::StreamExt;

use crate::{JobState, LogOptions, Provider, ProviderError, ProvisionRequest, TeardownOutcome};

/// Printed by every conformance task's `run`.
pub const MARKER: &str = "skyplan-conformance";

/// Builds a request for a cluster name.
pub type RequestFactory<'a> = &'a (dyn Fn(&str) -> ProvisionRequest + Send + Sync);

/// How long a check waits for a job to finish.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn cluster_name(check: &str) -> String {
    format!("conf-{check}-{:06x}", fastrand::u32(..0x100_0000))
}

fn request(factory: RequestFactory<'_>, cluster: &str) -> ProvisionRequest {
    let mut request = factory(cluster);
    request.cluster = cluster.to_string();
    request.request_id = format!("{cluster}-request-1");
    request.task.name = "conformance".to_string();
    request.task.run = Some(format!("echo {MARKER} rank $SKYPLAN_NODE_RANK"));
    request
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

async fn wait_for_job(provider: &dyn Provider, cluster: &str) -> crate::ClusterStatus {
    let finished = |s: &crate::ClusterStatus| s.latest_job().is_some_and(|j| j.state.is_finished());
    match provider.wait_until(cluster.into(), &finished, JOB_TIMEOUT).await {
        Ok(status) => status,
        Err(err) => panic!("{}: job 1 of {cluster:?} did not finish: {err}", provider.id()),
    }
}

/// Provisioning twice with one request id makes one cluster, and the same handle.
pub async fn provision_is_idempotent(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("idem");
    let request = request(factory, &cluster);
    let first = provider.provision(&request).await;
    let second = provider.provision(&request).await;
    let listed = provider.list().await;
    cleanup(provider, &cluster).await;
    let (first, second) = match (first, second) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!("{}: provision twice: {a:?} then {b:?}", provider.id()),
    };
    assert_eq!(
        first.request_id,
        second.request_id,
        "{}: handles differ",
        provider.id()
    );
    assert_eq!(first.nodes, second.nodes, "{}: handles differ", provider.id());
    let count = listed
        .unwrap_or_else(|err| panic!("{}: list failed: {err}", provider.id()))
        .iter()
        .filter(|c| c.name == cluster)
        .count();
    assert_eq!(
        count,
        1,
        "{}: same request id twice must make one cluster",
        provider.id()
    );
}

/// Another request id for an existing cluster name is an `InvalidRequest`, and leaves the
/// cluster alone.
pub async fn conflicting_request_is_rejected(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("conflict");
    let request = request(factory, &cluster);
    provision(provider, &request).await;
    let mut other = request.clone();
    other.request_id = format!("{cluster}-request-2");
    let answer = provider.provision(&other).await;
    let still_there = provider.status(cluster.as_str().into()).await;
    cleanup(provider, &cluster).await;
    assert!(
        matches!(answer, Err(ProviderError::InvalidRequest { .. })),
        "{}: a second request id for {cluster:?} must be InvalidRequest, got {answer:?}",
        provider.id()
    );
    assert!(
        still_there.is_ok(),
        "{}: the first cluster must survive",
        provider.id()
    );
}

/// Teardown says `Terminated` (or `Terminating`, with what is shutting down) once, and
/// `AlreadyGone` after (or still `Terminating`), never an error.
pub async fn teardown_is_idempotent(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("down");
    provision(provider, &request(factory, &cluster)).await;
    let first = provider.teardown(cluster.as_str().into()).await;
    let second = provider.teardown(cluster.as_str().into()).await;
    let never = provider.teardown(cluster_name("never").as_str().into()).await;
    assert!(
        matches!(
            first,
            Ok(TeardownOutcome::Terminated | TeardownOutcome::Terminating { .. })
        ),
        "{}: first teardown: {first:?}",
        provider.id()
    );
    assert!(
        matches!(
            second,
            Ok(TeardownOutcome::AlreadyGone | TeardownOutcome::Terminating { .. })
        ),
        "{}: second teardown: {second:?}",
        provider.id()
    );
    assert_eq!(
        never.ok(),
        Some(TeardownOutcome::AlreadyGone),
        "{}: unknown cluster",
        provider.id()
    );
}

/// Status: `NotFound` before provisioning; then the cluster with job 1, which finishes
/// `SUCCEEDED` with exit code 0; `NotFound` again after teardown.
pub async fn status_follows_lifecycle(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("status");
    let before = provider.status(cluster.as_str().into()).await;
    assert!(
        matches!(before, Err(ProviderError::NotFound { .. })),
        "{}: status before provision must be NotFound, got {before:?}",
        provider.id()
    );
    let request = request(factory, &cluster);
    provision(provider, &request).await;
    let status = wait_for_job(provider, &cluster).await;
    let gone = {
        cleanup(provider, &cluster).await;
        provider.status(cluster.as_str().into()).await
    };
    let job = status.latest_job().cloned();
    assert_eq!(status.cluster, cluster);
    assert_eq!(
        status.state,
        crate::ClusterState::Up,
        "{}: cluster state",
        provider.id()
    );
    assert_eq!(
        status.nodes.len() as u32,
        request.placement.num_nodes.max(request.task.num_nodes).max(1)
    );
    let job = job.unwrap_or_else(|| panic!("{}: no job after provision", provider.id()));
    assert_eq!(job.id, 1, "{}: the first job is 1", provider.id());
    assert_eq!(
        (job.state, job.exit_code),
        (JobState::Succeeded, Some(0)),
        "{}: job",
        provider.id()
    );
    assert!(
        matches!(gone, Err(ProviderError::NotFound { .. })),
        "{}: status after teardown must be NotFound, got {gone:?}",
        provider.id()
    );
}

/// `list()` finds the cluster by its label, with the cluster name as the label value.
pub async fn list_finds_cluster_by_label(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("list");
    provision(provider, &request(factory, &cluster)).await;
    let listed = provider.list().await;
    cleanup(provider, &cluster).await;
    let listed = listed.unwrap_or_else(|err| panic!("{}: list failed: {err}", provider.id()));
    let found = listed
        .iter()
        .find(|c| c.name == cluster)
        .unwrap_or_else(|| panic!("{}: list() does not show {cluster:?}", provider.id()));
    assert_eq!(found.provider, provider.id());
    assert_eq!(
        found.labels.get(crate::CLUSTER_LABEL),
        Some(&cluster),
        "{}: label",
        provider.id()
    );
}

/// The logs of job 1 hold what `run` printed, on every node, with its rank.
pub async fn logs_contain_run_output(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("logs");
    let request = request(factory, &cluster);
    provision(provider, &request).await;
    let lines = async {
        let options = LogOptions {
            follow: true,
            ..Default::default()
        };
        let stream = provider.logs(cluster.as_str().into(), &options).await?;
        let lines: Vec<Result<crate::LogLine, ProviderError>> =
            tokio::time::timeout(JOB_TIMEOUT, stream.collect())
                .await
                .map_err(|_| ProviderError::Timeout {
                    what: "the log stream to end".to_string(),
                    seconds: JOB_TIMEOUT.as_secs_f64(),
                })?;
        lines.into_iter().collect::<Result<Vec<_>, _>>()
    }
    .await;
    cleanup(provider, &cluster).await;
    let lines = lines.unwrap_or_else(|err| panic!("{}: logs failed: {err}", provider.id()));
    let nodes = request.placement.num_nodes.max(request.task.num_nodes).max(1);
    for rank in 0..nodes {
        let expected = format!("{MARKER} rank {rank}");
        assert!(
            lines.iter().any(|l| l.node == rank && l.text == expected),
            "{}: logs lack {expected:?}: {lines:?}",
            provider.id()
        );
    }
}

/// After teardown, nothing of the cluster is listed or reachable.
pub async fn teardown_leaves_nothing(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("clean");
    provision(provider, &request(factory, &cluster)).await;
    let outcome = provider.teardown(cluster.as_str().into()).await;
    assert!(
        matches!(
            outcome,
            Ok(TeardownOutcome::Terminated | TeardownOutcome::Terminating { .. })
        ),
        "{}: teardown: {outcome:?}",
        provider.id()
    );
    let listed = provider
        .list()
        .await
        .unwrap_or_else(|err| panic!("{}: list failed: {err}", provider.id()));
    assert!(
        listed.iter().all(|c| c.name != cluster),
        "{}: {cluster:?} still listed after teardown",
        provider.id()
    );
    let logs = provider
        .logs(cluster.as_str().into(), &LogOptions::default())
        .await;
    assert!(
        matches!(logs, Err(ProviderError::NotFound { .. })),
        "{}: logs after teardown must be NotFound",
        provider.id()
    );
}

/// Every check above, one after another.
pub async fn run_all(provider: &dyn Provider, factory: RequestFactory<'_>) {
    provision_is_idempotent(provider, factory).await;
    conflicting_request_is_rejected(provider, factory).await;
    teardown_is_idempotent(provider, factory).await;
    status_follows_lifecycle(provider, factory).await;
    list_finds_cluster_by_label(provider, factory).await;
    logs_contain_run_output(provider, factory).await;
    teardown_leaves_nothing(provider, factory).await;
}
