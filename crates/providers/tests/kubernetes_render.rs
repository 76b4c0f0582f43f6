//! `render` = the `kubernetes` backend: the objects the backend creates on kubesim equal the
//! rendered ones for the same task, cluster name and shape inputs (placement planned on the
//! context's live offers, GPU node label from its nodes, request id), field by field; labels are
//! checked before the API sees them; and the seed example's rendered manifests (snapshot,
//! typed round trip, `kubectl apply --dry-run=client`).

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skyplan_catalog::Catalog;
use skyplan_optimizer::{Placement, Policy, TaskGraph};
use skyplan_providers::kubernetes::{
    PodShape, Pricing, RenderOptions, context_offers, gpu_node_label, render_manifests,
};
use skyplan_providers::{
    CLUSTER_LABEL, KubernetesProvider, Provider, ProviderError, ProvisionRequest, TaskRun,
};
use skyplan_spec::parse_task_str;

use crate::kubernetes::{client, provider, start_sim};
use crate::util::{Home, runtime};

/// A task using every input of a Pod: GPU, CPU and memory minimums, image, port, env, a
/// secret, labels.
const SERVE: &str = r#"name: Serve_Gemma
envs:
  MODEL_NAME: google/gemma-2b-it
  HF_TOKEN: hf_render_secret
resources:
  image_id: docker:vllm/vllm-openai:latest
  accelerators: L4:1
  cpus: 2+
  memory: 8+
  ports: 8000
  labels:
    team: ml
    example.com/env: dev
setup: echo "setup on $SKYPLAN_NODE_RANK"
run: echo "serving $MODEL_NAME"
"#;

/// Two CPU nodes: a headless Service, hostnames and peers.
const PAIR: &str = r#"name: pair
num_nodes: 2
resources:
  cpus: 1
  labels: { team: infra }
run: echo "$SKYPLAN_NODE_IPS"
"#;

/// The seed example exactly as in DESIGN.md §1 (for the render snapshot).
const SEED_ORIGINAL: &str = r#"envs:
  MODEL_NAME: google/gemma-2b-it
  HF_TOKEN: myhftoken
resources:
  image_id: docker:vllm/vllm-openai:latest
  accelerators: L4:1
  ports: 8000
setup: |
  conda deactivate
  python3 -c "import huggingface_hub; huggingface_hub.login('${HF_TOKEN}')"
run: |
  conda deactivate
  echo 'Starting vllm openai api server...'
  python -m vllm.entrypoints.openai.api_server \
  --model $MODEL_NAME --tokenizer hf-internal-testing/llama-tokenizer \
  --host 0.0.0.0
"#;

/// What the API server sets on an object itself: identity, bookkeeping, state, and the node and
/// cluster IP it chose. Everything else must match.
fn without_server_fields(mut object: Value) -> Value {
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
            "generation",
        ] {
            meta.remove(field);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(spec) = object["spec"].as_object_mut() {
        for field in ["nodeName", "clusterIP", "clusterIPs"] {
            spec.remove(field);
        }
    }
    object
}

/// Asserts that every field of `rendered` is in `created` with the same value.
fn assert_within(rendered: &Value, created: &Value, path: &str) {
    match (rendered, created) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let next = format!("{path}.{key}");
                let found = have
                    .get(key)
                    .unwrap_or_else(|| panic!("{next} missing in the created object"));
                assert_within(value, found, &next);
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            assert_eq!(want.len(), have.len(), "{path}: lengths differ");
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                assert_within(w, h, &format!("{path}[{i}]"));
            }
        }
        (want, have) => assert_eq!(want, have, "{path}"),
    }
}

/// Creates `document` as a `K` in `default` (only as a dry run when `dry_run`): what the server
/// makes of it.
async fn create<K>(client: &kube::Client, document: &Value, dry_run: bool) -> Value
where
    K: kube::Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(document.clone()).expect("typed object");
    let params = PostParams {
        dry_run,
        ..Default::default()
    };
    let created = Api::<K>::namespaced(client.clone(), "default")
        .create(&params, &object)
        .await
        .expect("create");
    serde_json::to_value(created).expect("json")
}

async fn get<K>(client: &kube::Client, name: &str) -> Value
where
    K: kube::Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let object = Api::<K>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .expect("get");
    serde_json::to_value(object).expect("json")
}

/// What a launch on `context` does: plan the task on the context's live offers.
async fn plan_on(provider: &KubernetesProvider, context: &str, yaml: &str) -> (TaskRun, Placement, PodShape) {
    let pipeline = parse_task_str(yaml, "task.yaml").expect("task parses");
    let nodes = provider.context_capacity(context).await.expect("nodes");
    let (offers, _) = context_offers(context, &nodes, &Pricing::default());
    let plan = skyplan_optimizer::solve(
        &Catalog::from_offers(offers),
        &TaskGraph::from_pipeline(&pipeline),
        &Policy::default(),
    )
    .expect("plan");
    let placement = plan.tasks[0].chosen.clone();
    let run = TaskRun::for_alternative(&pipeline.tasks[0], placement.alternative).expect("values");
    let shape = PodShape::for_placement(&placement);
    let label = shape
        .accelerator
        .as_deref()
        .and_then(|m| gpu_node_label(&nodes, m));
    (run, placement, shape.with_gpu_label(label))
}

#[test]
fn rendered_objects_equal_what_the_backend_creates() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let k8s = provider(&sim, &["alpha"], Duration::from_secs(10));
        let alpha = client(&sim, "alpha").await;
        for (yaml, cluster) in [(SERVE, "serve-gemma"), (PAIR, "pair")] {
            let (run, placement, shape) = plan_on(&k8s, "alpha", yaml).await;
            let request_id = format!("{cluster}-request");
            let options = RenderOptions {
                include_secrets: true,
                request_id: Some(request_id.clone()),
            };
            let rendered = render_manifests(&run, cluster, "default", &shape, &options).expect("render");
            let documents: Vec<Value> = serde_saphyr::from_multiple(&rendered).expect("YAML");
            // Without secrets, the same objects less the Secret.
            let shown = render_manifests(&run, cluster, "default", &shape, &RenderOptions::default())
                .expect("render");
            let shown: Vec<Value> = serde_saphyr::from_multiple(&shown).expect("YAML");
            let without_secret: Vec<Value> = documents
                .iter()
                .filter(|d| d["kind"] != "Secret")
                .map(|d| {
                    let mut d = d.clone();
                    d["metadata"]["annotations"]
                        .as_object_mut()
                        .map(|a| a.remove("skyplan.dev/request-id"));
                    if d["metadata"]["annotations"].as_object().is_some_and(|a| a.is_empty()) {
                        d["metadata"].as_object_mut().map(|m| m.remove("annotations"));
                    }
                    d
                })
                .collect();
            assert_eq!(shown, without_secret, "{cluster}");

            // The rendered objects as the server defaults them (a dry run, before the launch).
            let mut expected = Vec::new();
            for document in &documents {
                expected.push(match document["kind"].as_str() {
                    Some("Pod") => create::<Pod>(&alpha, document, true).await,
                    Some("Service") => create::<Service>(&alpha, document, true).await,
                    Some("Secret") => create::<Secret>(&alpha, document, true).await,
                    other => panic!("unexpected kind {other:?}"),
                });
            }

            let request = ProvisionRequest {
                request_id: request_id.clone(),
                cluster: cluster.to_string(),
                placement: placement.clone(),
                task: run.clone(),
            };
            k8s.provision(&request).await.expect("provision");

            for (document, expected) in documents.iter().zip(expected) {
                let name = document["metadata"]["name"].as_str().expect("name");
                let created = match document["kind"].as_str() {
                    Some("Pod") => get::<Pod>(&alpha, name).await,
                    Some("Service") => get::<Service>(&alpha, name).await,
                    _ => get::<Secret>(&alpha, name).await,
                };
                if document["kind"] != "Secret" {
                    // Stored as `data`; the dry run's defaulting checks it below.
                    assert_within(document, &created, &format!("{cluster}/{name}"));
                }
                assert_eq!(
                    without_server_fields(created),
                    without_server_fields(expected),
                    "{cluster}/{name}: created and rendered objects differ"
                );
            }
            let pod = &documents.iter().find(|d| d["kind"] == "Pod").expect("a pod");
            let labels = &pod["metadata"]["labels"];
            assert_eq!(labels[CLUSTER_LABEL], cluster);
            assert_eq!(labels["team"], if cluster == "pair" { "infra" } else { "ml" });
            if cluster == "serve-gemma" {
                assert_eq!(placement.instance_type, "8CPU--32GB--L4:1");
                let container = &pod["spec"]["containers"][0];
                assert_eq!(container["resources"]["requests"]["cpu"], "8");
                assert_eq!(container["resources"]["requests"]["memory"], "32Gi");
                let term = &pod["spec"]["affinity"]["nodeAffinity"]
                    ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
                assert_eq!(term["matchExpressions"][0]["key"], "cloud.google.com/gke-accelerator");
            }
            k8s.teardown(cluster.into()).await.expect("down");
        }
    });
}

#[test]
fn bad_labels_are_refused_before_anything_is_created() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let k8s = provider(&sim, &["alpha"], Duration::from_secs(10));
        let (mut run, placement, _) = plan_on(&k8s, "alpha", PAIR).await;
        run.labels.insert("team".into(), "ML research".into());
        let request = ProvisionRequest {
            request_id: "bad".into(),
            cluster: "bad-labels".into(),
            placement,
            task: run,
        };
        let err = k8s.provision(&request).await.expect_err("bad label");
        assert!(matches!(err, ProviderError::InvalidRequest { .. }), "{err}");
        assert!(err.to_string().contains("label team=ML research"), "{err}");
        let alpha = client(&sim, "alpha").await;
        let pods = Api::<Pod>::namespaced(alpha, "default")
            .list(&ListParams::default().labels(CLUSTER_LABEL))
            .await
            .expect("list");
        assert!(pods.items.is_empty());
    });
}

/// The snapshot of the seed example's manifests, offline (first alternative, default GPU
/// label, no Secret). To update it after an intended change: `UPDATE_SNAPSHOTS=1 cargo test -p
/// skyplan-providers --features kubernetes,testing --test providers render_seed` and review the
/// diff of `tests/snapshots/kubernetes_seed.yaml`.
#[test]
fn render_seed_example_matches_snapshot_and_the_expected_objects_and_kubectl_accepts_it() {
    let pipeline = parse_task_str(SEED_ORIGINAL, "seed.yaml").expect("seed parses");
    let run = TaskRun::from_spec(&pipeline.tasks[0]).expect("values");
    let shape = PodShape::for_task(&pipeline.tasks[0]);
    let yaml =
        render_manifests(&run, "vllm-seed", "default", &shape, &RenderOptions::default()).expect("render");
    assert!(!yaml.contains("myhftoken"), "secret value rendered");
    assert!(!yaml.contains("kind: Secret"), "{yaml}");
    assert!(yaml.contains("--from-literal=HF_TOKEN=..."), "{yaml}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/kubernetes_seed.yaml");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &yaml).expect("write snapshot");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        yaml,
        expected,
        "rendered manifests differ from {}",
        path.display()
    );

    // With the Secret: every document is a well-formed object of its kind. Read into the typed
    // k8s-openapi struct and back, nothing is lost (a misspelled or misplaced field would be).
    let options = RenderOptions {
        include_secrets: true,
        ..Default::default()
    };
    let yaml = render_manifests(&run, "vllm-seed", "default", &shape, &options).expect("render");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).expect("valid YAML");
    assert_eq!(documents.len(), 3);
    // Against the objects written by hand (never by a test) from the task: field by field.
    let expected_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected/kubernetes_seed.yaml");
    let expected_text = std::fs::read_to_string(&expected_path).expect("expected objects");
    let expected: Vec<Value> = serde_saphyr::from_multiple(&expected_text).expect("expected YAML");
    assert_eq!(expected.len(), documents.len(), "objects");
    for (want, got) in expected.iter().zip(&documents) {
        assert_eq!(
            got,
            want,
            "{} {} differs from {}",
            want["kind"],
            want["metadata"]["name"],
            expected_path.display()
        );
    }
    assert_eq!(documents[0]["stringData"]["HF_TOKEN"], "myhftoken");
    for document in &documents {
        let round_trip = match document["kind"].as_str() {
            Some("Secret") => {
                serde_json::to_value(serde_json::from_value::<Secret>(document.clone()).expect("secret"))
            }
            Some("Pod") => {
                serde_json::to_value(serde_json::from_value::<Pod>(document.clone()).expect("pod"))
            }
            Some("Service") => {
                serde_json::to_value(serde_json::from_value::<Service>(document.clone()).expect("service"))
            }
            other => panic!("unexpected kind {other:?}"),
        }
        .expect("json");
        assert_eq!(&round_trip, document);
    }

    let has_kubectl = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_kubectl {
        // CI installs kubectl (scripts/setup.sh): there, a missing one is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not installed but CI is set (apt-get install kubernetes-client)"
        );
        eprintln!("SKIPPED `kubectl apply --dry-run=client`: kubectl is not installed");
        return;
    }
    let home = Home::new();
    runtime().block_on(async {
        let sim = start_sim().await;
        let kubeconfig = home.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let manifests = home.path().join("seed.yaml");
        std::fs::write(&manifests, &yaml).expect("write");
        let output = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            // Validation on (kubectl's default): it reads kubesim's OpenAPI v3 document.
            .args(["apply", "--dry-run=client", "-f"])
            .arg(&manifests)
            .output()
            .await
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "kubectl rejected the manifests:\n{stdout}\n{stderr}"
        );
        for object in ["secret/vllm-seed-secrets", "pod/vllm-seed-0", "service/vllm-seed"] {
            assert!(stdout.contains(object), "{object} missing: {stdout}");
        }
    });
}
