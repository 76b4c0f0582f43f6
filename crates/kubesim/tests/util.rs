//! Helpers shared by the integration tests.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use skyplan_kubesim::{ClustersFile, RunningSim, SimOptions, Simulator};

/// Two clusters: `test` (one 1-GPU L4 node and two CPU nodes) and `other` (one node).
pub const CLUSTERS: &str = r#"
clusters:
  - name: test
    nodes:
      - name: gpu-1
        labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
        allocatable: { cpu: 8, memory: 32Gi, nvidia.com/gpu: 1 }
      - name: cpu
        count: 2
        labels: { pool: cpu }
        allocatable: { cpu: 4, memory: 16Gi }
  - name: other
    nodes:
      - name: lonely
        allocatable: { cpu: 2, memory: 4Gi }
"#;

/// Generous wait for anything on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn start_with(options: SimOptions) -> RunningSim {
    Simulator::start(ClustersFile::from_yaml_str(CLUSTERS).unwrap(), options)
        .await
        .unwrap()
}

pub async fn start() -> RunningSim {
    start_with(SimOptions::default()).await
}

/// A `kube` client for one cluster, built from the simulator's kubeconfig as a user would.
pub async fn client(sim: &RunningSim, context: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).unwrap();
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

pub async fn pods(sim: &RunningSim) -> Api<Pod> {
    Api::namespaced(client(sim, "test").await, "default")
}

/// A pod running `script` under bash, with restartPolicy Never and the given extra spec fields.
pub fn pod(name: &str, script: &str, extra_spec: Value) -> Pod {
    let mut value = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kubesim-test"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36", "command": ["bash", "-c", script]}]},
    });
    if let (Some(spec), Some(extra)) = (value["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).unwrap()
}

pub async fn create(api: &Api<Pod>, pod: &Pod) -> Pod {
    api.create(&PostParams::default(), pod).await.unwrap()
}

/// Polls until `done` holds for the pod, panicking with the last state after [`WAIT`].
pub async fn wait_for(api: &Api<Pod>, name: &str, what: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pod = api.get(name).await.unwrap();
        if done(&pod) {
            return pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for pod {name} to be {what}: {:?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// A raw HTTP/1.1 request; returns (status code, headers, body).
pub async fn raw(
    sim: &RunningSim,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", sim.port()))
        .await
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

/// A raw request expected to fail with a `Status` of this code and reason; returns its message.
pub async fn expect_status(
    sim: &RunningSim,
    method: &str,
    path: &str,
    body: &str,
    code: u16,
    reason: &str,
) -> String {
    expect_status_typed(sim, method, path, "application/json", body, code, reason).await
}

pub async fn expect_status_typed(
    sim: &RunningSim,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
    code: u16,
    reason: &str,
) -> String {
    let (got, _, text) = raw(sim, method, path, content_type, body).await;
    let status: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    assert_eq!(
        (got, status["kind"].as_str(), status["code"].as_u64()),
        (code, Some("Status"), Some(code as u64)),
        "{method} {path}: {text}"
    );
    assert_eq!(status["reason"], reason, "{method} {path}: {text}");
    assert_eq!(status["status"], "Failure");
    status["message"].as_str().unwrap().to_owned()
}

/// The kubectl to run (`$KUBECTL`, else `kubectl` on PATH), or `None` when there is none: then
/// the test `test` is skipped with a message, except under `CI`, where that fails.
pub fn kubectl_or_skip(test: &str) -> Option<String> {
    let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let works = std::process::Command::new(&binary)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(binary);
    }
    // CI installs kubectl (scripts/setup.sh): there, a missing one is a failure, not a pass.
    assert!(
        std::env::var_os("CI").is_none(),
        "kubectl is not installed but CI is set (apt-get install kubernetes-client, or set KUBECTL)"
    );
    eprintln!("SKIPPED {test}: kubectl is not installed (apt-get install kubernetes-client, or set KUBECTL)");
    None
}
