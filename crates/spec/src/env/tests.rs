//! Tests of env names: reserved names in the task file and on the command line, located and
//! explained.

use crate::{SpecError, TaskOverrides, parse_env_override, parse_secret_override, parse_task_str};

#[track_caller]
fn file_error(yaml: &str) -> String {
    parse_task_str(yaml, "t.yaml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("no error for {yaml:?}"))
}

#[test]
fn reserved_names_in_the_file_are_located() {
    assert_eq!(
        file_error("run: x\nenvs:\n  PATH: /x\n"),
        "t.yaml:3:3: envs.PATH: reserved name; the node's shell finds bash and every program through \
         its own PATH; extend it in setup or run instead (export PATH=/my/bin:$PATH)"
    );
    let rank = file_error("run: x\nsecrets:\n  SKYPLAN_NODE_RANK: 5\n");
    assert!(
        rank.starts_with(
            "t.yaml:3:3: secrets.SKYPLAN_NODE_RANK: reserved name; skyplan sets it on every node"
        ),
        "{rank}"
    );
    for name in [
        "HOME",
        "USER",
        "SHELL",
        "PWD",
        "SKYPILOT_NUM_NODES",
        "SKYPLAN_REDACT_VARS",
    ] {
        let message = file_error(&format!("run: x\nenvs:\n  {name}: v\n"));
        assert!(
            message.contains(&format!("envs.{name}: reserved name; ")),
            "{message}"
        );
        assert!(!message.contains(": v"), "the value is not echoed: {message}");
    }
    // Names are case-sensitive, and names that only contain a reserved word are fine.
    for name in [
        "path",
        "MY_PATH",
        "LD_LIBRARY_PATH",
        "SKYPLAN_TEST_PIDFILE",
        "SKYPLANNER",
        "HOMEDIR",
    ] {
        assert!(
            parse_task_str(&format!("run: x\nenvs:\n  {name}: v\n"), "t.yaml").is_ok(),
            "{name}"
        );
    }
}

#[test]
fn reserved_names_on_the_command_line_name_their_flag() {
    let env = parse_env_override("PATH=/x").unwrap_err();
    assert!(matches!(env, SpecError::ReservedOverride { flag: "--env", .. }));
    assert!(
        env.to_string().starts_with("--env PATH: reserved name; "),
        "{env}"
    );
    let secret = parse_secret_override("SKYPLAN_NODE_RANK=5")
        .unwrap_err()
        .to_string();
    assert!(
        secret.starts_with("--secret SKYPLAN_NODE_RANK: reserved name; "),
        "{secret}"
    );
    // Overrides built in code are checked too, before any task is touched.
    let mut pipeline = parse_task_str("run: x\n", "t.yaml").unwrap();
    let overrides = TaskOverrides {
        secrets: vec![("HOME".into(), "/tmp".into())],
        ..TaskOverrides::default()
    };
    let err = pipeline.apply_overrides(&overrides).unwrap_err().to_string();
    assert!(err.starts_with("--secret HOME: reserved name"), "{err}");
    assert!(pipeline.tasks[0].secrets.is_empty());
}

#[test]
fn bad_flag_values_blame_their_own_flag_and_never_echo_the_value() {
    let err = parse_secret_override("=hunter2").unwrap_err().to_string();
    assert!(err.starts_with("--secret: expected NAME=VALUE"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = parse_env_override("1A=hunter2").unwrap_err().to_string();
    assert!(
        err.starts_with("--env: expected NAME=VALUE") && err.ends_with("found \"1A\""),
        "{err}"
    );
    // A long name without `=` is shown cut short.
    let long = "A".repeat(10_000);
    let err = parse_env_override(&format!("{long}-")).unwrap_err().to_string();
    assert!(err.len() < 200 && err.ends_with('…'), "{err}");
}
