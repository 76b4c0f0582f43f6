//! Kubernetes configuration and dependencies that go wrong (issue 12): `config.yaml` values out
//! of range, kubeconfig servers without a scheme, credential plugins that never answer, API
//! servers that accept connections and never reply, a damaged state store over a running kubesim
//! cluster, and `skyplan kubesim` stopped with SIGTERM. Every case ends within its bound, exits 1
//! with a message naming the file and field (or what it waited for), and never panics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{
    Run, kubernetes_config, skyplan_command, skyplan_with, start_kubesim, temp_dir, wait_gone,
};

fn run(home: &Path, args: &[&str]) -> Run {
    skyplan_with(args, &[("SKYPLAN_HOME", home.to_str().unwrap())])
}

/// Exit 1 with `want` (and no panic, backtrace or escape codes) in what it printed.
#[track_caller]
fn fails_with(run: &Run, wants: &[&str]) {
    let all = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    for want in wants {
        assert!(all.contains(want), "{want:?} missing from: {all}");
    }
    for bad in ["panicked", "RUST_BACKTRACE", "\u{1b}["] {
        assert!(!all.contains(bad), "{bad:?} in: {all}");
    }
}

/// A kubeconfig with one context `ctx` whose cluster's server is `server` and whose user is
/// `user` (YAML of a user entry, e.g. `{}`).
fn kubeconfig(home: &Path, server: &str, user: &str) -> PathBuf {
    let path = home.join("kubeconfig.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n\
             current-context: ctx\nusers:\n- name: u\n  user: {user}\n"
        ),
    )
    .unwrap();
    path
}

/// `config.yaml` with a `kubernetes:` section over `kubeconfig` (context `ctx`) plus `extra`.
fn config(home: &Path, kubeconfig: &Path, extra: &str) {
    kubernetes_config(home, kubeconfig, "ctx", extra);
}

fn task(home: &Path) -> String {
    let path = home.join("task.yaml");
    std::fs::write(
        &path,
        "resources:\n  infra: kubernetes\n  cpus: 1\nrun: echo hi\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn provision_timeouts_beyond_the_bound_name_the_file_and_field() {
    for value in [
        "1e20",
        "18446744073709551616",
        "'1e18m'",
        "1e300",
        "-5",
        ".nan",
        "soon",
    ] {
        let home = temp_dir("kube-timeout");
        let kubeconfig = kubeconfig(&home, "https://127.0.0.1:1", "{}");
        config(&home, &kubeconfig, &format!("  provision_timeout: {value}\n"));
        for args in [vec!["check"], vec!["launch", "--dryrun", &task(&home)]] {
            let out = run(&home, &args);
            fails_with(&out, &["config.yaml", "provision_timeout"]);
        }
    }
}

#[test]
fn bad_namespaces_are_refused_with_the_rule() {
    let long = "a".repeat(300);
    for value in ["''", "UPPER_case", long.as_str(), "../x"] {
        let home = temp_dir("kube-namespace");
        let kubeconfig = kubeconfig(&home, "https://127.0.0.1:1", "{}");
        config(&home, &kubeconfig, &format!("  namespace: {value}\n"));
        let out = run(&home, &["check"]);
        fails_with(&out, &["config.yaml", "namespace", "RFC 1123"]);
        assert!(out.stdout.len() + out.stderr.len() < 2000, "{}", out.stderr);
    }
}

#[test]
fn a_server_without_a_scheme_is_a_located_error_not_a_panic() {
    for server in ["localhost", "127.0.0.1", "foo"] {
        let home = temp_dir("kube-scheme");
        let kubeconfig = kubeconfig(&home, server, "{}");
        config(&home, &kubeconfig, "");
        let file = kubeconfig.display().to_string();
        for args in [
            vec!["check"],
            vec!["launch", "--dryrun", &task(&home)],
            vec!["show-gpus"],
        ] {
            let out = run(&home, &args);
            fails_with(&out, &[&file, "cluster.server", "no scheme"]);
        }
    }
}

#[test]
fn a_credential_plugin_that_never_answers_is_killed_at_the_request_timeout() {
    let home = temp_dir("kube-plugin");
    let plugin = home.join("plugin.sh");
    let pidfile = home.join("plugin.pid");
    std::fs::write(
        &plugin,
        format!("#!/bin/sh\necho $$ > '{}'\nexec sleep 300\n", pidfile.display()),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", plugin.to_str().unwrap()])
        .status()
        .unwrap();
    let user = format!(
        "{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: {}, interactiveMode: Never}}}}",
        plugin.display()
    );
    let kubeconfig = kubeconfig(&home, "https://127.0.0.1:1", &user);
    config(&home, &kubeconfig, "  request_timeout: 2s\n");
    for args in [
        vec!["check"],
        vec!["status"],
        vec!["launch", "--dryrun", &task(&home)],
    ] {
        let _ = std::fs::remove_file(&pidfile);
        let started = Instant::now();
        let out = run(&home, &args);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(30), "{args:?} took {took:?}");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("credential plugin"), "{args:?}: {all}");
        assert!(all.contains("request_timeout"), "{args:?}: {all}");
        assert!(!all.contains("panicked"), "{all}");
        if args[0] != "status" {
            assert_eq!(out.code, 1, "{args:?}: {all}");
        }
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let pid: u32 = pid.trim().parse().unwrap();
            assert!(wait_gone(pid), "the plugin {pid} outlived {args:?}");
        }
    }
}

#[test]
fn an_api_server_that_never_answers_is_a_timeout_naming_it() {
    // Connections complete (the kernel's backlog) but nothing is ever read or answered, as with
    // a stopped (SIGSTOP) API server.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let home = temp_dir("kube-silent");
    let kubeconfig = kubeconfig(&home, &format!("http://127.0.0.1:{port}"), "{}");
    config(&home, &kubeconfig, "  request_timeout: 2s\n");
    for args in [vec!["status"], vec!["launch", &task(&home), "-c", "silent"]] {
        let started = Instant::now();
        let out = run(&home, &args);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(40), "{args:?} took {took:?}");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            all.contains(&format!("127.0.0.1:{port}"))
                && all.contains("timed out after 2.0s")
                && all.contains("request_timeout"),
            "{args:?}: {all}"
        );
        assert!(!all.contains("panicked"), "{all}");
        if args[0] == "status" {
            assert!(!all.contains("UP"), "{all}");
        } else {
            assert_eq!(out.code, 1, "{all}");
        }
    }
    drop(silent);
}

const CLUSTERS: &str = "clusters:\n  - name: open\n    nodes:\n      - name: open-1\n        allocatable: { cpu: 8, memory: 32Gi }\n";

/// Launches a detached kubesim job in `home` whose pod writes its shell's PID to `home/NAME.pid`
/// and sleeps; returns the PID.
fn launch_sleeper(home: &Path, name: &str) -> u32 {
    let pidfile = home.join(format!("{name}.pid"));
    let task = home.join(format!("{name}.yaml"));
    std::fs::write(
        &task,
        format!(
            "resources:\n  infra: kubernetes\n  cpus: 1\nrun: |\n  echo $$ > '{}'\n  sleep 300\n",
            pidfile.display()
        ),
    )
    .unwrap();
    let launch = run(home, &["launch", task.to_str().unwrap(), "-c", name, "--detach"]);
    assert_eq!(launch.code, 0, "{}\n{}", launch.stdout, launch.stderr);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&pidfile).map_or(true, |p| p.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&pidfile).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} holds {text:?}", pidfile.display()))
}

#[test]
fn down_all_with_a_damaged_store_removes_a_running_kubesim_cluster() {
    let (_runtime, sim) = start_kubesim(CLUSTERS);
    let home = temp_dir("kube-corrupt-down");
    let kubeconfig = home.join("kubeconfig.yaml");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    kubernetes_config(&home, &kubeconfig, "open", "");
    let pid = launch_sleeper(&home, "kept");
    std::fs::write(
        home.join("state.db"),
        b"this is not a database, it is a test".repeat(200),
    )
    .unwrap();
    let down = run(&home, &["down", "--all"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(down.stderr.contains("moved it aside"), "{}", down.stderr);
    assert!(down.stdout.contains("Terminated kept"), "{}", down.stdout);
    assert!(wait_gone(pid), "pod process {pid} survived `down --all`");
    let after = run(&home, &["status", "--json"]).json();
    assert_eq!(after["clusters"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(after["unrecorded"].as_array().map(Vec::len), Some(0), "{after}");
}

#[test]
fn skyplan_kubesim_kills_its_pod_processes_on_sigterm() {
    let home = temp_dir("kubesim-sigterm");
    let clusters = home.join("clusters.yaml");
    std::fs::write(&clusters, CLUSTERS).unwrap();
    let kubeconfig = home.join("kubeconfig.yaml");
    let mut sim = skyplan_command(
        &[
            "kubesim",
            "--clusters",
            clusters.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &[],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // A failing assertion must not leave the simulator running.
    struct KillOnDrop(Option<u32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
    let mut guard = KillOnDrop(Some(sim.id()));
    // It prints its one line once the kubeconfig is written.
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sim.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    assert!(banner.contains("simulator"), "{banner}");
    kubernetes_config(&home, &kubeconfig, "open", "");
    let pid = launch_sleeper(&home, "orphan");
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &sim.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = sim.try_wait().unwrap() {
            // Reaped: its pid may be reused, so never signal it again.
            guard.0 = None;
            break status.code();
        }
        assert!(Instant::now() < deadline, "kubesim did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    assert!(wait_gone(pid), "pod process {pid} outlived kubesim");
}
