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
mod clusters;
pub mod config;
mod credential;
mod labels;
mod pods;
mod provision;
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
pub use pods::map_error;
use pods::{
    ContainerStart, container_start, is_resource_shortage, job_status, node_infos, pod_log_lines, rank_of,
    request_id_of, typed, unschedulable_message,
};
pub use render::{Manifests, RenderOptions, build_manifests, render_manifests};
pub use shape::{DEFAULT_GPU_LABEL, PodShape, task_placement};

use crate::{
    CLUSTER_LABEL, Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary,
    JobState, JobStatus, LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider, ProviderError,
    ProvisionRequest, Scope, TeardownOutcome,
};

/// The provider id, and the cloud name of its offers.
pub const KUBERNETES: &str = "kubernetes";

/// How long teardown waits for deleted pods to finish their grace period before it reports them
/// as still terminating.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);

/// The least time following logs waits for a container to start (its image may be large), when
/// no waiting reason says it cannot.
const LOG_START_WAIT: Duration = Duration::from_secs(300);

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
        if let Some(other) = self.holding_elsewhere(context, &request.cluster).await {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "cluster {:?} exists already on context {other} (a cluster name is one cluster; pick another name or `skyplan down` it)",
                    request.cluster
                ),
            });
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
            // Objects being deleted are going, not clusters the user still has.
            for meta in metas.into_iter().filter(|m| m.deletion_timestamp.is_none()) {
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
                // Pulling a large image takes minutes: never less than LOG_START_WAIT.
                self.config.provision_timeout().max(LOG_START_WAIT),
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
            // Verify: what still carries the label is either shutting down (in its grace period;
            // waited for, bounded) or a failure.
            let deadline = Instant::now() + TEARDOWN_WAIT;
            let mut pods = self.cluster_pods(&context, at.name).await?;
            while !pods.is_empty()
                && Instant::now() < deadline
                && pods.iter().all(|p| p.metadata.deletion_timestamp.is_some())
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                pods = self.cluster_pods(&context, at.name).await?;
            }
            for pod in pods {
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
