//! When Kubernetes goes wrong under a running CLI: an image that cannot be pulled fails the
//! launch with the kubelet's reason; Ctrl-C during a Pending provision cleans up
//! and exits 130; `status` with the API server gone says UNKNOWN, one line of reason per cluster,
//! no library log lines and no escape codes when piped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use skyplan_kubesim::RunningSim;

use crate::util::{Run, kubernetes_config, skyplan_command, skyplan_with, start_kubesim, temp_dir};

/// `held`: one node tainted for maintenance, so a pod placed there stays Pending (a taint is not
/// a shortage, so the backend waits up to `provision_timeout`); `open`: one plain node.
const CLUSTERS: &str = r#"
clusters:
  - name: held
    nodes:
      - name: held-1
        allocatable: { cpu: 8, memory: 32Gi }
        taints: [{ key: example.com/maintenance, value: "yes", effect: NoSchedule }]
  - name: open
    nodes:
      - name: open-1
        allocatable: { cpu: 8, memory: 32Gi }
"#;

fn start(name: &str, context: &str) -> (tokio::runtime::Runtime, RunningSim, PathBuf) {
    let (runtime, sim) = start_kubesim(CLUSTERS);
    let home = temp_dir(name);
    let kubeconfig = home.join("kubeconfig.yaml");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    kubernetes_config(&home, &kubeconfig, context, "  provision_timeout: 120\n");
    (runtime, sim, home)
}

fn run(home: &std::path::Path, args: &[&str]) -> Run {
    skyplan_with(args, &[("SKYPLAN_HOME", home.to_str().unwrap())])
}

fn task(home: &std::path::Path, run: &str) -> String {
    let path = home.join("task.yaml");
    std::fs::write(
        &path,
        format!("resources:\n  infra: kubernetes\n  cpus: 1\nrun: {run}\n"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn ctrl_c_during_a_pending_provision_cleans_up_and_exits_130() {
    let (_runtime, _sim, home) = start("k8s-sigint", "held");
    let task = task(&home, "echo never");
    let mut child = skyplan_command(
        &["launch", &task, "-c", "held-up"],
        &[("SKYPLAN_HOME", home.to_str().unwrap())],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the attempt is under way (its pod is created and Pending), then Ctrl-C.
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // A long wait says what it waits for: the pod's phase and the scheduler's reason.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("still provisioning")) {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no progress while provisioning: {seen:?}"));
        seen.push(line);
    }
    let waiting = seen.last().unwrap();
    assert!(
        waiting.contains("Pending") && waiting.contains("taint") && waiting.contains("s)"),
        "{waiting}"
    );
    let listed = || run(&home, &["status", "--json"]).json();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code.code();
        }
        assert!(
            Instant::now() < until,
            "launch did not exit within 60 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    seen.extend(lines_rx.try_iter());
    let stderr = seen.join("\n");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("nothing of it is left"), "{stderr}");
    let after = listed();
    assert_eq!(after["clusters"].as_array().map(Vec::len), Some(0), "{after}");
    assert_eq!(after["unrecorded"].as_array().map(Vec::len), Some(0), "{after}");
}

#[test]
fn status_with_the_api_server_gone_says_unknown_in_one_line() {
    let (runtime, sim, home) = start("k8s-gone", "open");
    let task = task(&home, "sleep 300");
    let launched = run(&home, &["launch", &task, "-c", "gone", "--detach"]);
    assert_eq!(launched.code, 0, "{}", launched.stderr);
    runtime.block_on(sim.shutdown()).unwrap();

    let started = Instant::now();
    let status = run(&home, &["status"]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "status took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code, 0, "{}", status.stderr);
    let rows: Vec<&str> = status.stdout.lines().filter(|l| l.contains("gone")).collect();
    assert_eq!(rows.len(), 1, "one line for the cluster: {}", status.stdout);
    assert!(rows[0].contains("UNKNOWN"), "{}", status.stdout);
    for text in [&status.stdout, &status.stderr] {
        assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
        assert!(
            !text.contains("ERROR") && !text.contains(" WARN "),
            "library log lines: {text}"
        );
    }
    let json = run(&home, &["status", "--json"]).json();
    assert_eq!(json["clusters"][0]["state"], "UNKNOWN", "{json}");
}

#[test]
fn a_launch_whose_image_cannot_be_pulled_fails_with_that_reason() {
    let clusters = "clusters:\n  - name: nopull\n    unpullable_images: ['registry.invalid/*']\n    nodes:\n      - name: nopull-1\n        allocatable: { cpu: 8, memory: 32Gi }\n";
    let (_runtime, sim) = start_kubesim(clusters);
    let home = temp_dir("k8s-nopull");
    let kubeconfig = home.join("kubeconfig.yaml");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    kubernetes_config(&home, &kubeconfig, "nopull", "");
    let path = home.join("task.yaml");
    std::fs::write(
        &path,
        "resources:\n  infra: kubernetes\n  cpus: 1\n  image_id: docker:registry.invalid/private:1\nrun: echo never\n",
    )
    .unwrap();
    let started = Instant::now();
    let launch = run(&home, &["launch", path.to_str().unwrap(), "-c", "nopull"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(launch.code, 1, "{}\n{}", launch.stdout, launch.stderr);
    assert!(
        launch.stderr.contains("cannot start: ErrImagePull")
            && launch.stderr.contains("registry.invalid/private:1"),
        "{}",
        launch.stderr
    );
    let after = run(&home, &["status", "--json"]).json();
    assert_eq!(after["unrecorded"].as_array().map(Vec::len), Some(0), "{after}");
}
