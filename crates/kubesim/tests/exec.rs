//! `pods/exec` over WebSocket: through the real `kube` client (v5 channels: output, stdin and its
//! close, the exit status) and through stock kubectl (`exec`, `exec -i`, `cp`); what is refused.

use kube::api::AttachParams;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{create, expect_status, kubectl_or_skip, phase, pod, pods, start, wait_for};

async fn read_all(reader: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut text = String::new();
    if let Some(mut reader) = reader {
        reader
            .read_to_string(&mut text)
            .await
            .expect("the stream reads to its end");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_container_and_reports_the_exit_code() {
    let sim = start().await;
    let api = pods(&sim).await;
    create(
        &api,
        &pod(
            "box",
            "sleep 300",
            json!({"containers": [{"name": "main", "image": "busybox:1.36",
            "command": ["sleep", "300"], "env": [{"name": "GREETING", "value": "hi from the pod"}]}]}),
        ),
    )
    .await;
    wait_for(&api, "box", "Running", |p| phase(p) == "Running").await;

    let streams = AttachParams::default().stdout(true).stderr(true);
    let mut process = api
        .exec(
            "box",
            ["sh", "-c", "echo $HOSTNAME $GREETING; echo oops >&2; exit 7"],
            &streams,
        )
        .await
        .unwrap();
    let status = process.take_status().unwrap();
    let (stdout, stderr) = (read_all(process.stdout()).await, read_all(process.stderr()).await);
    let status = status.await.expect("a status");
    assert_eq!(stdout, "box hi from the pod\n");
    assert_eq!(stderr, "oops\n");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"), "{status:?}");
    let code = status
        .details
        .and_then(|d| d.causes)
        .and_then(|c| c.into_iter().next());
    assert_eq!(code.and_then(|c| c.message).as_deref(), Some("7"));

    // stdin, and its close (v5): `cat` ends when stdin does.
    let with_stdin = AttachParams::default().stdin(true).stdout(true).stderr(false);
    let mut process = api
        .exec("box", ["sh", "-c", "cat; echo end"], &with_stdin)
        .await
        .unwrap();
    let status = process.take_status().unwrap();
    let mut stdin = process.stdin().unwrap();
    stdin.write_all(b"through stdin\n").await.unwrap();
    // A split simplex stream ends at shutdown (dropping the write half does not end it).
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let stdout = read_all(process.stdout()).await;
    assert_eq!(stdout, "through stdin\nend\n");
    assert_eq!(status.await.and_then(|s| s.status).as_deref(), Some("Success"));

    // Refusals, with the reason: no command, a TTY, an unknown container, no WebSocket.
    let path = "/clusters/test/api/v1/namespaces/default/pods/box/exec";
    let message = expect_status(
        &sim,
        "POST",
        &format!("{path}?command=true&container=nope"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert_eq!(message, "container nope is not valid for pod box");
    let message = expect_status(
        &sim,
        "POST",
        &format!("{path}?command=true&tty=true"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert!(message.contains("does not emulate terminals"), "{message}");
    let message = expect_status(
        &sim,
        "POST",
        &format!("{path}?command=true"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert!(message.contains("over WebSocket only"), "{message}");
    let message = expect_status(&sim, "POST", path, "", 400, "BadRequest").await;
    assert_eq!(message, "you must specify at least one command for the container");

    // Stock kubectl: the exit code, stdin, and `cp` (tar over exec).
    let Some(binary) = kubectl_or_skip("exec_runs_in_the_container_and_reports_the_exit_code (kubectl part)")
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kubesim-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = |args: &[&str], stdin: &'static [u8]| {
        let mut command = tokio::process::Command::new(&binary);
        command
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("HOME", &dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        async move {
            let mut child = command.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin).await.unwrap();
            drop(input);
            child.wait_with_output().await.unwrap()
        }
    };
    let exited = kubectl(&["exec", "box", "--", "sh", "-c", "echo $HOSTNAME; exit 7"], b"").await;
    assert_eq!(String::from_utf8_lossy(&exited.stdout), "box\n");
    assert_eq!(
        exited.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&exited.stderr)
    );
    let piped = kubectl(
        &["exec", "-i", "box", "--", "sh", "-c", "tr a-z A-Z"],
        b"piped in\n",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "PIPED IN\n");
    assert!(piped.status.success());
    let source = dir.join("notes.txt");
    std::fs::write(&source, "copied by kubectl cp\n").unwrap();
    let target = dir.join("copied.txt");
    let copied = kubectl(
        &[
            "cp",
            source.to_str().unwrap(),
            &format!("box:{}", target.display()),
        ],
        b"",
    )
    .await;
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    // kubesim's containers share this machine's filesystem (no sandbox yet): the copy lands here.
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "copied by kubectl cp\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
