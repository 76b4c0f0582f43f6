//! Writes: create, update and patch (through admission), delete one object or a collection (a
//! namespace takes its objects with it, and deleted pods are stopped).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::read::{Filter, get};
use super::reply::{Params, check_json_content_type, json_response, ok};
use crate::cluster::Cluster;
use crate::kubelet::{PodRef, kill_pod, terminate_pod};
use crate::objects::{FieldValidation, admit_create, admit_update, decode, merge_patch};
use crate::status::ApiError;
use crate::store::{Kind, meta_str};
use crate::util::now_rfc3339;

/// `POST` on a collection (with `dryRun=All` admitted but not stored).
pub(super) fn create(
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

/// `PUT` on an object or its `status`.
#[allow(clippy::too_many_arguments)]
pub(super) fn update(
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

/// `PATCH` (merge or strategic merge, both applied as a JSON merge patch) on an object or its
/// `status`.
#[allow(clippy::too_many_arguments)]
pub(super) fn patch(
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

/// `DELETE` on one object, honouring a `preconditions.uid` in the DeleteOptions body. A pod whose
/// containers run is deleted gracefully, as Kubernetes does: it gets a `deletionTimestamp` (now
/// plus its grace period: `gracePeriodSeconds` of the DeleteOptions or query, else the pod's
/// `terminationGracePeriodSeconds`), stays listed while its processes get `SIGTERM` and, after
/// the grace period, `SIGKILL`, and goes once nothing of it runs. A grace period of 0, or a pod
/// that never started or has finished, goes at once.
pub(super) fn delete(
    cluster: &Arc<Cluster>,
    kind: Kind,
    namespace: &str,
    name: &str,
    params: &Params,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut grace: Option<i64> = None;
    if let Some(text) = params.get("gracePeriodSeconds") {
        grace = Some(text.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid gracePeriodSeconds {text:?}: expected a whole number"
            ))
        })?);
    }
    if !body.is_empty() {
        let options: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(uid) = options["preconditions"]["uid"].as_str() {
            let current = get(cluster, kind, namespace, name)?;
            if meta_str(&current, "uid") != uid {
                return Err(ApiError::conflict(kind.plural(), name));
            }
        }
        if let Some(seconds) = options["gracePeriodSeconds"].as_i64() {
            grace = Some(seconds);
        }
    }
    if kind == Kind::Pod {
        let pod = get(cluster, kind, namespace, name)?;
        if pod["metadata"]["deletionTimestamp"].is_string() {
            // Already terminating: Kubernetes answers with the object as it is.
            return ok(&pod);
        }
        let grace = grace
            .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .clamp(0, 24 * 3600);
        let uid = meta_str(&pod, "uid").to_owned();
        let running = crate::util::lock(&cluster.runtimes).contains_key(&uid)
            && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        if grace > 0 && running {
            let until = crate::util::now()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(grace))
                .unwrap_or_else(|_| crate::util::now());
            let marked = cluster
                .write(|store| {
                    store.modify(Kind::Pod, namespace, name, |p| {
                        p["metadata"]["deletionTimestamp"] =
                            json!(until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                        p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                        true
                    })
                })
                .ok_or_else(|| ApiError::not_found(kind.plural(), name))?;
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_owned();
            terminate_pod(
                cluster.clone(),
                PodRef {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    uid,
                    node,
                },
                std::time::Duration::from_secs(grace.unsigned_abs()),
            );
            return ok(&marked);
        }
    }
    ok(&remove(cluster, kind, namespace, name)?)
}

/// `DELETE` on a collection: removes every object the selectors match.
pub(super) fn delete_collection(
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
