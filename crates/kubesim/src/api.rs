//! The HTTP face: routes Kubernetes REST paths of each simulated cluster to the store, the watch
//! machinery and the kubelet's logs, and turns every failure into a `Status` answer.
//!
//! Clusters are served under `/clusters/<name>`, so `http://127.0.0.1:PORT/clusters/gke-l4` is a
//! complete API server URL for `kube` and `kubectl`. JSON only; every answer carries a `Server`
//! header saying it comes from a simulator.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::discovery::{api_resources, version};
use crate::kubelet::kill_pod;
use crate::objects::{FieldValidation, admit_create, admit_update, decode, merge_patch};
use crate::runtime::LogBuffer;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ChangeType, Kind, meta_str};
use crate::table::{table, wants_table};
use crate::util::{age_seconds, now_rfc3339};

/// `Server` header on every answer.
const SERVER_HEADER: &str = "kubesim/0.1.0 (Kubernetes API simulator; not a real cluster)";

/// Everything the HTTP handlers share.
pub(crate) struct ServerState {
    pub clusters: BTreeMap<String, Arc<Cluster>>,
}

type Params = HashMap<String, String>;

/// The single axum handler: routes, answers, and stamps the simulator header.
pub(crate) async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = route(&state, &method, &uri, &headers, body)
        .await
        .unwrap_or_else(error_response);
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    response
}

fn error_response(error: ApiError) -> Response {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &error.to_status(), &[])
}

fn json_response(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response();
    for warning in warnings {
        let text = format!("299 - {}", Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, value, &[]))
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
        _ => match sub.strip_prefix("api/v1/") {
            Some(resource_path) => resource(cluster, method, resource_path, &params, headers, body).await,
            None => Err(ApiError::no_route(path)),
        },
    }
}

fn bool_param(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true" || v == "1")
}

fn number_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{name}: invalid integer {v:?}")))
        })
        .transpose()
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
        ([], Method::GET) if bool_param(params, "watch") => watch(cluster, kind, namespace, params),
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
        ([name], Method::DELETE) => delete(cluster, kind, namespace.unwrap_or(""), name, &body),
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
        _ => Err(ApiError::no_route(path)),
    }
}

fn get(cluster: &Cluster, kind: Kind, namespace: &str, name: &str) -> Result<Arc<Value>, ApiError> {
    cluster
        .read(|s| s.get(kind, namespace, name).cloned())
        .ok_or_else(|| ApiError::not_found(kind.plural(), name))
}

/// Parsed selectors plus the namespace filter of a list or watch.
struct Filter {
    kind: Kind,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(kind: Kind, namespace: Option<&str>, params: &Params) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(
            params.get("fieldSelector").map_or("", String::as_str),
            kind.selectable_fields(),
        )
        .map_err(ApiError::bad_request)?;
        Ok(Self {
            kind,
            namespace: namespace.map(str::to_owned),
            labels,
            fields,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| !self.kind.namespaced() || meta_str(object, "namespace") == ns)
            && self.labels.matches(object["metadata"]["labels"].as_object())
            && self.fields.matches(object)
    }
}

fn list(
    cluster: &Cluster,
    kind: Kind,
    namespace: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let filter = Filter::new(kind, namespace, params)?;
    let (items, rv) = cluster.read(|s| {
        (
            s.list(kind, namespace)
                .filter(|o| filter.matches(o))
                .cloned()
                .collect::<Vec<_>>(),
            s.resource_version(),
        )
    });
    if wants_table(headers) {
        return ok(&table(kind, &items, rv));
    }
    ok(&json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items.iter().map(|o| Value::clone(o)).collect::<Vec<_>>(),
    }))
}

fn watch_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A streaming answer fed by `rx` until the sender side is dropped.
fn streaming(rx: mpsc::Receiver<Bytes>, content_type: &'static str) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

fn watch(
    cluster: &Arc<Cluster>,
    kind: Kind,
    namespace: Option<&str>,
    params: &Params,
) -> Result<Response, ApiError> {
    let filter = Filter::new(kind, namespace, params)?;
    let since = match params.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let initial_events = bool_param(params, "sendInitialEvents") || matches!(since, None | Some(0));
    let bookmark_initial = bool_param(params, "sendInitialEvents");
    let timeout = number_param(params, "timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut changes = cluster.changes.subscribe();
        let mut shutdown = cluster.shutdown.clone();
        let (mut lines, mut last) = cluster.read(|s| {
            let mut lines = Vec::new();
            let current = s.resource_version();
            let mut last = since.unwrap_or(current);
            if initial_events {
                last = current.max(since.unwrap_or(0));
                for object in s.list(filter.kind, filter.namespace.as_deref()).filter(|o| filter.matches(o)) {
                    lines.push(watch_line("ADDED", object));
                }
            }
            if bookmark_initial {
                let bookmark = json!({"kind": filter.kind.kind(), "apiVersion": "v1", "metadata": {
                    "resourceVersion": last.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                lines.push(watch_line("BOOKMARK", &bookmark));
            }
            (lines, last)
        });
        loop {
            let expired = cluster.read(|s| match s.changes_since(last) {
                Err(oldest) => Some(oldest),
                Ok(changes) => {
                    for change in changes.filter(|c| c.kind == filter.kind) {
                        let now = filter.matches(&change.object);
                        let before = change.previous.as_ref().is_some_and(|p| filter.matches(p));
                        let event = match change.change {
                            ChangeType::Added | ChangeType::Deleted => now.then_some(change.change.as_str()),
                            ChangeType::Modified => match (before, now) {
                                (true, true) => Some("MODIFIED"),
                                (false, true) => Some("ADDED"),
                                (true, false) => Some("DELETED"),
                                (false, false) => None,
                            },
                        };
                        if let Some(event) = event {
                            lines.push(watch_line(event, &change.object));
                        }
                    }
                    last = s.resource_version();
                    None
                }
            });
            if let Some(oldest) = expired {
                let status = ApiError::expired(last, oldest).to_status();
                let _ = tx.send(watch_line("ERROR", &status)).await;
                return;
            }
            for line in lines.drain(..) {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            let until_deadline = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = until_deadline => return,
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
    Ok(streaming(rx, "application/json"))
}

fn check_json_content_type(headers: &HeaderMap, allowed: &[&str]) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if allowed.contains(&content_type.as_str()) {
        Ok(content_type)
    } else {
        Err(ApiError::unsupported_media_type(&content_type))
    }
}

fn create(
    cluster: &Cluster,
    kind: Kind,
    namespace: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_json_content_type(headers, &["application/json"])?;
    if kind.namespaced() && namespace.is_none() {
        return Err(ApiError::bad_request(format!(
            "{} must be created in a namespace: POST /api/v1/namespaces/<namespace>/{}",
            kind.plural(),
            kind.plural()
        )));
    }
    let validation = FieldValidation::parse(params.get("fieldValidation").map(String::as_str))?;
    let (object, warnings) = decode(kind, body, validation)?;
    let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
    let created = cluster.write(|store| {
        let object = admit_create(kind, namespace, object, store)?;
        if dry_run {
            Ok(Arc::new(object))
        } else {
            store.create(kind, object)
        }
    })?;
    Ok(json_response(StatusCode::CREATED, &created, &warnings))
}

#[allow(clippy::too_many_arguments)]
fn update(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    status_only: bool,
) -> Result<Response, ApiError> {
    check_json_content_type(headers, &["application/json"])?;
    let validation = FieldValidation::parse(params.get("fieldValidation").map(String::as_str))?;
    let (object, warnings) = decode(kind, body, validation)?;
    let updated = cluster.write(|store| {
        let old = store
            .get(kind, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural(), name))?;
        let new = admit_update(kind, &old, object, status_only)?;
        store.replace(kind, new)
    })?;
    Ok(json_response(StatusCode::OK, &updated, &warnings))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    status_only: bool,
) -> Result<Response, ApiError> {
    check_json_content_type(
        headers,
        &[
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ],
    )?;
    let validation = FieldValidation::parse(params.get("fieldValidation").map(String::as_str))?;
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut warnings = Vec::new();
    let updated = cluster.write(|store| {
        let old = store
            .get(kind, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural(), name))?;
        let mut merged = Value::clone(&old);
        merge_patch(&mut merged, &patch);
        let bytes = serde_json::to_vec(&merged).map_err(|e| ApiError::internal(e.to_string()))?;
        let (object, found) = decode(kind, &bytes, validation)?;
        warnings = found;
        let new = admit_update(kind, &old, object, status_only)?;
        store.replace(kind, new)
    })?;
    Ok(json_response(StatusCode::OK, &updated, &warnings))
}

/// Removes an object (for a namespace, everything in it too) and stops deleted pods.
fn remove(cluster: &Cluster, kind: Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
    if kind == Kind::Namespace && ["default", "kube-system", "kube-public"].contains(&name) {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    let mut deleted_pods = Vec::new();
    let removed = cluster.write(|store| {
        store
            .get(kind, namespace, name)
            .ok_or_else(|| ApiError::not_found(kind.plural(), name))?;
        if kind == Kind::Namespace {
            for inner in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
                let names: Vec<String> = store
                    .list(inner, Some(name))
                    .map(|o| meta_str(o, "name").to_owned())
                    .collect();
                for object_name in names {
                    if let Some(gone) = store.delete(inner, name, &object_name)
                        && inner == Kind::Pod
                    {
                        deleted_pods.push(meta_str(&gone, "uid").to_owned());
                    }
                }
            }
        }
        let gone = store
            .delete(kind, namespace, name)
            .ok_or_else(|| ApiError::not_found(kind.plural(), name))?;
        if kind == Kind::Pod {
            deleted_pods.push(meta_str(&gone, "uid").to_owned());
        }
        Ok::<_, ApiError>(gone)
    })?;
    for uid in deleted_pods {
        kill_pod(cluster, &uid);
    }
    let mut object = Value::clone(&removed);
    object["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
    object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    Ok(object)
}

fn delete(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    if !body.is_empty() {
        let options: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(uid) = options["preconditions"]["uid"].as_str() {
            let current = get(cluster, kind, namespace, name)?;
            if meta_str(&current, "uid") != uid {
                return Err(ApiError::conflict(kind.plural(), name));
            }
        }
    }
    ok(&remove(cluster, kind, namespace, name)?)
}

fn delete_collection(
    cluster: &Cluster,
    kind: Kind,
    namespace: Option<&str>,
    params: &Params,
) -> Result<Response, ApiError> {
    if kind == Kind::Namespace || kind == Kind::Node {
        return Err(ApiError::method_not_allowed());
    }
    let filter = Filter::new(kind, namespace, params)?;
    let targets: Vec<(String, String)> = cluster.read(|s| {
        s.list(kind, namespace)
            .filter(|o| filter.matches(o))
            .map(|o| {
                (
                    meta_str(o, "namespace").to_owned(),
                    meta_str(o, "name").to_owned(),
                )
            })
            .collect()
    });
    let mut items = Vec::new();
    for (ns, name) in targets {
        if let Ok(object) = remove(cluster, kind, &ns, &name) {
            items.push(object);
        }
    }
    ok(&json!({"kind": format!("{}List", kind.kind()), "apiVersion": "v1", "metadata": {}, "items": items}))
}

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

async fn logs(
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
        let logs = crate::util::lock(&cluster.logs);
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
                let logs = crate::util::lock(&cluster.logs);
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
