//! Stock `kubectl` against the simulator: `get nodes`, `get pods -o wide`, `describe pod`, `logs`,
//! `get -w`, `explain` and validation from the OpenAPI v3 document, `delete pod` (Terminating through its grace period, `wait --for=delete`). Uses `$KUBECTL` if set, else `kubectl` on PATH; skipped (with a message) if neither runs,
//! except under `CI`, where that fails.

use serde_json::json;

use crate::util::{create, kubectl_or_skip, phase, pod, pods, start, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_kubectl_works() {
    let Some(kubectl) = kubectl_or_skip("stock_kubectl_works") else {
        return;
    };
    let sim = start().await;
    let kubeconfig = std::env::temp_dir().join(format!("kubesim-kubectl-{}.kubeconfig", std::process::id()));
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let run = |args: &[&str]| {
        let kubectl = kubectl.clone();
        let kubeconfig = kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let output = tokio::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .env("HOME", std::env::temp_dir())
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(
                output.status.success(),
                "kubectl {args:?} failed: {stderr}\n{stdout}"
            );
            stdout
        }
    };

    let nodes = run(&["get", "nodes"]).await;
    assert!(nodes.contains("NAME") && nodes.contains("STATUS"), "{nodes}");
    for node in ["gpu-1", "cpu-0", "cpu-1"] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("{node} missing: {nodes}"));
        assert!(
            line.contains("Ready") && line.contains("v1.33.0-kubesim"),
            "{line}"
        );
    }
    let other = run(&["--context", "other", "get", "nodes", "-o", "name"]).await;
    assert_eq!(other.trim(), "node/lonely");

    let api = pods(&sim).await;
    create(&api, &pod("hello", "echo hello from kubesim", json!({}))).await;
    wait_for(&api, "hello", "Succeeded", |p| phase(p) == "Succeeded").await;
    let mut big = serde_json::to_value(pod("waiting", "true", json!({}))).unwrap();
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpu": "4"}});
    create(&api, &serde_json::from_value(big).unwrap()).await;
    wait_for(&api, "waiting", "unschedulable", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.status == "False"))
    })
    .await;

    let wide = run(&["get", "pods", "-o", "wide"]).await;
    let hello = wide
        .lines()
        .find(|l| l.starts_with("hello"))
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(
        hello.contains("Completed") && hello.contains(" 127.0.0.") && hello.contains("0/1"),
        "{wide}"
    );
    assert!(wide.lines().next().unwrap().contains("NODE"), "{wide}");
    let waiting = wide.lines().find(|l| l.starts_with("waiting")).unwrap();
    assert!(
        waiting.contains("Pending") && waiting.contains("<none>"),
        "{wide}"
    );

    let describe = run(&["describe", "pod", "waiting"]).await;
    assert!(describe.contains("Events:"), "{describe}");
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(
        describe.contains("0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
        "{describe}"
    );
    let describe = run(&["describe", "pod", "hello"]).await;
    assert!(
        describe.contains("Scheduled") && describe.contains("Successfully assigned default/hello to"),
        "{describe}"
    );
    assert!(describe.contains("busybox:1.36"), "{describe}");

    assert_eq!(run(&["logs", "hello"]).await, "hello from kubesim\n");
    let deleted = run(&["delete", "pod", "hello"]).await;
    assert!(deleted.contains("pod \"hello\" deleted"), "{deleted}");
    let after = run(&["get", "pods"]).await;
    assert!(!after.contains("hello") && after.contains("waiting"), "{after}");

    // OpenAPI v3: kubectl validates with it (unknown fields are the server's to refuse, as the
    // document says the server honours fieldValidation) and explains fields from it.
    let explained = run(&["explain", "pod.spec.restartPolicy"]).await;
    assert!(
        explained.contains("FIELD: restartPolicy <string>") && explained.contains("Restart policy"),
        "{explained}"
    );
    let manifest = std::env::temp_dir().join(format!("kubesim-bogus-{}.yaml", std::process::id()));
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bogus}\nspec:\n  containers:\n  - {name: a, image: busybox, bogusField: 1}\n",
    )
    .unwrap();
    let refused = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "-f"])
        .arg(&manifest)
        .env("HOME", std::env::temp_dir())
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&manifest);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("strict decoding error: unknown field \"spec.containers[0].bogusField\""),
        "{stderr}"
    );

    // `get -w` keeps the table's columns for every row after the first.
    let mut watching = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "pods", "-w"])
        .env("HOME", std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    create(&api, &pod("watched", "sleep 30", json!({}))).await;
    wait_for(&api, "watched", "Running", |p| phase(p) == "Running").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let _ = watching.start_kill();
    let watched = watching.wait_with_output().await.unwrap();
    let watched = String::from_utf8_lossy(&watched.stdout);
    let rows: Vec<&str> = watched.lines().filter(|l| l.starts_with("watched")).collect();
    assert!(rows.len() >= 2, "a row per change: {watched}");
    assert!(
        rows.iter().all(|r| r.split_whitespace().count() == 5),
        "NAME READY STATUS RESTARTS AGE on every row: {watched}"
    );
    assert!(rows.iter().any(|r| r.contains("Running")), "{watched}");

    // Graceful deletion as kubectl shows it: Terminating for the grace period, then gone.
    let stubborn = pod(
        "stubborn",
        "trap '' TERM; exec sleep 300",
        json!({"terminationGracePeriodSeconds": 3}),
    );
    create(&api, &stubborn).await;
    wait_for(&api, "stubborn", "Running", |p| phase(p) == "Running").await;
    let asked = std::time::Instant::now();
    run(&["delete", "pod", "stubborn", "--wait=false"]).await;
    let listed = run(&["get", "pods"]).await;
    let line = listed
        .lines()
        .find(|l| l.starts_with("stubborn"))
        .unwrap_or_else(|| panic!("a terminating pod is still listed: {listed}"));
    assert!(line.contains("Terminating"), "{listed}");
    run(&["wait", "--for=delete", "pod/stubborn", "--timeout=20s"]).await;
    let took = asked.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(2900) && took < std::time::Duration::from_secs(15),
        "gone after {took:?}, its grace period is 3 s"
    );
    let _ = std::fs::remove_file(&kubeconfig);
}
