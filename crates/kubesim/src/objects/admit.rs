//! Admitting creates and updates: metadata filled in (name, uid, timestamps), what an update may
//! change, kind-specific defaults, validation; and the JSON merge patch behind `PATCH`.

use serde_json::{Value, json};

use super::defaults::{
    default_node_status, default_pod, default_secret, default_service, object_mut, set_default,
};
use super::validate::validate;
use crate::status::{ApiError, Cause};
use crate::store::{Kind, Store};
use crate::util::{new_uid, now_rfc3339, random_suffix};

/// Fills metadata and defaults for a new object and validates it.
pub(crate) fn admit_create(
    kind: Kind,
    namespace: Option<&str>,
    mut object: Value,
    store: &Store,
) -> Result<Value, ApiError> {
    object["apiVersion"] = json!("v1");
    object["kind"] = json!(kind.kind());
    let meta = object_mut(&mut object, "metadata");
    let name = match meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => match meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(prefix) => format!("{prefix}{}", random_suffix()),
            None => {
                return Err(ApiError::invalid(
                    kind.kind(),
                    "",
                    vec![Cause {
                        message: "Required value: name or generateName is required".into(),
                        ..Cause::required("metadata.name")
                    }],
                ));
            }
        },
    };
    meta.insert("name".into(), json!(name));
    if kind.namespaced() {
        let Some(namespace) = namespace else {
            return Err(ApiError::bad_request(format!(
                "{} must be created in a namespace",
                kind.plural()
            )));
        };
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && !body_ns.is_empty()
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".into(), json!(namespace));
        if store.get(Kind::Namespace, "", namespace).is_none() {
            return Err(ApiError::not_found("namespaces", namespace));
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    match kind {
        Kind::Namespace => {
            object_mut(&mut object, "metadata")
                .entry("labels")
                .or_insert_with(|| json!({}))["kubernetes.io/metadata.name"] = json!(name);
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
        Kind::Node => default_node_status(&mut object),
        Kind::Pod => default_pod(&mut object),
        Kind::Service => default_service(&mut object, store),
        Kind::Secret => default_secret(&mut object)?,
        Kind::Event => {
            set_default(object_mut(&mut object, "metadata"), "name", json!(name));
            let event = object
                .as_object_mut()
                .ok_or_else(|| ApiError::internal("event is not an object"))?;
            set_default(event, "count", json!(1));
        }
    }
    validate(kind, &object)?;
    Ok(object)
}

/// Merges an update into the stored object: identity and (unless `status_only`) status come from
/// `old`; a `status_only` update takes only `status` from `new`.
pub(crate) fn admit_update(
    kind: Kind,
    old: &Value,
    mut new: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    let name = old["metadata"]["name"].as_str().unwrap_or_default();
    if new["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            new["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default()
    {
        return Err(ApiError::conflict(kind.plural(), name));
    }
    if status_only {
        let mut merged = old.clone();
        merged["status"] = new["status"].take();
        return Ok(merged);
    }
    new["apiVersion"] = json!("v1");
    new["kind"] = json!(kind.kind());
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generateName",
    ] {
        match old["metadata"].get(field) {
            Some(value) => new["metadata"][field] = value.clone(),
            None => {
                object_mut(&mut new, "metadata").remove(field);
            }
        }
    }
    if kind != Kind::Secret && kind != Kind::Event {
        new["status"] = old["status"].clone();
    }
    match kind {
        Kind::Pod => {
            default_pod(&mut new);
            new["status"] = old["status"].clone();
            let mut old_spec = old["spec"].clone();
            let mut new_spec = new["spec"].clone();
            // Like Kubernetes, allow changing images, activeDeadlineSeconds and adding tolerations only.
            for spec in [&mut old_spec, &mut new_spec] {
                for container in spec["containers"].as_array_mut().into_iter().flatten() {
                    container["image"] = Value::Null;
                }
                spec["activeDeadlineSeconds"] = Value::Null;
                spec["tolerations"] = Value::Null;
            }
            if old_spec != new_spec {
                return Err(ApiError::invalid(
                    "Pod",
                    name,
                    vec![Cause::forbidden(
                        "spec",
                        "pod updates may not change fields other than `spec.containers[*].image`, \
                         `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)",
                    )],
                ));
            }
        }
        Kind::Secret => default_secret(&mut new)?,
        Kind::Service => {
            if old["spec"]["clusterIP"] != Value::Null && new["spec"]["clusterIP"].is_null() {
                new["spec"]["clusterIP"] = old["spec"]["clusterIP"].clone();
                new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
            }
        }
        Kind::Namespace => new["spec"] = old["spec"].clone(),
        Kind::Node | Kind::Event => {}
    }
    validate(kind, &new)?;
    Ok(new)
}

/// RFC 7386 JSON merge patch (also used for strategic merge patches, whose list merging by key is
/// not simulated: lists are replaced whole).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
