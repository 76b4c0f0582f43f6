//! The local backend end to end, through the launcher: real processes, real output.

use std::time::{Duration, Instant};

use futures::StreamExt;
use skyplan_catalog::Catalog;
use skyplan_optimizer::TaskNode;
use skyplan_providers::{
    JobSelection, JobState, LOCAL, LaunchRequest, LogOptions, NoProgress, Provider, ProviderError,
    ProvisionRequest, RecordStatus, TaskRun, TeardownOutcome, status_report,
};
use skyplan_spec::parse_task_str;

use crate::util::{Home, follow_logs, launcher, pid_exists, runtime, wait_job};

#[test]
fn two_node_task_runs_with_ranks_and_down_leaves_nothing() {
    let home = Home::new();
    let local = home.local();
    let store = home.store();
    let launcher = launcher(Catalog::default(), store.clone()).with_provider(local.clone());
    let run = TaskRun {
        name: "pair".to_string(),
        setup: Some("echo setup on $SKYPLAN_NODE_RANK > setup-done".to_string()),
        run: Some(
            [
                "cat setup-done",
                "echo \"rank=$SKYPLAN_NODE_RANK nodes=$SKYPILOT_NUM_NODES gpus=$SKYPLAN_NUM_GPUS_PER_NODE\"",
                "echo \"ips=$(echo \"$SKYPLAN_NODE_IPS\" | paste -sd, -) sky=$SKYPILOT_NODE_RANK msg=$GREETING\"",
            ]
            .join("\n"),
        ),
        envs: [("GREETING".to_string(), "hello".to_string())].into(),
        num_nodes: 2,
        ..TaskRun::default()
    };
    let request = LaunchRequest {
        cluster: "pair".to_string(),
        task: TaskNode {
            num_nodes: 2,
            ..TaskNode::new("pair", vec![])
        },
        run,
    };
    let rt = runtime();
    rt.block_on(async {
        let start = Instant::now();
        let outcome = launcher.launch(&request, &NoProgress).await.expect("launch");
        let launched = start.elapsed();
        assert_eq!(outcome.placement.cloud, LOCAL);
        assert_eq!(outcome.placement.num_nodes, 2);
        assert_eq!(outcome.handle.nodes.len(), 2);

        let options = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = local.logs("pair".into(), &options).await.expect("logs");
        let first = stream.next().await.expect("a line").expect("ok");
        eprintln!(
            "local two-node launch: {:?} to launched, {:?} to first log line",
            launched,
            start.elapsed()
        );
        let mut lines = vec![first];
        while let Some(line) = stream.next().await {
            lines.push(line.expect("ok"));
        }
        for rank in 0..2u32 {
            let texts: Vec<&str> = lines
                .iter()
                .filter(|l| l.node == rank)
                .map(|l| l.text.as_str())
                .collect();
            assert_eq!(
                texts,
                [
                    format!("setup on {rank}"),
                    format!("rank={rank} nodes=2 gpus=0"),
                    format!("ips=127.0.0.1,127.0.0.1 sky={rank} msg=hello"),
                ],
                "rank {rank}: {lines:?}"
            );
        }
        let multi: Vec<String> = lines.iter().map(|l| l.render(true)).collect();
        assert!(
            multi.contains(&"(rank=1) rank=1 nodes=2 gpus=0".to_string()),
            "{multi:?}"
        );

        let status = wait_job(local.as_ref(), "pair", 1).await;
        let job = status.job(1).expect("job 1");
        assert_eq!((job.state, job.exit_code), (JobState::Succeeded, Some(0)));
        assert_eq!(job.node_exit_codes, [Some(0), Some(0)]);

        // A second job on the same cluster; rank 1 fails, so the job does.
        let second = TaskRun {
            name: "second".to_string(),
            run: Some("echo second on $SKYPLAN_NODE_RANK; exit $((SKYPLAN_NODE_RANK * 3))".to_string()),
            num_nodes: 2,
            ..TaskRun::default()
        };
        let job_id = launcher.exec("pair", &second).await.expect("exec");
        assert_eq!(job_id, 2);
        let status = wait_job(local.as_ref(), "pair", 2).await;
        let job = status.job(2).expect("job 2");
        assert_eq!((job.state, job.exit_code), (JobState::Failed, Some(3)));
        assert_eq!(job.node_exit_codes, [Some(0), Some(3)]);
        let second_lines = follow_logs(local.as_ref(), "pair", Some(2)).await;
        assert_eq!(second_lines.len(), 2);
        // Job 1's logs are still there, and `tail` works.
        let tail = |n: usize| LogOptions {
            job: Some(1),
            node: Some(0),
            tail: Some(n),
            ..Default::default()
        };
        for (n, want) in [
            (1, vec!["ips=127.0.0.1,127.0.0.1 sky=0 msg=hello"]),
            (
                2,
                vec!["rank=0 nodes=2 gpus=0", "ips=127.0.0.1,127.0.0.1 sky=0 msg=hello"],
            ),
        ] {
            let last: Vec<String> = local
                .logs("pair".into(), &tail(n))
                .await
                .expect("logs")
                .map(|l| {
                    let line = l.expect("line");
                    assert_eq!(line.node, 0, "only node 0");
                    line.text
                })
                .collect()
                .await;
            assert_eq!(last, want, "the last {n} line(s) of job 1 on node 0");
        }

        // `status` refreshes the recorded jobs from the live view.
        let report = status_report(&store, launcher.providers()).await.expect("status");
        assert_eq!(report.clusters.len(), 1);
        let view = &report.clusters[0];
        assert_eq!(view.record.status, RecordStatus::Up);
        let recorded: Vec<(u64, JobState, Option<i32>)> =
            view.jobs.iter().map(|j| (j.id, j.status, j.exit_code)).collect();
        assert_eq!(
            recorded,
            [(1, JobState::Succeeded, Some(0)), (2, JobState::Failed, Some(3))]
        );
        assert!(report.unrecorded.is_empty());

        let down = launcher.down("pair").await.expect("down");
        assert!(down.found() && down.record_removed, "{down:?}");
        assert_eq!(
            down.torn_down,
            [("local".to_string(), TeardownOutcome::Terminated)]
        );
        let again = launcher.down("pair").await.expect("down twice");
        assert!(!again.found(), "{again:?}");
    });
    assert!(
        home.files()
            .iter()
            .all(|f| f.ends_with("state.db") || f.to_string_lossy().contains("state.db-")),
        "left behind: {:?}",
        home.files()
    );
    assert!(store.clusters().expect("clusters").is_empty());
    assert!(store.check_consistency().expect("check").is_empty());
}

#[test]
fn a_failing_setup_fails_the_job_without_running_run() {
    let home = Home::new();
    let local = home.local();
    let launcher = launcher(Catalog::default(), home.store()).with_provider(local.clone());
    let request = LaunchRequest {
        cluster: "badsetup".to_string(),
        task: TaskNode::new("bad", vec![]),
        run: TaskRun {
            name: "bad".to_string(),
            setup: Some("echo preparing; exit 7".to_string()),
            run: Some("echo should not run".to_string()),
            num_nodes: 1,
            ..TaskRun::default()
        },
    };
    runtime().block_on(async {
        launcher.launch(&request, &NoProgress).await.expect("launch");
        let status = wait_job(local.as_ref(), "badsetup", 1).await;
        let job = status.job(1).expect("job");
        assert_eq!((job.state, job.exit_code), (JobState::Failed, Some(7)));
        let texts: Vec<String> = follow_logs(local.as_ref(), "badsetup", None)
            .await
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(texts, ["preparing", "skyplan: setup failed with exit code 7"]);
        launcher.down("badsetup").await.expect("down");
    });
}

#[test]
fn secrets_reach_the_process_but_not_logs_state_or_debug() {
    let home = Home::new();
    let local = home.local();
    let store = home.store();
    let launcher = launcher(Catalog::default(), store.clone()).with_provider(local.clone());
    let yaml = "name: secretive\nenvs:\n  MODEL: gemma\n  HF_TOKEN: hf_Sup3rSecretValue\nsecrets:\n  DB_URL: postgres://u:pw-Secret-42@db\n\
                run: |\n  echo \"token=$HF_TOKEN db=$DB_URL model=$MODEL\"\n  \
                printf %s \"$HF_TOKEN\" | rev; echo\n  \
                echo \"$HF_TOKEN\" >&2\n";
    let pipeline = parse_task_str(yaml, "secret.yaml").expect("task");
    let run = TaskRun::from_spec(&pipeline.tasks[0]).expect("values");
    let request = LaunchRequest {
        cluster: "secretive".to_string(),
        task: TaskNode::new("secretive", vec![]),
        run,
    };
    let secrets = ["hf_Sup3rSecretValue", "pw-Secret-42"];
    for shown in [format!("{request:?}"), format!("{:?}", pipeline.tasks[0])] {
        for secret in secrets {
            assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
        }
    }
    runtime().block_on(async {
        let outcome = launcher.launch(&request, &NoProgress).await.expect("launch");
        assert!(!format!("{outcome:?}").contains(secrets[0]));
        let texts: Vec<String> = follow_logs(local.as_ref(), "secretive", None)
            .await
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            texts,
            [
                "token=<redacted> db=<redacted> model=gemma",
                "eulaVterceSr3puS_fh",
                "<redacted>"
            ]
        );
        // Every file we wrote (logs, scripts, metadata, the state store) is free of secrets.
        for file in home.files() {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for secret in secrets {
                assert!(!text.contains(secret), "{} holds {secret}", file.display());
            }
        }
        let report = status_report(&store, launcher.providers()).await.expect("status");
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains("<redacted>") && json.contains("gemma"), "{json}");
        for secret in secrets {
            assert!(!json.contains(secret), "status --json shows {secret}");
        }
        launcher.down("secretive").await.expect("down");
    });
}

#[test]
fn docker_images_are_unsupported_on_local() {
    let home = Home::new();
    let local = home.local();
    let mut placement = skyplan_providers::fake::placement(LOCAL, LOCAL, None, "local");
    placement.hourly_price = rust_decimal::Decimal::ZERO;
    let mut task = TaskRun::command("serve", "echo hi");
    task.image_id = Some("docker:vllm/vllm-openai:latest".to_string());
    let request = ProvisionRequest {
        request_id: "r1".to_string(),
        cluster: "docker".to_string(),
        placement,
        task,
    };
    let answer = runtime().block_on(local.provision(&request));
    match answer {
        Err(ProviderError::Unsupported { message }) => assert!(message.contains("docker:vllm"), "{message}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(!home.path().join(LOCAL).join("docker").exists());
}

#[test]
fn teardown_kills_running_processes() {
    let home = Home::new();
    let local = home.local();
    let launcher = launcher(Catalog::default(), home.store()).with_provider(local.clone());
    let request = LaunchRequest {
        cluster: "sleeper".to_string(),
        task: TaskNode::new("sleeper", vec![]),
        // The job's shell and its background child must both go (`sleep` dies on TERM).
        run: TaskRun::command("sleeper", BACKGROUND),
    };
    runtime().block_on(async {
        launcher.launch(&request, &NoProgress).await.expect("launch");
        let child = background_child(local.as_ref(), "sleeper", 1).await;
        assert!(pid_exists(child), "the background child runs");
        let pid: u32 = std::fs::read_to_string(home.path().join("local/sleeper/jobs/1/node-0.pid"))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(pid_exists(pid));
        let status = local.status("sleeper".into()).await.expect("status");
        assert_eq!(status.job(1).map(|j| j.state), Some(JobState::Running));
        let start = Instant::now();
        launcher.down("sleeper").await.expect("down");
        while pid_exists(pid) && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!pid_exists(pid), "the job's process survived teardown");
        while pid_exists(child) && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !pid_exists(child),
            "the job's background child {child} survived teardown"
        );
        assert!(!home.path().join("local/sleeper").exists());
    });
}

/// The pid of the background child a `BACKGROUND` job prints (`child=PID`), once it runs.
async fn background_child(local: &dyn Provider, cluster: &str, job: u64) -> u32 {
    let options = LogOptions {
        follow: true,
        job: Some(job),
        ..Default::default()
    };
    let mut stream = local.logs(cluster.into(), &options).await.expect("logs");
    let first = stream.next().await.expect("line").expect("ok");
    assert_eq!(first.text, "started");
    let second = stream.next().await.expect("line").expect("ok");
    second
        .text
        .strip_prefix("child=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child pid in {:?}", second.text))
}

/// A job whose shell waits for a background child: both must go when it is stopped (`sleep`
/// dies on TERM).
const BACKGROUND: &str = "echo started; sleep 300 & echo child=$!; wait";

#[test]
fn cancel_stops_one_job_and_its_children_and_the_cluster_stays_up() {
    let home = Home::new();
    let local = home.local();
    let launcher = launcher(Catalog::default(), home.store()).with_provider(local.clone());
    let request = LaunchRequest {
        cluster: "queue".to_string(),
        task: TaskNode::new("first", vec![]),
        run: TaskRun::command("first", "echo one"),
    };
    runtime().block_on(async {
        launcher.launch(&request, &NoProgress).await.expect("launch");
        wait_job(local.as_ref(), "queue", 1).await;
        let job = launcher
            .exec("queue", &TaskRun::command("long", BACKGROUND))
            .await
            .expect("exec");
        assert_eq!(job, 2);
        let child = background_child(local.as_ref(), "queue", 2).await;
        assert!(pid_exists(child), "the background child runs");
        let cancelled = launcher
            .cancel("queue", &JobSelection::Ids(vec![2]))
            .await
            .expect("cancel");
        assert_eq!(cancelled, [2]);
        // `cancel` returns once the job's process groups are gone.
        assert!(
            !pid_exists(child),
            "the job's background child {child} survived cancel"
        );
        let status = local.status("queue".into()).await.expect("status");
        let states: Vec<(u64, JobState, Option<i32>)> =
            status.jobs.iter().map(|j| (j.id, j.state, j.exit_code)).collect();
        assert_eq!(
            states,
            [(1, JobState::Succeeded, Some(0)), (2, JobState::Cancelled, None)]
        );
        let job2 = status.job(2).expect("job 2");
        assert!(
            job2.started_at.is_some() && job2.ended_at >= job2.started_at,
            "{job2:?}"
        );
        let recorded = launcher.store().jobs("queue").expect("jobs");
        assert_eq!(recorded[1].status, JobState::Cancelled);
        assert!(recorded[1].ended_at.is_some());
        // The cluster takes more work.
        let job = launcher
            .exec("queue", &TaskRun::command("after", "echo after"))
            .await
            .expect("exec after cancel");
        assert_eq!(job, 3);
        let unknown = launcher.cancel("queue", &JobSelection::Ids(vec![7])).await;
        assert!(
            matches!(unknown, Err(ProviderError::NotFound { .. })),
            "{unknown:?}"
        );
        launcher.down("queue").await.expect("down");
    });
}

#[test]
fn nodes_that_together_outgrow_this_machine_are_refused_before_anything_is_made() {
    let home = Home::new();
    let local = home.local();
    // What the local backend counts as this machine's vCPUs.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let pipeline = parse_task_str(
        &format!("num_nodes: 3\nresources:\n  cpus: {cpus}\nrun: echo never\n"),
        "big.yaml",
    )
    .expect("task");
    let run = TaskRun::from_spec(&pipeline.tasks[0]).expect("values");
    assert_eq!((run.num_nodes, run.cpus_per_node), (3, Some(cpus)));
    let mut placement = skyplan_providers::fake::placement(LOCAL, LOCAL, None, LOCAL);
    placement.num_nodes = 3;
    let request = ProvisionRequest {
        request_id: "r1".to_string(),
        cluster: "toobig".to_string(),
        placement,
        task: run,
    };
    runtime().block_on(async {
        let err = local
            .provision(&request)
            .await
            .expect_err("three whole machines on one");
        assert!(
            matches!(err, ProviderError::InsufficientCapacity { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        let total = skyplan_catalog::format_count(3.0 * cpus);
        assert!(
            message.contains(&format!(
                "3 nodes × {} vCPUs = {total} vCPUs",
                skyplan_catalog::format_count(cpus)
            )),
            "{message}"
        );
        assert!(!local.cluster_dir("toobig").exists());
        // The same cluster with one node fits.
        let mut one = request.clone();
        one.placement.num_nodes = 1;
        one.task.num_nodes = 1;
        one.task.run = Some("true".to_string());
        local.provision(&one).await.expect("one node fits");
        local.teardown("toobig".into()).await.expect("down");
    });
}
