//! The job contract: exit codes, log options, provision not waiting for the job, teardown of
//! a running job, exec, and capabilities that match what `provision` refuses.

use skyplan_spec::{FileMount, PortRange};

use super::*;

/// A job whose nodes exit 3 is `FAILED` with exit code 3, on every node.
pub async fn failing_job_reports_exit_code(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("fail");
    let run = format!("echo {MARKER} rank $SKYPLAN_NODE_RANK\nexit 3");
    let request = with_run(factory, &cluster, &run);
    provision(provider, &request).await;
    let status = wait_for_job(provider, &cluster, Some(1)).await;
    cleanup(provider, &cluster).await;
    let id = provider.id();
    let status = status.unwrap_or_else(|err| panic!("{id}: job 1 of {cluster:?} did not finish: {err}"));
    let job = status
        .job(1)
        .unwrap_or_else(|| panic!("{id}: no job 1: {status:?}"));
    assert_eq!(
        (job.state, job.exit_code),
        (JobState::Failed, Some(3)),
        "{id}: a job that exits 3: {job:?}"
    );
    assert_eq!(
        job.node_exit_codes,
        vec![Some(3); node_count(&request) as usize],
        "{id}: every node's exit code"
    );
}

/// Without `follow`, logs are the lines so far, in order per node; `tail` keeps each node's last
/// lines, `node` one node's, `job` one job's; an unknown job is `NotFound`.
pub async fn log_options_select_lines(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("opts");
    let run = (1..=3)
        .map(|n| format!("echo {MARKER} rank $SKYPLAN_NODE_RANK line {n}"))
        .collect::<Vec<_>>()
        .join("\n");
    let request = with_run(factory, &cluster, &run);
    provision(provider, &request).await;
    let finished = wait_for_job(provider, &cluster, Some(1)).await;
    let nodes = node_count(&request);
    let last = nodes - 1;
    let read = |options: LogOptions| {
        let cluster = cluster.clone();
        async move { read_logs(provider, &cluster, &options).await }
    };
    let all = read(LogOptions::default()).await;
    let tail = read(LogOptions {
        tail: Some(1),
        ..Default::default()
    })
    .await;
    let one_node = read(LogOptions {
        node: Some(last),
        ..Default::default()
    })
    .await;
    let job_1 = read(LogOptions {
        job: Some(1),
        ..Default::default()
    })
    .await;
    let unknown = provider
        .logs(
            cluster.as_str().into(),
            &LogOptions {
                job: Some(99),
                ..Default::default()
            },
        )
        .await
        .map(|_| ());
    cleanup(provider, &cluster).await;
    let id = provider.id();
    if let Err(err) = finished {
        panic!("{id}: job 1 of {cluster:?} did not finish: {err}");
    }
    let texts = |lines: &[LogLine], rank: u32| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.node == rank)
            .map(|l| l.text.clone())
            .collect()
    };
    let line = |rank: u32, n: u32| format!("{MARKER} rank {rank} line {n}");
    let all = all.unwrap_or_else(|err| panic!("{id}: logs failed: {err}"));
    for rank in 0..nodes {
        assert_eq!(
            texts(&all, rank),
            (1..=3).map(|n| line(rank, n)).collect::<Vec<_>>(),
            "{id}: rank {rank}'s lines, in order: {all:?}"
        );
    }
    let tail = tail.unwrap_or_else(|err| panic!("{id}: logs --tail 1 failed: {err}"));
    for rank in 0..nodes {
        assert_eq!(
            texts(&tail, rank),
            [line(rank, 3)],
            "{id}: tail 1 keeps each node's last line: {tail:?}"
        );
    }
    let one_node = one_node.unwrap_or_else(|err| panic!("{id}: logs of node {last} failed: {err}"));
    assert!(
        one_node.len() == 3 && one_node.iter().all(|l| l.node == last),
        "{id}: node {last}'s log only: {one_node:?}"
    );
    let job_1 = job_1.unwrap_or_else(|err| panic!("{id}: logs of job 1 failed: {err}"));
    for rank in 0..nodes {
        // Nodes' lines may interleave either way; each node's are in order.
        assert_eq!(
            texts(&job_1, rank),
            texts(&all, rank),
            "{id}: job 1 is the newest job"
        );
    }
    assert!(
        matches!(unknown, Err(ProviderError::NotFound { .. })),
        "{id}: logs of job 99 must be NotFound, got {unknown:?}"
    );
}

/// `provision` returns once the job has started, not when it ends.
pub async fn provision_returns_while_the_job_runs(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("nowait");
    let request = with_run(factory, &cluster, &long_run());
    let provisioned = tokio::time::timeout(JOB_TIMEOUT * 2, provider.provision(&request)).await;
    let status = provider.status(cluster.as_str().into()).await;
    cleanup(provider, &cluster).await;
    let id = provider.id();
    match provisioned {
        Err(_) => panic!("{id}: provision waited for a 600 s job"),
        Ok(Err(err)) => panic!("{id}: provision of {cluster:?} failed: {err}"),
        Ok(Ok(handle)) => assert_eq!(handle.job_id, Some(1), "{id}: the task runs as job 1"),
    }
    let status = status.unwrap_or_else(|err| panic!("{id}: status after provision: {err}"));
    let job = status
        .job(1)
        .unwrap_or_else(|| panic!("{id}: no job 1: {status:?}"));
    assert!(
        matches!(job.state, JobState::Pending | JobState::Running),
        "{id}: a 600 s job right after provision: {job:?}"
    );
}

/// Tearing down a cluster whose job runs stops it: the cluster and its logs are gone.
pub async fn teardown_stops_a_running_job(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("stop");
    let request = with_run(factory, &cluster, &long_run());
    provision(provider, &request).await;
    let id = provider.id();
    let running = |s: &ClusterStatus| s.job(1).is_some_and(|j| j.state == JobState::Running);
    let started = provider
        .wait_until(cluster.as_str().into(), &running, JOB_TIMEOUT)
        .await;
    let outcome = provider.teardown(cluster.as_str().into()).await;
    let gone = async {
        let deadline = tokio::time::Instant::now() + JOB_TIMEOUT;
        loop {
            match provider.status(cluster.as_str().into()).await {
                Err(ProviderError::NotFound { .. }) => return Ok(()),
                other if tokio::time::Instant::now() >= deadline => return Err(other),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    .await;
    if gone.is_err() {
        cleanup(provider, &cluster).await;
    }
    if let Err(err) = started {
        panic!("{id}: job 1 of {cluster:?} never ran: {err}");
    }
    assert!(
        matches!(
            outcome,
            Ok(TeardownOutcome::Terminated | TeardownOutcome::Terminating { .. })
        ),
        "{id}: teardown of a running cluster: {outcome:?}"
    );
    if let Err(still) = gone {
        panic!("{id}: {cluster:?} still there {JOB_TIMEOUT:?} after teardown: {still:?}");
    }
    let logs = provider
        .logs(cluster.as_str().into(), &LogOptions::default())
        .await
        .map(|_| ());
    assert!(
        matches!(logs, Err(ProviderError::NotFound { .. })),
        "{id}: logs of a torn-down cluster must be NotFound, got {logs:?}"
    );
}

/// With `capabilities().exec`, `exec` runs a new job (id 2, without setup) whose logs are its
/// own; without, it is `Unsupported`.
pub async fn exec_keeps_to_capabilities(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let cluster = cluster_name("exec");
    let mut request = request(factory, &cluster);
    request.task.setup = Some(format!("echo {MARKER} setup rank $SKYPLAN_NODE_RANK"));
    provision(provider, &request).await;
    let first = wait_for_job(provider, &cluster, Some(1)).await;
    let mut task = request.task.clone();
    task.setup = None;
    task.run = Some(format!("echo {MARKER} exec rank $SKYPLAN_NODE_RANK"));
    let exec = provider.exec(cluster.as_str().into(), &task).await;
    let second = match &exec {
        Ok(job) => Some((
            wait_for_job(provider, &cluster, Some(*job)).await,
            read_logs(provider, &cluster, &LogOptions::default()).await,
        )),
        Err(_) => None,
    };
    cleanup(provider, &cluster).await;
    let id = provider.id();
    if let Err(err) = first {
        panic!("{id}: job 1 of {cluster:?} did not finish: {err}");
    }
    if !provider.capabilities().exec {
        assert!(
            matches!(exec, Err(ProviderError::Unsupported { .. })),
            "{id}: exec without the capability must be Unsupported, got {exec:?}"
        );
        return;
    }
    let job = exec.unwrap_or_else(|err| panic!("{id}: exec claimed but failed: {err}"));
    assert_eq!(job, 2, "{id}: the second job on a cluster is 2");
    let Some((status, lines)) = second else {
        unreachable!("exec succeeded")
    };
    let status = status.unwrap_or_else(|err| panic!("{id}: job 2 did not finish: {err}"));
    let ids: Vec<u64> = status.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [1, 2], "{id}: the cluster's jobs");
    assert_eq!(
        status.job(2).map(|j| j.state),
        Some(JobState::Succeeded),
        "{id}: job 2"
    );
    let lines = lines.unwrap_or_else(|err| panic!("{id}: logs of job 2 failed: {err}"));
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    for rank in 0..node_count(&request) {
        let expected = format!("{MARKER} exec rank {rank}");
        assert!(
            texts.contains(&expected.as_str()),
            "{id}: job 2 logs lack {expected:?}: {texts:?}"
        );
    }
    assert!(
        texts.iter().all(|t| t.contains(" exec rank ")),
        "{id}: job 2's logs hold only job 2 (no setup rerun, no job 1): {texts:?}"
    );
}

/// What `capabilities()` does not claim, `provision` refuses as `Unsupported` and creates
/// nothing for; what it claims, `provision` accepts.
pub async fn capabilities_match_unsupported(provider: &dyn Provider, factory: RequestFactory<'_>) {
    let claimed = provider.capabilities();
    let id = provider.id();
    let scratch = std::env::temp_dir().join(format!("{}-{id}", cluster_name("files")));
    if let Err(err) =
        std::fs::create_dir_all(&scratch).and_then(|()| std::fs::write(scratch.join("a.txt"), "a\n"))
    {
        panic!("making {}: {err}", scratch.display());
    }
    type Needs = fn(&mut ProvisionRequest, &std::path::Path);
    let features: [(&str, bool, Needs); 7] = [
        ("docker_images", claimed.docker_images, |r, _| {
            r.task.image_id = Some("docker:busybox:1.36".to_string());
        }),
        ("spot", claimed.spot, |r, _| r.placement.use_spot = true),
        ("ports", claimed.ports, |r, _| {
            r.task.ports = vec![PortRange::single(8080)]
        }),
        ("workdir", claimed.workdir, |r, dir| {
            r.task.workdir = Some(dir.to_path_buf())
        }),
        ("file_mounts", claimed.file_mounts, |r, dir| {
            let source = FileMount::Source(dir.join("a.txt").display().to_string());
            r.task
                .file_mounts
                .insert("/tmp/skyplan-conformance/a.txt".to_string(), source);
        }),
        ("bucket_mounts", claimed.bucket_mounts, |r, _| {
            let source = FileMount::Source("s3://skyplan-conformance-bucket".to_string());
            r.task
                .file_mounts
                .insert("/tmp/skyplan-conformance/bucket".to_string(), source);
        }),
        ("disk_size", claimed.disk_size, |r, _| {
            r.task.disk_size_gb = Some(64)
        }),
    ];
    let mut wrong = Vec::new();
    for (name, supported, needs) in features {
        let cluster = cluster_name(&name.replace('_', "-"));
        let mut request = request(factory, &cluster);
        needs(&mut request, &scratch);
        let answer = provider.provision(&request).await;
        let listed = provider.list().await;
        cleanup(provider, &cluster).await;
        let made = listed.map(|l| l.iter().any(|c| c.name == cluster));
        match (supported, &answer) {
            (false, Err(ProviderError::Unsupported { .. })) if made.as_ref().is_ok_and(|m| !m) => {}
            (false, _) => wrong.push(format!(
                "{name} is not claimed: want Unsupported and nothing made, got {answer:?} (made: {made:?})"
            )),
            (true, Ok(_)) => {}
            (true, Err(err)) => wrong.push(format!("{name} is claimed, but provision failed: {err}")),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        wrong.is_empty(),
        "{id}: capabilities {claimed:?} do not match provision:\n{}",
        wrong.join("\n")
    );
}
