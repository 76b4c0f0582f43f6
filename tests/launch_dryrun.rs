//! `skyplan launch --dryrun` / `optimize`: plans from task files match a scan of the catalog,
//! overrides apply, and every bad input is a clear error with a non-zero exit.

use rust_decimal::Decimal;

use crate::util::{data_dir, skyplan, temp_dir};

fn fixture(name: &str) -> String {
    data_dir().join("fixtures/tasks").join(name).display().to_string()
}

/// The cheapest offer for a shape by a plain linear scan (no index, no optimizer).
fn scan_min(accelerator: &str, count: f64, spot: bool) -> (String, Decimal) {
    let catalog = skyplan::load_catalog(None).unwrap();
    catalog
        .offers()
        .iter()
        .filter(|o| o.accelerator.as_deref() == Some(accelerator) && o.accelerator_count == count)
        .filter_map(|o| o.price_for(spot).map(|p| (o.instance_type.clone(), p)))
        .min_by(|a, b| a.1.cmp(&b.1))
        .unwrap()
}

#[test]
fn seed_example_plans_to_the_cheapest_l4() {
    let run = skyplan(&["optimize", &fixture("seed.yaml"), "--json"]).success();
    let plan = run.json();
    let chosen = &plan["tasks"][0]["chosen"];
    let (instance_type, price) = scan_min("L4", 1.0, false);
    assert_eq!(chosen["instance_type"], instance_type.as_str());
    assert_eq!(
        chosen["hourly_price"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        price
    );
    assert_eq!(
        (chosen["cloud"].as_str(), chosen["region"].as_str()),
        (Some("gcp"), Some("us-east4"))
    );
    for field in [
        "zone",
        "accelerator",
        "accelerator_count",
        "use_spot",
        "num_nodes",
    ] {
        assert!(chosen.get(field).is_some(), "chosen.{field}");
    }
    assert_eq!(plan["tasks"][0]["name"], "seed");
    assert!(plan["tasks"][0]["alternatives"].as_array().unwrap().len() >= 5);
    for field in ["total_cost", "objective", "solver", "solve_ms"] {
        assert!(plan.get(field).is_some(), "{field}");
    }
    assert_eq!(plan["objective"], "cost");
    // The secret-looking env of the seed (HF_TOKEN) never appears in a plan.
    assert!(!run.stdout.contains("myhftoken"));
}

#[test]
fn gpus_and_spot_overrides_plan_the_cheapest_spot_h100x8() {
    let run = skyplan(&[
        "optimize",
        &fixture("seed.yaml"),
        "--json",
        "--gpus",
        "H100:8",
        "--use-spot",
    ])
    .success();
    let chosen = run.json()["tasks"][0]["chosen"].clone();
    let (instance_type, price) = scan_min("H100", 8.0, true);
    assert_eq!(chosen["instance_type"], instance_type.as_str());
    assert_eq!(chosen["use_spot"], true);
    assert_eq!(
        chosen["hourly_price"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        price
    );
}

#[test]
fn dry_runs_plan_on_enabled_clouds_only() {
    // The default build without credentials or kubeconfig can launch on `local` only: the seed
    // (an L4 GPU and a docker image) cannot run anywhere enabled, and the error says who could.
    let run = skyplan(&["launch", &fixture("seed.yaml"), "--dryrun", "--json"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // With the aws backend compiled in, aws is off for want of credentials instead.
    let aws = if cfg!(feature = "aws") {
        "aws: not configured: no AWS credentials"
    } else {
        "aws: this build has no aws backend"
    };
    for expected in [
        "no enabled cloud can run task \"seed\"",
        aws,
        "gcp: no gcp backend yet",
        "kubernetes: not configured",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
    }
    // The CPU example plans on this machine, as `launch` will run it.
    let run = skyplan(&["launch", "examples/hello.yaml", "--dryrun", "--json"]).success();
    let plan = run.json();
    assert_eq!(plan["tasks"][0]["chosen"]["cloud"], "local");
    assert_eq!(plan["clouds"], serde_json::json!(["local"]));
    assert!(
        plan["notes"].as_array().unwrap().is_empty(),
        "local at 0 $/h is the cheapest: {plan}"
    );
}

#[test]
fn table_output_marks_the_chosen_row() {
    let run = skyplan(&["optimize", &fixture("seed.yaml")]).success();
    assert!(run.stdout.contains("considered resources"), "{}", run.stdout);
    let chosen: Vec<&str> = run.stdout.lines().filter(|l| l.contains('✔')).collect();
    assert_eq!(chosen.len(), 1, "{}", run.stdout);
    assert!(chosen[0].contains("g2-standard-4") && chosen[0].contains("0.70452"));
    assert!(run.stdout.contains("Plan: 0.70452 $ total"));
}

#[test]
fn pipelines_plan_every_task() {
    let decimal = |v: &serde_json::Value| -> rust_decimal::Decimal {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a decimal: {v}"))
    };
    for (file, names) in [
        ("pipeline_chain.yaml", &["prep", "train", "eval"][..]),
        (
            "pipeline_dag.yaml",
            &["download", "tokenize", "images", "train"][..],
        ),
    ] {
        let run = skyplan(&["optimize", &fixture(file), "--json"]).success();
        let plan = run.json();
        let tasks = plan["tasks"].as_array().unwrap();
        let planned: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap_or("")).collect();
        assert_eq!(planned, names, "{file}: every task, in order");
        for task in tasks {
            assert!(task["chosen"]["instance_type"].is_string(), "{file}: {task}");
        }
        // The totals add up: compute is the tasks' costs, total is compute plus egress.
        let compute: rust_decimal::Decimal = tasks.iter().map(|t| decimal(&t["cost"])).sum();
        assert_eq!(compute, decimal(&plan["compute_cost"]), "{file}");
        assert_eq!(
            decimal(&plan["compute_cost"]) + decimal(&plan["egress_cost"]),
            decimal(&plan["total_cost"]),
            "{file}"
        );
    }
}

#[test]
fn bad_inputs_fail_clearly() {
    let cases = [
        (
            "bad_accelerator.yaml",
            vec![],
            "resources.accelerators: expected NAME:COUNT",
        ),
        (
            "bad_cpus.yaml",
            vec![],
            "resources.cpus: expected a positive number",
        ),
        (
            "bad_port.yaml",
            vec![],
            "resources.ports[1]: expected a port 1-65535",
        ),
        ("bad_infra.yaml", vec![], "did you mean \"aws/us-east-1\"?"),
        (
            "bad_key.yaml",
            vec![],
            "resources.acclerators: unknown key; did you mean \"accelerators\"?",
        ),
        (
            "bad_null_env.yaml",
            vec![],
            "envs.HF_TOKEN: no value given; pass --env HF_TOKEN=VALUE",
        ),
        ("bad_cycle.yaml", vec![], "dependency cycle"),
        ("seed.yaml", vec!["--gpus", "L4:x"], "--gpus: expected NAME:COUNT"),
        ("seed.yaml", vec!["--gpus", "H10:8"], "did you mean \"H100\"?"),
        ("seed.yaml", vec!["--env", "NOEQUALS"], "--env"),
        (
            "seed.yaml",
            vec!["--deadline", "0"],
            "--deadline 0: expected a positive number of hours",
        ),
        (
            "seed.yaml",
            vec!["--infra", "aws/mars-1"],
            "no offer satisfies L4:1 on aws/mars-1",
        ),
    ];
    for (file, extra, expected) in cases {
        let mut args = vec!["launch".to_string(), fixture(file), "--dryrun".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = skyplan(&args);
        assert_ne!(run.code, 0, "{file} {extra:?} should fail");
        assert!(
            run.stderr.contains(expected),
            "{file} {extra:?}: expected {expected:?} in {:?}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{file}");
    }
    let null_env = skyplan(&[
        "launch",
        &fixture("bad_null_env.yaml"),
        "--dryrun",
        "--env",
        "HF_TOKEN=x",
    ]);
    assert_eq!(null_env.code, 0, "{}", null_env.stderr);
    let missing = temp_dir("missing").join("nope.yaml");
    let run = skyplan(&["launch", missing.to_str().unwrap(), "--dryrun"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("nope.yaml"), "{}", run.stderr);
}
