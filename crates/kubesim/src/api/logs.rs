//! Pod logs (`GET .../pods/<name>/log`): the container's log buffer with `tailLines`,
//! `sinceSeconds`, `timestamps`, `limitBytes` and `previous`, followed with `follow=true`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::read::get;
use super::reply::{Params, bool_param, number_param, streaming};
use crate::cluster::Cluster;
use crate::runtime::LogBuffer;
use crate::status::ApiError;
use crate::store::{Kind, meta_str};
use crate::util::{age_seconds, lock};

/// Renders log lines after the `tailLines`, `sinceSeconds`, `timestamps` and `limitBytes` options.
fn render_lines<'a>(
    lines: impl Iterator<Item = &'a (String, Vec<u8>)>,
    timestamps: bool,
    since: Option<i64>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (stamp, line) in lines {
        if since.is_some_and(|s| age_seconds(stamp) > s) {
            continue;
        }
        if timestamps {
            out.extend_from_slice(stamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line);
    }
    out
}

/// `GET .../pods/<name>/log`: a container's current or previous log, or a stream of it with
/// `follow=true` until the container ends.
pub(super) async fn logs(
    cluster: &Arc<Cluster>,
    namespace: &str,
    name: &str,
    params: &Params,
) -> Result<Response, ApiError> {
    let pod = get(cluster, Kind::Pod, namespace, name)?;
    let main: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let init: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match params.get("container").filter(|c| !c.is_empty()) {
        Some(c) => c.clone(),
        None => match (
            pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str(),
            main.as_slice(),
        ) {
            (Some(default), _) => default.to_owned(),
            (None, [only]) => (*only).to_owned(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}] or one of the init containers: [{}]",
                    main.join(" "),
                    init.join(" ")
                )));
            }
        },
    };
    if !main.contains(&container.as_str()) && !init.contains(&container.as_str()) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let tail = number_param(params, "tailLines")?;
    let limit = number_param(params, "limitBytes")?.map(|n| n.max(0) as usize);
    let since = number_param(params, "sinceSeconds")?;
    let timestamps = bool_param(params, "timestamps");
    let previous = bool_param(params, "previous");
    let key = (meta_str(&pod, "uid").to_owned(), container.clone());
    let snapshot: Option<LogBuffer> = {
        let logs = lock(&cluster.logs);
        logs.get(&key).and_then(|l| {
            if previous {
                l.previous.clone()
            } else {
                Some(l.current.clone())
            }
        })
    };
    let Some(buffer) = snapshot else {
        if previous {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        let reason = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|l| pod["status"][*l].as_array().into_iter().flatten())
            .find(|c| c["name"] == container.as_str())
            .and_then(|c| c["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating")
            .to_owned();
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    };
    let skip = tail.map_or(0, |t| buffer.lines.len().saturating_sub(t.max(0) as usize));
    let mut first = render_lines(buffer.lines.iter().skip(skip), timestamps, since);
    if let Some(limit) = limit {
        first.truncate(limit);
    }
    let follow = bool_param(params, "follow") && !previous && !buffer.finished;
    if !follow {
        return Ok(([(header::CONTENT_TYPE, "text/plain")], first).into_response());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let mut sent_bytes = first.len();
        let mut seen = buffer.lines.len();
        let mut seen_dropped = buffer.dropped;
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut changes = cluster.log_changes.subscribe();
        let mut shutdown = cluster.shutdown.clone();
        loop {
            let update = {
                let logs = lock(&cluster.logs);
                logs.get(&key).map(|l| {
                    // Lines dropped from the front since the last look shift the index.
                    let shift = (l.current.dropped - seen_dropped) as usize;
                    let start = seen.saturating_sub(shift);
                    let chunk = render_lines(l.current.lines.iter().skip(start), timestamps, None);
                    (
                        chunk,
                        l.current.lines.len(),
                        l.current.dropped,
                        l.current.finished,
                    )
                })
            };
            let Some((mut chunk, total, dropped, finished)) = update else {
                return;
            };
            seen = total;
            seen_dropped = dropped;
            if let Some(limit) = limit {
                chunk.truncate(limit.saturating_sub(sent_bytes));
            }
            sent_bytes += chunk.len();
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if finished || limit.is_some_and(|l| sent_bytes >= l) {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
    Ok(streaming(rx, "text/plain"))
}
