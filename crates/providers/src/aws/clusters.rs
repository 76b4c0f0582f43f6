//! Clusters that exist: their instances found by the cluster tag (where recorded, then in every
//! searched region), listed, their job's status read from consoles, and deleted with their
//! security groups, then looked up again to verify.

use super::*;

impl AwsProvider {
    /// Live instances carrying the cluster's tag in `region`.
    pub(super) async fn cluster_instances(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<Instance>, ProviderError> {
        let filters = vec![cluster_filter(cluster), live_state_filter()];
        let mut instances = self.describe_instances(region, filters).await?;
        instances.sort_by_key(|i| i.ami_launch_index().unwrap_or(0));
        Ok(instances)
    }

    pub(super) async fn describe_instances(
        &self,
        region: &str,
        filters: Vec<Filter>,
    ) -> Result<Vec<Instance>, ProviderError> {
        describe_instances(&self.client(region).await, region, filters).await
    }

    /// The regions to look in for `cluster`: where it was recorded, where this provider
    /// launched it, then the searched ones ([`AwsProvider::regions`]), without repeats.
    pub(super) async fn regions_for(&self, cluster: ClusterRef<'_>) -> Result<Vec<String>, ProviderError> {
        let mut regions: Vec<String> = cluster.region.map(str::to_string).into_iter().collect();
        regions.extend(lock(&self.cluster_regions).get(cluster.name).cloned());
        regions.extend(self.regions().await?);
        let mut seen = std::collections::HashSet::new();
        regions.retain(|r| seen.insert(r.clone()));
        Ok(regions)
    }

    /// The region holding `cluster`'s instances, and the instances by rank: the recorded
    /// region (and the one this provider launched it in) first, then every searched region.
    pub(super) async fn find_cluster(
        &self,
        cluster: ClusterRef<'_>,
    ) -> Result<Option<(String, Vec<Instance>)>, ProviderError> {
        let known = cluster
            .region
            .map(str::to_string)
            .or_else(|| lock(&self.cluster_regions).get(cluster.name).cloned());
        if let Some(region) = known {
            let instances = self.cluster_instances(&region, cluster.name).await?;
            if !instances.is_empty() {
                return Ok(Some((region, instances)));
            }
        }
        let regions = self.regions_for(cluster).await?;
        let answers = futures::future::join_all(
            regions
                .iter()
                .map(|region| async move { (region, self.cluster_instances(region, cluster.name).await) }),
        )
        .await;
        for (region, answer) in answers {
            let instances = answer?;
            if !instances.is_empty() {
                lock(&self.cluster_regions).insert(cluster.name.to_string(), region.clone());
                return Ok(Some((region.clone(), instances)));
            }
        }
        Ok(None)
    }

    /// A searched region other than `region` holding live instances of `cluster`. Regions
    /// that cannot be asked are passed over (with a warning): they must not stop a launch
    /// elsewhere.
    pub(super) async fn holding_elsewhere(&self, region: &str, cluster: &str) -> Option<String> {
        let regions = match self.regions_for(ClusterRef::new(cluster)).await {
            Ok(regions) => regions,
            Err(err) => {
                tracing::warn!("listing regions to look for cluster {cluster}: {err}");
                return None;
            }
        };
        let others = regions.iter().filter(|r| r.as_str() != region);
        let answers = futures::future::join_all(
            others.map(|other| async move { (other, self.cluster_instances(other, cluster).await) }),
        )
        .await;
        answers.into_iter().find_map(|(other, answer)| match answer {
            Ok(instances) => (!instances.is_empty()).then(|| other.clone()),
            Err(err) => {
                tracing::warn!("looking for cluster {cluster} in {other}: {err}");
                None
            }
        })
    }

    /// Terminates the cluster's instances in every region it may be in (see
    /// [`AwsProvider::regions_for`]), then describes them again by the cluster tag: what is
    /// shutting down is reported, anything else still there is an error.
    pub(super) async fn delete_everywhere(
        &self,
        cluster: ClusterRef<'_>,
    ) -> Result<TeardownOutcome, ProviderError> {
        let regions = self.regions_for(cluster).await?;
        let answers = futures::future::join_all(
            regions
                .iter()
                .map(|r| async move { (r, self.delete_in(r, cluster.name).await) }),
        )
        .await;
        let mut deleted_in = Vec::new();
        for (region, answer) in answers {
            if answer? {
                deleted_in.push(region);
            }
        }
        if deleted_in.is_empty() {
            return Ok(TeardownOutcome::AlreadyGone);
        }
        let mut shutting_down = Vec::new();
        let mut still_there = Vec::new();
        for region in deleted_in {
            let filters = vec![cluster_filter(cluster.name), not_terminated_filter()];
            for instance in self.describe_instances(region, filters).await? {
                let state = state_of(&instance).map_or("unknown".to_string(), |s| s.as_str().to_string());
                let text = format!(
                    "instance {} ({state}) in {region}",
                    instance.instance_id().unwrap_or("?")
                );
                if state_of(&instance) == Some(InstanceStateName::ShuttingDown) {
                    shutting_down.push(text);
                } else {
                    still_there.push(text);
                }
            }
        }
        if !still_there.is_empty() {
            return Err(ProviderError::TeardownIncomplete {
                cluster: cluster.name.to_string(),
                remaining: still_there,
            });
        }
        Ok(if shutting_down.is_empty() {
            TeardownOutcome::Terminated
        } else {
            TeardownOutcome::Terminating {
                remaining: shutting_down,
            }
        })
    }

    pub(super) async fn console(&self, region: &str, instance_id: &str) -> Result<String, ProviderError> {
        console_output(&self.client(region).await, region, instance_id).await
    }

    /// Terminates the cluster's instances in `region`, waits for them to end (bounded), then
    /// deletes its security groups. Whether anything was there.
    pub(super) async fn delete_in(&self, region: &str, cluster: &str) -> Result<bool, ProviderError> {
        let instances = self.cluster_instances(region, cluster).await?;
        let groups = self.security_groups(region, Some(cluster)).await?;
        if instances.is_empty() && groups.is_empty() {
            return Ok(false);
        }
        let client = self.client(region).await;
        let ids: Vec<String> = instances
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if !ids.is_empty() {
            until_known("TerminateInstances", self.settings.poll_interval, || async {
                client
                    .terminate_instances()
                    .set_instance_ids(Some(ids.clone()))
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(region, "TerminateInstances", e))
            })
            .await?;
        }
        let deadline = Instant::now() + self.settings.teardown_wait;
        for (group, _) in groups {
            loop {
                match client.delete_security_group().group_id(&group).send().await {
                    Ok(_) => break,
                    Err(err) if err.code() == Some("InvalidGroup.NotFound") => break,
                    // Instances that are still shutting down keep their group in use.
                    Err(err) if err.code() == Some("DependencyViolation") && Instant::now() < deadline => {
                        tokio::time::sleep(self.settings.poll_interval.min(Duration::from_secs(5))).await;
                    }
                    Err(err) => return Err(map_sdk_error(region, "DeleteSecurityGroup", err)),
                }
            }
        }
        lock(&self.cluster_regions).remove(cluster);
        Ok(true)
    }

    /// The summary of every cluster tagged in `region`.
    pub(super) async fn list_in(&self, region: &str) -> Result<Vec<ClusterSummary>, ProviderError> {
        let instances = self
            .describe_instances(region, vec![any_cluster_filter(), live_state_filter()])
            .await?;
        let mut tagged: Vec<BTreeMap<String, String>> = instances.iter().map(|i| tag_map(i.tags())).collect();
        tagged.extend(
            self.security_groups(region, None)
                .await?
                .into_iter()
                .map(|(_, tags)| tags),
        );
        let mut found: BTreeMap<String, ClusterSummary> = BTreeMap::new();
        for tags in tagged {
            let Some(name) = tags.get(CLUSTER_TAG).cloned() else {
                continue;
            };
            let entry = found.entry(name.clone()).or_insert_with(|| ClusterSummary {
                name,
                provider: AWS.to_string(),
                region: region.to_string(),
                request_id: None,
                labels: BTreeMap::new(),
            });
            if entry.request_id.is_none() {
                entry.request_id = tags.get(REQUEST_TAG).cloned();
            }
            for (key, value) in tags {
                if let Some(label) = key.strip_prefix("skyplan.dev:")
                    && key != NODE_IPS_TAG
                {
                    entry.labels.insert(format!("skyplan.dev/{label}"), value);
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Job 1's status from the nodes' consoles.
    pub(super) async fn job_status(
        &self,
        region: &str,
        instances: &[Instance],
    ) -> Result<JobStatus, ProviderError> {
        let consoles = futures::future::join_all(instances.iter().map(|i| async move {
            match i.instance_id() {
                Some(id) if state_of(i) == Some(InstanceStateName::Running) => {
                    self.console(region, id).await.map(Some)
                }
                _ => Ok(None),
            }
        }))
        .await;
        let mut node_exit_codes = Vec::new();
        let mut lost = false;
        for (instance, console) in instances.iter().zip(consoles) {
            let code = console?.and_then(|text| parse_console(&text, 1).exit_code);
            if code.is_none()
                && matches!(
                    state_of(instance),
                    Some(InstanceStateName::Stopping | InstanceStateName::Stopped)
                )
            {
                lost = true;
            }
            node_exit_codes.push(code);
        }
        let all_running = instances
            .iter()
            .all(|i| state_of(i) == Some(InstanceStateName::Running));
        let finished = node_exit_codes.iter().all(Option::is_some);
        let failed_code = node_exit_codes.iter().flatten().copied().find(|c| *c != 0);
        let (state, exit_code) = if finished {
            match failed_code {
                Some(code) => (JobState::Failed, Some(code)),
                None => (JobState::Succeeded, Some(0)),
            }
        } else if lost {
            (JobState::Failed, None)
        } else if all_running {
            (JobState::Running, None)
        } else {
            (JobState::Pending, None)
        };
        Ok(JobStatus {
            id: 1,
            name: instances
                .first()
                .and_then(|i| tag_value(i.tags(), TASK_TAG))
                .unwrap_or("task")
                .to_string(),
            state,
            exit_code,
            node_exit_codes,
            // The console says when the job started and ended only by its lines.
            started_at: None,
            ended_at: None,
        })
    }
}
