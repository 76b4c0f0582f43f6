//! The aws backend with the real `aws-sdk-ec2` client against a local moto (through the
//! fault-injecting, instance-emulating proxy of `skyplan_providers::aws::testing`).

use std::sync::Arc;

use futures::StreamExt;

use skyplan_optimizer::{Requirement, TaskNode};
use skyplan_providers::aws::testing::{AwsTestbed, Ec2Fault};
use skyplan_providers::fake::placement;
use skyplan_providers::{
    AwsProvider, ClusterState, FailoverAction, JobState, LaunchError, LaunchRequest, NoProgress, Provider,
    ProvisionRequest, Scope, TaskRun, conformance,
};
use skyplan_spec::{PortRange, SecretString};

use crate::util::{Home, aws_catalog, follow_logs, launcher, runtime, wait_job};

fn testbed() -> AwsTestbed {
    AwsTestbed::start().unwrap_or_else(|err| panic!("the aws tests need a local moto: {err}"))
}

fn provider(testbed: &AwsTestbed) -> Arc<AwsProvider> {
    Arc::new(AwsProvider::new(testbed.settings()))
}

/// A task pinned to `instance_type` (so failover moves between places, not shapes).
fn pinned(name: &str, instance_type: &str, nodes: u32, spot: bool) -> TaskNode {
    let mut node = TaskNode::new(
        name,
        vec![Requirement {
            instance_type: Some(instance_type.to_string()),
            use_spot: spot,
            ..Default::default()
        }],
    );
    node.num_nodes = nodes;
    node
}

fn zone_name(provider: &AwsProvider, region: &str, zone_id: &str) -> String {
    runtime()
        .block_on(provider.zones(region))
        .expect("zones")
        .into_iter()
        .find(|(_, id)| id == zone_id)
        .map(|(name, _)| name)
        .unwrap_or_else(|| panic!("moto has no zone {zone_id} in {region}"))
}

#[test]
fn conformance_suite_passes_one_and_two_nodes() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let factory = |cluster: &str| ProvisionRequest {
        request_id: String::new(),
        cluster: cluster.to_string(),
        placement: placement("aws", "us-east-1", Some("use1-az1"), "m6i.xlarge"),
        task: TaskRun::default(),
    };
    let two_nodes = |cluster: &str| {
        let mut request = factory(cluster);
        request.placement.num_nodes = 2;
        request.task.num_nodes = 2;
        request
    };
    let elsewhere = |cluster: &str| {
        let mut request = two_nodes(cluster);
        request.placement.region = "us-west-2".to_string();
        request.placement.zone = Some("usw2-az1".to_string());
        request
    };
    let rt = runtime();
    rt.block_on(conformance::run_all(aws.as_ref(), &two_nodes, Some(&elsewhere)));
    rt.block_on(conformance::status_follows_lifecycle(aws.as_ref(), &factory));
    rt.block_on(conformance::logs_contain_run_output(aws.as_ref(), &factory));
    let launches = testbed.calls("RunInstances");
    let with_market: Vec<_> = launches
        .iter()
        .filter(|c| c.params.contains_key("InstanceMarketOptions.MarketType"))
        .collect();
    assert_eq!(
        with_market.len(),
        1,
        "of {} launches, only the capability check's spot request sends market options",
        launches.len()
    );
    let one_spot_node = |cluster: &str| {
        let mut request = factory(cluster);
        request.placement.use_spot = true;
        request
    };
    rt.block_on(conformance::status_follows_lifecycle(
        aws.as_ref(),
        &one_spot_node,
    ));
    let spot = testbed.calls("RunInstances").pop().expect("spot launch");
    assert_eq!(
        spot.params
            .get("InstanceMarketOptions.MarketType")
            .map(String::as_str),
        Some("spot")
    );
    assert_eq!(testbed.running_instances(), 0, "every instance ended");
}

#[test]
fn two_node_spot_launch_runs_with_ranks_ips_ports_and_down_leaves_nothing() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let home = Home::new();
    let launcher = launcher(aws_spot_catalog(), home.store()).with_provider(aws.clone());
    let mut run = TaskRun::command(
        "train",
        "echo rank $SKYPLAN_NODE_RANK of $SKYPILOT_NUM_NODES; echo \"$SKYPLAN_NODE_IPS\" | wc -l; echo token $HF_TOKEN",
    );
    run.num_nodes = 2;
    run.ports = vec![PortRange::single(8000)];
    run.secrets
        .insert("HF_TOKEN".into(), SecretString::new("hf_very_secret"));
    run.labels.insert("example.com/team".into(), "ml".into());
    run.disk_size_gb = Some(256);
    let request = LaunchRequest {
        cluster: "spot2".into(),
        task: pinned("train", "m6i.xlarge", 2, true),
        run,
    };
    let rt = runtime();
    let outcome = rt
        .block_on(launcher.launch(&request, &NoProgress))
        .expect("launch on moto");
    assert_eq!(outcome.provider, "aws");
    assert!(outcome.placement.use_spot);
    assert_eq!(outcome.handle.nodes.len(), 2);
    let run_call = testbed.calls("RunInstances").pop().expect("RunInstances sent");
    assert_eq!(
        run_call
            .params
            .get("InstanceMarketOptions.MarketType")
            .map(String::as_str),
        Some("spot")
    );
    assert_eq!(run_call.params.get("MinCount").map(String::as_str), Some("2"));
    assert!(
        run_call.params.contains_key("SecurityGroupId.1"),
        "ports need a security group: {:?}",
        run_call.params
    );
    // `disk_size` sizes the image's root device; labels are tags (`/` as `:`) on every resource.
    let param = |key: &str| run_call.params.get(key).map(String::as_str);
    assert_eq!(param("BlockDeviceMapping.1.Ebs.VolumeSize"), Some("256"));
    assert_eq!(param("BlockDeviceMapping.1.Ebs.VolumeType"), Some("gp3"));
    assert!(param("BlockDeviceMapping.1.DeviceName").is_some_and(|d| d.starts_with("/dev/")));
    for spec in 1..=2 {
        let label = (1..=10)
            .find(|n| param(&format!("TagSpecification.{spec}.Tag.{n}.Key")) == Some("example.com:team"));
        let value = label.and_then(|n| param(&format!("TagSpecification.{spec}.Tag.{n}.Value")));
        assert_eq!(
            value,
            Some("ml"),
            "tag specification {spec}: {:?}",
            run_call.params
        );
    }
    let status = rt.block_on(wait_job(aws.as_ref(), "spot2", 1));
    assert_eq!(status.state, ClusterState::Up);
    assert_eq!(status.jobs[0].state, JobState::Succeeded);
    assert_eq!(status.jobs[0].node_exit_codes, vec![Some(0), Some(0)]);
    let lines = rt.block_on(follow_logs(aws.as_ref(), "spot2", None));
    for rank in 0..2 {
        let mine: Vec<&str> = lines
            .iter()
            .filter(|l| l.node == rank)
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(
            mine,
            [format!("rank {rank} of 2").as_str(), "2", "token <redacted>"],
            "{lines:?}"
        );
    }
    let listed = rt.block_on(aws.list()).expect("list");
    assert_eq!(listed.len(), 1, "one cluster: {listed:?}");
    assert_eq!(
        listed[0].labels.get("skyplan.dev/cluster").map(String::as_str),
        Some("spot2")
    );

    let down = rt.block_on(launcher.down("spot2")).expect("down");
    assert!(down.found(), "{down:?}");
    assert!(
        rt.block_on(aws.list()).expect("list").is_empty(),
        "instances and group gone"
    );
    assert!(testbed.calls("DeleteSecurityGroup").len() == 1);
    assert_eq!(testbed.running_instances(), 0);
}

fn aws_spot_catalog() -> skyplan_catalog::Catalog {
    let csv = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n\
               m6i.xlarge,,,4,16,0.192,0.05,us-east-1,use1-az1\n\
               m6i.xlarge,,,4,16,0.192,0.06,us-east-1,use1-az2\n";
    skyplan_catalog::Catalog::from_csv("aws", "aws.csv", csv.as_bytes()).expect("catalog")
}

#[test]
fn down_finds_instances_of_a_launch_that_crashed_before_recording() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let home = Home::new();
    let rt = runtime();
    // What a crash between RunInstances and the state-store update leaves: instances, no record.
    let request = ProvisionRequest {
        request_id: "crashed-1".into(),
        cluster: "crashed".into(),
        placement: placement("aws", "us-west-2", None, "m6i.xlarge"),
        task: TaskRun::command("t", "sleep 600"),
    };
    rt.block_on(aws.provision(&request)).expect("instances created");
    let launcher = launcher(aws_catalog(), home.store()).with_provider(aws.clone());
    assert!(home.store().cluster("crashed").expect("store").is_none());
    let report = rt
        .block_on(skyplan_providers::status_report(
            launcher.store(),
            launcher.providers(),
        ))
        .expect("status");
    assert_eq!(report.unrecorded.len(), 1, "status shows the unrecorded cluster");
    assert_eq!(report.unrecorded[0].region, "us-west-2");
    // The instance boots a while after RunInstances (the proxy's boot delay).
    let booted = std::time::Instant::now();
    while testbed.running_instances() == 0 {
        assert!(
            booted.elapsed() < std::time::Duration::from_secs(10),
            "never booted"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let down = rt.block_on(launcher.down("crashed")).expect("down");
    assert!(down.found(), "{down:?}");
    assert!(rt.block_on(aws.list()).expect("list").is_empty());
    assert_eq!(testbed.running_instances(), 0, "the instance's job was killed");
    assert!(matches!(
        rt.block_on(aws.status("crashed".into())),
        Err(skyplan_providers::ProviderError::NotFound { .. })
    ));
}

#[test]
fn capacity_errors_move_to_the_next_zone_then_region_and_quota_blocks_the_region() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let home = Home::new();
    let rt = runtime();
    let az1 = zone_name(&aws, "us-east-1", "use1-az1");
    let az2 = zone_name(&aws, "us-east-1", "use1-az2");
    let launcher = launcher(aws_catalog(), home.store()).with_provider(aws.clone());
    let launch = |cluster: &str| {
        let request = LaunchRequest {
            cluster: cluster.to_string(),
            task: pinned("t", "m6i.xlarge", 1, false),
            run: TaskRun::command("t", "true"),
        };
        rt.block_on(launcher.launch(&request, &NoProgress))
    };

    // One zone without capacity: the next zone of the same region.
    testbed.inject(Ec2Fault::new("RunInstances", "InsufficientInstanceCapacity").zone(&az1));
    let outcome = launch("zone").expect("second zone");
    assert_eq!(outcome.placement.zone.as_deref(), Some("use1-az2"));
    assert_eq!(outcome.failures.len(), 1);
    let failure = &outcome.failures[0];
    assert_eq!(failure.placement.zone.as_deref(), Some("use1-az1"));
    assert!(
        failure.error.to_string().contains("InsufficientInstanceCapacity"),
        "{}",
        failure.error
    );
    assert!(matches!(&failure.action, FailoverAction::Block(b) if b.zone.as_deref() == Some("use1-az1")));
    rt.block_on(launcher.down("zone")).expect("down");

    // Both zones of us-east-1 full: the launcher ends in us-west-2, and the history says why.
    testbed.inject(Ec2Fault::new("RunInstances", "InsufficientInstanceCapacity").zone(&az2));
    let outcome = launch("region").expect("next region");
    assert_eq!(outcome.placement.region, "us-west-2");
    let tried: Vec<_> = outcome
        .failures
        .iter()
        .map(|a| a.placement.zone.clone().unwrap_or_default())
        .collect();
    assert_eq!(tried, ["use1-az1", "use1-az2"]);
    let attempts = home.store().attempts("region").expect("attempts");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    rt.block_on(launcher.down("region")).expect("down");

    // A vCPU quota blocks the whole region at once: no second us-east-1 zone is tried.
    testbed.clear_faults();
    testbed.inject(Ec2Fault::new("RunInstances", "VcpuLimitExceeded").region("us-east-1"));
    let outcome = launch("quota").expect("other region");
    assert_eq!(outcome.placement.region, "us-west-2");
    assert_eq!(outcome.failures.len(), 1);
    assert!(matches!(
        &outcome.failures[0].error,
        skyplan_providers::ProviderError::QuotaExceeded {
            scope: Scope::Region,
            ..
        }
    ));
    assert!(matches!(&outcome.failures[0].action,
        FailoverAction::Block(b) if b.region.as_deref() == Some("us-east-1") && b.zone.is_none()));
    rt.block_on(launcher.down("quota")).expect("down");

    // Nowhere left: the error lists every attempt.
    testbed.inject(Ec2Fault::new("RunInstances", "VcpuLimitExceeded").region("us-west-2"));
    match launch("nowhere") {
        Err(LaunchError::Failed { attempts, .. }) => assert_eq!(attempts.len(), 2),
        other => panic!("expected a failed launch, got {other:?}"),
    }
    assert!(rt.block_on(aws.list()).expect("list").is_empty());
}

#[test]
fn throttling_is_retried_with_backoff_and_then_succeeds() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let home = Home::new();
    let rt = runtime();
    testbed.inject(Ec2Fault::new("RunInstances", "RequestLimitExceeded").times(2));
    let launcher = launcher(aws_catalog(), home.store()).with_provider(aws.clone());
    let request = LaunchRequest {
        cluster: "throttled".into(),
        task: pinned("t", "m6i.xlarge", 1, false),
        run: TaskRun::command("t", "echo done"),
    };
    let outcome = rt
        .block_on(launcher.launch(&request, &NoProgress))
        .expect("succeeds after retries");
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.placement.zone.as_deref(), Some("use1-az1"), "same place");
    let calls = testbed.calls("RunInstances");
    let faults: Vec<_> = calls.iter().map(|c| c.fault.clone()).collect();
    assert_eq!(
        faults,
        [
            Some("RequestLimitExceeded".to_string()),
            Some("RequestLimitExceeded".to_string()),
            None
        ]
    );
    let tokens: Vec<_> = calls
        .iter()
        .map(|c| c.params.get("ClientToken").cloned())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "retries reuse the client token"
    );
    let lines = rt.block_on(follow_logs(aws.as_ref(), "throttled", None));
    assert_eq!(lines.last().map(|l| l.text.as_str()), Some("done"));
    rt.block_on(launcher.down("throttled")).expect("down");
}

#[test]
fn auth_failures_block_aws_and_say_why() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let home = Home::new();
    testbed.inject(Ec2Fault::new("DescribeInstances", "AuthFailure"));
    let launcher = launcher(aws_catalog(), home.store()).with_provider(aws.clone());
    let request = LaunchRequest {
        cluster: "denied".into(),
        task: pinned("t", "m6i.xlarge", 1, false),
        run: TaskRun::command("t", "true"),
    };
    match runtime().block_on(launcher.launch(&request, &NoProgress)) {
        Err(LaunchError::Failed { attempts, .. }) => {
            assert_eq!(attempts.len(), 1, "the whole cloud is blocked after one try");
            assert!(matches!(&attempts[0].action, FailoverAction::Block(b) if b.region.is_none()));
            assert!(
                attempts[0].error.to_string().contains("AuthFailure"),
                "{}",
                attempts[0].error
            );
        }
        other => panic!("expected a failed launch, got {other:?}"),
    }
}

#[test]
fn spot_prices_come_back_as_an_overlay_with_zone_ids() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let rt = runtime();
    let rows = rt
        .block_on(aws.spot_prices("us-east-1", &["m6i.xlarge".to_string()]))
        .expect("spot price history");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r.instance_type == "m6i.xlarge" && r.region == "us-east-1")
    );
    assert!(
        rows.iter()
            .all(|r| r.zone.as_deref().is_some_and(|z| z.starts_with("use1-az"))),
        "{rows:?}"
    );
    let mut catalog = aws_catalog();
    let changed = catalog.apply_spot_prices(&rows);
    assert_eq!(changed, 2, "both us-east-1 offers get moto's price");
}

#[test]
fn bad_labels_are_refused_before_anything_is_created() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let mut run = TaskRun::command("t", "true");
    run.labels.insert("aws:owner".into(), "me".into());
    run.ports = vec![PortRange::single(8000)];
    let request = ProvisionRequest {
        cluster: "badlabel".into(),
        request_id: "r-badlabel".into(),
        placement: placement("aws", "us-east-1", None, "m6i.xlarge"),
        task: run,
    };
    let err = runtime()
        .block_on(aws.provision(&request))
        .expect_err("aws: keys are AWS's");
    assert!(err.to_string().contains("label aws:owner=me"), "{err}");
    assert!(testbed.calls("CreateSecurityGroup").is_empty());
    assert!(testbed.calls("RunInstances").is_empty());
}

#[test]
fn a_new_instance_unknown_to_ec2_for_a_while_does_not_stop_the_launch() {
    let testbed = testbed();
    testbed.set_eventual_consistency(std::time::Duration::from_millis(1500));
    let aws = provider(&testbed);
    let two_nodes = |cluster: &str| {
        let mut request = ProvisionRequest {
            request_id: String::new(),
            cluster: cluster.to_string(),
            placement: placement("aws", "us-east-1", Some("use1-az1"), "m6i.xlarge"),
            task: TaskRun::default(),
        };
        request.placement.num_nodes = 2;
        request.task.num_nodes = 2;
        request
    };
    let rt = runtime();
    rt.block_on(conformance::status_follows_lifecycle(aws.as_ref(), &two_nodes));
    rt.block_on(conformance::logs_contain_run_output(aws.as_ref(), &two_nodes));
    rt.block_on(conformance::teardown_stops_a_running_job(
        aws.as_ref(),
        &two_nodes,
    ));
    let tags = testbed.calls("CreateTags");
    assert!(
        tags.iter()
            .any(|c| c.fault.as_deref() == Some("InvalidInstanceID.NotFound")),
        "the proxy answered NotFound for a new instance: {tags:?}"
    );
    assert!(
        tags.iter().any(|c| c.fault.is_none()),
        "and the backend asked again"
    );
    assert_eq!(testbed.running_instances(), 0);
}

#[test]
fn console_output_past_64_kib_is_cut_from_the_front_and_logs_say_so() {
    let testbed = testbed();
    let aws = provider(&testbed);
    let request = ProvisionRequest {
        request_id: "long-1".to_string(),
        cluster: "long".to_string(),
        placement: placement("aws", "us-east-1", Some("use1-az1"), "m6i.xlarge"),
        // About 100 KiB of output: the first lines cannot stay on a 64 KiB console.
        task: TaskRun::command(
            "long",
            "for i in $(seq 1 3000); do echo \"line $i of the long job\"; done",
        ),
    };
    let rt = runtime();
    rt.block_on(async {
        aws.provision(&request).await.expect("provision");
        let status = wait_job(aws.as_ref(), "long", 1).await;
        assert_eq!(
            status.job(1).map(|j| j.exit_code),
            Some(Some(0)),
            "the exit line is kept"
        );
        let lines: Vec<String> = aws
            .logs("long".into(), &skyplan_providers::LogOptions::default())
            .await
            .expect("logs")
            .map(|l| l.expect("line").text)
            .collect()
            .await;
        aws.teardown("long".into()).await.expect("teardown");
        let note = lines.first().expect("lines");
        assert!(
            note.contains("lines were cut") && note.contains("64 KiB"),
            "{note}"
        );
        let kept: Vec<u32> = lines[1..]
            .iter()
            .map(|l| {
                l.split(' ')
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .expect("numbered line")
            })
            .collect();
        let first = kept[0];
        let cut: u32 = note
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("a count");
        assert_eq!(cut + 1, first, "the note counts exactly the lines cut");
        assert_eq!(
            kept,
            (first..=3000).collect::<Vec<_>>(),
            "the rest, in order, none twice"
        );
        assert!(first > 1 && lines.len() < 3000);
    });
}
