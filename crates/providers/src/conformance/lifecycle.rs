//! The lifecycle contract: provision, status, list, logs and teardown of one cluster.

use super::*;

/// Provisioning twice with one request id makes one cluster, gives the same handle, and starts
/// nothing new: one job, whose output shows once per node.
pub async fn provision_is_idempotent(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("idem");
    let request = request(factory, &cluster);
    let first = provider.provision(&request).await;
    let second = provider.provision(&request).await;
    let listed = provider.list().await;
    let finished = wait_for_job(provider, &cluster, Some(1)).await;
    let lines = read_logs(provider, &cluster, &LogOptions::default()).await;
    cleanup(provider, &cluster).await;
    let id = provider.id();
    let (first, second) = match (first, second) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!("{id}: provision twice: {a:?} then {b:?}"),
    };
    assert_eq!(first.request_id, second.request_id, "{id}: handles differ");
    assert_eq!(first.nodes, second.nodes, "{id}: handles differ");
    assert_eq!(first.job_id, second.job_id, "{id}: a repeat names the same job");
    let count = listed
        .unwrap_or_else(|err| panic!("{id}: list failed: {err}"))
        .iter()
        .filter(|c| c.name == cluster)
        .count();
    assert_eq!(count, 1, "{id}: same request id twice must make one cluster");
    let status = finished.unwrap_or_else(|err| panic!("{id}: job 1 of {cluster:?} did not finish: {err}"));
    let ids: Vec<u64> = status.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [1], "{id}: a repeated request must start no second job");
    let lines = lines.unwrap_or_else(|err| panic!("{id}: logs failed: {err}"));
    for rank in 0..node_count(&request) {
        let expected = format!("{MARKER} rank {rank}");
        let shown = lines
            .iter()
            .filter(|l| l.node == rank && l.text == expected)
            .count();
        assert_eq!(
            shown, 1,
            "{id}: the job ran {shown} times on rank {rank}: {lines:?}"
        );
    }
}

/// Another request id for an existing cluster name is an `InvalidRequest` and leaves the
/// cluster alone — in the same place, and in another place the provider serves (a cluster
/// name is one cluster, wherever it is).
pub async fn conflicting_request_is_rejected(
    provider: &dyn Provider,
    factory: RequestFactory<'_>,
    elsewhere: Option<RequestFactory<'_>>,
) {
    let cluster = cluster_name("conflict");
    let request = request(factory, &cluster);
    provision(provider, &request).await;
    let mut others = vec![("the same place", request.clone())];
    if let Some(elsewhere) = elsewhere {
        others.push(("another place", self::request(elsewhere, &cluster)));
    }
    let mut answers = Vec::new();
    for (n, (place, mut other)) in others.into_iter().enumerate() {
        other.request_id = format!("{cluster}-request-{}", n + 2);
        answers.push((
            place,
            other.placement.region.clone(),
            provider.provision(&other).await,
        ));
    }
    let still_there = provider.status(cluster.as_str().into()).await;
    let listed = provider.list().await;
    // Anything the second request made anyway must go too.
    cleanup(provider, &cluster).await;
    cleanup(provider, &cluster).await;
    let id = provider.id();
    for (place, region, answer) in answers {
        assert!(
            matches!(answer, Err(ProviderError::InvalidRequest { .. })),
            "{id}: a second request id for {cluster:?} in {place} ({region}) must be InvalidRequest, got {answer:?}"
        );
    }
    assert!(
        still_there.is_ok(),
        "{id}: the first cluster must survive: {still_there:?}"
    );
    let places: Vec<String> = listed
        .unwrap_or_else(|err| panic!("{id}: list failed: {err}"))
        .into_iter()
        .filter(|c| c.name == cluster)
        .map(|c| c.region)
        .collect();
    assert_eq!(
        places,
        std::slice::from_ref(&request.placement.region),
        "{id}: {cluster:?} must exist once, where it was made"
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
    let status = wait_for_job(provider, &cluster, Some(1))
        .await
        .unwrap_or_else(|err| panic!("{}: job 1 of {cluster:?} did not finish: {err}", provider.id()));
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
    let options = LogOptions {
        follow: true,
        ..Default::default()
    };
    let lines = read_logs(provider, &cluster, &options).await;
    cleanup(provider, &cluster).await;
    let lines = lines.unwrap_or_else(|err| panic!("{}: logs failed: {err}", provider.id()));
    for rank in 0..node_count(&request) {
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
