//! Reading pod objects (rank, phase, exit codes, scheduling failures, the job's state), one pod's
//! log stream, and the one mapping of Kubernetes client errors to [`ProviderError`].

use super::*;

/// The typed object for a manifest.
pub(super) fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, ProviderError> {
    serde_json::from_value(value.clone()).map_err(|err| ProviderError::InvalidRequest {
        message: format!("building a Kubernetes object: {err}"),
    })
}

pub(super) fn rank_of(pod: &Pod) -> u32 {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(render::RANK_LABEL))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub(super) fn node_infos(cluster: &str, count: u32) -> Vec<NodeInfo> {
    (0..count.max(1))
        .map(|rank| NodeInfo {
            rank,
            ip: if count > 1 {
                render::node_address(cluster, rank)
            } else {
                render::pod_name(cluster, rank)
            },
        })
        .collect()
}

/// The message of a pod's `PodScheduled=False` (reason `Unschedulable`) condition: what the
/// scheduler said in its `FailedScheduling` event.
pub(super) fn unschedulable_message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .and_then(|c| c.message.clone())
}

/// Whether a scheduler message says that resources are short (rather than taints or affinity).
pub(super) fn is_resource_shortage(message: &str) -> bool {
    message.contains("Insufficient ") || message.contains("Too many pods")
}

pub(super) fn request_id_of(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(render::REQUEST_ID_ANNOTATION))
        .cloned()
}

pub(super) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

pub(super) fn exit_code(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == render::CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// When the task container of `pod` started and (once it ended) finished, in unix seconds.
fn container_times(pod: &Pod) -> (Option<i64>, Option<i64>) {
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == render::CONTAINER))
        .and_then(|c| c.state.as_ref());
    let seconds =
        |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| t.map(|t| t.0.as_second());
    match state {
        Some(state) => match (&state.running, &state.terminated) {
            (Some(running), _) => (seconds(running.started_at.as_ref()), None),
            (None, Some(ended)) => (
                seconds(ended.started_at.as_ref()),
                seconds(ended.finished_at.as_ref()),
            ),
            (None, None) => (None, None),
        },
        None => (None, None),
    }
}

/// The job of a cluster's pods: failed if any failed, succeeded when all did, running when any
/// runs.
pub(super) fn job_status(pods: &[Pod]) -> JobStatus {
    let phases: Vec<&str> = pods.iter().map(phase).collect();
    let state = if phases.contains(&"Failed") {
        JobState::Failed
    } else if !phases.is_empty() && phases.iter().all(|p| *p == "Succeeded") {
        JobState::Succeeded
    } else if phases.contains(&"Running") {
        JobState::Running
    } else {
        JobState::Pending
    };
    let node_exit_codes: Vec<Option<i32>> = pods.iter().map(exit_code).collect();
    let exit_code = if state.is_finished() {
        node_exit_codes
            .iter()
            .flatten()
            .copied()
            .find(|c| *c != 0)
            .or(Some(if state == JobState::Failed { 1 } else { 0 }))
    } else {
        None
    };
    JobStatus {
        id: 1,
        name: pods
            .first()
            .and_then(|p| p.metadata.annotations.as_ref())
            .and_then(|a| a.get(render::TASK_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| "task".to_string()),
        state,
        exit_code,
        node_exit_codes,
        started_at: pods.iter().filter_map(|p| container_times(p).0).min(),
        ended_at: if state.is_finished() {
            pods.iter().filter_map(|p| container_times(p).1).max()
        } else {
            None
        },
    }
}

/// Maps a Kubernetes client error to the failover vocabulary: 401/403 → `Auth`, 404 →
/// `NotFound`, 409/400/422 → `InvalidRequest`, 429/5xx and connection failures → `Transient`.
pub fn map_error(context: &str, what: &str, err: kube::Error) -> ProviderError {
    match err {
        kube::Error::Api(status) => {
            let message = format!("context {context}: {what}: {} ({})", status.message, status.code);
            match status.code {
                401 | 403 => ProviderError::Auth { message },
                404 => ProviderError::NotFound {
                    what: format!("{what} in context {context}"),
                },
                429 | 500..=599 => ProviderError::Transient { message },
                _ => ProviderError::InvalidRequest { message },
            }
        }
        kube::Error::Auth(err) => ProviderError::Auth {
            message: format!("context {context}: {err}"),
        },
        kube::Error::Service(err) => match client::timed_out(&*err) {
            Some(timed_out) => ProviderError::Timeout {
                what: format!(
                    "context {context}: {what}: an answer from the API server at {} (kubernetes.request_timeout in config.yaml)",
                    timed_out.server
                ),
                seconds: timed_out.timeout.as_secs_f64(),
            },
            None => ProviderError::Transient {
                message: format!("context {context}: {what}: {err}"),
            },
        },
        other => ProviderError::Transient {
            message: format!("context {context}: {what}: {other}"),
        },
    }
}

/// Why a container that has not started never will without a change (Kubernetes' waiting
/// reasons), so that following its logs gives up with the reason.
const STUCK_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// Where a pod's main container is on its way to running.
pub(super) enum ContainerStart {
    /// Running or finished.
    Started,
    /// Not yet, for this reason (`ContainerCreating`, `Pending`, …).
    Waiting(String),
    /// Never without a change: a [`STUCK_REASONS`] reason with the kubelet's message.
    Stuck(String),
}

/// How far `pod`'s main container is.
pub(super) fn container_start(pod: &Pod) -> ContainerStart {
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == render::CONTAINER))
        .and_then(|c| c.state.clone());
    let Some(state) = state else {
        return ContainerStart::Waiting(phase(pod).to_string());
    };
    if state.running.is_some() || state.terminated.is_some() {
        return ContainerStart::Started;
    }
    let waiting = state.waiting.unwrap_or_default();
    let reason = waiting.reason.unwrap_or_else(|| "waiting".to_string());
    let described = match waiting.message {
        Some(message) => format!("{reason}: {message}"),
        None => reason.clone(),
    };
    if STUCK_REASONS.contains(&reason.as_str()) {
        ContainerStart::Stuck(described)
    } else {
        ContainerStart::Waiting(described)
    }
}

/// One pod's log lines: waits for its container to start (when following; at most
/// `start_timeout`, and not at all once its waiting reason says it cannot start), then streams
/// the log API, scrubbing `secrets`.
pub(super) fn pod_log_lines(
    api: Api<Pod>,
    context: String,
    name: String,
    rank: u32,
    params: LogParams,
    secrets: Arc<Vec<String>>,
    start_timeout: Duration,
) -> LogStream {
    let follow = params.follow;
    let opened = async move {
        let deadline = Instant::now() + start_timeout;
        loop {
            let pod = api
                .get_opt(&name)
                .await
                .map_err(|e| map_error(&context, "reading a pod", e))?
                .ok_or_else(|| ProviderError::NotFound {
                    what: format!("pod {name}"),
                })?;
            let waiting = match container_start(&pod) {
                ContainerStart::Started => break,
                _ if !follow => return Ok(None),
                ContainerStart::Stuck(reason) => {
                    return Err(ProviderError::InvalidRequest {
                        message: format!("context {context}: pod {name} cannot start: {reason}"),
                    });
                }
                ContainerStart::Waiting(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(ProviderError::Timeout {
                    what: format!(
                        "context {context}: pod {name}'s container to start (still {waiting}) (kubernetes.provision_timeout in config.yaml, at least 300 s)"
                    ),
                    seconds: start_timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reader = api
            .log_stream(&name, &params)
            .await
            .map_err(|e| map_error(&context, "reading logs", e))?;
        Ok(Some(reader.lines()))
    };
    futures::stream::once(opened)
        .map(move |opened: Result<_, ProviderError>| -> LogStream {
            match opened {
                Ok(Some(lines)) => {
                    let secrets = secrets.clone();
                    lines
                        .map_err(|err| ProviderError::io("reading a pod log", err))
                        .map_ok(move |text| {
                            let values: Vec<&str> = secrets.iter().map(String::as_str).collect();
                            LogLine {
                                node: rank,
                                text: skyplan_spec::redact_text(&text, &values),
                            }
                        })
                        .boxed()
                }
                Ok(None) => futures::stream::empty().boxed(),
                Err(err) => futures::stream::iter([Err(err)]).boxed(),
            }
        })
        .flatten()
        .boxed()
}
