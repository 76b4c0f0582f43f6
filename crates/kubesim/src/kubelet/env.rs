//! A container's environment: `env` values with `$(VAR)` expansion, `valueFrom.secretKeyRef`,
//! `valueFrom.fieldRef` and `envFrom.secretRef`, resolved from the cluster's Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use serde_json::Value;

use super::pod::HOST_IP;
use crate::cluster::Cluster;
use crate::store::Kind;

/// Resolves a container's environment; `Err` carries the kubelet's `CreateContainerConfigError`
/// message.
pub(super) fn resolve_env(
    cluster: &Cluster,
    pod: &Pod,
    container: &Container,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let secret = |name: &str| -> Option<Secret> {
        cluster.read(|store| {
            store
                .get(Kind::Secret, &namespace, name)
                .and_then(|s| serde_json::from_value(Value::clone(s)).ok())
        })
    };
    let mut env = BTreeMap::new();
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.secret_ref {
            match secret(&reference.name) {
                Some(s) => {
                    for (key, value) in s.data.unwrap_or_default() {
                        env.insert(
                            format!("{}{key}", source.prefix.clone().unwrap_or_default()),
                            String::from_utf8_lossy(&value.0).into_owned(),
                        );
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", reference.name)),
            }
        }
        if source.config_map_ref.is_some() {
            return Err(
                "envFrom.configMapRef is not simulated by kubesim (ConfigMaps are not served)".into(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(reference) = &from.secret_key_ref {
                let found = secret(&reference.name);
                let value = found.as_ref().and_then(|s| s.data.as_ref()?.get(&reference.key));
                match (found.as_ref(), value) {
                    (_, Some(v)) => String::from_utf8_lossy(&v.0).into_owned(),
                    _ if reference.optional == Some(true) => continue,
                    (None, _) => return Err(format!("secret \"{}\" not found", reference.name)),
                    (Some(_), None) => {
                        return Err(format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            reference.key, reference.name
                        ));
                    }
                }
            } else if let Some(field) = &from.field_ref {
                let meta = &pod.metadata;
                match field.field_path.as_str() {
                    "metadata.name" => meta.name.clone().unwrap_or_default(),
                    "metadata.namespace" => namespace.clone(),
                    "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                    "spec.nodeName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                    "spec.serviceAccountName" => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_default(),
                    "status.hostIP" => HOST_IP.to_owned(),
                    "status.podIP" => cluster.read(|store| {
                        store
                            .get(Kind::Pod, &namespace, meta.name.as_deref().unwrap_or_default())
                            .and_then(|p| p["status"]["podIP"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| HOST_IP.to_owned())
                    }),
                    path => {
                        let label = path
                            .strip_prefix("metadata.labels['")
                            .and_then(|p| p.strip_suffix("']"));
                        let annotation = path
                            .strip_prefix("metadata.annotations['")
                            .and_then(|p| p.strip_suffix("']"));
                        match (label, annotation) {
                            (Some(key), _) => meta
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(key).cloned())
                                .unwrap_or_default(),
                            (_, Some(key)) => meta
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(key).cloned())
                                .unwrap_or_default(),
                            _ => return Err(format!("unsupported fieldRef {path:?}")),
                        }
                    }
                }
            } else {
                return Err(format!(
                    "env {}: only secretKeyRef and fieldRef are simulated by kubesim",
                    var.name
                ));
            }
        } else {
            expand(var.value.as_deref().unwrap_or_default(), &env)
        };
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` references as Kubernetes does (`$$` escapes, unknown references stay).
pub(super) fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(close) = rest.strip_prefix("$(").and_then(|r| r.find(')')) {
            let name = &rest[2..2 + close];
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[..3 + close]),
            }
            rest = &rest[3 + close..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}
