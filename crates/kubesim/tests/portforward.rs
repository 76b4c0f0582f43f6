//! `pods/portforward` over WebSocket through the real `kube` client: bytes both ways to the
//! port a pod's process listens on, an error for a port nobody listens on, and the refusals.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{create, expect_status, phase, pod, pods, start, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portforward_reaches_the_pods_listening_port() {
    let sim = start().await;
    let api = pods(&sim).await;
    // A free port for the pod's server, and one nobody listens on.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, closed) = (free(), free());
    let server = format!(
        "import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port})); s.listen()\nopen('ready', 'w').close()\n\
         while True:\n    c, _ = s.accept(); data = c.recv(1024); c.sendall(b'echo: ' + data); c.close()\n"
    );
    let dir = std::env::temp_dir().join(format!("kubesim-portforward-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.py"), server).unwrap();
    let script = format!("cd {} && exec python3 server.py", dir.display());
    create(&api, &pod("web", &script, json!({}))).await;
    wait_for(&api, "web", "Running", |p| phase(p) == "Running").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dir.join("ready").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod's server never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut forwarder = api.portforward("web", &[port, closed]).await.unwrap();
    let mut stream = forwarder.take_stream(port).unwrap();
    let refused = forwarder.take_error(closed).unwrap();
    stream.write_all(b"hello pod\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "echo: hello pod\n");
    let error = refused.await.expect("an error for the closed port");
    assert!(
        error.contains(&format!("failed to connect to localhost:{closed}")),
        "{error}"
    );
    drop(stream);
    forwarder.abort();

    // Without WebSocket (kubectl's SPDY, which names its ports in stream headers): the reason.
    let path = "/clusters/test/api/v1/namespaces/default/pods/web/portforward";
    let message = expect_status(&sim, "POST", path, "", 400, "BadRequest").await;
    assert!(message.contains("not SPDY"), "{message}");
    let message = expect_status(
        &sim,
        "POST",
        &format!("{path}?ports={port}"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert!(message.contains("not SPDY"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}
