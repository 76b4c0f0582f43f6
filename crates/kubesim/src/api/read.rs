//! Reads: get one object, list with label and field selectors, and watch from a resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::reply::{Params, bool_param, number_param, ok, streaming};
use crate::cluster::Cluster;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ChangeType, Kind, meta_str};
use crate::table::{table, wants_table};

/// One object, or `404 NotFound`.
pub(super) fn get(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<Arc<Value>, ApiError> {
    cluster
        .read(|s| s.get(kind, namespace, name).cloned())
        .ok_or_else(|| ApiError::not_found(kind.plural(), name))
}

/// Parsed selectors plus the namespace filter of a list or watch.
pub(super) struct Filter {
    kind: Kind,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub(super) fn new(kind: Kind, namespace: Option<&str>, params: &Params) -> Result<Self, ApiError> {
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

    pub(super) fn matches(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| !self.kind.namespaced() || meta_str(object, "namespace") == ns)
            && self.labels.matches(object["metadata"]["labels"].as_object())
            && self.fields.matches(object)
    }
}

/// `GET` on a collection: a `...List`, or a table when `kubectl` asks for one.
pub(super) fn list(
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
    let page = super::page::page(
        items,
        params,
        &format!("{}/{}", kind.plural(), namespace.unwrap_or("")),
        rv,
    )?;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((token, remaining)) = &page.next {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(remaining);
    }
    if wants_table(headers) {
        let mut answer = table(kind, &page.items, rv);
        answer["metadata"] = metadata;
        return ok(&answer);
    }
    ok(&json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": "v1",
        "metadata": metadata,
        "items": page.items.iter().map(|o| Value::clone(o)).collect::<Vec<_>>(),
    }))
}

fn watch_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// How a watch sends objects: as they are, or (`kubectl get -w`) as one-row `Table`s, the
/// column definitions only in the first, as the API server does.
struct WatchFormat {
    table: bool,
    columns_sent: bool,
}

impl WatchFormat {
    fn line(&mut self, event_type: &str, kind: Kind, object: &Arc<Value>, rv: u64) -> Bytes {
        if !self.table {
            return watch_line(event_type, object);
        }
        let mut row = table(kind, std::slice::from_ref(object), rv);
        if self.columns_sent {
            row["columnDefinitions"] = json!([]);
        }
        self.columns_sent = true;
        watch_line(event_type, &row)
    }
}

/// `GET ...?watch=true`: a stream of watch events from `resourceVersion` (initial `ADDED` events
/// when asked or when watching from the start), ending on `timeoutSeconds`, a closed client or
/// shutdown; an expired `resourceVersion` ends it with an `ERROR` event (`410 Gone`).
pub(super) fn watch(
    cluster: &Arc<Cluster>,
    kind: Kind,
    namespace: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let filter = Filter::new(kind, namespace, params)?;
    let mut format = WatchFormat {
        table: wants_table(headers),
        columns_sent: false,
    };
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
                    lines.push(format.line("ADDED", filter.kind, object, current));
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
                            lines.push(format.line(event, filter.kind, &change.object, change.rv));
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
