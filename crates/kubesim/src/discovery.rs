//! Discovery documents: the version the simulator claims (`/version`, and each node's
//! `kubeletVersion`) and the core `v1` resource list (`/api/v1`).

use serde_json::{Value, json};

use crate::store::Kind;

/// The Kubernetes version the simulator claims, marked as a simulator.
pub(crate) const GIT_VERSION: &str = "v1.33.0-kubesim";

/// The `/version` answer.
pub(crate) fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": GIT_VERSION, "gitCommit": "kubesim", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none (kubesim is written in Rust)", "compiler": "rustc",
        "platform": "linux/amd64 kubesim (simulator)",
    })
}

/// The `/api/v1` resource list: every served kind, its `status` subresource and `pods/log`.
pub(crate) fn api_resources() -> Value {
    let mut resources = Vec::new();
    for kind in Kind::ALL {
        let verbs: &[&str] = if kind == Kind::Node || kind == Kind::Namespace {
            &["create", "delete", "get", "list", "patch", "update", "watch"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        };
        resources.push(json!({
            "name": kind.plural(), "singularName": kind.singular(), "namespaced": kind.namespaced(),
            "kind": kind.kind(), "verbs": verbs, "shortNames": kind.short_names(),
        }));
        if matches!(kind, Kind::Pod | Kind::Node | Kind::Namespace | Kind::Service) {
            resources.push(json!({"name": format!("{}/status", kind.plural()), "singularName": "", "namespaced": kind.namespaced(),
                                  "kind": kind.kind(), "verbs": ["get", "patch", "update"]}));
        }
    }
    resources.push(
        json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}),
    );
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
}
