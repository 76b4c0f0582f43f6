//! `down` reports only what it verified, and the places AWS plans on are the places it looks:
//! `SKYPLAN_AWS_REGIONS` bounds planning, and `status`/`down` also look where the state store
//! recorded a cluster. A local moto behind the fault proxy stands in for EC2.

use skyplan_providers::aws::testing::{AwsTestbed, Ec2Fault};

use crate::util::{skyplan_with, temp_dir};

/// The testbed's environment with `SKYPLAN_HOME` and `SKYPLAN_AWS_REGIONS` set.
fn env_with(testbed: &AwsTestbed, home: &str, regions: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = testbed
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "SKYPLAN_AWS_REGIONS")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("SKYPLAN_HOME".to_string(), home.to_string()));
    env.push(("SKYPLAN_AWS_REGIONS".to_string(), regions.to_string()));
    env
}

fn run(args: &[&str], env: &[(String, String)]) -> crate::util::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    skyplan_with(args, &env)
}

fn nano_task(dir: &std::path::Path, infra: &str) -> String {
    let task = dir.join("nano.yaml");
    std::fs::write(
        &task,
        format!(
            "name: nano\nresources:\n  infra: {infra}\n  instance_type: t3.nano\nrun: echo hello from nano\n"
        ),
    )
    .unwrap();
    task.to_str().unwrap().to_string()
}

#[test]
fn capacity_gone_in_every_configured_region_fails_there_and_leaves_nothing() {
    let testbed = AwsTestbed::start().unwrap_or_else(|e| panic!("needs moto_server: {e}"));
    testbed.inject(Ec2Fault::new("RunInstances", "InsufficientInstanceCapacity").instance_type("t3.nano"));
    let home = temp_dir("aws-capacity");
    let env = env_with(&testbed, home.to_str().unwrap(), "us-east-1,us-east-2,us-west-2");
    let task = nano_task(&home, "aws");

    let launch = run(&["launch", &task, "-c", "ck-h"], &env);
    assert_eq!(
        launch.code, 1,
        "stdout: {}\nstderr: {}",
        launch.stdout, launch.stderr
    );
    let first = launch
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first.contains("no capacity in us-east-1, us-east-2, us-west-2 (aws)"),
        "{}",
        launch.stderr
    );
    let regions: std::collections::BTreeSet<String> = testbed
        .calls("RunInstances")
        .into_iter()
        .map(|c| c.region)
        .collect();
    assert_eq!(
        regions.into_iter().collect::<Vec<_>>(),
        ["us-east-1", "us-east-2", "us-west-2"],
        "RunInstances only in the configured regions"
    );
    assert_eq!(testbed.running_instances(), 0);

    let down = run(&["down", "--all"], &env);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    let after = run(&["status", "--json"], &env).json();
    assert_eq!(after["clusters"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(testbed.running_instances(), 0);
}

#[test]
fn a_cluster_recorded_outside_the_searched_regions_is_found_and_terminated() {
    let testbed = AwsTestbed::start().unwrap_or_else(|e| panic!("needs moto_server: {e}"));
    let home = temp_dir("aws-recorded");
    let home_text = home.to_str().unwrap();
    let task = nano_task(&home, "aws/eu-north-1");
    let north = env_with(&testbed, home_text, "eu-north-1");
    let launch = run(&["launch", &task, "-c", "far"], &north);
    assert_eq!(launch.code, 0, "{}", launch.stderr);
    assert_eq!(
        testbed
            .calls("RunInstances")
            .last()
            .map(|c| c.region.clone())
            .as_deref(),
        Some("eu-north-1")
    );

    // The setting changes; the record still says where the cluster is.
    let elsewhere = env_with(&testbed, home_text, "us-east-1,us-west-2");
    let status = run(&["status", "--json"], &elsewhere);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let json = status.json();
    assert_eq!(json["clusters"][0]["state"], "UP", "{json}");

    let down = run(&["down", "far"], &elsewhere);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(
        down.stdout.contains("Terminated far on aws") || down.stdout.contains("Terminating far on aws"),
        "{}",
        down.stdout
    );
    let terminated: Vec<String> = testbed
        .calls("TerminateInstances")
        .into_iter()
        .map(|c| c.region)
        .collect();
    assert_eq!(terminated, ["eu-north-1"]);
    assert_eq!(testbed.running_instances(), 0);
    let again = run(&["status", "--json"], &north).json();
    assert_eq!(again["clusters"].as_array().map(Vec::len), Some(0), "{again}");
    assert_eq!(again["unrecorded"].as_array().map(Vec::len), Some(0), "{again}");
}

#[test]
fn an_auth_failure_leads_the_error_and_ends_the_calls() {
    let testbed = AwsTestbed::start().unwrap_or_else(|e| panic!("needs moto_server: {e}"));
    testbed.inject(Ec2Fault::new("RunInstances", "AuthFailure"));
    let home = temp_dir("aws-auth");
    let env = env_with(&testbed, home.to_str().unwrap(), "us-east-1,us-west-2");
    let task = nano_task(&home, "aws");

    let launch = run(&["launch", &task, "-c", "denied"], &env);
    assert_eq!(launch.code, 1, "{}\n{}", launch.stdout, launch.stderr);
    let first = launch
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first.contains("authentication failed on aws"),
        "{}",
        launch.stderr
    );
    assert!(!first.contains("blocked"), "{first}");
    let calls = testbed.all_calls();
    let rejected = calls
        .iter()
        .position(|c| c.fault.as_deref() == Some("AuthFailure"))
        .expect("the rejected call");
    assert_eq!(
        calls.len(),
        rejected + 1,
        "calls after the rejected one: {:?}",
        calls[rejected + 1..]
            .iter()
            .map(|c| &c.action)
            .collect::<Vec<_>>()
    );
}
