//! One simulated cluster at run time: its store, change notifications, and the scheduling loop that
//! binds pending pods using the pure [`crate::scheduler`] core.
//!
//! Every write goes through [`Cluster::write`], which wakes watches, the scheduler and the kubelet
//! after the store lock is released.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::conditions::set_condition;
use crate::config::ClusterSpec;
use crate::events::record_event;
use crate::objects::node_from_spec;
use crate::runtime::{ContainerLogs, PodRuntime};
use crate::scheduler::{NodeInfo, PodRequirements, Scheduler};
use crate::store::{Kind, Store, meta_str};
use crate::util::{lock, new_uid, now_rfc3339};

/// Namespaces every cluster starts with.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// A simulated cluster.
pub(crate) struct Cluster {
    pub name: String,
    store: Mutex<Store>,
    /// The latest resourceVersion; watches wait on it.
    pub changes: watch::Sender<u64>,
    scheduler_wake: Notify,
    pub kubelet_wake: Notify,
    /// Container logs by (pod uid, container name).
    pub logs: Mutex<HashMap<(String, String), ContainerLogs>>,
    /// Bumped whenever a log grows or ends; log followers wait on it.
    pub log_changes: watch::Sender<u64>,
    /// Pods the kubelet has started, by uid.
    pub runtimes: Mutex<HashMap<String, PodRuntime>>,
    /// Becomes `true` when the simulator shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// `host:port` of the server, for discovery answers.
    pub server_address: String,
    /// Image patterns that fail to pull ([`ClusterSpec::unpullable_images`]).
    pub unpullable_images: Vec<String>,
    /// How long a bound pod waits before its containers start ([`ClusterSpec::container_start_delay`]).
    pub container_start_delay: Option<std::time::Duration>,
}

impl Cluster {
    pub(crate) fn new(
        spec: &ClusterSpec,
        shutdown: watch::Receiver<bool>,
        server_address: String,
        history_limit: usize,
    ) -> Arc<Self> {
        let mut store = Store::with_history_limit(history_limit);
        for namespace in INITIAL_NAMESPACES {
            let object = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "uid": new_uid(), "creationTimestamp": now_rfc3339(),
                             "labels": {"kubernetes.io/metadata.name": namespace}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
            });
            // The store is empty, so these cannot collide.
            let _ = store.create(Kind::Namespace, object);
        }
        for node in &spec.nodes {
            for name in node.node_names() {
                let _ = store.create(Kind::Node, node_from_spec(node, &name));
            }
        }
        let rv = store.resource_version();
        Arc::new(Self {
            name: spec.name.clone(),
            store: Mutex::new(store),
            changes: watch::Sender::new(rv),
            scheduler_wake: Notify::new(),
            kubelet_wake: Notify::new(),
            logs: Mutex::new(HashMap::new()),
            log_changes: watch::Sender::new(0),
            runtimes: Mutex::new(HashMap::new()),
            shutdown,
            server_address,
            unpullable_images: spec.unpullable_images.clone(),
            container_start_delay: spec.container_start_delay.map(std::time::Duration::from_secs_f64),
        })
    }

    /// Whether `image` matches one of [`Self::unpullable_images`] (`*` matches any text).
    pub(crate) fn cannot_pull(&self, image: &str) -> bool {
        self.unpullable_images
            .iter()
            .any(|pattern| wildcard_match(pattern, image))
    }

    /// Reads the store.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
    }

    /// Writes the store, then wakes watches, the scheduler and the kubelet if anything changed.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (result, before, after) = {
            let mut store = lock(&self.store);
            let before = store.resource_version();
            let result = f(&mut store);
            (result, before, store.resource_version())
        };
        if after != before {
            self.changes.send_replace(after);
            self.scheduler_wake.notify_one();
            self.kubelet_wake.notify_one();
        }
        result
    }

    /// Bumps the log change counter so followers look again.
    pub(crate) fn logs_changed(&self) {
        self.log_changes.send_modify(|n| *n += 1);
    }
}

fn is_terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// One scheduling pass: binds every pending pod that fits, marks the rest unschedulable.
pub(crate) fn schedule_pending(cluster: &Cluster) {
    cluster.write(|store| {
        let mut nodes = Vec::new();
        for node in store.list(Kind::Node, None) {
            match serde_json::from_value::<Node>(Value::clone(node))
                .map_err(|e| e.to_string())
                .and_then(|n| NodeInfo::from_node(&n))
            {
                Ok(info) => nodes.push(info),
                Err(err) => {
                    tracing::warn!(node = meta_str(node, "name"), %err, "node ignored by the scheduler")
                }
            }
        }
        let mut scheduler = Scheduler::new(nodes);
        let mut pending = Vec::new();
        for pod in store.list(Kind::Pod, None) {
            if is_terminal(pod) {
                continue;
            }
            let Ok(typed) = serde_json::from_value::<Pod>(Value::clone(pod)) else {
                continue;
            };
            let Ok(requirements) = PodRequirements::from_pod(&typed) else {
                continue;
            };
            let spec = typed.spec.unwrap_or_default();
            match spec.node_name.as_deref() {
                Some(node) if !node.is_empty() => {
                    if let Some(index) = scheduler.node_index(node) {
                        scheduler.assume(index, &requirements);
                    }
                }
                _ if spec.scheduler_name.as_deref().unwrap_or("default-scheduler") == "default-scheduler" => {
                    let created = meta_str(pod, "creationTimestamp").to_owned();
                    let priority = spec.priority.unwrap_or(0);
                    pending.push((-priority, created, pod.clone(), requirements));
                }
                _ => {}
            }
        }
        pending.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, _, pod, requirements) in pending {
            let (namespace, name) = (
                meta_str(&pod, "namespace").to_owned(),
                meta_str(&pod, "name").to_owned(),
            );
            match scheduler.schedule(&requirements) {
                Ok(index) => {
                    let node = scheduler.nodes()[index].name.clone();
                    let bound = store.modify(Kind::Pod, &namespace, &name, |p| {
                        p["spec"]["nodeName"] = json!(node);
                        set_condition(p, "PodScheduled", "True", None, None);
                        true
                    });
                    if let Some(bound) = bound {
                        let message = format!("Successfully assigned {namespace}/{name} to {node}");
                        record_event(
                            store,
                            &bound,
                            "Normal",
                            "Scheduled",
                            &message,
                            "default-scheduler",
                            None,
                        );
                    }
                }
                Err(fit_error) => {
                    let message = fit_error.to_string();
                    let updated = store.modify(Kind::Pod, &namespace, &name, |p| {
                        let current = p["status"]["conditions"]
                            .as_array()
                            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
                            .map(|c| c["message"].as_str() == Some(message.as_str()));
                        if current == Some(true) {
                            return false;
                        }
                        set_condition(p, "PodScheduled", "False", Some("Unschedulable"), Some(&message));
                        true
                    });
                    if let Some(updated) = updated {
                        record_event(
                            store,
                            &updated,
                            "Warning",
                            "FailedScheduling",
                            &message,
                            "default-scheduler",
                            None,
                        );
                    }
                }
            }
        }
    });
}

/// Runs scheduling passes whenever the cluster changes, until shutdown.
pub(crate) async fn scheduler_loop(cluster: Arc<Cluster>) {
    let mut shutdown = cluster.shutdown.clone();
    loop {
        schedule_pending(&cluster);
        tokio::select! {
            _ = cluster.scheduler_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// `text` matches `pattern`, where `*` stands for any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn image_patterns() {
        for (pattern, image, matches) in [
            ("registry.invalid/*", "registry.invalid/private:1", true),
            ("registry.invalid/*", "docker.io/registry.invalid/x", false),
            ("*:broken", "vllm/vllm-openai:broken", true),
            ("*:broken", "vllm/vllm-openai:latest", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("exact:1", "exact:1", true),
            ("exact:1", "exact:10", false),
            ("*", "anything", true),
        ] {
            assert_eq!(wildcard_match(pattern, image), matches, "{pattern} ~ {image}");
        }
    }
}
