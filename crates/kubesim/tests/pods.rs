//! Pods through the real `kube` client.

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::util::{WAIT, client, create, phase, pod, pods, start, start_with, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_pod_that_fits_runs_with_real_logs_exit_code_and_secret_env() {
    let sim = start().await;
    let client = client(&sim, "test").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}))
            .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let api = pods(&sim).await;
    let gpu = pod(
        "trainer",
        "echo \"hello $TOKEN from $MY_NAME\"; echo oops >&2; exit 3",
        json!({"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}),
    );
    let mut gpu = serde_json::to_value(gpu).unwrap();
    gpu["spec"]["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpu": "1"}});
    gpu["spec"]["containers"][0]["env"] = json!([
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]);
    create(&api, &serde_json::from_value(gpu).unwrap()).await;
    let done = wait_for(&api, "trainer", "Failed", |p| phase(p) == "Failed").await;
    assert_eq!(done.spec.as_ref().unwrap().node_name.as_deref(), Some("gpu-1"));
    let status = done.status.unwrap();
    let ip = status.pod_ip.clone().unwrap_or_default();
    assert!(
        ip.starts_with("127.0.") && ip != "127.0.0.1",
        "a loopback address of its own: {ip}"
    );
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (3, Some("Error"))
    );
    let logs = api.logs("trainer", &LogParams::default()).await.unwrap();
    assert!(
        logs.contains("hello s3cret from trainer\n") && logs.contains("oops\n"),
        "{logs:?}"
    );
    let events: Api<Event> = Api::namespaced(client, "default");
    let reasons: Vec<String> = events
        .list(&ListParams::default().fields("involvedObject.name=trainer"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "missing {reason} event in {reasons:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_that_does_not_fit_stays_pending_with_kubernetes_worded_event() {
    let sim = start().await;
    let api = pods(&sim).await;
    let mut big = serde_json::to_value(pod(
        "too-big",
        "true",
        json!({"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}),
    ))
    .unwrap();
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpu": "2"}});
    create(&api, &serde_json::from_value(big).unwrap()).await;
    let expected = "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector.";
    let pending = wait_for(&api, "too-big", "unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"))
    })
    .await;
    assert_eq!(phase(&pending), "Pending");
    let condition = pending
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (condition.reason.as_deref(), condition.message.as_deref()),
        (Some("Unschedulable"), Some(expected))
    );
    let events: Api<Event> = Api::namespaced(client(&sim, "test").await, "default");
    let list = events
        .list(&ListParams::default().fields("involvedObject.name=too-big,reason=FailedScheduling"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "one event, not one per scheduling pass");
    assert_eq!(
        (list.items[0].type_.as_deref(), list.items[0].message.as_deref()),
        (Some("Warning"), Some(expected))
    );
    // Still pending a moment later: nothing frees a second GPU.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(phase(&api.get("too-big").await.unwrap()), "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_transition_in_order() {
    let sim = start().await;
    let api = pods(&sim).await;
    let params = WatchParams::default().fields("metadata.name=watched").timeout(60);
    let mut stream = api.watch(&params, "0").await.unwrap().boxed();
    create(&api, &pod("watched", "echo hi", json!({}))).await;
    let mut seen = Vec::new();
    let mut last_rv = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.try_next())
        .await
        .map(Result::unwrap)
    {
        let (kind, pod) = match event {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            other => panic!("unexpected {other:?}"),
        };
        let rv: u64 = pod.metadata.resource_version.clone().unwrap().parse().unwrap();
        assert!(rv > last_rv, "resourceVersions increase");
        last_rv = rv;
        let bound = pod.spec.as_ref().unwrap().node_name.is_some();
        let state = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| {
                let state = c[0].state.clone().unwrap_or_default();
                if state.running.is_some() {
                    "running"
                } else if state.terminated.is_some() {
                    "terminated"
                } else {
                    "waiting"
                }
            });
        seen.push((kind, phase(&pod).to_owned(), bound, state));
        if phase(&pod) == "Succeeded" {
            break;
        }
    }
    let phases: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(seen[0], ("ADDED", "Pending".into(), false, None), "{seen:?}");
    assert_eq!(
        seen[1],
        ("MODIFIED", "Pending".into(), true, None),
        "bound next: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.3 == Some("waiting")),
        "ContainerCreating seen: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.1 == "Running" && s.3 == Some("running")),
        "Running seen: {seen:?}"
    );
    assert_eq!(seen.last().unwrap().1, "Succeeded", "{seen:?}");
    let order = |p: &str| {
        ["Pending", "Running", "Succeeded"]
            .iter()
            .position(|x| *x == p)
            .unwrap()
    };
    assert!(
        phases.windows(2).all(|w| order(w[0]) <= order(w[1])),
        "phases in order: {phases:?}"
    );
    // Deletion is seen too.
    api.delete("watched", &DeleteParams::default()).await.unwrap();
    let deleted = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(deleted, WatchEvent::Deleted(_)), "{deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_selectors_and_delete_kills_processes() {
    let sim = start().await;
    let api = pods(&sim).await;
    create(
        &api,
        &pod(
            "sleeper",
            "echo $BASHPID; exec sleep 300",
            json!({"nodeSelector": {"pool": "cpu"}}),
        ),
    )
    .await;
    let mut other = pod("other", "true", json!({}));
    other.metadata.labels = Some([("app".to_string(), "different".to_string())].into());
    create(&api, &other).await;
    let names = |list: kube::api::ObjectList<Pod>| {
        list.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=kubesim-test"))
                .await
                .unwrap()
        ),
        ["sleeper"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (different, x)"))
                .await
                .unwrap()
        ),
        ["other"]
    );
    wait_for(&api, "sleeper", "Running", |p| phase(p) == "Running").await;
    let running = names(
        api.list(&ListParams::default().fields("status.phase=Running,metadata.name=sleeper"))
            .await
            .unwrap(),
    );
    assert_eq!(running, ["sleeper"]);
    let node = api.get("sleeper").await.unwrap().spec.unwrap().node_name.unwrap();
    assert!(node.starts_with("cpu-"), "nodeSelector honoured: {node}");
    assert!(
        names(
            api.list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
                .await
                .unwrap()
        )
        .contains(&"sleeper".to_string())
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let pid = loop {
        let logs = api.logs("sleeper", &LogParams::default()).await.unwrap();
        if let Ok(pid) = logs.trim().parse::<u32>() {
            break pid;
        }
        assert!(tokio::time::Instant::now() < deadline, "no pid logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let proc_path = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_path).exists(), "process is running");
    api.delete("sleeper", &DeleteParams::default()).await.unwrap();
    // Deleted gracefully: `sleep` stops on SIGTERM, so the pod goes well within its grace period.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while api.get_opt("sleeper").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod still listed 5 s after delete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::path::Path::new(&proc_path).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} survived pod deletion"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_tail_and_container_choice() {
    let sim = start().await;
    let api = pods(&sim).await;
    let mut two = serde_json::to_value(pod(
        "chatty",
        "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done",
        json!({}),
    ))
    .unwrap();
    two["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "busybox", "command": ["echo", "from side"]}));
    create(&api, &serde_json::from_value(two).unwrap()).await;
    wait_for(&api, "chatty", "started", |p| phase(p) != "Pending").await;
    let params = LogParams {
        follow: true,
        container: Some("main".into()),
        ..LogParams::default()
    };
    let mut lines = api.log_stream("chatty", &params).await.unwrap().lines();
    let mut followed = Vec::new();
    while let Some(line) = tokio::time::timeout(WAIT, lines.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        followed.push(line);
    }
    assert_eq!(followed, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    let tail = LogParams {
        tail_lines: Some(2),
        container: Some("main".into()),
        ..LogParams::default()
    };
    assert_eq!(api.logs("chatty", &tail).await.unwrap(), "line 4\nline 5\n");
    let side = LogParams {
        container: Some("side".into()),
        ..LogParams::default()
    };
    wait_for(&api, "chatty", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(api.logs("chatty", &side).await.unwrap(), "from side\n");
    let err = api.logs("chatty", &LogParams::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("a container name must be specified"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_on_failure_restarts_and_keeps_previous_logs() {
    let sim = start().await;
    let api = pods(&sim).await;
    // Fails the first time (no marker file), succeeds after the restart (10 s back-off).
    let marker = std::env::temp_dir().join(format!("kubesim-restart-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "if [ -e {0} ]; then echo second; else touch {0}; echo first; exit 1; fi",
        marker.display()
    );
    create(
        &api,
        &pod("flaky", &script, json!({"restartPolicy": "OnFailure"})),
    )
    .await;
    let crashed = wait_for(&api, "flaky", "restarting", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| c[0].restart_count == 1)
    })
    .await;
    let waiting = crashed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting;
    assert_eq!(
        waiting.and_then(|w| w.reason).as_deref(),
        Some("CrashLoopBackOff")
    );
    let done = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            let p = api.get("flaky").await.unwrap();
            if phase(&p) == "Succeeded" {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("restarted after the 10 s back-off");
    assert_eq!(
        done.status.unwrap().container_statuses.unwrap()[0].restart_count,
        1
    );
    assert_eq!(
        api.logs("flaky", &LogParams::default()).await.unwrap(),
        "second\n"
    );
    let previous = LogParams {
        previous: true,
        ..LogParams::default()
    };
    assert_eq!(api.logs("flaky", &previous).await.unwrap(), "first\n");
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_old_resource_version_expires_watch_with_410() {
    let sim = start_with(skyplan_kubesim::SimOptions {
        watch_history: 5,
        ..Default::default()
    })
    .await;
    let api = pods(&sim).await;
    let first = create(&api, &pod("p0", "true", json!({"nodeName": "does-not-exist"}))).await;
    let old_rv = first.metadata.resource_version.unwrap();
    for i in 1..8 {
        create(
            &api,
            &pod(&format!("p{i}"), "true", json!({"nodeName": "does-not-exist"})),
        )
        .await;
    }
    let mut stream = api.watch(&WatchParams::default(), &old_rv).await.unwrap().boxed();
    match tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // kube-runtime's watcher recovers by re-listing.
    let events = kube::runtime::watcher(api.clone(), kube::runtime::watcher::Config::default());
    let first_event = tokio::time::timeout(WAIT, events.boxed().try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(first_event.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_pods_get_distinct_loopback_ips_that_fieldrefs_see() {
    let sim = start().await;
    let api = pods(&sim).await;
    let mut ips = Vec::new();
    for name in ["peer-a", "peer-b", "peer-c"] {
        let mut spec = serde_json::to_value(pod(name, "echo \"$MY_IP\"; exec sleep 300", json!({}))).unwrap();
        spec["spec"]["containers"][0]["env"] =
            json!([{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]);
        create(&api, &serde_json::from_value(spec).unwrap()).await;
    }
    for name in ["peer-a", "peer-b", "peer-c"] {
        let running = wait_for(&api, name, "Running", |p| phase(p) == "Running").await;
        let ip = running.status.and_then(|s| s.pod_ip).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + WAIT;
        let logged = loop {
            let logs = api.logs(name, &LogParams::default()).await.unwrap_or_default();
            if !logs.trim().is_empty() {
                break logs.trim().to_string();
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} logged nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(logged, ip, "{name}: status.podIP through a fieldRef");
        ips.push(ip);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "{ips:?}");
}
