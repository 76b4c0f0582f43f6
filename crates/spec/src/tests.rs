//! Fixture-driven tests of the whole task-spec layer (files under `data/fixtures/tasks/`), and a
//! mutation test that feeds broken YAML to the parser to show it never panics.

use std::path::PathBuf;

use skyplan_catalog::Amount;

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/fixtures/tasks")
        .join(name)
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// Parses a fixture by text, so messages start with the bare file name.
fn parse(name: &str) -> Result<Pipeline, SpecError> {
    parse_task_str(&fixture_text(name), name)
}

#[test]
fn seed_example_parses_unchanged() {
    let pipeline = parse_task_file(&fixture("seed.yaml")).unwrap();
    assert_eq!(pipeline.tasks.len(), 1);
    assert!(pipeline.edges.is_empty());
    let task = &pipeline.tasks[0];
    assert_eq!(
        task.envs.get("MODEL_NAME"),
        Some(&Some("google/gemma-2b-it".to_string()))
    );
    assert!(task.is_secret("HF_TOKEN"));
    assert!(!task.is_secret("MODEL_NAME"));
    assert_eq!(task.secret_values(), vec!["myhftoken"]);
    assert_eq!(task.num_nodes, 1);
    assert_eq!(task.duration_hours, 1.0);
    assert!(
        task.setup
            .as_deref()
            .is_some_and(|s| s.contains("huggingface_hub.login('${HF_TOKEN}')"))
    );
    assert!(
        task.run
            .as_deref()
            .is_some_and(|s| s.ends_with("--host 0.0.0.0\n"))
    );

    let alternatives = task.alternatives();
    assert_eq!(alternatives.mode, AlternativeMode::AnyOf);
    let request = &alternatives.requests[0];
    assert_eq!(request.accelerator, Some(("L4".to_string(), 1.0)));
    assert_eq!(request.ports, vec![PortRange::single(8000)]);
    assert_eq!(
        request.image_id.as_deref(),
        Some("docker:vllm/vllm-openai:latest")
    );
    assert_eq!(request.docker_image(), Some("vllm/vllm-openai:latest"));
    assert_eq!((request.cloud.as_ref(), request.use_spot), (None, false));

    let mut pipeline = pipeline;
    pipeline.apply_overrides(&TaskOverrides::default()).unwrap();
    let shown = format!(
        "{pipeline:?}\n{pipeline:#?}\n{}",
        serde_json::to_string(&pipeline).unwrap()
    );
    assert!(!shown.contains("myhftoken"), "{shown}");
    assert!(shown.contains("google/gemma-2b-it"));
}

#[test]
fn bad_fixtures_give_located_errors() {
    let cases = [
        (
            "bad_accelerator.yaml",
            "bad_accelerator.yaml:2:17: resources.accelerators: expected NAME:COUNT with a positive number, e.g. L4:1, \
             found \"L4:x\"",
        ),
        (
            "bad_cpus.yaml",
            "bad_cpus.yaml:3:9: resources.cpus: expected a positive number, optionally followed by + (e.g. 4 or 4+), \
             found -1",
        ),
        (
            "bad_port.yaml",
            "bad_port.yaml:2:17: resources.ports[1]: expected a port 1-65535, a range like 8000-8010, or a list of \
             them, found 99999",
        ),
        (
            "bad_infra.yaml",
            "bad_infra.yaml:2:10: resources.infra: expected CLOUD, CLOUD/REGION or CLOUD/REGION/ZONE (e.g. \
             aws/us-east-1, gcp/*/us-central1-a, k8s/my-context) where CLOUD is one of aws, gcp, azure, lambda, \
             runpod, nebius, kubernetes (k8s), local or *, found \"awz/us-east-1\"; did you mean \"aws/us-east-1\"?",
        ),
        (
            "bad_key.yaml",
            "bad_key.yaml:4:3: resources.acclerators: unknown key; did you mean \"accelerators\"?",
        ),
        (
            "bad_cycle.yaml",
            "bad_cycle.yaml:2:13: depends_on: dependency cycle a -> b -> c -> a",
        ),
    ];
    for (name, expected) in cases {
        let err = parse(name).err().unwrap_or_else(|| panic!("{name} parsed"));
        assert_eq!(err.to_string(), expected, "{name}");
        assert!(err.position().and_then(|p| p.line).is_some(), "{name}: no line");
    }
    let err = parse("bad_key.yaml").unwrap_err();
    assert_eq!(err.path(), Some("resources.acclerators"));
    assert_eq!(
        err.position().map(|p| (p.line, p.column)),
        Some((Some(4), Some(3)))
    );
}

#[test]
fn null_env_must_be_supplied() {
    let mut pipeline = parse("bad_null_env.yaml").unwrap();
    let err = pipeline
        .clone()
        .apply_overrides(&TaskOverrides::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad_null_env.yaml:3:3: envs.HF_TOKEN: no value given; pass --env HF_TOKEN=VALUE"
    );
    let overrides = TaskOverrides {
        envs: vec![parse_env_override("HF_TOKEN=hf_live").unwrap()],
        ..Default::default()
    };
    pipeline.apply_overrides(&overrides).unwrap();
    assert_eq!(
        pipeline.tasks[0].envs.get("HF_TOKEN"),
        Some(&Some("hf_live".to_string()))
    );
    assert_eq!(pipeline.secret_values(), vec!["hf_live"]);
}

#[test]
fn chain_fixture() {
    let pipeline = parse("pipeline_chain.yaml").unwrap();
    assert_eq!(pipeline.name.as_deref(), Some("finetune-pipeline"));
    let names: Vec<_> = pipeline
        .tasks
        .iter()
        .map(|t| t.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["prep", "train", "eval"]);
    assert_eq!(pipeline.edges, vec![(0, 1), (1, 2)]);
    let [prep, train, eval] = &pipeline.tasks[..] else {
        panic!("three tasks")
    };
    assert_eq!(
        (prep.outputs_uri.as_deref(), prep.outputs_gb),
        (Some("s3://my-bucket/tokenized"), 50.0)
    );
    assert_eq!(train.inputs_gb, 50.0);
    assert_eq!(train.duration_hours, 6.0);
    assert_eq!(eval.duration_hours, 0.5);
    let train_request = &train.alternatives().requests[0];
    assert_eq!(train_request.accelerator, Some(("H100".to_string(), 8.0)));
    assert!(train_request.use_spot);
    assert_eq!(prep.alternatives().requests[0].cpus, Some(Amount::at_least(8.0)));
}

#[test]
fn dag_fixture() {
    let pipeline = parse("pipeline_dag.yaml").unwrap();
    assert_eq!(pipeline.edges, vec![(0, 1), (0, 2), (1, 3), (2, 3)]);
    assert_eq!(pipeline.topological_order(), Some(vec![0, 1, 2, 3]));
    let train = &pipeline.tasks[3];
    let alternatives = train.alternatives();
    assert_eq!(alternatives.mode, AlternativeMode::Ordered);
    let accelerators: Vec<_> = alternatives
        .requests
        .iter()
        .filter_map(|r| r.accelerator.clone())
        .collect();
    assert_eq!(
        accelerators,
        vec![("H100".to_string(), 8.0), ("A100-80GB".to_string(), 8.0)]
    );
    assert_eq!(train.duration_hours, 12.0);
}

#[test]
fn alternatives_fixture() {
    let mut pipeline = parse("alternatives.yaml").unwrap();
    let task = &pipeline.tasks[0];
    let alternatives = task.alternatives();
    assert_eq!(alternatives.mode, AlternativeMode::AnyOf);
    let summary: Vec<String> = alternatives
        .requests
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{} {} spot={}",
                r.cloud.as_deref().unwrap_or("*"),
                r.region.as_deref().unwrap_or("*"),
                r.zone.as_deref().unwrap_or("*"),
                r.accelerator
                    .as_ref()
                    .map(|(n, c)| format!("{n}:{c}"))
                    .unwrap_or_default(),
                r.use_spot
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "kubernetes/my-ctx/* L4:1 spot=false",
            "kubernetes/my-ctx/* A10G:1 spot=false",
            "aws/us-east-1/* A10G:1 spot=true",
            "gcp/*/us-central1-a L4:1 spot=false",
        ]
    );
    for request in &alternatives.requests {
        assert_eq!(request.cpus, Some(Amount::at_least(8.0)));
        assert_eq!(
            request.ports,
            vec![
                PortRange::single(8000),
                PortRange {
                    start: 9000,
                    end: 9002
                }
            ]
        );
        assert_eq!(request.disk_size_gb, Some(256));
        assert_eq!(request.labels.get("team").map(String::as_str), Some("ml"));
        assert_eq!(request.max_hourly_cost, Some(rust_decimal::Decimal::new(45, 1)));
    }
    // The secret declared without a value is asked for by its `secrets.` path.
    let overrides = TaskOverrides {
        envs: vec![("HF_TOKEN".into(), "hf".into())],
        ..Default::default()
    };
    let err = pipeline.clone().apply_overrides(&overrides).unwrap_err();
    assert_eq!(
        err.to_string(),
        "alternatives.yaml:7:3: secrets.WANDB_API_KEY: no value given; pass --secret WANDB_API_KEY=VALUE (or --env WANDB_API_KEY=VALUE)"
    );
    let overrides = TaskOverrides {
        envs: vec![
            ("HF_TOKEN".into(), "hf".into()),
            ("WANDB_API_KEY".into(), "wandb-secret".into()),
        ],
        ..Default::default()
    };
    pipeline.apply_overrides(&overrides).unwrap();
    let json = serde_json::to_string(&pipeline).unwrap();
    assert!(
        !json.contains("wandb-secret") && json.contains("<redacted>"),
        "{json}"
    );
}

#[test]
fn reading_a_missing_file_names_it() {
    let err = parse_task_file(&fixture("no-such-file.yaml")).unwrap_err();
    assert!(matches!(err, SpecError::Io { .. }));
    assert!(err.to_string().starts_with("cannot read ") && err.to_string().ends_with("no-such-file.yaml"));
}

/// A small deterministic generator (xorshift), so the mutation test needs no extra crate and
/// fails the same way every run.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
}

#[test]
fn mutated_yaml_never_panics() {
    const PIECES: &[&str] = &[
        ":",
        " ",
        "\n",
        "-",
        "---\n",
        "{",
        "}",
        "[",
        "]",
        ",",
        "\"",
        "'",
        "&a ",
        "*a",
        "!!set ",
        "? ",
        "|",
        ">",
        "#",
        "\t",
        "~",
        "null",
        "99999",
        "-1",
        "1e400",
        "0x1F",
        ".inf",
        "L4:x",
        "k8s/",
        "*/",
        "any_of:\n  - ",
        "ordered: [",
        "accelerators: ",
        "envs:\n  X:",
        "depends_on: [",
        "name: a\n",
        "é",
        "\u{feff}",
        "<<: *a\n",
    ];
    let fixtures = [
        "seed.yaml",
        "pipeline_chain.yaml",
        "pipeline_dag.yaml",
        "alternatives.yaml",
        "bad_cycle.yaml",
    ];
    let texts: Vec<String> = fixtures.iter().map(|f| fixture_text(f)).collect();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut parsed = 0;
    for round in 0..600 {
        let mut text: Vec<char> = texts[round % texts.len()].chars().collect();
        for _ in 0..=rng.below(4) {
            let at = rng.below(text.len() + 1);
            match rng.below(4) {
                0 if !text.is_empty() => {
                    let end = (at + rng.below(8)).min(text.len());
                    text.drain(at.min(end)..end);
                }
                1 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    text.splice(at..at, piece.chars());
                }
                2 => {
                    let other: Vec<char> = texts[rng.below(texts.len())].chars().collect();
                    let from = rng.below(other.len());
                    let to = (from + rng.below(40)).min(other.len());
                    text.splice(at..at, other[from..to].iter().copied());
                }
                _ => {
                    if let Some(c) = text.get_mut(at) {
                        *c = PIECES[rng.below(PIECES.len())].chars().next().unwrap_or(' ');
                    }
                }
            }
        }
        let text: String = text.into_iter().collect();
        match parse_task_str(&text, "fuzz.yaml") {
            Ok(mut pipeline) => {
                parsed += 1;
                let _ = pipeline.tasks.iter().map(TaskSpec::alternatives).count();
                let _ = pipeline.topological_order();
                let _ = pipeline.apply_overrides(&TaskOverrides::default());
                let shown = format!("{pipeline:?}");
                for secret in pipeline.secret_values().into_iter().filter(|s| s.len() >= 6) {
                    assert!(!shown.contains(secret), "secret {secret:?} in Debug for {text:?}");
                }
            }
            Err(err) => {
                let message = err.to_string();
                assert!(message.starts_with("fuzz.yaml"), "{message}");
                assert!(!message.contains('\n'), "multi-line message {message:?}");
            }
        }
    }
    assert!(
        parsed > 20,
        "the mutations should leave some files valid, got {parsed}"
    );
}
