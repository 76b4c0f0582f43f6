//! Creating a cluster's objects and waiting, bounded, until its pods are bound (or the
//! scheduler says why they cannot be).

use super::*;

impl KubernetesProvider {
    pub(super) fn handle(cluster: &str, request_id: &str, pods: usize) -> ClusterHandle {
        ClusterHandle {
            cluster: cluster.to_string(),
            provider: KUBERNETES.to_string(),
            request_id: request_id.to_string(),
            nodes: node_infos(cluster, pods as u32),
            job_id: Some(1),
        }
    }

    /// Checks the live state, creates the objects and waits for the pods to be bound.
    pub(super) async fn create(
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
    pub(super) fn note_wait(&self, cluster: &str, note: Option<String>) {
        let mut waits = self
            .waits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match note {
            Some(note) => waits.insert(cluster.to_string(), note),
            None => waits.remove(cluster),
        };
    }

    /// Once bound, waits until every pod's container has started, or one says it cannot (an
    /// image that cannot be pulled, a bad config): that is `Unschedulable` with the kubelet's
    /// reason, so failover moves on. A container still being created after [`LOG_START_WAIT`]
    /// is left to start on its own (large images take long); its logs say if it never does.
    async fn wait_started(&self, context: &str, cluster: &str) -> Result<(), ProviderError> {
        let start = Instant::now();
        loop {
            let pods = self.cluster_pods(context, cluster).await?;
            let mut creating = None;
            for pod in &pods {
                let name = pod.metadata.name.clone().unwrap_or_default();
                match container_start(pod) {
                    ContainerStart::Started => {}
                    ContainerStart::Stuck(reason) => {
                        self.note_wait(cluster, None);
                        return Err(ProviderError::Unschedulable {
                            message: format!("context {context}: pod {name} cannot start: {reason}"),
                        });
                    }
                    ContainerStart::Waiting(reason) => {
                        creating.get_or_insert(format!("context {context}: pod {name} {reason}"));
                    }
                }
            }
            let Some(note) = creating else {
                self.note_wait(cluster, None);
                return Ok(());
            };
            if start.elapsed() >= LOG_START_WAIT {
                self.note_wait(cluster, None);
                return Ok(());
            }
            self.note_wait(cluster, Some(note));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `count` pods of `cluster` are bound to nodes (then [`Self::wait_started`]);
    /// a resource `FailedScheduling` is `InsufficientCapacity` at once, anything else unbound
    /// past the timeout `Unschedulable`.
    pub(super) async fn wait_bound(
        &self,
        context: &str,
        cluster: &str,
        count: usize,
    ) -> Result<(), ProviderError> {
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
                return self.wait_started(context, cluster).await;
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

    pub(super) async fn secret_values(&self, context: &str, cluster: &str) -> Vec<String> {
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
