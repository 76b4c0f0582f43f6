//! How pods end: graceful deletion (Terminating with a `deletionTimestamp`, SIGTERM, SIGKILL
//! after the grace period), and when the simulator ends, every pod process ends with it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams};
use serde_json::json;

use crate::util::{WAIT, create, phase, pod, pods, start, wait_for};

/// Starts `name` (a pod that prints its shell's pid, then sleeps) and returns that pid.
async fn sleeper(api: &Api<Pod>, name: &str) -> u32 {
    started(api, name, "echo $BASHPID; exec sleep 300", json!({})).await
}

/// Starts pod `name` running `script` (which must print its pid first) and returns that pid.
async fn started(api: &Api<Pod>, name: &str, script: &str, spec: serde_json::Value) -> u32 {
    create(api, &pod(name, script, spec)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_ignores_sigterm_is_terminating_for_its_grace_period_then_killed() {
    let sim = start().await;
    let api = pods(&sim).await;
    // `trap '' TERM` is inherited by `sleep`: nothing in the pod stops on SIGTERM.
    let pid = started(
        &api,
        "stubborn",
        "trap '' TERM; echo $BASHPID; exec sleep 300",
        json!({"terminationGracePeriodSeconds": 3}),
    )
    .await;
    let asked = tokio::time::Instant::now();
    api.delete("stubborn", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("stubborn").await.expect("still listed while terminating");
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "{:?}",
        terminating.metadata
    );
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(3));
    // A second delete answers with the object as it is.
    api.delete("stubborn", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        api.get_opt("stubborn").await.unwrap().is_some(),
        "gone before its grace period"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "killed before its grace period"
    );
    let deadline = asked + Duration::from_secs(10);
    while api.get_opt("stubborn").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listed 10 s after the delete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "gone after {took:?}, before its 3 s grace"
    );
    assert!(gone(pid).await, "process {pid} survived its pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_stops_on_sigterm_goes_at_once_and_grace_zero_is_immediate() {
    let sim = start().await;
    let api = pods(&sim).await;
    let pid = sleeper(&api, "polite").await;
    let asked = tokio::time::Instant::now();
    api.delete("polite", &DeleteParams::default()).await.unwrap();
    while api.get_opt("polite").await.unwrap().is_some() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "a pod that stops on SIGTERM lingers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone(pid).await);
    let pid = started(
        &api,
        "now",
        "trap '' TERM; echo $BASHPID; exec sleep 300",
        json!({}),
    )
    .await;
    api.delete(
        "now",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    assert!(
        api.get_opt("now").await.unwrap().is_none(),
        "grace 0 deletes at once"
    );
    assert!(gone(pid).await);
}
