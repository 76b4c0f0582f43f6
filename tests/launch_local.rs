//! `skyplan launch` on the embedded defaults: the task runs on this machine (the `local`
//! provider), and `status`, `logs`, `down` follow it. Secrets never show.

use crate::util::{alive, skyplan_command, skyplan_with, temp_dir};

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

#[test]
fn killing_the_cli_mid_launch_then_down_cleans_up() {
    let home = temp_dir("launch-crash");
    let task = home.join("sleeper.yaml");
    // The job writes its own PID so the test can check it is gone after `down`.
    std::fs::write(
        &task,
        "run: |\n  echo $$ > \"$SKYPLAN_TEST_PIDFILE\"\n  echo started\n  sleep 300\n",
    )
    .unwrap();
    let pidfile = home.join("job.pid");
    let mut child = skyplan_command(
        &[
            "launch",
            task.to_str().unwrap(),
            "-c",
            "sleeper",
            "--env",
            &format!("SKYPLAN_TEST_PIDFILE={}", pidfile.display()),
        ],
        &[("SKYPLAN_HOME", home.to_str().unwrap())],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !pidfile.exists() {
        assert!(std::time::Instant::now() < deadline, "the job never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs in the CLI
    child.wait().unwrap();
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(alive(pid), "the job should outlive the killed CLI");
    let env = [("SKYPLAN_HOME", home.to_str().unwrap())];
    let down = skyplan_with(&["down", "sleeper"], &env);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "job process {pid} survived `down`"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = skyplan_with(&["status", "--json"], &env);
    assert!(!status.stdout.contains("sleeper"), "{}", status.stdout);
}

#[test]
fn concurrent_launches_with_different_names_both_succeed() {
    let home = temp_dir("launch-concurrent");
    let task = home.join("quick.yaml");
    std::fs::write(&task, "run: echo quick $SKYPLAN_NODE_RANK\n").unwrap();
    let home_str = home.to_str().unwrap().to_string();
    let handles: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let (home, task) = (home_str.clone(), task.to_str().unwrap().to_string());
            std::thread::spawn(move || {
                skyplan_with(&["launch", &task, "-c", name], &[("SKYPLAN_HOME", &home)])
            })
        })
        .collect();
    for handle in handles {
        let run = handle.join().unwrap();
        assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
        assert!(run.stdout.contains("quick 0"));
    }
    let env = [("SKYPLAN_HOME", home_str.as_str())];
    let status = skyplan_with(&["status", "--json"], &env);
    assert!(
        status.stdout.contains("\"first\"") && status.stdout.contains("\"second\""),
        "{}",
        status.stdout
    );
    assert_eq!(skyplan_with(&["down", "--all"], &env).code, 0);
    assert!(
        !skyplan_with(&["status", "--json"], &env)
            .stdout
            .contains("\"first\"")
    );
}

/// A stand-in `nvidia-smi` that answers with the real output captured on an H200 machine.
fn fake_nvidia_smi(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fixtures/nvidia-smi-h200");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("nvidia-smi");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *--query-gpu*) cat '{fixtures}/nvidia-smi-query-noheader.csv' ;;\n  *) cat '{fixtures}/nvidia-smi.txt' ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), crate::util::test_path().to_string_lossy())
}

#[test]
fn local_gpus_from_nvidia_smi_are_offered_and_used() {
    // What the GPU check on a real H200 machine does, with nvidia-smi's recorded answers.
    let home = temp_dir("local-gpu");
    let path = fake_nvidia_smi(&home);
    let env = [("SKYPLAN_HOME", home.to_str().unwrap()), ("PATH", path.as_str())];
    let gpus = skyplan_with(&["show-gpus", "--cloud", "local", "--json"], &env);
    assert_eq!(gpus.code, 0, "{}", gpus.stderr);
    let summary = gpus.json();
    assert_eq!(summary[0]["accelerator"], "H200", "{}", gpus.stdout);
    assert_eq!(summary[0]["cheapest"]["price"], "0");
    let task = home.join("gpu.yaml");
    std::fs::write(&task, "resources:\n  accelerators: H200:1\nrun: nvidia-smi\n").unwrap();
    let run = skyplan_with(&["launch", task.to_str().unwrap(), "-c", "gpu"], &env);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("NVIDIA H200"), "{}", run.stdout);
    let chosen = run.stdout.lines().find(|l| l.contains('✔')).unwrap_or_default();
    assert!(
        chosen.contains("local") && chosen.contains("H200:1"),
        "{}",
        run.stdout
    );
    assert_eq!(skyplan_with(&["down", "gpu"], &env).code, 0);
}

#[test]
fn file_mounts_are_copied_before_setup() {
    let home = temp_dir("launch-mounts");
    let data = home.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("input.txt"), "mounted contents\n").unwrap();
    let target = home.join("x").join("data");
    let task = home.join("mounts.yaml");
    std::fs::write(
        &task,
        format!(
            "file_mounts:\n  {}: {}\nsetup: test -f {}/input.txt\nrun: cat {}/input.txt\n",
            target.display(),
            data.display(),
            target.display(),
            target.display()
        ),
    )
    .unwrap();
    let env = [("SKYPLAN_HOME", home.to_str().unwrap())];
    let run = skyplan_with(&["launch", task.to_str().unwrap(), "-c", "mounts"], &env);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("mounted contents"), "{}", run.stdout);
    assert_eq!(skyplan_with(&["down", "mounts"], &env).code, 0);
}

/// The iteration loop on local: launch, edit the workdir, `exec --env`, `queue` with exit
/// codes, a detached long job stopped by `cancel` (its process gone, CANCELLED in `queue`).
#[test]
fn exec_queue_and_cancel_on_a_local_cluster() {
    let home = temp_dir("launch-queue");
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script = work.join("train.sh");
    std::fs::write(&script, "echo version one lr=$LR\n").unwrap();
    let task = home.join("train.yaml");
    std::fs::write(
        &task,
        format!(
            "name: train\nworkdir: {}\nenvs:\n  LR: '0.01'\nsetup: echo setup ran\nrun: sh train.sh\n",
            work.display()
        ),
    )
    .unwrap();
    let long = home.join("long.yaml");
    std::fs::write(&long, "name: long\nrun: echo pid=$$; sleep 300\n").unwrap();
    let env = [("SKYPLAN_HOME", home.to_str().unwrap())];
    let task = task.to_str().unwrap();
    let run = skyplan_with(&["launch", task, "-c", "dev"], &env).success();
    assert!(
        run.stdout.contains("setup ran") && run.stdout.contains("version one lr=0.01"),
        "{}",
        run.stdout
    );
    std::fs::write(&script, "echo version two lr=$LR\n").unwrap();
    let run = skyplan_with(&["exec", "dev", task, "--env", "LR=0.1"], &env).success();
    assert!(run.stdout.contains("version two lr=0.1"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("setup ran"),
        "exec reran setup: {}",
        run.stdout
    );
    skyplan_with(&["exec", "dev", long.to_str().unwrap(), "--detach"], &env).success();
    let job_dir = home.join("local/dev/jobs/3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pid = loop {
        let log = std::fs::read_to_string(job_dir.join("node-0.log")).unwrap_or_default();
        if let Some(pid) = log.lines().find_map(|l| l.strip_prefix("pid=")) {
            break pid.trim().parse::<u32>().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job 3 never printed its pid"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let queue = skyplan_with(&["queue", "dev", "--json"], &env).success().json();
    let jobs: Vec<(u64, String, Option<i64>)> = queue[0]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_u64().unwrap(),
                j["status"].as_str().unwrap().to_string(),
                j["exit_code"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            (1, "SUCCEEDED".to_string(), Some(0)),
            (2, "SUCCEEDED".to_string(), Some(0)),
            (3, "RUNNING".to_string(), None)
        ]
    );
    let run = skyplan_with(&["cancel", "dev", "3"], &env).success();
    assert!(run.stdout.contains("Cancelled job 3 on dev."), "{}", run.stdout);
    assert!(crate::util::wait_gone(pid), "job 3's shell {pid} survived cancel");
    let table = skyplan_with(&["queue", "dev"], &env).success().stdout;
    let header = table.lines().nth(1).unwrap_or_default();
    assert!(header.trim_start().starts_with("ID "), "{table}");
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("3 "))
        .unwrap_or_default();
    assert!(row.contains("long") && row.contains("CANCELLED"), "{table}");
    assert!(table.lines().all(|l| l.len() <= 80), "{table}");
    let run = skyplan_with(&["exec", "dev", "--", "sh", "-c", "echo cmd $((2*3))"], &env).success();
    assert!(run.stdout.contains("cmd 6"), "{}", run.stdout);
    let refused = skyplan_with(&["cancel", "dev"], &env);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("or pass --all"), "{}", refused.stderr);
    assert_eq!(skyplan_with(&["down", "dev"], &env).code, 0);
}

/// Killing the CLI while `exec` streams leaves the job running and in `queue`; `logs --follow`
/// picks it up again and ends with the job's exit code.
#[test]
fn killing_the_cli_during_exec_leaves_the_job_and_logs_follow_resumes() {
    let home = temp_dir("exec-crash");
    let env = [("SKYPLAN_HOME", home.to_str().unwrap())];
    let first = home.join("first.yaml");
    std::fs::write(&first, "run: echo up\n").unwrap();
    skyplan_with(&["launch", first.to_str().unwrap(), "-c", "dev"], &env).success();
    let marker = home.join("started");
    let task = home.join("ticks.yaml");
    std::fs::write(
        &task,
        format!(
            "name: ticks\nrun: |\n  touch {}\n  for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done\n  exit 4\n",
            marker.display()
        ),
    )
    .unwrap();
    let mut child = skyplan_command(&["exec", "dev", task.to_str().unwrap()], &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "job 2 never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: the CLI does nothing more
    child.wait().unwrap();
    let queue = skyplan_with(&["queue", "dev", "--json"], &env).success().json();
    assert_eq!(queue[0]["jobs"][1]["status"], "RUNNING", "{queue}");
    let follow = skyplan_with(&["logs", "dev", "2", "--follow"], &env);
    assert_eq!(
        follow.code, 4,
        "stdout: {}\nstderr: {}",
        follow.stdout, follow.stderr
    );
    assert!(
        follow.stdout.contains("tick 1") && follow.stdout.contains("tick 6"),
        "{}",
        follow.stdout
    );
    let queue = skyplan_with(&["queue", "dev", "--json"], &env).success().json();
    assert_eq!(queue[0]["jobs"][1]["status"], "FAILED", "{queue}");
    assert_eq!(queue[0]["jobs"][1]["exit_code"], 4, "{queue}");
    assert_eq!(skyplan_with(&["down", "dev"], &env).code, 0);
}
