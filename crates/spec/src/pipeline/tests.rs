//! Tests of the `pipeline` parser.

use super::*;
use crate::parse_task_str;

#[track_caller]
fn error(yaml: &str) -> String {
    parse_task_str(yaml, "p.yaml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("no error for {yaml:?}"))
}

#[test]
fn chain_in_document_order() {
    let p = parse_task_str("name: a\nrun: x\n---\nname: b\nsetup: s\n---\nrun: y\n", "p.yaml").unwrap();
    assert_eq!(p.tasks.len(), 3);
    assert_eq!(p.edges, vec![(0, 1), (1, 2)]);
    assert_eq!(p.name, None);
    assert_eq!(p.topological_order(), Some(vec![0, 1, 2]));
}

#[test]
fn first_document_may_name_the_pipeline() {
    let p = parse_task_str(
        "name: my-pipeline\n---\nname: a\nrun: x\n---\nname: b\nrun: y\n",
        "p.yaml",
    )
    .unwrap();
    assert_eq!(p.name.as_deref(), Some("my-pipeline"));
    assert_eq!(p.tasks.len(), 2);
    assert_eq!(p.edges, vec![(0, 1)]);
    // A single document with a name is a task, and names the pipeline.
    let p = parse_task_str("name: solo\nrun: x\n", "p.yaml").unwrap();
    assert_eq!((p.name.as_deref(), p.tasks.len()), (Some("solo"), 1));
    let p = parse_task_str("name: only-a-header\nresources:\n  cpus: 1\n---\n", "p.yaml").unwrap();
    assert_eq!((p.name.as_deref(), p.tasks.len()), (Some("only-a-header"), 1));
    // With nothing else it is a task with nothing to run.
    assert_eq!(
        error("name: only-a-header\n---\n"),
        "p.yaml:1:1: nothing to run: give at least one of run, setup or resources (a task with only \
         resources brings up a cluster for `skyplan exec`)"
    );
}

#[test]
fn depends_on_makes_a_dag() {
    let yaml = "name: prep\nrun: x\n---\nname: train\nrun: x\ndepends_on: prep\n---\nname: eval\nrun: x\ndepends_on: [train, prep]\n---\nname: report\nrun: x\ndepends_on: [eval]\n";
    let p = parse_task_str(yaml, "p.yaml").unwrap();
    assert_eq!(p.edges, vec![(0, 1), (0, 2), (1, 2), (2, 3)]);
    assert_eq!(p.parents(2), vec![0, 1]);
    assert_eq!(p.name, None);
    // A name-only first document that others depend on is a task, with nothing to run.
    assert!(
        error("name: prep\n---\nname: train\nrun: x\ndepends_on: prep\n")
            .starts_with("p.yaml:1:1: nothing to run: ")
    );
    // Two roots: no implicit chain once depends_on is used.
    let p = parse_task_str(
        "name: a\nrun: x\n---\nname: b\nrun: x\n---\nname: c\nrun: x\ndepends_on: [a, b]\n",
        "p.yaml",
    )
    .unwrap();
    assert_eq!(p.edges, vec![(0, 2), (1, 2)]);
}

#[test]
fn dag_errors() {
    assert_eq!(
        error("name: a\n---\nname: b\ndepends_on: [a]\n---\nname: c\ndepends_on: [b, trian]\n"),
        "p.yaml:7:17: depends_on[1]: no task named \"trian\" in this file; named tasks: a, b, c"
    );
    assert!(
        error("name: train\n---\nname: eval\ndepends_on: trian\n")
            .contains("\"trian\" in this file; did you mean \"train\"?")
    );
    assert_eq!(
        error("name: a\ndepends_on: c\n---\nname: b\ndepends_on: a\n---\nname: c\ndepends_on: b\n"),
        "p.yaml:2:13: depends_on: dependency cycle a -> b -> c -> a"
    );
    assert_eq!(
        error("name: a\ndepends_on: a\n"),
        "p.yaml:2:13: depends_on: dependency cycle a -> a"
    );
    assert_eq!(
        error("name: a\n---\nname: a\ndepends_on: a\n"),
        "p.yaml:3:7: name: task name \"a\" is also used on line 1; names must be unique when depends_on is used"
    );
    // Duplicate names are fine in a plain chain.
    assert!(parse_task_str("name: a\nrun: x\n---\nname: a\nrun: y\n", "p.yaml").is_ok());
    assert_eq!(
        error(""),
        "p.yaml: no task found; expected a mapping with task fields such as resources, setup and run"
    );
}

#[test]
fn overrides() {
    let mut p = parse_task_str(
        "envs:\n  MODEL: m\n  HF_TOKEN:\nsecrets:\n  WANDB_API_KEY:\nresources:\n  accelerators: L4:1\n  any_of:\n    - infra: gcp\n    - infra: aws\n",
        "p.yaml",
    )
    .unwrap();
    assert_eq!(
        p.clone()
            .apply_overrides(&TaskOverrides::default())
            .unwrap_err()
            .to_string(),
        "p.yaml:3:3: envs.HF_TOKEN: no value given; pass --env HF_TOKEN=VALUE"
    );
    let overrides = TaskOverrides {
        envs: vec![
            parse_env_override("HF_TOKEN=hf_x").unwrap(),
            ("WANDB_API_KEY".into(), "w".into()),
            ("NEW".into(), "1".into()),
        ],
        infra: Some("k8s/ctx".into()),
        gpus: Some("H100:2".into()),
        use_spot: Some(true),
        cpus: Some("8+".into()),
        ..TaskOverrides::default()
    };
    assert!(!format!("{overrides:?}").contains("hf_x"));
    p.apply_overrides(&overrides).unwrap();
    let task = &p.tasks[0];
    assert_eq!(task.envs.get("HF_TOKEN"), Some(&Some("hf_x".to_string())));
    assert_eq!(task.envs.get("NEW"), Some(&Some("1".to_string())));
    assert!(
        !task.envs.contains_key("WANDB_API_KEY"),
        "routed to the declared secret"
    );
    assert_eq!(
        task.secrets
            .get("WANDB_API_KEY")
            .and_then(|s| s.as_ref())
            .map(SecretString::expose),
        Some("w")
    );
    let alts = task.alternatives();
    assert_eq!(alts.requests.len(), 1, "every alternative now the same: {alts:?}");
    let request = &alts.requests[0];
    assert_eq!(request.cloud.as_deref(), Some("kubernetes"));
    assert_eq!(request.region.as_deref(), Some("ctx"));
    assert_eq!(request.accelerator, Some(("H100".to_string(), 2.0)));
    assert!(request.use_spot);
    assert_eq!(request.cpus, Some(Amount::at_least(8.0)));
}

#[test]
fn override_errors() {
    let mut p = parse_task_str("run: x\n", "p.yaml").unwrap();
    let err = |o: TaskOverrides| p.clone().apply_overrides(&o).unwrap_err().to_string();
    assert_eq!(
        err(TaskOverrides {
            gpus: Some("L4:x".into()),
            ..TaskOverrides::default()
        }),
        "--gpus: expected NAME:COUNT with a positive number, e.g. L4:1, found \"L4:x\""
    );
    assert!(
        err(TaskOverrides {
            infra: Some("awz".into()),
            ..TaskOverrides::default()
        })
        .ends_with("found \"awz\"; did you mean \"aws\"?")
    );
    assert!(
        err(TaskOverrides {
            cpus: Some("-1".into()),
            ..TaskOverrides::default()
        })
        .starts_with("--cpus: expected a positive number")
    );
    assert!(
        err(TaskOverrides {
            envs: vec![("1X".into(), "secret".into())],
            ..TaskOverrides::default()
        })
        .starts_with("--env: expected NAME=VALUE")
    );
    let text = parse_env_override("HF_TOKEN").unwrap_err().to_string();
    assert_eq!(
        text,
        "--env: expected NAME=VALUE with NAME made of letters, digits and _ (e.g. MODEL_NAME=gemma), found \"HF_TOKEN\""
    );
    assert!(
        !parse_env_override("BAD NAME=hunter2")
            .unwrap_err()
            .to_string()
            .contains("hunter2")
    );
    p.apply_overrides(&TaskOverrides::default()).unwrap();
}
