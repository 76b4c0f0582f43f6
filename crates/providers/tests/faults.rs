//! What the launcher, `status` and `down` do when a provider fails part-way: after creating
//! part of a cluster, while cleaning up, in status and in teardown (the fake provider, primed
//! at each step); and fake jobs that take time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skyplan_providers::fake::{Call, ErrorMatch, FakeProvider, Step};
use skyplan_providers::{
    JobState, LaunchError, Launcher, LogOptions, NoProgress, Provider, ProviderError, Providers,
    RecordStatus, ShownState, TaskRun, TeardownOutcome, status_report,
};

use crate::util::{Home, aws_catalog, launcher, runtime};

use crate::util::launch_request as request;

fn capacity() -> ProviderError {
    crate::util::zone_capacity("no capacity left for the second node")
}

/// A fake with cluster `name` launched on it, and the launcher and store that recorded it.
fn launched(name: &str) -> (Home, Arc<FakeProvider>, Launcher, tokio::runtime::Runtime) {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let rt = runtime();
    rt.block_on(launcher.launch(&request(name), &NoProgress))
        .expect("launch");
    (home, fake, launcher, rt)
}

fn transient(message: &str) -> ProviderError {
    ProviderError::Transient {
        message: message.to_string(),
    }
}

/// The provision and teardown calls, as `P zone` and `T`.
fn steps(fake: &FakeProvider) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Provision { placement, .. } => Some(format!("P {}", placement.zone.unwrap_or_default())),
            Call::Teardown { .. } => Some("T".to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_partly_created_cluster_is_torn_down_before_the_next_zone() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime(
        Step::AfterCreate,
        ErrorMatch::zone("us-east-1", "use1-az1"),
        capacity(),
        1,
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("partial"), &NoProgress))
        .expect("the next zone works");
    assert_eq!(outcome.placement.zone.as_deref(), Some("use1-az2"));
    assert_eq!(steps(&fake), ["P use1-az1", "T", "P use1-az2"]);
    assert_eq!(
        fake.cluster_names(),
        ["partial"],
        "one cluster, in the second zone"
    );
    let status = runtime().block_on(fake.status("partial".into())).expect("status");
    assert_eq!(status.jobs.len(), 1, "the job started once, in the second zone");
}

#[test]
fn a_retry_after_a_partial_creation_finishes_the_same_cluster() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime(
        Step::AfterCreate,
        ErrorMatch::any(),
        transient("RequestLimitExceeded"),
        1,
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("resumed"), &NoProgress))
        .expect("the retry finishes it");
    assert_eq!(outcome.placement.zone.as_deref(), Some("use1-az1"));
    assert!(outcome.failures.is_empty());
    assert_eq!(
        steps(&fake),
        ["P use1-az1", "P use1-az1"],
        "no teardown: same request id"
    );
    let status = runtime()
        .block_on(fake.wait_until(
            "resumed".into(),
            &|s| s.job(1).is_some_and(|j| j.state.is_finished()),
            Duration::from_secs(5),
        ))
        .expect("job 1 runs");
    assert_eq!(status.job(1).map(|j| j.state), Some(JobState::Succeeded));
}

#[test]
fn transient_cleanup_errors_are_retried_before_failing_over() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime(
        Step::AfterCreate,
        ErrorMatch::zone("us-east-1", "use1-az1"),
        capacity(),
        1,
    );
    fake.prime(Step::Teardown, ErrorMatch::any(), transient("throttled"), 2);
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("flaky-down"), &NoProgress))
        .expect("cleanup retried, then the next zone");
    assert_eq!(outcome.placement.zone.as_deref(), Some("use1-az2"));
    assert_eq!(steps(&fake), ["P use1-az1", "T", "T", "T", "P use1-az2"]);
    assert_eq!(fake.cluster_names(), ["flaky-down"]);
}

#[test]
fn a_cleanup_that_fails_stops_failover_and_down_removes_what_is_left() {
    let home = Home::new();
    let store = home.store();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime(
        Step::AfterCreate,
        ErrorMatch::zone("us-east-1", "use1-az1"),
        capacity(),
        1,
    );
    let denied = ProviderError::Auth {
        message: "not authorized to perform ec2:TerminateInstances".to_string(),
    };
    fake.prime(Step::Teardown, ErrorMatch::any(), denied, 1);
    let launcher = launcher(aws_catalog(), store.clone()).with_provider(fake.clone());
    let rt = runtime();
    let error = rt
        .block_on(launcher.launch(&request("stuck"), &NoProgress))
        .expect_err("cleanup failed");
    let LaunchError::Failed { reason, attempts, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(attempts.len(), 1);
    assert!(reason.contains("could not be removed"), "{reason}");
    assert!(reason.contains("ec2:TerminateInstances"), "{reason}");
    assert!(reason.contains("skyplan down stuck"), "{reason}");
    assert_eq!(steps(&fake), ["P use1-az1", "T"], "nothing tried elsewhere");
    let record = store.cluster("stuck").expect("store").expect("kept for down");
    assert_eq!(record.status, RecordStatus::Failed);
    let down = rt.block_on(launcher.down("stuck")).expect("down");
    assert_eq!(down.torn_down, [("aws".to_string(), TeardownOutcome::Terminated)]);
    assert!(down.record_removed);
    assert!(fake.cluster_names().is_empty());
}

#[test]
fn a_failing_teardown_keeps_the_record_for_the_next_down() {
    let (_home, fake, launcher, rt) = launched("keep");
    let store = launcher.store().clone();
    fake.prime(
        Step::Teardown,
        ErrorMatch::any(),
        transient("503 from the API"),
        1,
    );
    let first = rt.block_on(launcher.down("keep"));
    assert!(first.is_err(), "a failed teardown is an error: {first:?}");
    assert!(store.cluster("keep").expect("store").is_some(), "record kept");
    assert_eq!(fake.cluster_names(), ["keep"]);
    let second = rt.block_on(launcher.down("keep")).expect("second down");
    assert!(second.record_removed);
    assert!(fake.cluster_names().is_empty());
}

#[test]
fn a_failing_status_reads_unknown_with_the_reason() {
    let (_home, fake, launcher, rt) = launched("blind");
    let store = launcher.store().clone();
    fake.prime(
        Step::Status,
        ErrorMatch::any(),
        transient("DescribeInstances timed out"),
        1,
    );
    let providers: Providers = [("aws".to_string(), fake.clone() as Arc<dyn Provider>)].into();
    let report = rt.block_on(status_report(&store, &providers)).expect("report");
    let view = &report.clusters[0];
    assert_eq!(view.state, ShownState::Unknown);
    let reason = view.live_error.as_deref().unwrap_or_default();
    assert!(reason.contains("DescribeInstances timed out"), "{reason}");
    let again = rt.block_on(status_report(&store, &providers)).expect("report");
    assert_eq!(again.clusters[0].state, ShownState::Up, "the error was used up");
}

#[test]
fn fake_jobs_take_time_and_follow_streams_lines_as_printed() {
    let fake = FakeProvider::new("aws");
    let mut request = skyplan_providers::ProvisionRequest {
        request_id: "slow-1".to_string(),
        cluster: "slow".to_string(),
        placement: skyplan_providers::fake::placement("aws", "us-east-1", None, "m6i.xlarge"),
        task: TaskRun::command("slow", "echo first\nsleep 0.4\necho second"),
    };
    request.placement.num_nodes = 1;
    let rt = runtime();
    rt.block_on(async {
        fake.provision(&request).await.expect("provision");
        let started = Instant::now();
        let pending = fake.status("slow".into()).await.expect("status");
        assert_eq!(pending.job(1).map(|j| j.state), Some(JobState::Pending));
        let options = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = fake.logs("slow".into(), &options).await.expect("logs");
        let first = stream.next().await.expect("a line").expect("ok");
        assert_eq!(first.text, "first");
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "streamed before the job ends"
        );
        let running = fake.status("slow".into()).await.expect("status");
        assert_eq!(running.job(1).map(|j| j.state), Some(JobState::Running));
        let now = fake
            .logs("slow".into(), &LogOptions::default())
            .await
            .expect("logs")
            .collect::<Vec<_>>()
            .await;
        assert_eq!(now.len(), 1, "without follow: only what is printed so far");
        let second = stream.next().await.expect("a line").expect("ok");
        assert_eq!(second.text, "second");
        assert!(stream.next().await.is_none(), "the stream ends with the job");
        assert!(started.elapsed() >= Duration::from_millis(400));
        let done = fake.status("slow".into()).await.expect("status");
        assert_eq!(done.job(1).map(|j| j.state), Some(JobState::Succeeded));
    });
}
