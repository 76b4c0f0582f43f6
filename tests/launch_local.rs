//! `skyplan launch` on the embedded defaults: the task runs on this machine (the `local`
//! provider), and `status`, `logs`, `down` follow it. Secrets never show.

use crate::util::{skyplan_with, temp_dir};

fn example(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/").to_string() + name
}

#[test]
fn two_node_task_runs_locally_and_cleans_up() {
    let home = temp_dir("launch-home");
    let home = home.to_str().unwrap();
    let env = [("SKYPLAN_HOME", home)];
    let run = skyplan_with(&["launch", &example("hello.yaml"), "-c", "hello-it"], &env);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    for rank in 0..2 {
        assert!(
            run.stdout.contains(&format!(
                "hello from skyplan: node {rank} of 2 (SkyPilot name: rank {rank})"
            )),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("token has 16 characters"),
        "the secret reaches the job: {}",
        run.stdout
    );
    let status = skyplan_with(&["status", "--json"], &env);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("\"hello-it\""), "{}", status.stdout);
    let logs = skyplan_with(&["logs", "hello-it"], &env);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("node 1 of 2"), "{}", logs.stdout);
    for output in [&run.stdout, &run.stderr, &status.stdout, &logs.stdout] {
        assert!(!output.contains("not-a-real-token"), "secret leaked: {output}");
    }
    let down = skyplan_with(&["down", "hello-it"], &env);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let status = skyplan_with(&["status", "--json"], &env);
    assert!(!status.stdout.contains("hello-it"), "{}", status.stdout);
    // Nothing of the cluster is left in the home.
    let leftovers: Vec<_> = std::fs::read_dir(std::path::Path::new(home).join("local"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_run_commands_exit_code_is_launchs_exit_code() {
    let home = temp_dir("launch-exit");
    let task = home.join("fail.yaml");
    std::fs::write(&task, "run: |\n  echo about to fail\n  exit 3\n").unwrap();
    let env = [("SKYPLAN_HOME", home.to_str().unwrap())];
    let run = skyplan_with(&["launch", task.to_str().unwrap(), "-c", "fails"], &env);
    assert_eq!(run.code, 3, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("about to fail"));
    assert_eq!(skyplan_with(&["down", "fails"], &env).code, 0);
}
