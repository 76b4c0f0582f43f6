//! `exec` in a running container: the command as a process with the container's environment
//! and working directory, as the kubelet runs it through the container runtime.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::container::container_command;
use super::env::resolve_env;
use crate::cluster::Cluster;
use crate::status::ApiError;

/// The process for `exec` of `argv` in `container` (the pod's first when `None`) of `pod`, which
/// must be running; errors are the API server's answers.
pub(crate) fn exec_command(
    cluster: &Cluster,
    pod: &Value,
    container: Option<&str>,
    argv: &[String],
) -> Result<tokio::process::Command, ApiError> {
    let typed: Pod = serde_json::from_value(pod.clone())
        .map_err(|e| ApiError::internal(format!("stored pod does not decode: {e}")))?;
    let name = typed.metadata.name.clone().unwrap_or_default();
    let spec = typed.spec.clone().unwrap_or_default();
    let chosen = match container {
        Some(wanted) => spec.containers.iter().find(|c| c.name == wanted).ok_or_else(|| {
            ApiError::bad_request(format!("container {wanted} is not valid for pod {name}"))
        })?,
        None => spec
            .containers
            .first()
            .ok_or_else(|| ApiError::bad_request(format!("pod {name} has no containers")))?,
    };
    let running = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == chosen.name.as_str() && c["state"]["running"].is_object());
    if !running {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{}\")",
            chosen.name
        )));
    }
    let Some((program, args)) = argv.split_first() else {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    };
    let env = resolve_env(cluster, &typed, chosen).map_err(ApiError::bad_request)?;
    Ok(container_command(&name, chosen, &env, program, args))
}
