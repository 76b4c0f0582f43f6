//! `pods/portforward` over WebSocket (`v4.channel.k8s.io`, as the `kube` crate speaks it): for
//! the i-th port of `ports=`, channel 2i carries data and 2i+1 errors, and each channel's first
//! message is the port (two bytes, little endian). Each port is one TCP connection to the
//! port the pod's process listens on; kubesim's pods are processes on this machine, so that is
//! `127.0.0.1:PORT`, or the pod's own loopback IP. The socket closes once every connection has closed. kubectl's SPDY
//! tunnels (`SPDY/3.1+portforward.k8s.io`) are refused with a Status saying so.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::exec::{frame, normal_close};
use serde_json::Value;

use crate::status::ApiError;

/// The ports of a `portforward` query: `ports=80,1234` or `ports` repeated.
fn ports(query: &[(String, String)]) -> Result<Vec<u16>, ApiError> {
    let mut ports = Vec::new();
    for value in query.iter().filter(|(k, _)| k == "ports").map(|(_, v)| v) {
        for text in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match text.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid port {text:?}: expected a number from 1 to 65535"
                    )));
                }
            }
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "at least one port must be specified (ports=PORT)",
        ));
    }
    Ok(ports)
}

/// Answers the upgrade for `pods/portforward` of the stored `pod` (named `name`).
pub(super) fn upgrade(
    pod: &Value,
    name: &str,
    query: &[(String, String)],
    ws: Option<WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    if pod["status"]["phase"] != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running (phase {})",
            pod["status"]["phase"].as_str().unwrap_or("unknown")
        )));
    }
    let ws = ws.ok_or_else(|| {
        ApiError::bad_request(
            "kubesim, a Kubernetes API simulator, serves pods/portforward over the \
             v4.channel.k8s.io WebSocket protocol only (as the kube crate uses it), not SPDY or \
             SPDY tunnelled in WebSocket (kubectl port-forward)",
        )
    })?;
    // After the WebSocket check: kubectl's SPDY requests name their ports in stream headers.
    let ports = ports(query)?;
    let pod_name = name.to_string();
    let pod_ip = pod["status"]["podIP"].as_str().and_then(|ip| ip.parse().ok());
    Ok(ws
        .protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| session(socket, ports, pod_name, pod_ip))
        .into_response())
}

/// Connects to `port` of the pod: on localhost, as in the pod's network namespace, else on the
/// pod's own (loopback) IP, which a process that binds its pod IP listens on.
async fn connect(port: u16, pod_ip: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let localhost = TcpStream::connect(("127.0.0.1", port)).await;
    match (localhost, pod_ip) {
        (Err(_), Some(ip)) if !ip.is_unspecified() && ip != std::net::Ipv4Addr::LOCALHOST => {
            TcpStream::connect((ip, port)).await
        }
        (answer, _) => answer,
    }
}

async fn session(socket: WebSocket, ports: Vec<u16>, pod: String, pod_ip: Option<std::net::IpAddr>) {
    let (mut sink, mut incoming) = socket.split();
    for (i, port) in ports.iter().enumerate() {
        let data = (2 * i) as u8;
        for channel in [data, data + 1] {
            if sink.send(frame(channel, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let mut writers = Vec::with_capacity(ports.len());
    let mut pumps = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let data = (2 * i) as u8;
        match connect(port, pod_ip).await {
            Ok(stream) => {
                let (mut reader, writer) = stream.into_split();
                writers.push(Some(writer));
                let tx = tx.clone();
                pumps.push(tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(n) = reader.read(&mut buffer).await {
                        if n == 0 || tx.send(frame(data, &buffer[..n])).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            Err(err) => {
                writers.push(None);
                let message = format!(
                    "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port}: {err}"
                );
                let _ = tx.send(frame(data + 1, message.as_bytes())).await;
            }
        }
    }
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        // Every connection to the pod has closed (or none opened).
        let _ = sink.send(normal_close()).await;
    });
    let reader = async {
        while let Some(Ok(message)) = incoming.next().await {
            let Message::Binary(bytes) = message else {
                if matches!(message, Message::Close(_)) {
                    break;
                }
                continue;
            };
            let Some((&channel, rest)) = bytes.split_first() else {
                continue;
            };
            let index = usize::from(channel / 2);
            if channel % 2 == 0
                && let Some(Some(stream)) = writers.get_mut(index)
                && stream.write_all(rest).await.is_err()
            {
                writers[index] = None;
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    for pump in pumps {
        pump.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ports_come_comma_separated_or_repeated_and_bad_ones_are_named() {
        assert_eq!(ports(&query(&[("ports", "80,1234")])).unwrap(), [80, 1234]);
        assert_eq!(
            ports(&query(&[("ports", "80"), ("ports", "81")])).unwrap(),
            [80, 81]
        );
        let bad = ports(&query(&[("ports", "http")])).unwrap_err();
        assert!(bad.message.contains("invalid port \"http\""), "{}", bad.message);
        assert!(ports(&query(&[("ports", "0")])).is_err());
        let none = ports(&query(&[])).unwrap_err();
        assert!(none.message.contains("at least one port"), "{}", none.message);
    }
}
