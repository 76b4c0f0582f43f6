//! Finding a cluster's pods across contexts (the recorded one first) and deleting everything
//! labeled with a cluster in one context.

use super::*;

impl KubernetesProvider {
    /// Where to look for `cluster`: the context it was recorded on first, then the configured
    /// ones. A recorded context that is no longer configured is still asked (and its error says
    /// so), so that a cluster is never reported gone only because the setting changed.
    pub(super) fn contexts_for(&self, cluster: ClusterRef<'_>) -> Vec<String> {
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
    pub(super) async fn find_cluster(
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

    /// A configured context other than `context` holding pods of `cluster`. Contexts that
    /// cannot be asked are passed over (with a warning): they must not stop a launch elsewhere.
    pub(super) async fn holding_elsewhere(&self, context: &str, cluster: &str) -> Option<String> {
        for other in self.contexts.iter().filter(|c| c.as_str() != context) {
            match self.cluster_pods(other, cluster).await {
                Ok(pods) if !pods.is_empty() => return Some(other.clone()),
                Ok(_) => {}
                Err(err) => tracing::warn!("looking for cluster {cluster} on context {other}: {err}"),
            }
        }
        None
    }

    /// Deletes every pod, service and secret labeled with `cluster` in `context`; whether any
    /// existed.
    pub(super) async fn delete_in(&self, context: &str, cluster: &str) -> Result<bool, ProviderError> {
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
                    // Already being deleted (a pod in its grace period): asked before, not found
                    // again, so a second teardown says the cluster is already gone.
                    if item.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
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
}
