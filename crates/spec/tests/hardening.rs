//! Hostile and broken task files and flag values: every error is one located line in our own
//! words (no serde or YAML-library wording), values are shown cut short, and nothing panics.
//! The property tests run a bounded number of cases (see each `proptest_config`).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use proptest::prelude::*;
use skyplan_spec::{
    Pipeline, SpecError, TaskOverrides, parse_accelerator, parse_env_override, parse_secret_override,
    parse_task_str,
};

const FILE: &str = "m.yaml";

/// A valid task file using most fields, one value per line where it matters.
const VALID: &str = "name: serve
num_nodes: 2
envs:
  MODEL_NAME: gemma
  HF_TOKEN: hf_0123456789
secrets:
  WANDB_API_KEY: wandb_0123456789
file_mounts:
  /data: s3://bucket/data
resources:
  cpus: 8+
  memory: 32+
  ports: [8000, 9000-9002]
  disk_size: 256
  max_hourly_cost: 4.5
  any_of:
    - infra: aws/us-east-1
      accelerators: A10G:1
    - infra: k8s/my-ctx
      accelerators: {L4, A10G}
inputs: {s3://bucket/in: 10}
duration: 2h
setup: pip install vllm
run: python -m vllm.entrypoints.openai.api_server --model $MODEL_NAME
";

fn parse(text: &str) -> Result<Pipeline, SpecError> {
    parse_task_str(text, FILE)
}

#[track_caller]
fn error(text: &str) -> String {
    parse(text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("no error for {text:?}"))
}

/// Wording from serde, serde-saphyr or Rust's own errors that must never reach a user.
const LEAKS: &[&str] = &[
    "untagged enum",
    "from_str_multiple",
    "DuplicateKeyPolicy",
    "budget breached",
    "limits breached",
    "Nodes {",
    "Depth {",
    "invalid type:",
    "overflow",
    "recursion limit",
];

/// What every error from a task file must look like.
#[track_caller]
fn check_error(err: &SpecError, text: &str) {
    let message = err.to_string();
    assert!(message.starts_with(FILE), "not located in {FILE}: {message}");
    assert!(!message.contains('\n'), "multi-line message {message:?}");
    assert!(
        message.chars().count() <= 700,
        "message too long ({} chars)",
        message.len()
    );
    for leak in LEAKS {
        assert!(!message.contains(leak), "library wording {leak:?} in {message}");
    }
    let at = err.position().unwrap_or_else(|| panic!("no position: {message}"));
    assert_eq!(at.file, FILE);
    // Only a file without any task lacks a line: every other error points into the text.
    if !matches!(err, SpecError::NoTask { .. }) {
        let line = at.line.unwrap_or_else(|| panic!("no line: {message}"));
        // YAML breaks lines at \r too (and a lone \r is a line of its own).
        let breaks = text
            .chars()
            .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'));
        let lines = breaks.count() as u32 + 1;
        assert!(
            line >= 1 && line <= lines + 1,
            "line {line} of {lines}: {message}"
        );
    }
    // A secret value still under a secret's name, or moved onto `envs:` / `secrets:` itself, is
    // never shown (elsewhere, e.g. swapped into `cpus:`, it is just a wrong value).
    for secret in ["hf_0123456789", "wandb_0123456789"] {
        let in_place = text.lines().filter(|line| line.contains(secret)).all(|line| {
            let key = line.trim_start().split(':').next().unwrap_or_default();
            ["HF_TOKEN", "WANDB_API_KEY", "envs", "secrets"].contains(&key)
        });
        if in_place {
            assert!(!message.contains(secret), "secret in {message}");
        }
    }
}

#[test]
fn the_valid_file_is_valid() {
    let pipeline = parse(VALID).unwrap();
    assert_eq!(pipeline.tasks[0].num_nodes, 2);
    assert_eq!(pipeline.tasks[0].alternatives().requests.len(), 3);
}

#[test]
fn empty_tasks_have_nothing_to_run() {
    for text in [
        "{}\n",
        "name: x\n",
        "envs:\n  A: 1\n",
        "run: ''\nsetup: '  '\n",
        "resources: {}\n",
    ] {
        let err = parse(text).unwrap_err();
        assert!(matches!(err, SpecError::NothingToRun { .. }), "{text:?}: {err}");
        assert!(
            err.to_string()
                .starts_with("m.yaml:1:1: nothing to run: give at least one of run, setup or resources"),
            "{err}"
        );
    }
    // In a pipeline the empty task is the one located.
    assert!(error("run: a\n---\nname: b\n").starts_with("m.yaml:3:1: nothing to run"));
    assert_eq!(
        error(""),
        "m.yaml: no task found; expected a mapping with task fields such as resources, setup and run"
    );
    // Any one of them is enough: a task with only resources brings up a cluster for `exec`.
    for text in ["run: x\n", "setup: x\n", "resources:\n  cpus: 2\n"] {
        assert!(parse(text).is_ok(), "{text:?}");
    }
}

#[test]
fn limits_are_named_in_plain_words() {
    let deep = format!("run: x\nconfig: {}{}\n", "[".repeat(100), "]".repeat(100));
    let message = error(&deep);
    assert!(
        message.starts_with("m.yaml:2:")
            && message.contains("invalid YAML: the file is beyond what a task file may hold: it nests lists and mappings deeper than 64 levels"),
        "{message}"
    );
    let block_deep: String = (0..80)
        .map(|depth| format!("{}k{depth}:\n", "  ".repeat(depth)))
        .collect();
    let message = error(&format!(
        "run: x\nconfig:\n{}",
        block_deep.replace("k0:", "  k0:")
    ));
    assert!(message.contains("deeper than 64 levels"), "{message}");
    let many = format!("run: x\nconfig:\n  big: [{}]\n", vec!["1"; 260_000].join(","));
    let message = error(&many);
    assert!(message.contains("it holds more than 250000 values"), "{message}");
    let documents = "run: x\n---\n".repeat(1_100);
    let message = error(&documents);
    assert!(message.contains("it holds more than 1024 documents"), "{message}");
    for text in [deep, many, documents] {
        check_error(&parse(&text).unwrap_err(), &text);
    }
}

#[test]
fn huge_values_are_cut_short_and_located() {
    let name = "A".repeat(1_000_000);
    let text = format!("resources:\n  accelerators: {name}:1\nrun: x\n");
    let message = error(&text);
    assert!(
        message.starts_with(
            "m.yaml:2:17: resources.accelerators: expected NAME:COUNT with a NAME of at most 64 characters"
        ),
        "{}",
        &message[..200.min(message.len())]
    );
    assert!(
        message.contains(&format!("found \"{}\"…", "A".repeat(64))),
        "{message}"
    );
    assert!(message.len() < 300, "{} bytes", message.len());
    // A long key is cut in the field path too; a huge one is beyond YAML's simple keys.
    let text = format!("run: x\n{}: 1\n", "A".repeat(500));
    let message = error(&text);
    assert!(
        message.starts_with(&format!("m.yaml:2:1: {}…: unknown key", "A".repeat(64))),
        "{message}"
    );
    assert!(message.len() < 600, "{} bytes", message.len());
    let huge = format!("run: x\n{name}: 1\n");
    for text in [text, huge] {
        check_error(&parse(&text).unwrap_err(), &text);
    }
}

#[test]
fn duplicate_keys_and_wrong_types_are_ours() {
    assert_eq!(
        error("run: x\nresources:\n  cpus: 2\n  cpus: 4\n"),
        "m.yaml:4:3: resources.cpus: duplicate key; the first one is on line 3"
    );
    assert_eq!(
        error("run: x\nnum_nodes: [1]\n"),
        "m.yaml:2:12: num_nodes: expected a whole number of nodes from 1 to 1000, e.g. 2, found a list"
    );
    assert_eq!(
        error("run: x\nnum_nodes: 4294967295\n"),
        "m.yaml:2:12: num_nodes: expected a whole number of nodes from 1 to 1000, e.g. 2, found 4294967295"
    );
    assert!(error("run: x\nnum_nodes: 1001\n").ends_with("found 1001"));
}

#[test]
fn num_nodes_override_is_bounded() {
    let mut pipeline = parse("run: x\n").unwrap();
    for nodes in [0, 1001, u32::MAX] {
        let overrides = TaskOverrides {
            num_nodes: Some(nodes),
            ..TaskOverrides::default()
        };
        let err = pipeline.apply_overrides(&overrides).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--num-nodes: expected a whole number of nodes from 1 to 1000, e.g. 2, found \"{nodes}\""
            )
        );
    }
    let overrides = TaskOverrides {
        num_nodes: Some(1000),
        ..TaskOverrides::default()
    };
    pipeline.apply_overrides(&overrides).unwrap();
    assert_eq!(pipeline.tasks[0].num_nodes, 1000);
}

#[test]
fn accelerator_names_are_located_for_later_errors() {
    let pipeline = parse(
        "run: x\nresources:\n  accelerators: L5:1\n  any_of:\n    - accelerators: {H100: 8, A100}\n    - accelerators: [V100:1]\n",
    )
    .unwrap();
    let at = |name: &str| {
        pipeline.tasks[0]
            .locations
            .accelerators
            .get(name)
            .map(|p| p.to_string())
    };
    assert_eq!(at("L5").as_deref(), Some("m.yaml:3:17"));
    assert_eq!(at("H100").as_deref(), Some("m.yaml:5:22"));
    assert_eq!(at("A100").as_deref(), Some("m.yaml:5:31"));
    assert_eq!(at("V100").as_deref(), Some("m.yaml:6:22"));
    assert_eq!(at("T4"), None);
}

/// One structured change to a line-oriented task file.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapValues(usize, usize),
    SetValue(usize, String),
    IndentLine(usize, usize),
    Truncate(usize),
}

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("4294967296".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999999999999999999999999".to_string()),
        Just("1e309".to_string()),
        Just(".nan".to_string()),
        Just("0x7fffffff".to_string()),
        Just("{L4, A10G}".to_string()),
        Just("[".to_string()),
        Just("*alias".to_string()),
        Just("&a [1, *a]".to_string()),
        Just("!!binary aGVsbG8=".to_string()),
        Just("\"unterminated".to_string()),
        Just("PATH".to_string()),
        (1usize..200).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        (1usize..50_000).prop_map(|len| "x".repeat(len)),
        "\\PC{0,40}",
        "[\u{0}-\u{7f}]{0,40}",
        ".{0,20}",
    ]
}

fn mutation(lines: usize) -> impl Strategy<Value = Mutation> {
    let line = 0..lines;
    prop_oneof![
        line.clone().prop_map(Mutation::DeleteLine),
        line.clone().prop_map(Mutation::DuplicateLine),
        (line.clone(), line.clone()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        (line.clone(), hostile_value()).prop_map(|(a, v)| Mutation::SetValue(a, v)),
        (line.clone(), 0usize..7).prop_map(|(a, n)| Mutation::IndentLine(a, n)),
        (0..VALID.len()).prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let split = |line: &str| -> (String, String) {
        match line.split_once(':') {
            Some((key, value)) => (format!("{key}:"), value.trim().to_string()),
            None => (line.to_string(), String::new()),
        }
    };
    for mutation in mutations {
        if lines.is_empty() {
            break;
        }
        let len = lines.len();
        let at = |i: usize| i % len;
        match mutation {
            Mutation::DeleteLine(i) => {
                lines.remove(at(*i));
            }
            Mutation::DuplicateLine(i) => {
                let line = lines[at(*i)].clone();
                lines.insert(at(*i), line);
            }
            Mutation::SwapValues(a, b) => {
                let (ka, va) = split(&lines[at(*a)]);
                let (kb, vb) = split(&lines[at(*b)]);
                lines[at(*a)] = format!("{ka} {vb}");
                lines[at(*b)] = format!("{kb} {va}");
            }
            Mutation::SetValue(i, value) => {
                let (key, _) = split(&lines[at(*i)]);
                lines[at(*i)] = format!("{key} {value}");
            }
            Mutation::IndentLine(i, n) => {
                let line = lines[at(*i)].clone();
                lines[at(*i)] = format!("{}{}", " ".repeat(*n), line.trim_start());
            }
            Mutation::Truncate(n) => {
                let joined = lines.join("\n");
                let cut: String = joined.chars().take(*n).collect();
                lines = cut.lines().map(str::to_string).collect();
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Parsing never panics; a file that parses survives the rest of the pipeline's checks, and a
/// rejected one gets a located one-line message.
fn check_text(text: &str) {
    match parse(text) {
        Ok(mut pipeline) => {
            let _ = pipeline.topological_order();
            for task in &pipeline.tasks {
                let _ = task.alternatives();
            }
            if let Err(err) = pipeline.apply_overrides(&TaskOverrides::default()) {
                check_error(&err, text);
            }
        }
        Err(err) => check_error(&err, text),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, as `parse_task_file` would see them once they are UTF-8.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_text(&String::from_utf8_lossy(&bytes));
    }

    /// YAML-ish text: punctuation, indentation and keys the schema knows.
    #[test]
    fn yaml_like_text_never_panics(text in "((name|run|envs|resources|  cpus|  accelerators|  any_of|    - infra|num_nodes|depends_on|[:\\-\\[\\]{}&*!|>#,'\"]| |\n|[a-z0-9]{1,4})){0,60}") {
        check_text(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A valid file with lines deleted, duplicated, re-indented, values swapped or replaced by
    /// huge numbers, unicode, deep nesting or YAML punctuation.
    #[test]
    fn mutated_valid_files_fail_with_located_messages(
        mutations in proptest::collection::vec(mutation(VALID.lines().count()), 1..4)
    ) {
        check_text(&apply(VALID, &mutations));
    }

    /// `--env` / `--secret` values: a valid, unreserved name and the rest verbatim, or an error
    /// naming the flag that never shows the value.
    #[test]
    fn env_and_secret_flags(name in "[A-Za-z_][A-Za-z0-9_]{0,12}|PATH|HOME|SKYPLAN_[A-Z]{1,5}|SKYPILOT_X|\\PC{0,10}", value in "\\PC{0,30}", eq in any::<bool>()) {
        let text = if eq { format!("{name}={value}") } else { name.clone() };
        for (flag, result) in [("--env", parse_env_override(&text)), ("--secret", parse_secret_override(&text))] {
            match result {
                Ok((parsed_name, parsed_value)) => {
                    let (written_name, written_value) = text.split_once('=').unwrap();
                    prop_assert_eq!(parsed_name.as_str(), written_name.trim());
                    prop_assert_eq!(parsed_value.as_str(), written_value);
                    prop_assert!(skyplan_spec::is_valid_env_name(&parsed_name));
                    prop_assert!(skyplan_spec::reserved_env_reason(&parsed_name).is_none());
                }
                Err(err) => {
                    let message = err.to_string();
                    prop_assert!(message.starts_with(flag), "{}", message);
                    prop_assert!(!message.contains('\n'));
                    if let Some((written_name, written_value)) = text.split_once('=')
                        && written_value.chars().count() >= 8
                        && !written_name.contains(written_value)
                    {
                        prop_assert!(!message.contains(written_value), "value shown: {}", message);
                    }
                }
            }
        }
    }

    /// `--gpus` / `accelerators` values: a short name and a positive finite count, or an error.
    #[test]
    fn gpus_flag(text in "[A-Za-z0-9 _.-]{0,80}(:[0-9e.+-]{0,12})?|\\PC{0,30}") {
        if let Ok((name, count)) = parse_accelerator(&text) {
            prop_assert!(!name.is_empty() && name.chars().count() <= 64);
            prop_assert!(count.is_finite() && count > 0.0);
        }
    }
}
