//! The CLI on AWS: a local moto (behind the instance-emulating proxy) stands in for EC2, and
//! `skyplan` finds it only through `AWS_ENDPOINT_URL` and the other standard variables.

use skyplan_providers::aws::testing::AwsTestbed;

use crate::util::{data_dir, skyplan_with, temp_dir};

fn env<'a>(testbed: &'a [(&'static str, String)], home: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = testbed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("SKYPLAN_HOME", home));
    env
}

#[test]
fn launch_status_down_on_aws_two_nodes_spot() {
    let testbed = AwsTestbed::start().unwrap_or_else(|e| panic!("needs moto_server: {e}"));
    let vars = testbed.env();
    let home = temp_dir("aws-home");
    let home_text = home.to_str().unwrap();
    let env = env(&vars, home_text);
    let task = home.join("train.yaml");
    std::fs::write(
        &task,
        "name: train\nnum_nodes: 2\nresources:\n  infra: aws/us-east-1\n  instance_type: m6i.xlarge\n\
         envs:\n  HF_TOKEN: hf_cli_secret\nrun: |\n  echo \"node $SKYPLAN_NODE_RANK of $SKYPLAN_NUM_NODES, token $HF_TOKEN\"\n",
    )
    .unwrap();

    let check = skyplan_with(&["check"], &env);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let aws_line = check
        .stdout
        .lines()
        .find(|l| l.contains(" aws "))
        .unwrap_or_default();
    assert!(aws_line.starts_with("enabled"), "{}", check.stdout);
    assert!(aws_line.contains(testbed.endpoint()), "{aws_line}");

    let run = skyplan_with(
        &["launch", task.to_str().unwrap(), "-c", "aws-train", "--use-spot"],
        &env,
    );
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    for rank in 0..2 {
        let line = format!("(rank={rank}) node {rank} of 2, token <redacted>");
        assert!(run.stdout.contains(&line), "{line:?} in {}", run.stdout);
    }
    assert!(!run.stdout.contains("hf_cli_secret") && !run.stderr.contains("hf_cli_secret"));
    let spot = testbed.calls("RunInstances");
    assert_eq!(spot.len(), 1);
    assert_eq!(
        spot[0]
            .params
            .get("InstanceMarketOptions.MarketType")
            .map(String::as_str),
        Some("spot")
    );

    let status = skyplan_with(&["status", "--json"], &env);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let json = status.json();
    let cluster = &json["clusters"][0];
    assert_eq!(cluster["record"]["name"], "aws-train");
    assert_eq!(cluster["live"]["state"], "UP", "{json}");
    assert_eq!(cluster["live"]["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(cluster["jobs"][0]["status"], "SUCCEEDED", "{json}");
    assert!(!status.stdout.contains("hf_cli_secret"));

    let down = skyplan_with(&["down", "aws-train"], &env);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let after = skyplan_with(&["status", "--json"], &env).json();
    assert_eq!(after["clusters"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(after["unrecorded"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(testbed.running_instances(), 0);
    assert_eq!(testbed.calls("TerminateInstances").len(), 1);
}

#[test]
fn catalog_refresh_writes_an_overlay_and_never_touches_data() {
    let testbed = AwsTestbed::start().unwrap_or_else(|e| panic!("needs moto_server: {e}"));
    let vars = testbed.env();
    let home = temp_dir("aws-refresh");
    let env = env(&vars, home.to_str().unwrap());
    let before = std::fs::read(data_dir().join("aws.csv")).unwrap();
    let run = skyplan_with(
        &[
            "catalog",
            "refresh",
            "--cloud",
            "aws",
            "--region",
            "us-east-1",
            "--json",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["regions"][0]["region"], "us-east-1");
    assert!(
        report["regions"][0]["offers_updated"].as_u64().unwrap() > 0,
        "{report}"
    );
    let overlay = std::fs::read_to_string(home.join("catalog/spot-prices.csv")).unwrap();
    assert!(overlay.starts_with("Cloud,Region,AvailabilityZone,InstanceType,SpotPrice,Timestamp\n"));
    assert!(
        overlay
            .lines()
            .skip(1)
            .all(|l| l.starts_with("aws,us-east-1,use1-az")),
        "{overlay}"
    );
    assert_eq!(
        std::fs::read(data_dir().join("aws.csv")).unwrap(),
        before,
        "data/ untouched"
    );
    // Every command now plans with the overlay's spot prices (moto's are synthetic).
    let g6: Vec<Vec<&str>> = overlay
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(3) == Some(&"g6.xlarge"))
        .collect();
    assert!(!g6.is_empty(), "moto prices g6.xlarge: {overlay}");
    let shown = skyplan_with(
        &[
            "show-gpus",
            "L4:1",
            "--cloud",
            "aws",
            "--region",
            "us-east-1",
            "--spot",
            "--json",
        ],
        &env,
    );
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let offers = shown.json();
    for row in &g6 {
        let offer = offers
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["instance_type"] == "g6.xlarge" && o["zone"] == row[2]);
        if let Some(offer) = offer {
            assert_eq!(offer["spot_price"], row[4], "{offer}");
        }
    }
    assert!(
        offers
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["instance_type"] == "g6.xlarge"
                && g6.iter().any(|r| o["zone"] == r[2] && o["spot_price"] == r[4])),
        "show-gpus uses the overlay: {offers}"
    );

    let bad = skyplan_with(&["catalog", "refresh", "--cloud", "gcp"], &env);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("aws only"), "{}", bad.stderr);
    let unknown = skyplan_with(
        &["catalog", "refresh", "--cloud", "aws", "--region", "mars-1"],
        &env,
    );
    assert!(
        unknown.stderr.contains("--region \"mars-1\""),
        "{}",
        unknown.stderr
    );
}

#[test]
fn without_credentials_aws_is_disabled_and_says_why() {
    let home = temp_dir("aws-none");
    let check = skyplan_with(&["check"], &[("SKYPLAN_HOME", home.to_str().unwrap())]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let line = check
        .stdout
        .lines()
        .find(|l| l.contains(" aws "))
        .unwrap_or_default();
    assert!(
        line.starts_with("disabled") && line.contains("no AWS credentials"),
        "{}",
        check.stdout
    );
}
