//! The launcher's failover against the fake provider, primed with errors per zone and region.

use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use skyplan_catalog::Catalog;
use skyplan_providers::fake::{Call, ErrorMatch, FakeProvider, offer};
use skyplan_providers::{
    FailoverAction, LaunchError, LineProgress, NoProgress, PipelineRequest, ProviderError, RecordStatus,
    Scope, TaskRun,
};

use crate::util::{Home, aws_catalog, four_cpu_task, launcher, runtime};

use crate::util::{launch_request as request, zone_capacity as capacity};

fn zones(fake: &FakeProvider) -> Vec<String> {
    fake.provisioned_placements()
        .into_iter()
        .map(|p| p.zone.unwrap_or_default())
        .collect()
}

#[test]
fn two_capacity_errors_end_on_the_third_best_placement() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(
        ErrorMatch::zone("us-east-1", "use1-az1"),
        capacity("no m6i in az1"),
        1,
    );
    fake.prime_error(
        ErrorMatch::zone("us-east-1", "use1-az2"),
        capacity("no m6i in az2"),
        1,
    );
    let store = home.store();
    let launcher = launcher(aws_catalog(), store.clone()).with_provider(fake.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = LineProgress(move |line| sink.lock().expect("lock").push(line));
    let outcome = runtime()
        .block_on(launcher.launch(&request("third"), &progress))
        .expect("third placement works");

    assert_eq!(outcome.placement.zone.as_deref(), Some("usw2-az1"));
    assert_eq!(outcome.placement.hourly_price.to_string(), "0.12");
    assert_eq!(zones(&fake), ["use1-az1", "use1-az2", "usw2-az1"]);
    let history: Vec<String> = outcome.failures.iter().map(ToString::to_string).collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0].contains("use1-az1") && history[0].contains("no m6i in az1"),
        "{history:?}"
    );
    assert!(
        history[1].contains("use1-az2") && history[1].contains("no m6i in az2"),
        "{history:?}"
    );
    assert!(
        history[0].contains("blocked zone aws/us-east-1/use1-az1"),
        "{history:?}"
    );
    // The failed zones were cleaned up before moving on.
    let teardowns = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Teardown { .. }))
        .count();
    assert_eq!(teardowns, 2);

    let attempts = store.attempts("third").expect("attempts");
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["blocked", "blocked", "succeeded"]);
    assert_eq!(attempts[0].error_kind.as_deref(), Some("insufficient_capacity"));
    let record = store.cluster("third").expect("read").expect("recorded");
    assert_eq!(record.status, RecordStatus::Up);
    assert_eq!(record.provider.as_deref(), Some("aws"));
    assert_eq!(
        record.placement.expect("placement").zone.as_deref(),
        Some("usw2-az1")
    );
    assert!(store.check_consistency().expect("check").is_empty());

    let events = events.lock().expect("lock").clone();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("attempt 3: provisioning aws/us-west-2/usw2-az1")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("cluster third is up")),
        "{events:?}"
    );
}

#[test]
fn a_quota_error_blocks_the_whole_region() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(
        ErrorMatch::region("us-east-1"),
        ProviderError::QuotaExceeded {
            scope: Scope::Region,
            message: "vCPU quota of 0 reached".to_string(),
        },
        1,
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("quota"), &NoProgress))
        .expect("another region works");
    // use1-az2 is never tried: the region's quota is shared by its zones.
    assert_eq!(zones(&fake), ["use1-az1", "usw2-az1"]);
    assert_eq!(outcome.placement.region, "us-west-2");
    let FailoverAction::Block(blocked) = &outcome.failures[0].action else {
        panic!("a quota error blocks");
    };
    assert_eq!(
        (blocked.region.as_deref(), blocked.zone.as_deref()),
        (Some("us-east-1"), None)
    );
}

#[test]
fn an_invalid_request_does_not_fail_over() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(
        ErrorMatch::any(),
        ProviderError::InvalidRequest {
            message: "image ami-123 does not exist".to_string(),
        },
        1,
    );
    let store = home.store();
    let launcher = launcher(aws_catalog(), store.clone()).with_provider(fake.clone());
    let err = runtime()
        .block_on(launcher.launch(&request("invalid"), &NoProgress))
        .expect_err("stops");
    assert_eq!(zones(&fake), ["use1-az1"]);
    let LaunchError::Failed { attempts, .. } = &err else {
        panic!("expected a failed launch, got {err}");
    };
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].action, FailoverAction::Stop);
    let text = err.to_string();
    assert!(
        text.contains("failed after 1 attempt") && text.contains("image ami-123 does not exist"),
        "{text}"
    );
    assert_eq!(
        store.cluster("invalid").expect("read").expect("kept").status,
        RecordStatus::Failed
    );
    // A failed launch's name can be launched again.
    let again = runtime().block_on(launcher.launch(&request("invalid"), &NoProgress));
    assert!(again.is_ok(), "{again:?}");
}

#[test]
fn transient_errors_are_retried_on_the_same_placement() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(
        ErrorMatch::zone("us-east-1", "use1-az1"),
        ProviderError::Transient {
            message: "RequestLimitExceeded".to_string(),
        },
        2,
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("flaky"), &NoProgress))
        .expect("third try works");
    assert_eq!(outcome.placement.zone.as_deref(), Some("use1-az1"));
    assert!(outcome.failures.is_empty());
    let request_ids: Vec<String> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Provision { request_id, .. } => Some(request_id),
            _ => None,
        })
        .collect();
    assert_eq!(request_ids.len(), 3);
    assert!(
        request_ids.iter().all(|id| *id == request_ids[0]),
        "retries reuse the request id"
    );
}

#[test]
fn exhausted_retries_move_on_to_the_next_zone() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(
        ErrorMatch::zone("us-east-1", "use1-az1"),
        ProviderError::Transient {
            message: "503".to_string(),
        },
        100,
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("gaveup"), &NoProgress))
        .expect("next zone works");
    // One try plus three retries (Backoff::fast), then the zone is blocked.
    assert_eq!(
        zones(&fake),
        ["use1-az1", "use1-az1", "use1-az1", "use1-az1", "use1-az2"]
    );
    assert_eq!(outcome.failures.len(), 1);
}

#[test]
fn launches_plan_on_enabled_clouds_only_and_note_cheaper_ones() {
    let home = Home::new();
    let mut catalog = aws_catalog();
    catalog.extend([offer(
        "gcp",
        "us-central1",
        Some("us-central1-a"),
        "n2-standard-4",
        Decimal::new(5, 2),
    )]);
    let fake = Arc::new(FakeProvider::new("aws"));
    let launcher = launcher(catalog, home.store()).with_provider(fake.clone());
    let pipeline = PipelineRequest::single("nogcp", four_cpu_task("train"), TaskRun::command("train", "x"));
    let plan = runtime()
        .block_on(launcher.plan(&pipeline, &NoProgress))
        .expect("aws can run it");
    assert_eq!(plan.plan.tasks[0].chosen.cloud, "aws");
    assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
    assert!(
        plan.notes[0].starts_with("gcp n2-standard-4 at 0.05 $/h is cheaper but gcp is not enabled"),
        "{:?}",
        plan.notes
    );
    let outcome = runtime()
        .block_on(launcher.launch(&request("nogcp"), &NoProgress))
        .expect("aws works");
    // The place the plan showed is the place tried first: no attempt on gcp.
    assert_eq!(outcome.placement, plan.plan.tasks[0].chosen);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
}

#[test]
fn a_task_only_disabled_clouds_can_run_names_them_and_records_nothing() {
    let home = Home::new();
    let mut catalog = aws_catalog();
    catalog.extend([offer(
        "gcp",
        "us-central1",
        Some("us-central1-a"),
        "n2-standard-4",
        Decimal::new(5, 2),
    )]);
    let fake = Arc::new(FakeProvider::new("aws"));
    let store = home.store();
    let launcher = launcher(catalog, store.clone()).with_provider(fake.clone());
    let mut request = request("gcponly");
    request.task.requirements[0].cloud = Some("gcp".into());
    let err = runtime()
        .block_on(launcher.launch(&request, &NoProgress))
        .expect_err("gcp is not enabled");
    let LaunchError::NotEnabled { task, clouds } = &err else {
        panic!("expected NotEnabled, got {err}");
    };
    assert_eq!(task, "train");
    assert_eq!(clouds.len(), 1);
    assert_eq!(clouds[0].cloud, "gcp");
    assert!(
        err.to_string()
            .contains("no enabled cloud can run task \"train\""),
        "{err}"
    );
    assert!(fake.provisioned_placements().is_empty());
    assert!(
        store.cluster("gcponly").expect("store").is_none(),
        "no record for a launch that provisioned nothing"
    );
}

#[test]
fn when_everything_fails_the_error_lists_every_attempt() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(ErrorMatch::any(), capacity("sold out"), 100);
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let err = runtime()
        .block_on(launcher.launch(&request("soldout"), &NoProgress))
        .expect_err("nothing left");
    assert_eq!(err.attempts().len(), 4);
    let text = err.to_string();
    for zone in ["use1-az1", "use1-az2", "usw2-az1", "usw2-az2"] {
        assert!(text.contains(zone), "{text}");
    }
    assert!(text.contains("no placement left"), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("no capacity in us-east-1, us-west-2 (aws) (4 insufficient capacity)"),
        "{first}"
    );
}

#[test]
fn an_auth_failure_leads_the_error_and_nothing_is_called_after_it() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    fake.prime_error(
        ErrorMatch::any(),
        ProviderError::Auth {
            message: "AuthFailure: key revoked".to_string(),
        },
        100,
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let err = runtime()
        .block_on(launcher.launch(&request("denied"), &NoProgress))
        .expect_err("credentials rejected");
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("authentication failed on aws: AuthFailure: key revoked (1 auth)"),
        "{first}"
    );
    assert!(!first.contains("blocked"), "{first}");
    let calls = fake.calls();
    assert!(
        matches!(calls.last(), Some(Call::Provision { .. })),
        "nothing after the rejected provision: {calls:?}"
    );
}

#[test]
fn unsupported_docker_images_skip_local_instead_of_being_ignored() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    let launcher = launcher(aws_catalog(), home.store())
        .with_provider(home.local())
        .with_provider(fake.clone());
    let mut request = request("docker");
    // Any CPU machine: local (price 0) is the cheapest, but cannot run containers.
    request.task = skyplan_optimizer::TaskNode::new("serve", vec![]);
    request.run.image_id = Some("docker:vllm/vllm-openai:latest".to_string());
    let outcome = runtime()
        .block_on(launcher.launch(&request, &NoProgress))
        .expect("aws runs it");
    assert_eq!(outcome.placement.cloud, "aws");
    let first = &outcome.failures[0];
    assert_eq!(first.placement.cloud, "local");
    assert!(
        matches!(first.error, ProviderError::Unsupported { .. }),
        "{first}"
    );
    assert!(
        first.to_string().contains("docker:vllm/vllm-openai:latest"),
        "{first}"
    );
    assert!(!home.path().join("local").join("docker").exists());
}

#[test]
fn a_backend_that_cannot_mount_files_is_skipped_with_the_reason() {
    let home = Home::new();
    let no_mounts = Arc::new(
        FakeProvider::new("aws").with_capabilities(skyplan_providers::Capabilities {
            spot: true,
            multi_node: true,
            docker_images: true,
            ports: true,
            exec: true,
            workdir: true,
            file_mounts: false,
            bucket_mounts: false,
            disk_size: true,
        }),
    );
    let mut catalog = aws_catalog();
    catalog.extend([offer(
        "gcp",
        "us-central1",
        Some("us-central1-a"),
        "n2-standard-4",
        Decimal::new(99, 0),
    )]);
    let mounts = Arc::new(FakeProvider::new("gcp"));
    let launcher = launcher(catalog, home.store())
        .with_provider(no_mounts.clone())
        .with_provider(mounts.clone());
    let mut request = request("mounts");
    request.run.file_mounts.insert(
        "/data".to_string(),
        skyplan_spec::FileMount::Source("./data".to_string()),
    );
    let outcome = runtime()
        .block_on(launcher.launch(&request, &NoProgress))
        .expect("gcp mounts it");
    assert_eq!(outcome.placement.cloud, "gcp");
    let first = &outcome.failures[0];
    assert_eq!(first.placement.cloud, "aws");
    assert!(
        matches!(first.error, ProviderError::Unsupported { .. }),
        "{first}"
    );
    assert!(
        first
            .to_string()
            .contains("file_mounts /data (./data) is not supported on aws"),
        "{first}"
    );
    assert!(
        no_mounts.provisioned_placements().is_empty(),
        "never reached the provider"
    );
}

#[test]
fn live_capacity_rows_reach_the_solver() {
    let home = Home::new();
    // us-east-1 has no free vCPUs according to the provider's live view.
    let fake = Arc::new(
        FakeProvider::new("aws").with_capacity(vec![skyplan_optimizer::CapacityLimit {
            name: "aws/us-east-1 vCPUs".to_string(),
            cloud: "aws".to_string(),
            region: Some("us-east-1".to_string()),
            spot: None,
            resource: skyplan_optimizer::CapacityResource::Vcpus,
            limit: 0.0,
        }]),
    );
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let outcome = runtime()
        .block_on(launcher.launch(&request("capacity"), &NoProgress))
        .expect("west works");
    assert_eq!(outcome.placement.region, "us-west-2");
    assert!(outcome.failures.is_empty());
}

#[test]
fn bad_names_and_existing_clusters_are_refused() {
    let home = Home::new();
    let fake = Arc::new(FakeProvider::new("aws"));
    let launcher = launcher(aws_catalog(), home.store()).with_provider(fake.clone());
    let rt = runtime();
    let err = rt
        .block_on(launcher.launch(&request("Bad_Name"), &NoProgress))
        .expect_err("invalid");
    assert!(matches!(err, LaunchError::InvalidName { .. }), "{err}");
    rt.block_on(launcher.launch(&request("twice"), &NoProgress))
        .expect("first");
    let err = rt
        .block_on(launcher.launch(&request("twice"), &NoProgress))
        .expect_err("exists");
    assert!(err.to_string().contains("skyplan down twice"), "{err}");
    assert_eq!(fake.cluster_names(), ["twice"]);
}

#[test]
fn nothing_feasible_is_a_plan_error_before_any_attempt() {
    let home = Home::new();
    let launcher = launcher(Catalog::default(), home.store());
    let err = runtime()
        .block_on(launcher.launch(&request("none"), &NoProgress))
        .expect_err("no offers");
    assert!(matches!(err, LaunchError::NoPlacement(_)), "{err}");
}
