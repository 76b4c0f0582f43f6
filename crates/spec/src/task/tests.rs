//! Tests of the `task` parser.

use super::*;
use crate::yaml::load_documents;

fn task(yaml: &str) -> Result<TaskSpec, SpecError> {
    let docs = load_documents(yaml, "t.yaml")?;
    parse_task(Ctx { file: "t.yaml" }, &docs[0])
}

#[track_caller]
fn error(yaml: &str) -> String {
    task(yaml)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("no error for {yaml:?}"))
}

#[test]
fn durations() {
    let hours = |yaml: &str| task(yaml).unwrap().duration_hours;
    assert_eq!(hours("run: x\n"), 1.0);
    assert_eq!(hours("duration: 2\n"), 2.0);
    assert_eq!(hours("duration: 0.5\n"), 0.5);
    assert_eq!(hours("duration: 90m\n"), 1.5);
    assert_eq!(hours("duration: 2h\n"), 2.0);
    assert_eq!(hours("duration: 30s\n"), 30.0 / 3600.0);
    assert_eq!(hours("duration: 1d 2h\n"), 26.0);
    assert_eq!(
        error("duration: soon\n"),
        "t.yaml:1:11: duration: expected a positive number of hours up to 1000000, or a duration like 90m, 2h, 1h30m or 30s, found \"soon\""
    );
    assert!(error("duration: -1\n").contains("found -1"));
    assert!(error("duration: 0\n").contains("found 0"));
    assert_eq!(hours("duration: 1000000\n"), 1e6);
    assert!(
        error("duration: 1e30\n").contains("up to 1000000")
            && error("duration: 1e30\n").contains("found 1e30")
    );
    assert!(error("duration: 50000d\n").contains("found \"50000d\""));
    assert!(error("duration: 5x\n").contains("found \"5x\""));
    assert!(error("duration: [1]\n").contains("found a list"));
}

#[test]
fn inputs_and_outputs() {
    let t = task("inputs: {s3://bucket/data: 100}\noutputs: 2.5\n").unwrap();
    assert_eq!(
        (t.inputs_uri.as_deref(), t.inputs_gb),
        (Some("s3://bucket/data"), 100.0)
    );
    assert_eq!((t.outputs_uri, t.outputs_gb), (None, 2.5));
    assert_eq!(task("inputs: 1TB\n").unwrap().inputs_gb, 1000.0);
    assert_eq!(task("run: x\n").unwrap().inputs_gb, 0.0);
    assert!(error("inputs: {a: 1, b: 2}\n").contains("inputs: expected a size in GB (e.g. 100), or a one-entry mapping {PATH_OR_URI: SIZE_GB}, found a mapping with 2 entries"));
    assert!(error("outputs: {gs://x: -4}\n").starts_with("t.yaml:1:19: outputs.gs://x: expected a size"));
}

#[test]
fn envs_and_secrets() {
    let t =
        task("envs:\n  A: 1\n  B: true\n  C:\n  D: \"x\"\n  API_KEY: k123\nsecrets:\n  DB_PASS: hunter2\n")
            .unwrap();
    assert_eq!(t.envs.get("A"), Some(&Some("1".to_string())));
    assert_eq!(t.envs.get("B"), Some(&Some("true".to_string())));
    assert_eq!(t.envs.get("C"), Some(&None));
    assert_eq!(
        t.secrets
            .get("DB_PASS")
            .and_then(|s| s.as_ref())
            .map(SecretString::expose),
        Some("hunter2")
    );
    assert_eq!(t.secret_values(), vec!["hunter2", "k123"]);
    let shown = t.redacted_envs();
    assert_eq!(shown.get("API_KEY"), Some(&Some(REDACTED.to_string())));
    assert_eq!(shown.get("DB_PASS"), Some(&Some(REDACTED.to_string())));
    assert_eq!(shown.get("A"), Some(&Some("1".to_string())));
    assert_eq!(t.redact("pw=hunter2 key=k123"), "pw=<redacted> key=<redacted>");
    assert_eq!(t.expose_env().get("DB_PASS").map(String::as_str), Some("hunter2"));
    assert_eq!(
        t.check_values().unwrap_err().to_string(),
        "t.yaml:4:3: envs.C: no value given; pass --env C=VALUE"
    );
    assert_eq!(
        error("envs:\n  HF_TOKEN: [secret-value]\n"),
        "t.yaml:2:13: envs.HF_TOKEN: expected a string, number, boolean or null, found a list"
    );
    assert!(error("envs:\n  1BAD: x\n").contains("envs.1BAD: expected an env name"));
    // Numbers keep their spelling: 3.10 is not 3.1, 1.0 is not 1.
    let t = task("envs: {PY: 3.10, V: 1.0, N: 007}\n").unwrap();
    let values: Vec<_> = t.envs.values().flatten().map(String::as_str).collect();
    assert_eq!(values, ["007", "3.10", "1.0"]);
    assert!(error("envs: {A: 1}\nsecrets: {A: 2}\n").contains("secrets.A: is also declared under envs"));
}

#[test]
fn secrets_never_in_debug_or_json() {
    let t = task("envs:\n  HF_TOKEN: hf_sekrit\n  MODEL: gemma\nsecrets:\n  WANDB: wandb_sekrit\n").unwrap();
    let debug = format!("{t:?} {t:#?}");
    let json = serde_json::to_string(&t).unwrap();
    for text in [&debug, &json] {
        assert!(!text.contains("sekrit"), "{text}");
        assert!(text.contains("gemma") && text.contains(REDACTED), "{text}");
    }
    assert_eq!(format!("{}", SecretString::new("x")), REDACTED);
}

#[test]
fn top_level_fields() {
    let t = task(
        "name: train\nworkdir: .\nnum_nodes: 2\nsetup: pip install x\nrun: python t.py\n\
         file_mounts:\n  /data: s3://bucket\n  /ckpt:\n    name: ckpt\n    mode: MOUNT\n\
         config: {kubernetes: {pod_config: {spec: {}}}, n: [1, 2.5, null]}\ndepends_on: prep\n",
    )
    .unwrap();
    assert_eq!(t.name.as_deref(), Some("train"));
    assert_eq!(t.num_nodes, 2);
    assert_eq!(
        t.file_mounts.get("/data"),
        Some(&FileMount::Source("s3://bucket".into()))
    );
    assert!(matches!(t.file_mounts.get("/ckpt"), Some(FileMount::Storage(s)) if s.len() == 2));
    assert_eq!(
        t.config.as_ref().map(|c| c["n"][1].clone()),
        Some(serde_json::json!(2.5))
    );
    assert_eq!(t.depends_on, vec!["prep".to_string()]);
    assert!(error("num_nodes: 0\n").contains("num_nodes: expected a whole number of nodes from 1 to 1000"));
    assert_eq!(
        error("num_nodes: 4294967295\n"),
        "t.yaml:1:12: num_nodes: expected a whole number of nodes from 1 to 1000, e.g. 2, found 4294967295"
    );
    assert_eq!(
        task("num_nodes: 1000\nrun: x\n").unwrap().num_nodes,
        crate::MAX_NUM_NODES
    );
    assert!(
        error("file_mounts:\n  /x:\n    mode: FAST\n").contains("file_mounts./x.mode: expected one of MOUNT")
    );
    assert!(
        error("file_mounts:\n  /x:\n    sorce: a\n")
            .contains("file_mounts./x.sorce: unknown key; did you mean \"source\"?")
    );
    assert!(error("config: 3\n").contains("config: expected a mapping, found 3"));
    assert!(error("run: [a]\n").contains("run: expected a shell script (string), found a list"));
}

#[test]
fn unknown_top_level_keys() {
    assert_eq!(
        error("nmae: x\n"),
        "t.yaml:1:1: nmae: unknown key; did you mean \"name\"?"
    );
    assert_eq!(
        error("accelerators: L4\n"),
        "t.yaml:1:1: accelerators: unknown key; did you mean \"resources.accelerators\"?"
    );
    assert_eq!(
        error("acclerators: L4\n"),
        "t.yaml:1:1: acclerators: unknown key; did you mean \"resources.accelerators\"?"
    );
    assert!(error("zzz: 1\n").contains("unknown key; expected one of: name, workdir, num_nodes"));
    assert_eq!(
        error("- a\n"),
        "t.yaml:1:1: task: expected a mapping of task fields (name, resources, setup, run, ...), found a list"
    );
}
