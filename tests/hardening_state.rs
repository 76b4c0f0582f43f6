//! State that must not trap the user (issue 12): a damaged or foreign `state.db`, a bad row, a
//! home that is a file or read-only. `status` and `down` keep working and say what happened.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{Run, skyplan_with, temp_dir, wait_gone};

fn run(home: &Path, args: &[&str]) -> Run {
    skyplan_with(args, &[("SKYPLAN_HOME", home.to_str().unwrap())])
}

/// Launches a detached local cluster `name` whose job writes its PID to `home/NAME.pid` and
/// sleeps; returns the PID once written.
fn launch_sleeper(home: &Path, name: &str) -> u32 {
    let task = home.join(format!("{name}.yaml"));
    let pidfile = home.join(format!("{name}.pid"));
    std::fs::write(
        &task,
        format!("run: |\n  echo $$ > '{}'\n  sleep 300\n", pidfile.display()),
    )
    .unwrap();
    let launch = run(home, &["launch", task.to_str().unwrap(), "-c", name, "--detach"]);
    assert_eq!(
        launch.code, 0,
        "stdout: {}\nstderr: {}",
        launch.stdout, launch.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&pidfile).map_or(true, |p| p.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap()
}

/// 4 KiB of bytes that are no SQLite database.
fn garbage() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(12);
    (0..4096).map(|_| rng.u8(..)).collect()
}

fn moved_aside(home: &Path) -> Vec<String> {
    std::fs::read_dir(home)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.db.corrupt-"))
        .collect()
}

#[test]
fn a_damaged_store_is_moved_aside_and_status_says_so() {
    let home = temp_dir("state-corrupt");
    let pid = launch_sleeper(&home, "trapped");
    std::fs::write(home.join("state.db"), garbage()).unwrap();
    let status = run(&home, &["status"]);
    assert_eq!(
        status.code, 0,
        "stdout: {}\nstderr: {}",
        status.stdout, status.stderr
    );
    for needed in [
        "it is not an SQLite database",
        "moved it aside to",
        "skyplan down --all",
    ] {
        assert!(
            status.stderr.contains(needed),
            "{needed:?} missing: {}",
            status.stderr
        );
    }
    // The cluster still runs, and status finds it by its labels.
    assert!(
        status.stdout.contains("Not in the state store") && status.stdout.contains("trapped (local)"),
        "{}",
        status.stdout
    );
    assert_eq!(moved_aside(&home).len(), 1);
    // Once moved, the next command finds a healthy (empty) store and says nothing.
    let again = run(&home, &["status"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("moved it aside"), "{}", again.stderr);
    assert_eq!(run(&home, &["down", "trapped"]).code, 0);
    assert!(wait_gone(pid), "job process {pid} survived `down`");
}

#[test]
fn down_all_after_a_damaged_store_finds_the_cluster_by_its_labels() {
    let home = temp_dir("state-corrupt-down");
    let pid = launch_sleeper(&home, "labeled");
    std::fs::write(home.join("state.db"), garbage()).unwrap();
    let down = run(&home, &["down", "--all"]);
    assert_eq!(down.code, 0, "stdout: {}\nstderr: {}", down.stdout, down.stderr);
    assert!(down.stderr.contains("moved it aside"), "{}", down.stderr);
    assert!(down.stdout.contains("Terminated labeled"), "{}", down.stdout);
    assert!(wait_gone(pid), "job process {pid} survived `down --all`");
}

#[test]
fn a_foreign_store_is_explained_in_plain_words() {
    let home = temp_dir("state-foreign");
    rusqlite::Connection::open(home.join("state.db"))
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER, email TEXT);")
        .unwrap();
    let status = run(&home, &["status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status
            .stderr
            .contains("it holds no skyplan store (schema version 0, tables users; missing tables"),
        "{}",
        status.stderr
    );
    for internal in ["SQLITE", "no such table", "SELECT", "Sqlite"] {
        assert!(
            !status.stderr.contains(internal),
            "{internal:?} leaks: {}",
            status.stderr
        );
    }
    assert!(status.stdout.contains("No clusters."), "{}", status.stdout);
}

#[test]
fn a_bad_job_row_is_a_warning_and_status_still_shows_the_cluster() {
    let home = temp_dir("state-bad-row");
    let task = home.join("quick.yaml");
    std::fs::write(&task, "run: echo quick\n").unwrap();
    let launch = run(&home, &["launch", task.to_str().unwrap(), "-c", "rows"]);
    assert_eq!(
        launch.code, 0,
        "stdout: {}\nstderr: {}",
        launch.stdout, launch.stderr
    );
    rusqlite::Connection::open(home.join("state.db"))
        .unwrap()
        .execute_batch(
            "INSERT INTO jobs (cluster, id, name, status, started_at) VALUES ('rows', 7, 'x', 'DONE-ISH', 0);
             INSERT INTO jobs (cluster, id, name, status, started_at) VALUES ('rows', -1, 'x', 'RUNNING', 0);",
        )
        .unwrap();
    let status = run(&home, &["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let report = status.json();
    assert_eq!(
        report["clusters"][0]["record"]["name"], "rows",
        "{}",
        status.stdout
    );
    // The good job still shows; the bad rows are skipped, each with a warning.
    let jobs = report["clusters"][0]["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], 1);
    assert_eq!(jobs[0]["status"], "SUCCEEDED");
    for needed in [
        "job 7 of cluster \"rows\": column status holds the text \"DONE-ISH\"",
        "a job of cluster \"rows\": column id holds the integer -1",
        "row skipped",
    ] {
        assert!(
            status.stderr.contains(needed),
            "{needed:?} missing: {}",
            status.stderr
        );
    }
    assert_eq!(run(&home, &["down", "rows"]).code, 0);
}

#[test]
fn a_home_that_is_a_file_is_named_by_every_command() {
    let dir = temp_dir("state-home-file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    for args in [&["status"][..], &["down", "--all"], &["logs", "x"]] {
        let out = run(&file, args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains(&format!(
                "SKYPLAN_HOME {} is a file, expected a directory",
                file.display()
            )),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("os error"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_read_only_home_still_shows_status() {
    use std::os::unix::fs::PermissionsExt;
    let home = temp_dir("state-read-only");
    let task = home.join("quick.yaml");
    std::fs::write(&task, "run: echo quick\n").unwrap();
    assert_eq!(
        run(&home, &["launch", task.to_str().unwrap(), "-c", "ro"]).code,
        0
    );
    let set_mode = |mode| {
        for path in [home.join("state.db"), home.clone()] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set_mode(0o555);
    let probe = std::fs::write(home.join("probe"), b"").is_ok();
    if probe {
        set_mode(0o755);
        println!(
            "note: this process writes through permissions (root); the read-only store is tested in skyplan-providers"
        );
        assert_eq!(run(&home, &["down", "ro"]).code, 0);
        return;
    }
    let status = run(&home, &["status", "--json"]);
    let down = run(&home, &["down", "ro"]);
    set_mode(0o755);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["clusters"][0]["record"]["name"], "ro");
    assert_ne!(down.code, 0);
    assert!(down.stderr.contains("is read-only"), "{}", down.stderr);
    assert_eq!(run(&home, &["down", "ro"]).code, 0);
}
