//! The HTTP face: routes Kubernetes REST paths of each simulated cluster to the store, the watch
//! machinery and the kubelet's logs, and turns every failure into a `Status` answer.
//!
//! Clusters are served under `/clusters/<name>`, so `http://127.0.0.1:PORT/clusters/gke-l4` is a
//! complete API server URL for `kube` and `kubectl`. JSON only; every answer carries a `Server`
//! header saying it comes from a simulator.

mod exec;
mod logs;
mod page;
mod portforward;
mod read;
mod reply;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use self::logs::logs;
use self::read::{get, list, watch};
use self::reply::{Params, bool_param, error_response, ok};
use self::write::{create, delete, delete_collection, patch, update};
use crate::cluster::Cluster;
use crate::discovery::{api_resources, version};
use crate::status::ApiError;
use crate::store::Kind;
use crate::table::{table, wants_table};

/// `Server` header on every answer.
const SERVER_HEADER: &str = "kubesim/0.1.0 (Kubernetes API simulator; not a real cluster)";

/// Everything the HTTP handlers share.
pub(crate) struct ServerState {
    pub clusters: BTreeMap<String, Arc<Cluster>>,
}

/// The single axum handler: routes, answers, and stamps the simulator header.
pub(crate) async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    websocket: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    let answer = match stream_target(uri.path()) {
        Some((cluster, namespace, pod, subresource)) => {
            stream_route(&state, &uri, cluster, namespace, pod, subresource, websocket.ok())
        }
        None => route(&state, &method, &uri, &headers, body).await,
    };
    let mut response = answer.unwrap_or_else(error_response);
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    response
}

/// `/clusters/C/api/v1/namespaces/NS/pods/P/{exec,portforward}`: the cluster, namespace, pod
/// and subresource of a streaming request.
fn stream_target(path: &str) -> Option<(&str, &str, &str, &str)> {
    let rest = path.strip_prefix("/clusters/")?;
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [
            cluster,
            "api",
            "v1",
            "namespaces",
            namespace,
            "pods",
            pod,
            sub @ ("exec" | "portforward"),
        ] => Some((cluster, namespace, pod, sub)),
        _ => None,
    }
}

fn stream_route(
    state: &ServerState,
    uri: &Uri,
    cluster: &str,
    namespace: &str,
    pod: &str,
    subresource: &str,
    websocket: Option<WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let cluster = state
        .clusters
        .get(cluster)
        .ok_or_else(|| ApiError::not_found("clusters", cluster))?;
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let stored = cluster
        .read(|s| s.get(Kind::Pod, namespace, pod).cloned())
        .ok_or_else(|| ApiError::not_found("pods", pod))?;
    if subresource == "portforward" {
        return portforward::upgrade(&stored, pod, &query, websocket);
    }
    exec::upgrade(cluster, &stored, &query, websocket)
}

async fn route(
    state: &ServerState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path().trim_end_matches('/');
    let params: Params = Query::<Params>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    match path {
        "" => {
            let paths: Vec<String> = state.clusters.keys().map(|c| format!("/clusters/{c}")).collect();
            return ok(&json!({"paths": paths}));
        }
        "/version" => return ok(&version()),
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/clusters/") else {
        return Err(ApiError::no_route(path));
    };
    let (cluster_name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(cluster) = state.clusters.get(cluster_name) else {
        return Err(ApiError::not_found("clusters", cluster_name));
    };
    match sub {
        "version" => ok(&version()),
        "healthz" | "livez" | "readyz" => Ok((StatusCode::OK, "ok").into_response()),
        "api" => ok(&json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": cluster.server_address}],
        })),
        "apis" => ok(&json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        "api/v1" => ok(&api_resources()),
        "openapi/v3" => ok(&crate::openapi::discovery(&format!("/clusters/{cluster_name}"))),
        "openapi/v3/api/v1" => ok(crate::openapi::core_v1()),
        _ => match sub.strip_prefix("api/v1/") {
            Some(resource_path) => resource(cluster, method, resource_path, &params, headers, body).await,
            None => Err(ApiError::no_route(path)),
        },
    }
}

async fn resource(
    cluster: &Arc<Cluster>,
    method: &Method,
    path: &str,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = path.split('/').collect();
    let namespaced_kind = |plural: &str| Kind::from_plural(plural).filter(|k| k.namespaced());
    let (namespace, kind, rest) = match segments.as_slice() {
        ["namespaces", namespace, plural, rest @ ..]
            if namespaced_kind(plural).is_some() && rest.len() <= 2 =>
        {
            (
                Some(*namespace),
                namespaced_kind(plural).ok_or_else(|| ApiError::no_route(path))?,
                rest,
            )
        }
        [plural, rest @ ..] if rest.len() <= 2 => match Kind::from_plural(plural) {
            Some(kind) if !kind.namespaced() || rest.is_empty() => (None, kind, rest),
            _ => return Err(ApiError::no_route(path)),
        },
        _ => return Err(ApiError::no_route(path)),
    };
    match (rest, method.clone()) {
        ([], Method::GET) if bool_param(params, "watch") => watch(cluster, kind, namespace, params, headers),
        ([], Method::GET) => list(cluster, kind, namespace, params, headers),
        ([], Method::POST) => create(cluster, kind, namespace, params, headers, &body),
        ([], Method::DELETE) => delete_collection(cluster, kind, namespace, params),
        ([name], Method::GET) => {
            let object = get(cluster, kind, namespace.unwrap_or(""), name)?;
            if wants_table(headers) {
                ok(&table(kind, &[object], cluster.read(|s| s.resource_version())))
            } else {
                ok(&Value::clone(&object))
            }
        }
        ([name], Method::PUT) => update(
            cluster,
            kind,
            namespace.unwrap_or(""),
            name,
            params,
            headers,
            &body,
            false,
        ),
        ([name], Method::PATCH) => patch(
            cluster,
            kind,
            namespace.unwrap_or(""),
            name,
            params,
            headers,
            &body,
            false,
        ),
        ([name], Method::DELETE) => delete(cluster, kind, namespace.unwrap_or(""), name, params, &body),
        ([name, "status"], Method::GET) => {
            let object = get(cluster, kind, namespace.unwrap_or(""), name)?;
            ok(&object)
        }
        ([name, "status"], Method::PUT) => update(
            cluster,
            kind,
            namespace.unwrap_or(""),
            name,
            params,
            headers,
            &body,
            true,
        ),
        ([name, "status"], Method::PATCH) => patch(
            cluster,
            kind,
            namespace.unwrap_or(""),
            name,
            params,
            headers,
            &body,
            true,
        ),
        ([name, "log"], Method::GET) if kind == Kind::Pod => {
            logs(cluster, namespace.unwrap_or(""), name, params).await
        }
        ([_, "status"] | [_, "log"], _) | ([] | [_], _) => Err(ApiError::method_not_allowed()),
        ([_, subresource], _) => Err(ApiError::unsupported_subresource(kind.plural(), subresource)),
        _ => Err(ApiError::no_route(path)),
    }
}
