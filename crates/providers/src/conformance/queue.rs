//! The job queue of a cluster: jobs numbered in order, with times, and `cancel`.

use std::time::Duration;

use super::{
    JOB_TIMEOUT, RequestFactory, cleanup, cluster_name, long_run, provision, read_logs, request, wait_for_job,
};
use crate::{ClusterStatus, JobSelection, JobState, LogOptions, Provider, ProviderError};

/// With `capabilities().exec`, `cancel` stops a running job on every node and marks it
/// CANCELLED (its output stops), leaves ended jobs alone, and refuses an unknown id before
/// stopping anything; without, it is `Unsupported`. Ended jobs say when they started and ended
/// in order, where the provider says at all.
pub async fn cancel_stops_a_running_job(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("cancel");
    let request = request(factory, &cluster);
    provision(provider, &request).await;
    let id = provider.id();
    let first = wait_for_job(provider, &cluster, Some(1)).await;
    let mut task = request.task.clone();
    task.setup = None;
    task.run = Some(long_run());
    let outcome = async {
        if !provider.capabilities().exec {
            return Ok((
                None,
                provider.cancel(cluster.as_str().into(), &JobSelection::All).await,
            ));
        }
        let job = provider.exec(cluster.as_str().into(), &task).await?;
        let printed = |s: &ClusterStatus| s.job(job).is_some_and(|j| j.state == JobState::Running);
        provider
            .wait_until(cluster.as_str().into(), &printed, JOB_TIMEOUT)
            .await?;
        // Give every node time to print its first line.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let unknown = provider
            .cancel(cluster.as_str().into(), &JobSelection::Ids(vec![job, 99]))
            .await;
        let cancelled = provider
            .cancel(cluster.as_str().into(), &JobSelection::All)
            .await?;
        let status = wait_for_job(provider, &cluster, Some(job)).await?;
        let again = provider
            .cancel(cluster.as_str().into(), &JobSelection::Ids(vec![job]))
            .await?;
        let logs = read_logs(
            provider,
            &cluster,
            &LogOptions {
                job: Some(job),
                ..LogOptions::default()
            },
        )
        .await?;
        Ok::<_, ProviderError>((
            Some((job, unknown, cancelled, status, again, logs)),
            Ok(Vec::new()),
        ))
    }
    .await;
    cleanup(provider, &cluster).await;
    let first = first.unwrap_or_else(|err| panic!("{id}: job 1 of {cluster:?} did not finish: {err}"));
    let (checked, unsupported) =
        outcome.unwrap_or_else(|err| panic!("{id}: exec and cancel on {cluster:?}: {err}"));
    let Some((job, unknown, cancelled, status, again, logs)) = checked else {
        assert!(
            matches!(unsupported, Err(ProviderError::Unsupported { .. })),
            "{id}: cancel without the exec capability must be Unsupported, got {unsupported:?}"
        );
        return;
    };
    assert!(
        matches!(unknown, Err(ProviderError::NotFound { .. })),
        "{id}: cancelling an unknown job id must be NotFound, got {unknown:?}"
    );
    assert_eq!(cancelled, [job], "{id}: cancel --all stops only the running job");
    let stopped = status.job(job).map(|j| (j.state, j.exit_code));
    assert_eq!(
        stopped,
        Some((JobState::Cancelled, None)),
        "{id}: job {job} after cancel"
    );
    assert!(
        again.is_empty(),
        "{id}: cancelling an ended job stops nothing: {again:?}"
    );
    let texts: Vec<&str> = logs.iter().map(|l| l.text.as_str()).collect();
    assert!(
        !texts.iter().any(|t| t.contains(" finished")),
        "{id}: job {job} went on after cancel: {texts:?}"
    );
    let ended = first.job(1).expect("job 1 is listed");
    if let (Some(started), Some(ended)) = (ended.started_at, ended.ended_at) {
        assert!(
            started <= ended,
            "{id}: job 1 ended ({ended}) before it started ({started})"
        );
    }
}
