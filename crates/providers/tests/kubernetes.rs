//! The `kubernetes` backend end to end against kubesim (two simulated clusters = two contexts):
//! the provider contract, the seed example landing on a free L4, failover to the other cluster
//! and then to a (fake) cloud when the L4s are taken, an unschedulable pod failing over after
//! `provision_timeout`, and secrets kept out of pod specs and logs. What `render` prints is
//! checked against what this backend creates in `kubernetes_render.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;
use rust_decimal::Decimal;
use skyplan_catalog::Catalog;
use skyplan_kubesim::{ClustersFile, RunningSim, SimOptions, Simulator};
use skyplan_optimizer::{Requirement, TaskNode};
use skyplan_providers::fake::{FakeProvider, placement};
use skyplan_providers::kubernetes::KubernetesConfig;
use skyplan_providers::{
    CLUSTER_LABEL, KubernetesProvider, LaunchRequest, LineProgress, LogOptions, Provider, ProviderError,
    ProvisionRequest, TaskRun, conformance,
};
use skyplan_spec::parse_task_str;

use crate::util::{Home, launcher, runtime};

/// `alpha`: one 1-L4 node (GKE label) and a CPU node; `beta`: one 1-L4 node (GFD label);
/// `a-tainted` (sorting first): one L4 node tainted so that no skyplan pod tolerates it.
pub(crate) const CLUSTERS: &str = r#"
clusters:
  - name: alpha
    nodes:
      - name: alpha-l4
        labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
        allocatable: { cpu: 8, memory: 32Gi, nvidia.com/gpu: 1 }
      - name: alpha-cpu
        allocatable: { cpu: 4, memory: 16Gi }
  - name: beta
    nodes:
      - name: beta-l4
        labels: { nvidia.com/gpu.product: NVIDIA-L4 }
        allocatable: { cpu: 16, memory: 64Gi, nvidia.com/gpu: 1 }
  - name: a-tainted
    nodes:
      - name: tainted-l4
        labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
        allocatable: { cpu: 8, memory: 32Gi, nvidia.com/gpu: 1 }
        taints:
          - { key: dedicated, value: training, effect: NoSchedule }
"#;

/// The seed example of DESIGN.md §1, with `setup` and `run` replaced by short commands (the
/// real ones need conda and vLLM). `run` holds the GPU for a while so that the next launch
/// finds the L4 taken.
const SEED: &str = r#"envs:
  MODEL_NAME: google/gemma-2b-it
  HF_TOKEN: hf_seed_secret_value
resources:
  image_id: docker:vllm/vllm-openai:latest
  accelerators: L4:1
  ports: 8000
setup: |
  echo "setup on rank $SKYPLAN_NODE_RANK"
run: |
  echo "serving $MODEL_NAME token=$HF_TOKEN"
  sleep 30
"#;

pub(crate) async fn start_sim() -> RunningSim {
    start_sim_with(CLUSTERS).await
}

/// A simulator serving the clusters of `clusters` (a clusters-file text).
pub(crate) async fn start_sim_with(clusters: &str) -> RunningSim {
    Simulator::start(
        ClustersFile::from_yaml_str(clusters).expect("clusters file"),
        SimOptions::default(),
    )
    .await
    .expect("kubesim starts")
}

/// A request for one 1-CPU, 1-GiB node of `task` on context `alpha`, as cluster `cluster`.
pub(crate) fn small_request(cluster: &str, task: TaskRun) -> ProvisionRequest {
    let mut placement = placement(skyplan_providers::KUBERNETES, "alpha", None, "1CPU--4GB");
    placement.vcpus = Some(1.0);
    placement.memory_gib = Some(1.0);
    ProvisionRequest {
        request_id: format!("{cluster}-1"),
        cluster: cluster.to_string(),
        placement,
        task,
    }
}

pub(crate) fn provider(sim: &RunningSim, contexts: &[&str], timeout: Duration) -> Arc<KubernetesProvider> {
    let config = KubernetesConfig {
        contexts: contexts.iter().map(|c| c.to_string()).collect(),
        provision_timeout: Some(timeout),
        ..Default::default()
    };
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubeconfig");
    Arc::new(KubernetesProvider::new(config, kubeconfig).expect("provider"))
}

pub(crate) async fn client(sim: &RunningSim, context: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubeconfig");
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn seed_run(yaml: &str) -> TaskRun {
    let pipeline = parse_task_str(yaml, "seed.yaml").expect("seed parses");
    TaskRun::from_spec(&pipeline.tasks[0]).expect("values given")
}

fn l4_task() -> TaskNode {
    TaskNode::new(
        "serve",
        vec![Requirement {
            accelerator: Some(("L4".to_string(), 1.0)),
            ..Default::default()
        }],
    )
}

/// An `aws` catalog with one L4 offer, far dearer than the clusters' 0.
fn aws_l4_catalog() -> Catalog {
    let csv = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\ng6.xlarge,L4,1,4,16,0.8048,,us-east-1,use1-az1\n";
    Catalog::from_csv("aws", "aws.csv", csv.as_bytes()).expect("catalog")
}

#[test]
fn conformance_against_kubesim() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let provider = provider(&sim, &["alpha", "beta"], Duration::from_secs(10));
        let two_nodes_on = |context: &'static str| {
            move |cluster: &str| {
                let mut placement = placement(skyplan_providers::KUBERNETES, context, None, "1CPU--4GB");
                placement.vcpus = Some(1.0);
                placement.memory_gib = Some(1.0);
                placement.num_nodes = 2;
                ProvisionRequest {
                    request_id: String::new(),
                    cluster: cluster.to_string(),
                    placement,
                    task: TaskRun {
                        num_nodes: 2,
                        ..TaskRun::default()
                    },
                }
            }
        };
        let (alpha, beta) = (two_nodes_on("alpha"), two_nodes_on("beta"));
        conformance::run_all(provider.as_ref(), &alpha, Some(&beta)).await;
    });
}

#[test]
fn multi_node_tasks_run_one_pod_per_rank() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let provider = provider(&sim, &["alpha"], Duration::from_secs(10));
        let factory = |cluster: &str| {
            let mut placement = placement(skyplan_providers::KUBERNETES, "alpha", None, "1CPU--4GB");
            placement.vcpus = Some(1.0);
            placement.memory_gib = Some(1.0);
            placement.num_nodes = 2;
            let task = TaskRun {
                num_nodes: 2,
                ..Default::default()
            };
            ProvisionRequest {
                request_id: String::new(),
                cluster: cluster.to_string(),
                placement,
                task,
            }
        };
        let mut request = factory("peers");
        request.request_id = "peers-1".into();
        request.task.run = Some("echo \"$SKYPLAN_NODE_IPS\" | tr '\\n' ' '".into());
        let handle = provider.provision(&request).await.expect("provision");
        assert_eq!(handle.nodes.len(), 2);
        assert_eq!(handle.nodes[1].ip, "peers-1.peers-nodes");
        let options = LogOptions {
            follow: true,
            node: Some(1),
            ..Default::default()
        };
        let lines: Vec<_> = provider
            .logs("peers".into(), &options)
            .await
            .expect("logs")
            .collect()
            .await;
        let text = lines[0].as_ref().expect("line").text.clone();
        provider.teardown("peers".into()).await.expect("down");
        assert_eq!(text, "peers-0.peers-nodes peers-1.peers-nodes ");
    });
}

#[test]
fn offers_follow_live_capacity() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let provider = provider(&sim, &["alpha", "beta"], Duration::from_secs(10));
        let live = provider.offers().await.expect("offers");
        let alpha_l4: Vec<_> = live
            .offers
            .iter()
            .filter(|o| o.region == "alpha" && o.accelerator.as_deref() == Some("L4"))
            .collect();
        assert_eq!(alpha_l4.len(), 1, "{:?}", live.offers);
        assert_eq!(alpha_l4[0].instance_type, "8CPU--32GB--L4:1");
        assert!(alpha_l4[0].price.is_some_and(|p| p.is_zero()));
        assert!(
            live.offers
                .iter()
                .any(|o| o.region == "beta" && o.accelerator.as_deref() == Some("L4")),
            "GFD label detected: {:?}",
            live.offers
        );
        let rows: Vec<(String, f64)> = live
            .capacity
            .iter()
            .map(|c| (c.region.clone().unwrap_or_default(), c.limit))
            .collect();
        assert_eq!(rows, [("alpha".to_string(), 1.0), ("beta".to_string(), 1.0)]);
    });
}

/// Collects launch events with the time since `start`.
fn timed_progress(
    start: Instant,
    events: Arc<Mutex<Vec<(f64, String)>>>,
) -> impl skyplan_providers::Progress {
    LineProgress(move |line| {
        events
            .lock()
            .expect("lock")
            .push((start.elapsed().as_secs_f64(), line))
    })
}

#[test]
fn seed_example_lands_on_a_free_l4_then_fails_over_to_the_other_cluster_then_the_cloud() {
    let home = Home::new();
    runtime().block_on(async {
        let sim = start_sim().await;
        let k8s = provider(&sim, &["alpha", "beta"], Duration::from_secs(10));
        let aws = Arc::new(FakeProvider::new("aws"));
        let launcher = launcher(aws_l4_catalog(), home.store())
            .with_provider(k8s.clone())
            .with_provider(aws.clone());
        let run = seed_run(SEED);
        let secret = "hf_seed_secret_value";

        // 1. A free L4 on alpha (alpha sorts before beta at the same price).
        let start = Instant::now();
        let first = launcher
            .launch(
                &LaunchRequest {
                    cluster: "seed-1".into(),
                    task: l4_task(),
                    run: run.clone(),
                },
                &skyplan_providers::NoProgress,
            )
            .await
            .expect("first launch");
        assert_eq!(
            (first.placement.cloud.as_str(), first.placement.region.as_str()),
            ("kubernetes", "alpha")
        );
        assert!(first.failures.is_empty(), "{:?}", first.failures);
        let options = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut stream = k8s.logs("seed-1".into(), &options).await.expect("logs");
        let mut lines = Vec::new();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a log line within 30 s")
        {
            let line = line.expect("log line");
            if lines.is_empty() {
                eprintln!(
                    "TIMING launch -> first log line on kubesim: {:.2}s",
                    start.elapsed().as_secs_f64()
                );
            }
            lines.push(line.text);
            if lines.len() == 2 {
                break;
            }
        }
        drop(stream);
        assert_eq!(lines[0], "setup on rank 0");
        assert_eq!(lines[1], "serving google/gemma-2b-it token=<redacted>");
        assert!(lines.iter().all(|l| !l.contains(secret)));

        // Secrets live in a Secret, referenced by name; never in the pod spec.
        let alpha = client(&sim, "alpha").await;
        let pod = Api::<Pod>::namespaced(alpha.clone(), "default")
            .get("seed-1-0")
            .await
            .expect("pod");
        let pod_json = serde_json::to_string(&pod).expect("json");
        assert!(!pod_json.contains(secret), "secret value in the pod spec");
        assert!(pod_json.contains("secretKeyRef"), "{pod_json}");
        assert!(pod_json.contains("nvidia.com/gpu"), "{pod_json}");
        assert!(
            pod_json.contains("cloud.google.com/gke-accelerator"),
            "{pod_json}"
        );
        assert!(pod_json.contains("/dev/shm"), "{pod_json}");
        let stored = Api::<Secret>::namespaced(alpha.clone(), "default")
            .get("seed-1-secrets")
            .await
            .expect("secret");
        let data = stored.data.unwrap_or_default();
        assert_eq!(
            data.get("HF_TOKEN").map(|v| v.0.as_slice()),
            Some(secret.as_bytes())
        );

        // 2. alpha's L4 is taken: the plan knows it from live capacity, so beta is tried first,
        //    and nothing waits for a timeout.
        let events = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let second = launcher
            .launch(
                &LaunchRequest {
                    cluster: "seed-2".into(),
                    task: l4_task(),
                    run: run.clone(),
                },
                &timed_progress(start, events.clone()),
            )
            .await
            .expect("second launch");
        let elapsed = start.elapsed();
        assert_eq!(second.placement.region, "beta");
        assert!(second.failures.is_empty(), "{:?}", second.failures);
        eprintln!(
            "TIMING launch on the next cluster (alpha full, known from live capacity): {:.2}s",
            elapsed.as_secs_f64()
        );
        assert!(elapsed < Duration::from_secs(10), "launch waited: {elapsed:?}");
        // Were the plan stale (another client took the GPU since), the backend still answers
        // at once with the scheduler's reason, which failover acts on.
        let stale = ProvisionRequest {
            request_id: "stale-1".into(),
            cluster: "stale".into(),
            placement: first.placement.clone(),
            task: run.clone(),
        };
        let err = k8s.provision(&stale).await.expect_err("alpha is full");
        assert!(
            matches!(err, ProviderError::InsufficientCapacity { .. })
                && err.to_string().contains("Insufficient nvidia.com/gpu"),
            "{err}"
        );

        // 3. Both clusters full: the cloud at attempt 1.
        let third = launcher
            .launch(
                &LaunchRequest {
                    cluster: "seed-3".into(),
                    task: l4_task(),
                    run: run.clone(),
                },
                &skyplan_providers::NoProgress,
            )
            .await
            .expect("third launch");
        assert_eq!(third.placement.cloud, "aws");
        assert!(third.failures.is_empty(), "{:?}", third.failures);

        // `down` removes everything labeled with the cluster, in every context.
        for name in ["seed-1", "seed-2", "seed-3"] {
            launcher.down(name).await.expect("down");
        }
        for context in ["alpha", "beta"] {
            let c = client(&sim, context).await;
            let left = Api::<Pod>::namespaced(c.clone(), "default")
                .list(&ListParams::default().labels(CLUSTER_LABEL))
                .await
                .expect("list");
            assert!(left.items.is_empty(), "{context}: pods left");
            let secrets = Api::<Secret>::namespaced(c, "default")
                .list(&ListParams::default().labels(CLUSTER_LABEL))
                .await
                .expect("list");
            assert!(secrets.items.is_empty(), "{context}: secrets left");
        }
    });
}

#[test]
fn a_pod_that_is_never_scheduled_fails_over_after_provision_timeout() {
    let home = Home::new();
    runtime().block_on(async {
        let sim = start_sim().await;
        let timeout = Duration::from_millis(1500);
        // a-tainted sorts first: it is tried first, and its L4 is tainted.
        let k8s = provider(&sim, &["a-tainted", "beta"], timeout);
        let launcher = launcher(Catalog::default(), home.store()).with_provider(k8s.clone());
        let start = Instant::now();
        let outcome = launcher
            .launch(
                &LaunchRequest {
                    cluster: "tainted".into(),
                    task: l4_task(),
                    run: TaskRun::command("t", "echo hi"),
                },
                &skyplan_providers::NoProgress,
            )
            .await
            .expect("launch");
        let elapsed = start.elapsed();
        assert_eq!(outcome.placement.region, "beta");
        assert!(elapsed >= timeout, "{elapsed:?}");
        let history = outcome.failures[0].to_string();
        assert!(
            history.contains("kubernetes/a-tainted")
                && history.contains("not scheduled within")
                && history.contains("untolerated taint"),
            "{history}"
        );
        // What the failed attempt created on a-tainted is gone.
        let tainted = client(&sim, "a-tainted").await;
        let left = Api::<Pod>::namespaced(tainted, "default")
            .list(&ListParams::default().labels(CLUSTER_LABEL))
            .await
            .expect("list");
        assert!(left.items.is_empty());
        launcher.down("tainted").await.expect("down");
    });
}

#[test]
fn unknown_contexts_and_wrong_placements_are_clear_errors() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubeconfig");
        let config = KubernetesConfig {
            contexts: vec!["nope".into()],
            ..Default::default()
        };
        let err = KubernetesProvider::new(config, kubeconfig.clone()).expect_err("unknown context");
        assert!(
            err.to_string().contains("\"nope\"") && err.to_string().contains("alpha"),
            "{err}"
        );
        // Default: the current context.
        let default = KubernetesProvider::new(KubernetesConfig::default(), kubeconfig).expect("default");
        assert_eq!(default.contexts(), ["alpha"]);
        let request = ProvisionRequest {
            request_id: "r".into(),
            cluster: "x".into(),
            placement: placement("kubernetes", "beta", None, "1CPU--4GB"),
            task: TaskRun::command("t", "true"),
        };
        let err = default
            .provision(&request)
            .await
            .expect_err("beta not configured");
        assert!(matches!(err, ProviderError::InvalidRequest { .. }), "{err}");
    });
}

#[test]
fn pricing_orders_clusters_before_clouds() {
    // The cluster's configured price decides against the cloud's: below AWS's 0.8048 $/h the
    // cluster's L4 is chosen at exactly its configured price, above it the cloud is.
    runtime().block_on(async {
        let sim = start_sim().await;
        let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubeconfig");
        for (gpu_hour, cloud, price) in [
            (Decimal::new(20, 2), "kubernetes", Decimal::new(20, 2)),
            (Decimal::new(200, 2), "aws", Decimal::new(8048, 4)),
        ] {
            let mut pricing = skyplan_providers::kubernetes::Pricing::default();
            pricing.gpu_hour.insert("L4".into(), gpu_hour);
            let config = KubernetesConfig {
                contexts: vec!["alpha".into()],
                pricing,
                ..Default::default()
            };
            let k8s = KubernetesProvider::new(config, kubeconfig.clone()).expect("provider");
            let mut catalog = aws_l4_catalog();
            catalog.extend(k8s.offers().await.expect("live offers").offers);
            let mut graph = skyplan_optimizer::TaskGraph::default();
            graph.add_task(l4_task());
            let plan = skyplan_optimizer::solve(&catalog, &graph, &skyplan_optimizer::Policy::default())
                .expect("plan");
            let chosen = &plan.tasks[0].chosen;
            assert_eq!(
                (chosen.cloud.as_str(), chosen.hourly_price),
                (cloud, price),
                "L4 at {gpu_hour} $/h on the cluster: {chosen:?}"
            );
        }
    });
}
