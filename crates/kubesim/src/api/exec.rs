//! `pods/exec` over WebSocket, as the API server proxies it to the kubelet: subprotocols
//! `v5.channel.k8s.io` and `v4.channel.k8s.io`; binary messages whose first byte is the channel
//! (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255 to close a stream); the exit
//! status as a `Status` on the error channel (`NonZeroExitCode` with the code as an `ExitCode`
//! cause). SPDY upgrades, which older clients try, are refused with a Status saying so; TTYs are
//! not emulated.

use std::process::Stdio;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::kubelet::exec_command;
use crate::status::ApiError;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

/// What an exec request asks for (its query: `command` repeated, `container`, the streams).
struct ExecRequest {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

fn parse(query: &[(String, String)]) -> Result<ExecRequest, ApiError> {
    let flag = |name: &str| query.iter().any(|(k, v)| k == name && (v == "true" || v == "1"));
    if flag("tty") {
        return Err(ApiError::bad_request(
            "tty: kubesim, a Kubernetes API simulator, does not emulate terminals; exec without -t",
        ));
    }
    Ok(ExecRequest {
        command: query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        container: query
            .iter()
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.clone()),
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
    })
}

/// Answers the upgrade for `pods/exec` of the stored `pod` (a request without one is
/// refused, see [`needs_websocket`]).
pub(super) fn upgrade(
    cluster: &Cluster,
    pod: &Value,
    query: &[(String, String)],
    ws: Option<WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let request = parse(query)?;
    let mut command = exec_command(cluster, pod, request.container.as_deref(), &request.command)?;
    command
        .stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let shown = request.command.join(" ");
    // Checked after the pod and command, so that a client falling back from WebSocket to SPDY
    // hears the real reason of a refusal.
    let ws = ws.ok_or_else(needs_websocket)?;
    Ok(ws
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| session(socket, command, request, shown))
        .into_response())
}

/// A refused SPDY (or plain) request for `pods/exec`.
fn needs_websocket() -> ApiError {
    ApiError::bad_request(
        "kubesim, a Kubernetes API simulator, serves pods/exec over WebSocket only \
         (v5.channel.k8s.io, v4.channel.k8s.io), not SPDY",
    )
}

/// A binary message on `channel` (its first byte), as exec and portforward send them.
pub(super) fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// A close frame with code 1000 (normal closure), as the API server ends an exec.
pub(super) fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

fn exit_status(code: Option<i32>, shown: &str) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!("command terminated with non-zero exit code: error executing command [{shown}], exit code {code}"),
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        None => json!({
            "metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": format!("command [{shown}] was killed by a signal"),
        }),
    }
}

async fn session(
    socket: WebSocket,
    mut command: tokio::process::Command,
    request: ExecRequest,
    shown: String,
) {
    let (mut sink, mut incoming) = socket.split();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("failed to exec in container: {:?}: {err}", request.command.first())});
            let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let mut pumps = Vec::new();
    for (channel, wanted, pipe) in [
        (
            STDOUT,
            request.stdout,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            STDERR,
            request.stderr,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buffer = vec![0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                // A stream the client did not ask for is read and dropped, as the runtime does.
                if wanted && tx.send(frame(channel, &buffer[..n])).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        sink
    });
    // The client's messages: stdin data, stdin close (v5), resize (ignored), or the end.
    let reader = async {
        while let Some(Ok(message)) = incoming.next().await {
            let data = match message {
                Message::Binary(data) => data.to_vec(),
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Close(_) => return false,
                _ => continue,
            };
            match data.split_first() {
                Some((&STDIN, rest)) => {
                    if let Some(pipe) = stdin.as_mut()
                        && pipe.write_all(rest).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some((&CLOSE, [STDIN])) => stdin = None,
                _ => {}
            }
        }
        false
    };
    let exited = tokio::select! {
        status = child.wait() => Some(status),
        _ = reader => None,
    };
    let Some(status) = exited else {
        // The client went away: the command ends with it.
        let _ = child.start_kill();
        return;
    };
    for pump in pumps {
        let _ = pump.await;
    }
    let code = status.ok().and_then(|s| s.code());
    if let Ok(mut sink) = writer.await {
        let _ = sink
            .send(frame(ERROR, exit_status(code, &shown).to_string().as_bytes()))
            .await;
        let _ = sink.send(normal_close()).await;
    }
}
