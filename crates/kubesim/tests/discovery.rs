//! Discovery, simulator markers, several clusters, kubeconfig and patches.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::util::{client, create, pod, raw, start, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_it_is_a_simulator() {
    let sim = start().await;
    let version = client(&sim, "test").await.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.33.0-kubesim");
    assert!(version.platform.contains("kubesim (simulator)"));
    let (code, head, body) = raw(&sim, "GET", "/clusters/test/api/v1", "application/json", "").await;
    assert_eq!(code, 200);
    assert!(head.to_lowercase().contains("server: kubesim/"), "{head}");
    let resources: Value = serde_json::from_str(&body).unwrap();
    let pods = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
    let (_, _, body) = raw(&sim, "GET", "/clusters/test/api", "application/json", "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["versions"],
        json!(["v1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_is_a_kubeconfig_context_with_its_own_nodes() {
    let sim = start().await;
    assert_eq!(sim.cluster_names(), ["test", "other"]);
    assert!(sim.cluster_url("missing").is_none());
    let path = std::env::temp_dir().join(format!("kubesim-test-{}.kubeconfig", std::process::id()));
    sim.write_kubeconfig(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(written.contains(&format!("server: {}", sim.cluster_url("other").unwrap())));
    let names = |nodes: Vec<Node>| {
        nodes
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let test_nodes: Api<Node> = Api::all(client(&sim, "test").await);
    let other_nodes: Api<Node> = Api::all(client(&sim, "other").await);
    assert_eq!(
        names(test_nodes.list(&ListParams::default()).await.unwrap().items),
        ["cpu-0", "cpu-1", "gpu-1"]
    );
    assert_eq!(
        names(other_nodes.list(&ListParams::default()).await.unwrap().items),
        ["lonely"]
    );
    let gpu = test_nodes.get("gpu-1").await.unwrap();
    assert_eq!(gpu.status.unwrap().allocatable.unwrap()["nvidia.com/gpu"].0, "1");
    let labels = gpu.metadata.labels.unwrap();
    assert_eq!(
        (
            labels["cloud.google.com/gke-accelerator"].as_str(),
            labels["kubernetes.io/hostname"].as_str()
        ),
        ("nvidia-l4", "gpu-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_patches_and_cordoned_nodes() {
    let sim = start().await;
    let client = client(&sim, "test").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap(),
        )
        .await
        .unwrap();
    let team: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    create(&team, &pod("job", "true", json!({}))).await;
    let patched = team
        .patch(
            "job",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["tier"], "gold");
    wait_for(&team, "job", "Succeeded", |p| {
        crate::util::phase(p) == "Succeeded"
    })
    .await;
    namespaces.delete("team-a", &Default::default()).await.unwrap();
    assert!(
        team.get_opt("job").await.unwrap().is_none(),
        "pods go with their namespace"
    );

    // A cordoned node gets no pods.
    let nodes: Api<Node> = Api::all(client.clone());
    for node in ["gpu-1", "cpu-0", "cpu-1"] {
        nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": true}})),
            )
            .await
            .unwrap();
    }
    let api: Api<Pod> = Api::namespaced(client, "default");
    create(&api, &pod("stuck", "true", json!({}))).await;
    let stuck = wait_for(&api, "stuck", "unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.reason.as_deref() == Some("Unschedulable")))
    })
    .await;
    let message = stuck.status.unwrap().conditions.unwrap()[0]
        .message
        .clone()
        .unwrap();
    assert_eq!(message, "0/3 nodes are available: 3 node(s) were unschedulable.");
    nodes
        .patch(
            "cpu-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": false}})),
        )
        .await
        .unwrap();
    let bound = wait_for(&api, "stuck", "bound", |p| {
        p.spec.as_ref().unwrap().node_name.is_some()
    })
    .await;
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("cpu-0"));
}
