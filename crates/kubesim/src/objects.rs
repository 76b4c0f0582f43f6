//! Admission: how a request body becomes a stored object.
//!
//! Bodies are decoded through the `k8s-openapi` types (wrong types → `400 BadRequest` worded like the
//! API server), fields the types do not know are found by comparing the body with its typed round trip
//! (`fieldValidation=Strict`, the simulator's default, answers `400 BadRequest`; `Warn` answers with a
//! `Warning` header; `Ignore` drops them), then metadata is filled in, kind-specific defaults applied
//! (as the real API server's defaulting and admission plugins do) and the object validated (`422
//! Invalid` with field causes).
//!
//! The simulator defaults to `Strict` where Kubernetes 1.27+ defaults to `Warn`, so that a typo in a
//! test manifest fails loudly instead of being silently ignored.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::config::{NodeSpec, is_dns_label, is_dns_subdomain};
use crate::discovery::GIT_VERSION;
use crate::quantity::parse_milli;
use crate::scheduler::{PodRequirements, TaintEffect};
use crate::selector::{valid_label_key, valid_label_value};
use crate::status::{ApiError, Cause};
use crate::store::{Kind, Store};
use crate::util::{new_uid, now_rfc3339, random_suffix};

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub(crate) fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("Strict") | Some("") => Ok(Self::Strict),
            Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}; supported values: \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(body: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Paths of fields present (and not null) in `input` but absent from its typed round trip.
fn unknown_fields(input: &Value, output: &Value, path: &str, found: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            for (key, value) in input {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match output.get(key) {
                    None if !value.is_null() => found.push(child),
                    Some(out) => unknown_fields(value, out, &child, found),
                    None => {}
                }
            }
        }
        (Value::Array(input), Value::Array(output)) => {
            for (i, (a, b)) in input.iter().zip(output).enumerate() {
                unknown_fields(a, b, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Decodes a request body for `kind`: returns the normalized object and warnings.
pub(crate) fn decode(
    kind: Kind,
    body: &[u8],
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{0} in version \"v1\" cannot be handled as a {0}: {why}",
            kind.kind()
        ))
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| cannot(format!("json parse error: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(cannot("the body must be a JSON object".into()));
    };
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && api_version != "v1"
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (v1)"
        )));
    }
    if let Some(body_kind) = map.get("kind").and_then(Value::as_str)
        && body_kind != kind.kind()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({body_kind}) does not match the expected kind ({})",
            kind.kind()
        )));
    }
    use k8s_openapi::api::core::v1 as core;
    let normalized = match kind {
        Kind::Namespace => roundtrip::<core::Namespace>(&value),
        Kind::Node => roundtrip::<core::Node>(&value),
        Kind::Pod => roundtrip::<core::Pod>(&value),
        Kind::Service => roundtrip::<core::Service>(&value),
        Kind::Secret => roundtrip::<core::Secret>(&value),
        Kind::Event => roundtrip::<core::Event>(&value),
    }
    .map_err(cannot)?;
    let mut unknown = Vec::new();
    unknown_fields(&value, &normalized, "", &mut unknown);
    let unknown: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
    match validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            Err(cannot(format!("strict decoding error: {}", unknown.join(", "))))
        }
        FieldValidation::Warn => Ok((normalized, unknown)),
        _ => Ok((normalized, Vec::new())),
    }
}

fn object_mut<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !value[key].is_object() {
        value[key] = json!({});
    }
    match value.get_mut(key) {
        Some(Value::Object(map)) => map,
        _ => unreachable!("just made an object"),
    }
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_owned(), value);
    }
}

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

fn default_pod(pod: &mut Value) {
    let spec = object_mut(pod, "spec");
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(spec, "priority", json!(0));
    set_default(spec, "serviceAccountName", json!("default"));
    if spec.get("tolerations").is_none() {
        // What the DefaultTolerationSeconds admission plugin adds.
        spec.insert(
            "tolerations".into(),
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]),
        );
    }
    for list in ["initContainers", "containers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = container.as_object_mut() else {
                continue;
            };
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let tag_latest = !image.contains(':') || image.ends_with(":latest");
            set_default(
                c,
                "imagePullPolicy",
                json!(if tag_latest && !image.contains('@') {
                    "Always"
                } else {
                    "IfNotPresent"
                }),
            );
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            let resources = c.entry("resources").or_insert_with(|| json!({}));
            // Requests default to limits (API defaulting).
            if let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() {
                let requests = resources
                    .as_object_mut()
                    .map(|r| r.entry("requests").or_insert_with(|| json!({})));
                if let Some(Value::Object(requests)) = requests {
                    for (name, quantity) in limits {
                        requests.entry(name).or_insert(quantity);
                    }
                }
            }
        }
    }
    if pod["status"]["phase"].is_null() {
        let qos = qos_class(pod);
        pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| pod["spec"][*l].as_array().into_iter().flatten())
        .collect();
    let is_empty = |v: &Value| v.as_object().is_none_or(Map::is_empty);
    if containers
        .iter()
        .all(|c| is_empty(&c["resources"]["requests"]) && is_empty(&c["resources"]["limits"]))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        ["cpu", "memory"]
            .iter()
            .all(|r| !limits[*r].is_null() && requests[*r] == limits[*r])
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

fn default_service(service: &mut Value, store: &Store) {
    let spec = object_mut(service, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let used: std::collections::BTreeSet<String> = store
            .list(Kind::Service, None)
            .filter_map(|s| s["spec"]["clusterIP"].as_str().map(str::to_owned))
            .collect();
        let ip = (1..65_000u32)
            .map(|n| format!("10.96.{}.{}", n / 250, n % 250 + 1))
            .find(|ip| !used.contains(ip));
        if let Some(ip) = ip {
            spec.insert("clusterIP".into(), json!(ip));
        }
    }
    let ip = spec["clusterIP"].clone();
    spec.insert("clusterIPs".into(), json!([ip]));
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = port.as_object_mut() {
            set_default(p, "protocol", json!("TCP"));
            let number = p.get("port").cloned().unwrap_or(Value::Null);
            set_default(p, "targetPort", number);
        }
    }
    service["status"] = json!({"loadBalancer": {}});
}

fn default_secret(secret: &mut Value) -> Result<(), ApiError> {
    use k8s_openapi::ByteString;
    let string_data = secret.as_object_mut().and_then(|s| s.remove("stringData"));
    if let Some(Value::Object(string_data)) = string_data {
        let data = object_mut(secret, "data");
        for (key, value) in string_data {
            let bytes = ByteString(value.as_str().unwrap_or_default().as_bytes().to_vec());
            data.insert(
                key,
                serde_json::to_value(bytes).map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
    }
    if let Some(s) = secret.as_object_mut() {
        set_default(s, "type", json!("Opaque"));
    }
    Ok(())
}

fn default_node_status(node: &mut Value) {
    let name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let meta = node["metadata"].as_object_mut();
    if let Some(meta) = meta {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            set_default(labels, "kubernetes.io/hostname", json!(name));
            set_default(labels, "kubernetes.io/os", json!("linux"));
            set_default(labels, "kubernetes.io/arch", json!("amd64"));
            set_default(labels, "beta.kubernetes.io/os", json!("linux"));
            set_default(labels, "beta.kubernetes.io/arch", json!("amd64"));
        }
    }
    let now = now_rfc3339();
    let status = object_mut(node, "status");
    let capacity = status
        .get("capacity")
        .or(status.get("allocatable"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    set_default(status, "capacity", capacity.clone());
    set_default(status, "allocatable", capacity);
    if let Some(Value::Object(capacity)) = status.get_mut("capacity") {
        set_default(capacity, "pods", json!("110"));
    }
    if let Some(Value::Object(allocatable)) = status.get_mut("allocatable") {
        set_default(allocatable, "pods", json!("110"));
    }
    set_default(
        status,
        "conditions",
        json!([
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubesim simulated kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}
        ]),
    );
    set_default(
        status,
        "addresses",
        json!([{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}]),
    );
    set_default(
        status,
        "nodeInfo",
        json!({
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "kubesim", "osImage": "kubesim simulated node (processes run on the host)",
            "containerRuntimeVersion": "kubesim://0.1.0", "kubeletVersion": GIT_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"
        }),
    );
}

/// The node object for one entry of a clusters file.
pub(crate) fn node_from_spec(spec: &NodeSpec, name: &str) -> Value {
    let allocatable: Map<String, Value> = spec
        .allocatable
        .iter()
        .map(|(k, q)| (k.clone(), json!(q.as_str())))
        .collect();
    let taints: Vec<Value> = spec
        .taints
        .iter()
        .map(|t| {
            let mut taint = json!({"key": t.key, "effect": t.effect});
            if !t.value.is_empty() {
                taint["value"] = json!(t.value);
            }
            taint
        })
        .collect();
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": spec.labels, "uid": new_uid(), "creationTimestamp": now_rfc3339()},
        "spec": {},
        "status": {"capacity": allocatable, "allocatable": allocatable},
    });
    if !taints.is_empty() {
        node["spec"]["taints"] = json!(taints);
    }
    default_node_status(&mut node);
    node
}

fn validate(kind: Kind, object: &Value) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    let name_ok = match kind {
        Kind::Namespace | Kind::Service => is_dns_label(name),
        _ => is_dns_subdomain(name),
    };
    if !name_ok {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character",
        ));
    }
    for (key, value) in object["metadata"]["labels"].as_object().into_iter().flatten() {
        if !valid_label_key(key) {
            causes.push(Cause::invalid(
                "metadata.labels",
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
        if !value.as_str().is_some_and(valid_label_value) {
            causes.push(Cause::invalid(
                "metadata.labels",
                value.as_str().unwrap_or_default(),
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
    }
    match kind {
        Kind::Pod => validate_pod(object, &mut causes),
        Kind::Service => {
            for (i, port) in object["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !port["port"].as_i64().is_some_and(|p| (1..=65_535).contains(&p)) {
                    causes.push(Cause::invalid(
                        format!("spec.ports[{i}].port"),
                        &port["port"].to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        Kind::Node => {
            for (i, taint) in object["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let effect = taint["effect"].as_str().unwrap_or_default();
                if TaintEffect::parse(effect).is_none() {
                    causes.push(Cause::not_supported(
                        format!("spec.taints[{i}].effect"),
                        effect,
                        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                    ));
                }
            }
        }
        Kind::Namespace | Kind::Secret | Kind::Event => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind.kind(), name, causes))
    }
}

fn validate_pod(pod: &Value, causes: &mut Vec<Cause>) {
    let spec = &pod["spec"];
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        causes.push(Cause::required("spec.containers"));
    }
    let mut names = std::collections::BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let field = format!("spec.{list}[{i}]");
            let name = c["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{field}.name")));
            } else if !is_dns_label(name) {
                causes.push(Cause::invalid(
                    format!("{field}.name"),
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                ));
            } else if !names.insert(name.to_owned()) {
                causes.push(Cause::duplicate(format!("{field}.name"), name));
            }
            if c["image"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{field}.image")));
            }
            let policy = c["imagePullPolicy"].as_str().unwrap_or_default();
            if !["Always", "IfNotPresent", "Never"].contains(&policy) {
                causes.push(Cause::not_supported(
                    format!("{field}.imagePullPolicy"),
                    policy,
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
            for which in ["requests", "limits"] {
                for (resource, quantity) in c["resources"][which].as_object().into_iter().flatten() {
                    let text = quantity.as_str().unwrap_or_default();
                    match parse_milli(text) {
                        Err(_) => causes.push(Cause::invalid(
                            format!("{field}.resources.{which}[{resource}]"),
                            text,
                            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                        )),
                        Ok(m) if m < 0 => causes.push(Cause::invalid(format!("{field}.resources.{which}[{resource}]"), text, "must be greater than or equal to 0")),
                        Ok(m) if which == "requests" => {
                            let limit = c["resources"]["limits"][resource].as_str().and_then(|l| parse_milli(l).ok());
                            if limit.is_some_and(|l| m > l) {
                                causes.push(Cause::invalid(format!("{field}.resources.requests"), text, &format!("must be less than or equal to {resource} limit")));
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
            for (j, env) in c["env"].as_array().into_iter().flatten().enumerate() {
                if env["name"].as_str().is_none_or(str::is_empty) {
                    causes.push(Cause::required(format!("{field}.env[{j}].name")));
                }
            }
            for (j, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
                if !port["containerPort"]
                    .as_i64()
                    .is_some_and(|p| (1..=65_535).contains(&p))
                {
                    causes.push(Cause::invalid(
                        format!("{field}.ports[{j}].containerPort"),
                        &port["containerPort"].to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    let restart = spec["restartPolicy"].as_str().unwrap_or_default();
    if !["Always", "OnFailure", "Never"].contains(&restart) {
        causes.push(Cause::not_supported(
            "spec.restartPolicy",
            restart,
            &["Always", "OnFailure", "Never"],
        ));
    }
    for (key, value) in spec["nodeSelector"].as_object().into_iter().flatten() {
        if !valid_label_key(key) || !value.as_str().is_some_and(valid_label_value) {
            causes.push(Cause::invalid(
                "spec.nodeSelector",
                key,
                "must be a valid label key and value",
            ));
        }
    }
    for (i, t) in spec["tolerations"].as_array().into_iter().flatten().enumerate() {
        let operator = t["operator"].as_str().unwrap_or("Equal");
        if !["Equal", "Exists"].contains(&operator) {
            causes.push(Cause::not_supported(
                format!("spec.tolerations[{i}].operator"),
                operator,
                &["Equal", "Exists"],
            ));
        }
        if operator == "Exists" && t["value"].as_str().is_some_and(|v| !v.is_empty()) {
            causes.push(Cause::invalid(
                format!("spec.tolerations[{i}].operator"),
                operator,
                "value must be empty when `operator` is 'Exists'",
            ));
        }
        let effect = t["effect"].as_str().unwrap_or_default();
        if !effect.is_empty() && TaintEffect::parse(effect).is_none() {
            causes.push(Cause::not_supported(
                format!("spec.tolerations[{i}].effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    if causes.is_empty()
        && let Ok(pod) = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(pod.clone())
        && let Err(why) = PodRequirements::from_pod(&pod)
    {
        causes.push(Cause::invalid("spec.affinity", "", &why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_pod(body: &str) -> Result<Value, ApiError> {
        let mut store = Store::default();
        store
            .create(Kind::Namespace, json!({"metadata": {"name": "default"}}))
            .unwrap();
        let (object, _) = decode(Kind::Pod, body.as_bytes(), FieldValidation::Strict)?;
        admit_create(Kind::Pod, Some("default"), object, &store)
    }

    #[test]
    fn pods_get_defaults_and_requests_from_limits() {
        let pod = create_pod(
            r#"{"metadata":{"generateName":"job-"},"spec":{"containers":[{"name":"c","image":"busybox:1.36","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}"#,
        )
        .unwrap();
        assert!(pod["metadata"]["name"].as_str().unwrap().starts_with("job-"));
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"],
            "1"
        );
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn bad_pods_are_rejected_with_kubernetes_wording() {
        let err =
            create_pod(r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}"#).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                422,
                "Pod \"p\" is invalid: spec.containers[0].image: Required value"
            )
        );
        let err = create_pod(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x","colour":1}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .contains("strict decoding error: unknown field \"spec.containers[0].colour\""),
            "{}",
            err.message
        );
        let err = create_pod(r#"{"metadata":{"name":"p"},"spec":{"containers":"nope"}}"#).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("Pod in version \"v1\" cannot be handled as a Pod:"),
            "{}",
            err.message
        );
        let err = create_pod(r#"{"metadata":{"name":"p"#).unwrap_err();
        assert_eq!(err.code, 400);
        let err = create_pod(r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x","resources":{"requests":{"cpu":"lots"}}}]}}"#).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("spec.containers[0].resources.requests[cpu]"),
            "{}",
            err.message
        );
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut target, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(target, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
