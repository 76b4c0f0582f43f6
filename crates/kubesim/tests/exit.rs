//! When the simulator ends, every pod process it started ends with it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde_json::json;

use crate::util::{WAIT, create, phase, pod, pods, start, wait_for};

/// Starts `name` (a pod that prints its shell's pid, then sleeps) and returns that pid.
async fn sleeper(api: &Api<Pod>, name: &str) -> u32 {
    create(api, &pod(name, "echo $BASHPID; exec sleep 300", json!({}))).await;
    wait_for(api, name, "Running", |p| phase(p) == "Running").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let logs = api.logs(name, &LogParams::default()).await.unwrap_or_default();
        if let Ok(pid) = logs.trim().parse::<u32>() {
            return pid;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} logged no pid");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until process `pid` is gone; false if it is still there after [`WAIT`].
async fn gone(pid: u32) -> bool {
    let path = format!("/proc/{pid}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::path::Path::new(&path).exists() {
        // A zombie is gone for our purpose: it runs nothing.
        let state = std::fs::read_to_string(format!("{path}/stat")).unwrap_or_default();
        if state.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z')) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_every_pod_process() {
    let sim = start().await;
    let api = pods(&sim).await;
    let first = sleeper(&api, "sleeper-a").await;
    let second = sleeper(&api, "sleeper-b").await;
    assert!(std::path::Path::new(&format!("/proc/{first}")).exists());
    sim.shutdown().await.expect("shutdown");
    assert!(gone(first).await, "process {first} outlived the simulator");
    assert!(gone(second).await, "process {second} outlived the simulator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_simulator_kills_every_pod_process() {
    let sim = start().await;
    let api = pods(&sim).await;
    let pid = sleeper(&api, "dropped").await;
    drop(sim);
    assert!(gone(pid).await, "process {pid} outlived the dropped simulator");
}
