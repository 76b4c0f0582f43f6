//! `skyplan render --target kubernetes`: the same output on every run (no random cluster
//! name), secrets left out unless `--include-secrets`, the task's labels on every object and
//! checked, pods shaped by `--instance-type`, and `--context` reading a kubesim cluster's GPU
//! label and live offers as a launch there would.

use std::path::{Path, PathBuf};

use crate::util::{Run, skyplan, temp_dir};

/// A GPU task with a secret, a port and labels.
const SERVE: &str = "name: Serve_Gemma
envs:
  MODEL_NAME: google/gemma-2b-it
  HF_TOKEN: hf_cli_secret
resources:
  image_id: docker:vllm/vllm-openai:latest
  accelerators: L4:1
  ports: 8000
  labels: {team: ml}
run: echo serving $MODEL_NAME
";

fn task_file(name: &str, yaml: &str) -> PathBuf {
    let path = temp_dir("render").join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

fn render(task: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["render", task.to_str().unwrap()];
    args.extend_from_slice(extra);
    skyplan(&args)
}

#[test]
fn the_same_task_renders_the_same_objects_without_secret_values() {
    let task = task_file("serve.yaml", SERVE);
    let first = render(&task, &[]).success();
    let second = render(&task, &[]).success();
    assert_eq!(first.stdout, second.stdout, "render is not deterministic");
    let out = &first.stdout;
    for want in [
        "name: serve-gemma-0",
        "skyplan.dev/cluster: serve-gemma",
        "team: ml",
        "key: skypilot.co/accelerator",
        "#   kubectl create secret generic serve-gemma-secrets --namespace default --from-literal=HF_TOKEN=...",
        "#   kubectl label secret serve-gemma-secrets --namespace default skyplan.dev/cluster=serve-gemma team=ml",
        "name: serve-gemma-secrets",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    assert!(
        !out.contains("kind: Secret") && !out.contains("hf_cli_secret"),
        "{out}"
    );
    let named = render(&task, &["-c", "mine"]).success();
    assert!(named.stdout.contains("name: mine-0"), "{}", named.stdout);
}

#[test]
fn include_secrets_renders_the_secret_and_unset_values_are_then_required() {
    let task = task_file("serve.yaml", SERVE);
    let out = render(&task, &["--include-secrets"]).success().stdout;
    assert!(
        out.contains("kind: Secret") && out.contains("HF_TOKEN: hf_cli_secret"),
        "{out}"
    );
    let unset = task_file(
        "unset.yaml",
        &SERVE.replace("HF_TOKEN: hf_cli_secret", "HF_TOKEN:"),
    );
    render(&unset, &[]).success();
    let failed = render(&unset, &["--include-secrets"]);
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains("HF_TOKEN"), "{}", failed.stderr);
    let given = render(&unset, &["--include-secrets", "--env", "HF_TOKEN=hf_given"]).success();
    assert!(given.stdout.contains("HF_TOKEN: hf_given"), "{}", given.stdout);
}

#[test]
fn instance_type_shapes_the_pods_as_a_placement() {
    let task = task_file("serve.yaml", SERVE);
    let out = render(&task, &["--instance-type", "8CPU--32GB--L4:1"])
        .success()
        .stdout;
    assert!(
        out.contains("cpu: \"8\"") && out.contains("memory: 32Gi") && out.contains("nvidia.com/gpu: \"1\""),
        "{out}"
    );
    let cpu_only = render(&task, &["--instance-type", "4CPU--16GB"]);
    assert_ne!(cpu_only.code, 0);
    assert!(
        cpu_only
            .stderr
            .contains("--instance-type 4CPU--16GB cannot run the task"),
        "{}",
        cpu_only.stderr
    );
    let bogus = render(&task, &["--instance-type", "g6.xlarge"]);
    assert_ne!(bogus.code, 0);
    assert!(
        bogus.stderr.contains("not a Kubernetes instance type"),
        "{}",
        bogus.stderr
    );
}

#[test]
fn bad_labels_are_errors_that_name_the_label() {
    let task = task_file("bad.yaml", &SERVE.replace("{team: ml}", "{team: ML research}"));
    let run = render(&task, &[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("label team=ML research"), "{}", run.stderr);
}

#[cfg(feature = "kubesim")]
#[test]
fn context_takes_the_gpu_label_and_shape_from_the_cluster() {
    use skyplan_kubesim::{ClustersFile, SimOptions, Simulator};
    const CLUSTERS: &str = "clusters:
  - name: alpha
    nodes:
      - name: alpha-l4
        labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
        allocatable: { cpu: 8, memory: 32Gi, nvidia.com/gpu: 1 }
";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(Simulator::start(
            ClustersFile::from_yaml_str(CLUSTERS).unwrap(),
            SimOptions::default(),
        ))
        .unwrap();
    let home = temp_dir("render-home");
    let kubeconfig = home.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "kubernetes:\n  kubeconfig: {}\n  contexts: [alpha]\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let task = task_file("serve.yaml", SERVE);
    let home_arg = home.to_str().unwrap();
    let task_arg = task.to_str().unwrap();
    let out = skyplan(&["--home", home_arg, "render", task_arg, "--context", "alpha"])
        .success()
        .stdout;
    for want in [
        "key: cloud.google.com/gke-accelerator",
        "- nvidia-l4",
        "cpu: \"8\"",
        "memory: 32Gi",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    assert!(!out.contains("Rendered offline"), "{out}");
    let other = skyplan(&["--home", home_arg, "render", task_arg, "--context", "beta"]);
    assert_ne!(other.code, 0);
    assert!(
        other.stderr.contains("--context beta") && other.stderr.contains("alpha"),
        "{}",
        other.stderr
    );
    drop(sim);
}
