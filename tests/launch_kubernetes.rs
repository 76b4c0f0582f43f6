//! `skyplan launch` on Kubernetes clusters (kubesim, the bundled simulator) and this machine:
//! the dry run takes live capacity into account and names exactly the place `launch` then
//! provisions at attempt 1; pipelines run where the joint plan put each task, children after
//! their parents, and a failed parent stops its children.

use std::path::{Path, PathBuf};

use serde_json::Value;
use skyplan_kubesim::{ClustersFile, RunningSim, SimOptions, Simulator};

use crate::util::{Run, skyplan_with, temp_dir};

/// `small`: one node with one L4 (cheap: few vCPUs); `big`: one node with four L4s and many
/// vCPUs, so that it is dearer at the configured internal prices.
const CLUSTERS: &str = r#"
clusters:
  - name: small
    nodes:
      - name: small-l4
        labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
        allocatable: { cpu: 8, memory: 32Gi, nvidia.com/gpu: 1 }
  - name: big
    nodes:
      - name: big-l4
        labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
        allocatable: { cpu: 48, memory: 180Gi, nvidia.com/gpu: 4 }
"#;

/// A running kubesim and a `SKYPLAN_HOME` configured for it.
struct Clusters {
    _runtime: tokio::runtime::Runtime,
    _sim: RunningSim,
    home: PathBuf,
}

impl Clusters {
    fn start(name: &str) -> Clusters {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime
            .block_on(Simulator::start(
                ClustersFile::from_yaml_str(CLUSTERS).unwrap(),
                SimOptions::default(),
            ))
            .unwrap();
        let home = temp_dir(name);
        let kubeconfig = home.join("kubeconfig.yaml");
        sim.write_kubeconfig(&kubeconfig).unwrap();
        std::fs::write(
            home.join("config.yaml"),
            format!(
                "kubernetes:\n  kubeconfig: {}\n  contexts: [small, big]\n  provision_timeout: 20\n  pricing:\n    \
                 gpu_hour: {{L4: 0.25}}\n    vcpu_hour: 0.01\n    memory_gib_hour: 0.001\n",
                kubeconfig.display()
            ),
        )
        .unwrap();
        Clusters {
            _runtime: runtime,
            _sim: sim,
            home,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        skyplan_with(args, &[("SKYPLAN_HOME", self.home.to_str().unwrap())])
    }

    fn task(&self, file: &str, yaml: &str) -> String {
        let path = self.home.join(file);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    }
}

fn chosen(plan: &Value, task: usize) -> &Value {
    &plan["tasks"][task]["chosen"]
}

#[test]
fn a_full_cluster_is_skipped_by_the_dry_run_and_launch_takes_the_place_it_named() {
    let clusters = Clusters::start("k8s-capacity");
    let l4 = "resources:\n  accelerators: L4:1\nrun: echo serving; sleep 1\n";
    let task = clusters.task("serve.yaml", l4);
    // With both clusters free, the small one is cheapest.
    let plan = clusters
        .run(&["launch", &task, "--dryrun", "--json"])
        .success()
        .json();
    assert_eq!(
        (
            chosen(&plan, 0)["cloud"].as_str(),
            chosen(&plan, 0)["region"].as_str()
        ),
        (Some("kubernetes"), Some("small"))
    );
    // Fill the small cluster's only L4 with another job.
    let filler = clusters.task(
        "filler.yaml",
        "resources:\n  accelerators: L4:1\nrun: sleep 120\n",
    );
    clusters
        .run(&[
            "launch",
            &filler,
            "-c",
            "filler",
            "--infra",
            "k8s/small",
            "--detach",
        ])
        .success();
    let plan = clusters
        .run(&["launch", &task, "--dryrun", "--json"])
        .success()
        .json();
    assert_eq!(chosen(&plan, 0)["region"], "big", "{plan}");
    // `launch` provisions exactly that place, at attempt 1, at the printed cost.
    let report = clusters
        .run(&["launch", &task, "-c", "serve", "--json"])
        .success()
        .json();
    let launch = &report["launches"][0];
    assert_eq!(&launch["placement"], chosen(&plan, 0), "{report}");
    assert_eq!(launch["failures"], serde_json::json!([]));
    assert_eq!(report["planned_cost"], plan["total_cost"]);
    assert_eq!(report["ran_cost"], plan["total_cost"]);
    let status = clusters.run(&["status", "--json"]).success().json();
    let serve = status["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["record"]["name"] == "serve")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(&serve["record"]["placement"], chosen(&plan, 0));
    for name in ["serve", "filler"] {
        clusters.run(&["down", name]).success();
    }
}

/// `a` on this machine, `b` on a cluster's L4, `c` on this machine; `b` and `c` read what `a`
/// wrote, so they pass only if they started after `a` finished.
fn pipeline(marks: &Path, a_exit: i32) -> String {
    let mark = marks.display();
    format!(
        "name: a\noutputs: 2\nrun: |\n  echo a ran > {mark}/a\n  exit {a_exit}\n---\n\
         name: b\ndepends_on: [a]\nresources:\n  accelerators: L4:1\ninputs: 2\n\
         run: test -f {mark}/a && echo b saw a && touch {mark}/b\n---\n\
         name: c\ndepends_on: [a]\ninputs: 1\nrun: test -f {mark}/a && echo c saw a && touch {mark}/c\n"
    )
}

#[test]
fn pipelines_run_where_the_dry_run_said_children_after_their_parent() {
    let clusters = Clusters::start("k8s-pipeline");
    let marks = temp_dir("pipeline-marks");
    let file = clusters.task("pipeline.yaml", &pipeline(&marks, 0));
    let plan = clusters
        .run(&["launch", &file, "--dryrun", "--json"])
        .success()
        .json();
    let places: Vec<(String, String)> = (0..3)
        .map(|i| {
            let c = chosen(&plan, i);
            (
                c["cloud"].as_str().unwrap().to_string(),
                c["region"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(places[0].0, "local");
    assert_eq!(places[1], ("kubernetes".to_string(), "small".to_string()));
    assert_eq!(places[2].0, "local");
    let run = clusters.run(&["launch", &file, "-c", "pipe", "--json"]);
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let report = run.json();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let task = &report["tasks"][i];
        assert_eq!(task["name"], *name);
        assert_eq!(task["state"], "succeeded", "{report}");
        assert_eq!(
            &task["placement"],
            chosen(&plan, i),
            "{name} ran where the dry run said"
        );
    }
    for mark in ["a", "b", "c"] {
        assert!(
            marks.join(mark).exists(),
            "{mark} did not run after a: {}",
            run.stderr
        );
    }
    let status = clusters.run(&["status", "--json"]).success().json();
    let clusters_json = status["clusters"].as_array().unwrap();
    assert_eq!(clusters_json.len(), 3, "{status}");
    for (i, view) in clusters_json.iter().enumerate() {
        let record = &view["record"];
        assert_eq!(record["pipeline"], "pipe");
        assert_eq!(record["task_name"], ["a", "b", "c"][i]);
        assert_eq!(&record["placement"], chosen(&plan, i));
        assert_eq!(view["jobs"][0]["status"], "SUCCEEDED", "{view}");
    }
    for name in ["pipe-1", "pipe-2", "pipe-3"] {
        clusters.run(&["down", name]).success();
    }
}

#[test]
fn a_failed_parent_stops_its_children_and_is_named() {
    let clusters = Clusters::start("k8s-pipeline-fail");
    let marks = temp_dir("pipeline-fail-marks");
    let file = clusters.task("pipeline.yaml", &pipeline(&marks, 4));
    let run = clusters.run(&["launch", &file, "-c", "broken"]);
    assert_eq!(run.code, 4, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("task \"a\" failed"), "{}", run.stderr);
    assert!(
        run.stdout.contains("b on -: not started (a failed)"),
        "{}",
        run.stdout
    );
    assert!(!marks.join("b").exists() && !marks.join("c").exists());
    let status = clusters.run(&["status", "--json"]).success().json();
    let names: Vec<&str> = status["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["record"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["broken-1"],
        "children never started, so they have no cluster"
    );
    clusters.run(&["down", "broken-1"]).success();
}
