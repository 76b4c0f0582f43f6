//! The `kubernetes` backend (feature `kubernetes`): runs tasks as pods on the kubeconfig contexts
//! listed in `SKYPLAN_HOME/config.yaml` (default: the current context).
//!
//! - Offers come from live state ([`capacity`]): per context (the offer's region), per GPU model,
//!   one offer per GPU count that fits a single node now, plus CPU offers, priced by config
//!   (default 0), and capacity rows with the free GPUs.
//! - `provision` first checks the task's labels and the live state (a full context answers
//!   `InsufficientCapacity` at once, without creating anything), then creates the objects of
//!   [`build_manifests`] — a Secret, one Pod per node, Services — for the placement's
//!   [`PodShape`] and the GPU node label [`gpu_node_label`] picks, the same function and inputs
//!   `skyplan render` prints (see [`render`]), and waits until every pod is bound. A `FailedScheduling` for
//!   resources is `InsufficientCapacity` at once; any other reason to stay unbound (a taint, an
//!   affinity) is `Unschedulable` after `provision_timeout` with the scheduler's message. Either
//!   way what was created is deleted first, and the launcher blocks the context.
//! - `status` is the pods' phases; `logs` stream from the pod log API (secret values scrubbed);
//!   `teardown` deletes everything labeled with the cluster name in every configured context.
//!
//! Kubernetes API errors map to [`ProviderError`] in [`map_error`] and nowhere else.

pub mod capacity;
mod client;
pub mod config;
mod credential;
mod labels;
pub mod render;
mod shape;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::Kubeconfig;
use serde_json::Value;

pub use capacity::{
    GpuLabel, NodeFree, context_offers, detect_gpu, fit_error, free_capacity, gpu_node_label,
};
pub use client::check_server_url;
pub use config::{KubernetesConfig, Pricing, check_namespace, kubeconfig_paths};

use client::{ClientCell, KubeconfigSources};
pub use labels::{RESERVED_PREFIX, check_labels};
pub use render::{Manifests, RenderOptions, build_manifests, render_manifests};
pub use shape::{DEFAULT_GPU_LABEL, PodShape, task_placement};

use crate::{
    CLUSTER_LABEL, Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary,
    JobState, JobStatus, LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider, ProviderError,
    ProvisionRequest, Scope, TeardownOutcome,
};

/// The provider id, and the cloud name of its offers.
pub const KUBERNETES: &str = "kubernetes";

/// Runs tasks as pods on Kubernetes clusters (kubeconfig contexts).
pub struct KubernetesProvider {
    config: KubernetesConfig,
    kubeconfig: Kubeconfig,
    sources: KubeconfigSources,
    contexts: Vec<String>,
    clients: BTreeMap<String, ClientCell>,
    /// What each provision under way waits for (see [`Provider::wait_note`]).
    waits: std::sync::Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("contexts", &self.contexts)
            .field("namespace", &self.config.namespace())
            .field("provision_timeout", &self.config.provision_timeout())
            .field("request_timeout", &self.config.request_timeout())
            .finish_non_exhaustive()
    }
}

impl KubernetesProvider {
    /// A provider for `config` over `kubeconfig`. Fails when a listed context is not in the
    /// kubeconfig, or when none is listed and the kubeconfig has no current context, or when a
    /// context's cluster or its `server:` URL is unusable (see [`check_server_url`]).
    pub fn new(config: KubernetesConfig, kubeconfig: Kubeconfig) -> Result<Self, ProviderError> {
        Self::with_sources(config, kubeconfig, KubeconfigSources::default())
    }

    fn with_sources(
        config: KubernetesConfig,
        kubeconfig: Kubeconfig,
        sources: KubeconfigSources,
    ) -> Result<Self, ProviderError> {
        let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        let contexts = if config.contexts.is_empty() {
            match kubeconfig.current_context.as_deref() {
                Some(current) if !current.is_empty() => vec![current.to_string()],
                _ => {
                    return Err(ProviderError::InvalidRequest {
                        message: format!(
                            "{}: no current-context, and config.yaml lists no kubernetes.contexts (expected one of them to name a context)",
                            sources.file(None)
                        ),
                    });
                }
            }
        } else {
            config.contexts.clone()
        };
        for context in &contexts {
            if !known.contains(&context.as_str()) {
                return Err(ProviderError::InvalidRequest {
                    message: format!(
                        "kubernetes: context {context:?} ({}) is not in {}; it has [{}]",
                        if config.contexts.is_empty() {
                            "its current-context"
                        } else {
                            "kubernetes.contexts in config.yaml"
                        },
                        sources.file(None),
                        known
                            .iter()
                            .map(|k| client::shorten(k))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        for context in &contexts {
            client::check_context(&kubeconfig, &sources, context)?;
        }
        // A client for every kubeconfig context, built on first use: launches plan only on the
        // configured ones, but a cluster recorded on another context is still found there.
        let clients = kubeconfig
            .contexts
            .iter()
            .map(|c| (c.name.clone(), ClientCell::default()))
            .collect();
        Ok(KubernetesProvider {
            config,
            kubeconfig,
            sources,
            contexts,
            clients,
            waits: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The provider configured for `home`: the `kubernetes:` section of `home/config.yaml` (or
    /// defaults) and the kubeconfig found as kubectl finds it (`KUBECONFIG`, then
    /// `~/.kube/config`; `kubernetes.kubeconfig` overrides both). `Ok(None)` when there is
    /// neither a `kubernetes:` section nor a kubeconfig; an error when one is there but unusable.
    pub fn from_home(home: &Path) -> Result<Option<Self>, ProviderError> {
        let section = KubernetesConfig::load(home)?;
        let paths = match section.as_ref().and_then(|c| c.kubeconfig.clone()) {
            Some(path) => vec![path],
            None => kubeconfig_paths(),
        };
        let merged = client::load_kubeconfigs(&paths)?;
        match (section, merged) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ProviderError::InvalidRequest {
                message: format!(
                    "kubernetes is configured in config.yaml but no kubeconfig was found (looked at {})",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            (section, Some((kubeconfig, sources))) => {
                Self::with_sources(section.unwrap_or_default(), kubeconfig, sources).map(Some)
            }
        }
    }

    /// The contexts this provider uses, in order.
    pub fn contexts(&self) -> &[String] {
        &self.contexts
    }

    /// The configuration in use.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    async fn client(&self, context: &str) -> Result<kube::Client, ProviderError> {
        let cell = self
            .clients
            .get(context)
            .ok_or_else(|| ProviderError::InvalidRequest {
                message: format!(
                    "kubernetes context {:?} is not in {} (configured: {})",
                    client::shorten(context),
                    self.sources.file(None),
                    self.contexts.join(", ")
                ),
            })?;
        cell.get(
            &self.kubeconfig,
            &self.sources,
            context,
            self.config.request_timeout(),
        )
        .await
    }

    async fn pods(&self, context: &str) -> Result<Api<Pod>, ProviderError> {
        Ok(Api::namespaced(
            self.client(context).await?,
            self.config.namespace(),
        ))
    }

    /// Free capacity of every schedulable node of `context` now.
    pub async fn context_capacity(&self, context: &str) -> Result<Vec<NodeFree>, ProviderError> {
        let client = self.client(context).await?;
        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| map_error(context, "listing nodes", e))?;
        let pods = Api::<Pod>::all(client)
            .list(&ListParams::default())
            .await
            .map_err(|e| map_error(context, "listing pods", e))?;
        Ok(free_capacity(&nodes.items, &pods.items))
    }

    async fn cluster_pods(&self, context: &str, cluster: &str) -> Result<Vec<Pod>, ProviderError> {
        let selector = format!("{CLUSTER_LABEL}={cluster}");
        let mut pods = self
            .pods(context)
            .await?
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| map_error(context, "listing pods", e))?
            .items;
        pods.sort_by_key(rank_of);
        Ok(pods)
    }

    /// Where to look for `cluster`: the context it was recorded on first, then the configured
    /// ones. A recorded context that is no longer configured is still asked (and its error says
    /// so), so that a cluster is never reported gone only because the setting changed.
    fn contexts_for(&self, cluster: ClusterRef<'_>) -> Vec<String> {
        let mut contexts: Vec<String> = cluster.region.map(str::to_string).into_iter().collect();
        contexts.extend(
            self.contexts
                .iter()
                .filter(|c| Some(c.as_str()) != cluster.region)
                .cloned(),
        );
        contexts
    }

    /// The context holding `cluster`'s pods, and the pods by rank.
    async fn find_cluster(
        &self,
        cluster: ClusterRef<'_>,
    ) -> Result<Option<(String, Vec<Pod>)>, ProviderError> {
        for context in self.contexts_for(cluster) {
            let pods = self.cluster_pods(&context, cluster.name).await?;
            if !pods.is_empty() {
                return Ok(Some((context, pods)));
            }
        }
        Ok(None)
    }

    /// Deletes every pod, service and secret labeled with `cluster` in `context`; whether any
    /// existed.
    async fn delete_in(&self, context: &str, cluster: &str) -> Result<bool, ProviderError> {
        let client = self.client(context).await?;
        let namespace = self.config.namespace();
        let selector = ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}"));
        let mut found = false;
        macro_rules! delete_all {
            ($kind:ty, $what:literal) => {{
                let api: Api<$kind> = Api::namespaced(client.clone(), namespace);
                let items = api
                    .list_metadata(&selector)
                    .await
                    .map_err(|e| map_error(context, concat!("listing ", $what), e))?;
                for item in items.items {
                    let Some(name) = item.metadata.name else {
                        continue;
                    };
                    found = true;
                    match api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(status)) if status.code == 404 => {}
                        Err(err) => return Err(map_error(context, concat!("deleting ", $what), err)),
                    }
                }
            }};
        }
        delete_all!(Pod, "pods");
        delete_all!(Service, "services");
        delete_all!(Secret, "secrets");
        Ok(found)
    }

    fn handle(cluster: &str, request_id: &str, pods: usize) -> ClusterHandle {
        ClusterHandle {
            cluster: cluster.to_string(),
            provider: KUBERNETES.to_string(),
            request_id: request_id.to_string(),
            nodes: node_infos(cluster, pods as u32),
            job_id: Some(1),
        }
    }

    /// Checks the live state, creates the objects and waits for the pods to be bound.
    async fn create(
        &self,
        request: &ProvisionRequest,
        context: &str,
    ) -> Result<ClusterHandle, ProviderError> {
        let placement = &request.placement;
        let nodes = self.context_capacity(context).await?;
        let shape = PodShape::for_placement(placement);
        let model = shape.accelerator.as_deref();
        let gpu_label = match model {
            None => None,
            Some(model) => match gpu_node_label(&nodes, model) {
                Some(label) => Some(label),
                None => {
                    return Err(ProviderError::InsufficientCapacity {
                        scope: Scope::Zone,
                        message: format!("context {context} has no {model} nodes"),
                    });
                }
            },
        };
        let vcpus = shape.vcpus.unwrap_or(0.0);
        let memory = shape.memory_gib.unwrap_or(0.0);
        if let Some(reason) = fit_error(&nodes, model, shape.gpus, vcpus, memory) {
            let free: f64 = nodes
                .iter()
                .filter(|n| model.is_some_and(|m| n.gpu.as_ref().is_some_and(|g| g.model == m)))
                .map(|n| n.free_gpus)
                .sum();
            let what = match model {
                Some(m) => format!(", {} free {m} GPUs", skyplan_catalog::format_count(free)),
                None => String::new(),
            };
            return Err(ProviderError::InsufficientCapacity {
                scope: Scope::Zone,
                message: format!("context {context}: {reason} (live state{what})"),
            });
        }
        let shape = shape.with_gpu_label(gpu_label);
        let mut task = request.task.clone();
        task.num_nodes = placement.num_nodes.max(task.num_nodes).max(1);
        let manifests = build_manifests(
            &task,
            &request.cluster,
            self.config.namespace(),
            &shape,
            Some(&request.request_id),
        )?;
        let client = self.client(context).await?;
        let namespace = self.config.namespace();
        let post = PostParams::default();
        if let Some(secret) = &manifests.secret {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            api.create(&post, &typed(secret)?)
                .await
                .map_err(|e| map_error(context, "creating the secret", e))?;
        }
        for service in manifests.headless.iter().chain(&manifests.service) {
            let api: Api<Service> = Api::namespaced(client.clone(), namespace);
            api.create(&post, &typed(service)?)
                .await
                .map_err(|e| map_error(context, "creating a service", e))?;
        }
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        for pod in &manifests.pods {
            pods.create(&post, &typed(pod)?)
                .await
                .map_err(|e| map_error(context, "creating a pod", e))?;
        }
        self.wait_bound(context, &request.cluster, manifests.pods.len())
            .await?;
        Ok(Self::handle(
            &request.cluster,
            &request.request_id,
            manifests.pods.len(),
        ))
    }

    /// Sets (or, with `None`, clears) what the provision of `cluster` waits for.
    fn note_wait(&self, cluster: &str, note: Option<String>) {
        let mut waits = self
            .waits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match note {
            Some(note) => waits.insert(cluster.to_string(), note),
            None => waits.remove(cluster),
        };
    }

    /// Waits until `count` pods of `cluster` are bound to nodes; a resource `FailedScheduling`
    /// is `InsufficientCapacity` at once, anything else unbound past the timeout `Unschedulable`.
    async fn wait_bound(&self, context: &str, cluster: &str, count: usize) -> Result<(), ProviderError> {
        let timeout = self.config.provision_timeout();
        let start = Instant::now();
        let mut last_message: Option<String> = None;
        loop {
            let pods = self.cluster_pods(context, cluster).await?;
            let mut unbound = None;
            for pod in &pods {
                let bound = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty());
                if bound {
                    continue;
                }
                let name = pod.metadata.name.clone().unwrap_or_default();
                if let Some(message) = unschedulable_message(pod) {
                    if is_resource_shortage(&message) {
                        return Err(ProviderError::InsufficientCapacity {
                            scope: Scope::Zone,
                            message: format!("context {context}: pod {name}: FailedScheduling: {message}"),
                        });
                    }
                    last_message = Some(format!("pod {name} Pending: FailedScheduling: {message}"));
                }
                unbound.get_or_insert(name);
            }
            if unbound.is_none() && pods.len() >= count {
                self.note_wait(cluster, None);
                return Ok(());
            }
            self.note_wait(
                cluster,
                Some(match &last_message {
                    Some(message) => format!("context {context}: {message}"),
                    None => format!(
                        "context {context}: pod {} Pending",
                        unbound.as_deref().unwrap_or(cluster)
                    ),
                }),
            );
            if start.elapsed() >= timeout {
                self.note_wait(cluster, None);
                let pod = unbound.unwrap_or_else(|| cluster.to_string());
                return Err(ProviderError::Unschedulable {
                    message: format!(
                        "context {context}: pod {pod} not scheduled within {:.0}s (provision_timeout): {}",
                        timeout.as_secs_f64(),
                        last_message.unwrap_or_else(|| "the scheduler gave no reason".to_string())
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn secret_values(&self, context: &str, cluster: &str) -> Vec<String> {
        let Ok(client) = self.client(context).await else {
            return Vec::new();
        };
        let api: Api<Secret> = Api::namespaced(client, self.config.namespace());
        let Ok(Some(secret)) = api.get_opt(&render::secret_name(cluster)).await else {
            return Vec::new();
        };
        let mut values: Vec<String> = secret
            .data
            .unwrap_or_default()
            .into_values()
            .filter_map(|v| String::from_utf8(v.0).ok())
            .chain(secret.string_data.unwrap_or_default().into_values())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// The typed object for a manifest.
fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, ProviderError> {
    serde_json::from_value(value.clone()).map_err(|err| ProviderError::InvalidRequest {
        message: format!("building a Kubernetes object: {err}"),
    })
}

fn rank_of(pod: &Pod) -> u32 {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(render::RANK_LABEL))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn node_infos(cluster: &str, count: u32) -> Vec<NodeInfo> {
    (0..count.max(1))
        .map(|rank| NodeInfo {
            rank,
            ip: if count > 1 {
                render::node_address(cluster, rank)
            } else {
                render::pod_name(cluster, rank)
            },
        })
        .collect()
}

/// The message of a pod's `PodScheduled=False` (reason `Unschedulable`) condition: what the
/// scheduler said in its `FailedScheduling` event.
fn unschedulable_message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .and_then(|c| c.message.clone())
}

/// Whether a scheduler message says that resources are short (rather than taints or affinity).
fn is_resource_shortage(message: &str) -> bool {
    message.contains("Insufficient ") || message.contains("Too many pods")
}

fn request_id_of(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(render::REQUEST_ID_ANNOTATION))
        .cloned()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn exit_code(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == render::CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// The job of a cluster's pods: failed if any failed, succeeded when all did, running when any
/// runs.
fn job_status(pods: &[Pod]) -> JobStatus {
    let phases: Vec<&str> = pods.iter().map(phase).collect();
    let state = if phases.contains(&"Failed") {
        JobState::Failed
    } else if !phases.is_empty() && phases.iter().all(|p| *p == "Succeeded") {
        JobState::Succeeded
    } else if phases.contains(&"Running") {
        JobState::Running
    } else {
        JobState::Pending
    };
    let node_exit_codes: Vec<Option<i32>> = pods.iter().map(exit_code).collect();
    let exit_code = if state.is_finished() {
        node_exit_codes
            .iter()
            .flatten()
            .copied()
            .find(|c| *c != 0)
            .or(Some(if state == JobState::Failed { 1 } else { 0 }))
    } else {
        None
    };
    JobStatus {
        id: 1,
        name: pods
            .first()
            .and_then(|p| p.metadata.annotations.as_ref())
            .and_then(|a| a.get(render::TASK_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| "task".to_string()),
        state,
        exit_code,
        node_exit_codes,
    }
}

/// Maps a Kubernetes client error to the failover vocabulary: 401/403 → `Auth`, 404 →
/// `NotFound`, 409/400/422 → `InvalidRequest`, 429/5xx and connection failures → `Transient`.
pub fn map_error(context: &str, what: &str, err: kube::Error) -> ProviderError {
    match err {
        kube::Error::Api(status) => {
            let message = format!("context {context}: {what}: {} ({})", status.message, status.code);
            match status.code {
                401 | 403 => ProviderError::Auth { message },
                404 => ProviderError::NotFound {
                    what: format!("{what} in context {context}"),
                },
                429 | 500..=599 => ProviderError::Transient { message },
                _ => ProviderError::InvalidRequest { message },
            }
        }
        kube::Error::Auth(err) => ProviderError::Auth {
            message: format!("context {context}: {err}"),
        },
        kube::Error::Service(err) => match client::timed_out(&*err) {
            Some(timed_out) => ProviderError::Timeout {
                what: format!(
                    "context {context}: {what}: an answer from the API server at {} (kubernetes.request_timeout in config.yaml)",
                    timed_out.server
                ),
                seconds: timed_out.timeout.as_secs_f64(),
            },
            None => ProviderError::Transient {
                message: format!("context {context}: {what}: {err}"),
            },
        },
        other => ProviderError::Transient {
            message: format!("context {context}: {what}: {other}"),
        },
    }
}

#[async_trait]
impl Provider for KubernetesProvider {
    fn id(&self) -> &str {
        KUBERNETES
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            spot: false,
            multi_node: true,
            docker_images: true,
            ports: true,
            exec: false,
            workdir: false,
            file_mounts: false,
            bucket_mounts: false,
            disk_size: false,
        }
    }

    /// Per context: offers that fit a single node now and capacity rows with the free GPUs (see
    /// [`context_offers`]). A context that cannot be read is left out (with a warning); an error
    /// only when none can be read.
    fn wait_note(&self, cluster: &str) -> Option<String> {
        self.waits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(cluster)
            .cloned()
    }

    async fn offers(&self) -> Result<LiveOffers, ProviderError> {
        let answers = futures::future::join_all(
            self.contexts
                .iter()
                .map(|c| async move { (c, self.context_capacity(c).await) }),
        )
        .await;
        let mut live = LiveOffers::default();
        let mut last_error = None;
        let mut any = false;
        for (context, answer) in answers {
            match answer {
                Ok(nodes) => {
                    any = true;
                    let (offers, capacity) = context_offers(context, &nodes, &self.config.pricing);
                    live.offers.extend(offers);
                    live.capacity.extend(capacity);
                }
                Err(err) => {
                    tracing::warn!("kubernetes context {context}: {err}");
                    last_error = Some(err);
                }
            }
        }
        match (any, last_error) {
            (false, Some(err)) => Err(err),
            _ => Ok(live),
        }
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        let placement = &request.placement;
        if placement.cloud != KUBERNETES {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "placement on {} handed to the kubernetes provider",
                    placement.cloud
                ),
            });
        }
        self.capabilities().check(KUBERNETES, &request.task, placement)?;
        check_labels(&request.task.labels)?;
        let context = placement.region.as_str();
        // Launches go only to configured contexts; other kubeconfig contexts are looked in only
        // for clusters recorded there.
        if !self.contexts.iter().any(|c| c == context) {
            return Err(ProviderError::InvalidRequest {
                message: format!("kubernetes context {context:?} is not configured"),
            });
        }
        let existing = self.cluster_pods(context, &request.cluster).await?;
        if let Some(pod) = existing.first() {
            return if request_id_of(pod).as_deref() == Some(request.request_id.as_str()) {
                Ok(Self::handle(
                    &request.cluster,
                    &request.request_id,
                    existing.len(),
                ))
            } else {
                Err(ProviderError::InvalidRequest {
                    message: format!(
                        "cluster {:?} exists already on context {context} (created by another request)",
                        request.cluster
                    ),
                })
            };
        }
        let created = self.create(request, context).await;
        if created.is_err() {
            // Leave nothing half-made behind.
            if let Err(err) = self.delete_in(context, &request.cluster).await {
                tracing::warn!("cleaning up {} on {context}: {err}", request.cluster);
            }
        }
        created
    }

    async fn status(&self, at: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError> {
        let cluster = at.name;
        let (_, pods) = self
            .find_cluster(at)
            .await?
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        let bound = pods.iter().all(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        });
        Ok(ClusterStatus {
            cluster: cluster.to_string(),
            state: if bound {
                ClusterState::Up
            } else {
                ClusterState::Provisioning
            },
            nodes: node_infos(cluster, pods.len() as u32),
            jobs: vec![job_status(&pods)],
        })
    }

    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError> {
        let mut found: BTreeMap<String, ClusterSummary> = BTreeMap::new();
        for context in &self.contexts {
            let client = self.client(context).await?;
            let namespace = self.config.namespace();
            let selector = ListParams::default().labels(CLUSTER_LABEL);
            let mut metas = Vec::new();
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            metas.extend(
                pods.list_metadata(&selector)
                    .await
                    .map_err(|e| map_error(context, "listing pods", e))?
                    .items
                    .into_iter()
                    .map(|m| m.metadata),
            );
            let services: Api<Service> = Api::namespaced(client.clone(), namespace);
            metas.extend(
                services
                    .list_metadata(&selector)
                    .await
                    .map_err(|e| map_error(context, "listing services", e))?
                    .items
                    .into_iter()
                    .map(|m| m.metadata),
            );
            let secrets: Api<Secret> = Api::namespaced(client, namespace);
            metas.extend(
                secrets
                    .list_metadata(&selector)
                    .await
                    .map_err(|e| map_error(context, "listing secrets", e))?
                    .items
                    .into_iter()
                    .map(|m| m.metadata),
            );
            for meta in metas {
                let labels = meta.labels.unwrap_or_default();
                let Some(name) = labels.get(CLUSTER_LABEL).cloned() else {
                    continue;
                };
                let request_id = meta
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(render::REQUEST_ID_ANNOTATION))
                    .cloned();
                let entry = found.entry(name.clone()).or_insert_with(|| ClusterSummary {
                    name,
                    provider: KUBERNETES.to_string(),
                    region: context.clone(),
                    request_id: None,
                    labels: BTreeMap::new(),
                });
                if entry.request_id.is_none() {
                    entry.request_id = request_id;
                }
                entry
                    .labels
                    .extend(labels.into_iter().filter(|(k, _)| k != render::RANK_LABEL));
            }
        }
        Ok(found.into_values().collect())
    }

    async fn logs(&self, at: ClusterRef<'_>, options: &LogOptions) -> Result<LogStream, ProviderError> {
        let cluster = at.name;
        let (context, pods) = self
            .find_cluster(at)
            .await?
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        if let Some(job) = options.job
            && job != 1
        {
            return Err(ProviderError::NotFound {
                what: format!("job {job} of cluster {cluster:?}"),
            });
        }
        let secrets = Arc::new(self.secret_values(&context, cluster).await);
        let api = self.pods(&context).await?;
        let mut streams = Vec::new();
        for pod in &pods {
            let rank = rank_of(pod);
            if options.node.is_some_and(|n| n != rank) {
                continue;
            }
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            let params = LogParams {
                container: Some(render::CONTAINER.to_string()),
                follow: options.follow,
                tail_lines: options.tail.map(|t| t as i64),
                ..Default::default()
            };
            streams.push(pod_log_lines(
                api.clone(),
                context.clone(),
                name,
                rank,
                params,
                secrets.clone(),
            ));
        }
        if streams.is_empty() {
            return Err(ProviderError::NotFound {
                what: format!("node {:?} of cluster {cluster:?}", options.node),
            });
        }
        Ok(futures::stream::select_all(streams).boxed())
    }

    async fn teardown(&self, at: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError> {
        let mut found = false;
        let mut remaining = Vec::new();
        let mut still_there = Vec::new();
        for context in self.contexts_for(at) {
            if !self.delete_in(&context, at.name).await? {
                continue;
            }
            found = true;
            // Verify: what still carries the label is either shutting down or a failure.
            for pod in self.cluster_pods(&context, at.name).await? {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some() {
                    remaining.push(format!("pod {name} (terminating) on context {context}"));
                } else {
                    still_there.push(format!("pod {name} on context {context}"));
                }
            }
        }
        if !still_there.is_empty() {
            return Err(ProviderError::TeardownIncomplete {
                cluster: at.name.to_string(),
                remaining: still_there,
            });
        }
        Ok(match (found, remaining.is_empty()) {
            (false, _) => TeardownOutcome::AlreadyGone,
            (true, true) => TeardownOutcome::Terminated,
            (true, false) => TeardownOutcome::Terminating { remaining },
        })
    }
}

/// One pod's log lines: waits for its container to start (when following), then streams the
/// log API, scrubbing `secrets`.
fn pod_log_lines(
    api: Api<Pod>,
    context: String,
    name: String,
    rank: u32,
    params: LogParams,
    secrets: Arc<Vec<String>>,
) -> LogStream {
    let follow = params.follow;
    let opened = async move {
        loop {
            let pod = api
                .get_opt(&name)
                .await
                .map_err(|e| map_error(&context, "reading a pod", e))?
                .ok_or_else(|| ProviderError::NotFound {
                    what: format!("pod {name}"),
                })?;
            let started = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.iter().find(|c| c.name == render::CONTAINER))
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
            if started {
                break;
            }
            if !follow {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reader = api
            .log_stream(&name, &params)
            .await
            .map_err(|e| map_error(&context, "reading logs", e))?;
        Ok(Some(reader.lines()))
    };
    futures::stream::once(opened)
        .map(move |opened: Result<_, ProviderError>| -> LogStream {
            match opened {
                Ok(Some(lines)) => {
                    let secrets = secrets.clone();
                    lines
                        .map_err(|err| ProviderError::io("reading a pod log", err))
                        .map_ok(move |text| {
                            let values: Vec<&str> = secrets.iter().map(String::as_str).collect();
                            LogLine {
                                node: rank,
                                text: skyplan_spec::redact_text(&text, &values),
                            }
                        })
                        .boxed()
                }
                Ok(None) => futures::stream::empty().boxed(),
                Err(err) => futures::stream::iter([Err(err)]).boxed(),
            }
        })
        .flatten()
        .boxed()
}
