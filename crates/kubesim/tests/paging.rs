//! Paginated lists (`limit` / `continue`) through the real `kube` client and stock kubectl.

use kube::api::ListParams;
use serde_json::json;

use crate::util::{create, kubectl_or_skip, pod, pods, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_pages_with_a_continue_token() {
    let sim = start().await;
    let api = pods(&sim).await;
    for name in ["p1", "p2", "p3"] {
        create(&api, &pod(name, "sleep 30", json!({"nodeName": "nowhere"}))).await;
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let names = |list: &kube::core::ObjectList<k8s_openapi::api::core::v1::Pod>| -> Vec<String> {
        list.items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    };
    assert_eq!(names(&first), ["p1", "p2"]);
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second), ["p3"]);
    assert!(second.metadata.continue_.as_deref().is_none_or(str::is_empty));
    let whole = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&whole), ["p1", "p2", "p3"], "no limit: the whole list");

    // kubectl pages too (`--chunk-size`), and shows every pod once.
    let Some(kubectl) = kubectl_or_skip("lists_come_in_pages_with_a_continue_token") else {
        return;
    };
    let kubeconfig = std::env::temp_dir().join(format!("kubesim-paging-{}.kubeconfig", std::process::id()));
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let output = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "pods", "--chunk-size=1", "-o", "name"])
        .env("HOME", std::env::temp_dir())
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&kubeconfig);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["pod/p1", "pod/p2", "pod/p3"],
        "{stdout}"
    );
}
