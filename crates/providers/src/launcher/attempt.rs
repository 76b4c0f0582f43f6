//! Launching one task of a [`PipelineRun`]: record intent, provision the place the plan chose,
//! and on a failover-able error block the right scope, re-solve (launched tasks pinned) and try
//! the next place. Transient errors are retried in place with bounded backoff and jitter.

use skyplan_optimizer::solve;

use super::events::{Attempt, LaunchEvent, Progress};
use super::{LaunchError, LaunchOutcome, Launcher, PipelineRun, TaskProgress, check_cluster_name};
use crate::store::{JobRecord, RecordStatus};
use crate::{ClusterHandle, FailoverAction, Provider, ProviderError, ProvisionRequest, Scope};

/// How often a provision still under way is reported.
const WAIT_TICK: std::time::Duration = std::time::Duration::from_secs(5);

impl Launcher {
    /// Launches task `index` of `run` where the current plan puts it, failing over as the errors
    /// say; returns once its job has started (see [`Provider::provision`]). Its parents must have
    /// succeeded. Records the cluster (as part of the pipeline) before anything is created; a
    /// launch that never reached a provider leaves no record.
    pub async fn launch_task(
        &self,
        run: &mut PipelineRun,
        index: usize,
        progress: &dyn Progress,
    ) -> Result<LaunchOutcome, LaunchError> {
        let task = run
            .request
            .tasks
            .get(index)
            .cloned()
            .ok_or_else(|| ProviderError::InvalidRequest {
                message: format!("the pipeline has no task {index}"),
            })?;
        let cluster = task.cluster.as_str();
        check_cluster_name(cluster)?;
        if let Some(parent) = run.blocked_by(index) {
            return Err(LaunchError::ParentFailed {
                task: task.node.name.clone(),
                parent,
            });
        }
        let launch_id = format!("{cluster}-{}", run.launch_id);
        let recorded = task.runs.first();
        if let Some(existing) = self.store.try_begin_launch(cluster, &launch_id, recorded)? {
            return Err(LaunchError::ClusterExists {
                name: cluster.to_string(),
                status: existing.status,
            });
        }
        if run.request.tasks.len() > 1 {
            self.store
                .set_pipeline(cluster, &run.request.name, &task.node.name)?;
        }
        let mut reached_provider = false;
        let result = self
            .place_and_provision(run, index, &launch_id, &mut reached_provider, progress)
            .await;
        match &result {
            Ok(outcome) => {
                run.tasks[index] = TaskProgress::Launched {
                    placement: outcome.placement.clone(),
                };
            }
            Err(error) => {
                run.tasks[index] = TaskProgress::Failed {
                    placement: None,
                    reason: error.to_string(),
                };
                if reached_provider {
                    // Keep the record (and its attempts) as FAILED: `status` shows it, `down`
                    // removes it, and a new launch of the same name replaces it.
                    self.store.set_status(cluster, RecordStatus::Failed)?;
                } else {
                    // Nothing was created anywhere: no record to clean up later.
                    self.store.remove_cluster(cluster)?;
                }
            }
        }
        result
    }

    async fn place_and_provision(
        &self,
        run: &mut PipelineRun,
        index: usize,
        launch_id: &str,
        reached_provider: &mut bool,
        progress: &dyn Progress,
    ) -> Result<LaunchOutcome, LaunchError> {
        let task = run.request.tasks[index].clone();
        let cluster = task.cluster.as_str();
        let mut failures: Vec<Attempt> = Vec::new();
        let fail = |failures: Vec<Attempt>, reason: String| LaunchError::Failed {
            cluster: cluster.to_string(),
            attempts: failures,
            reason,
        };
        let mut n = 0u32;
        loop {
            if n >= self.max_attempts {
                return Err(fail(
                    failures,
                    format!("gave up after {} placements", self.max_attempts),
                ));
            }
            if !failures.is_empty() {
                // Re-solve with the failures' blocks, launched tasks pinned where they run.
                let mut policy = run.first.policy.clone();
                policy.blocked.extend(run.blocked.iter().cloned());
                progress.event(&LaunchEvent::Planning {
                    cluster,
                    blocked: policy.blocked.len(),
                });
                run.current = match solve(&run.first.catalog, &run.pinned_graph(), &policy) {
                    Ok(plan) => plan,
                    Err(error) if failures.is_empty() => return Err(LaunchError::NoPlacement(error)),
                    Err(error) => {
                        // A whole cloud blocked (auth, unsupported): say so, not "N offers blocked".
                        let whole_cloud = failures.last().and_then(|a| match &a.action {
                            crate::FailoverAction::Block(b) if b.region.is_none() => b.cloud.clone(),
                            _ => None,
                        });
                        let reason = match whole_cloud {
                            Some(cloud) => format!("no enabled cloud but {cloud} can run it"),
                            None => format!("no placement left: {error}"),
                        };
                        return Err(fail(failures, reason));
                    }
                };
            }
            let Some(placement) = run.current.tasks.get(index).map(|t| t.chosen.clone()) else {
                return Err(fail(failures, "the plan has no place for this task".to_string()));
            };
            n += 1;
            progress.event(&LaunchEvent::Trying {
                n,
                placement: &placement,
            });
            let provider = self
                .backends
                .providers
                .get(&placement.cloud)
                .filter(|_| self.backends.is_enabled(&placement.cloud));
            let task_run = task.run_for(placement.alternative).cloned();
            let secrets: Vec<String> = task_run
                .as_ref()
                .map(|r| r.secret_values().into_iter().map(str::to_string).collect())
                .unwrap_or_default();
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let mut tried = false;
            let result = match (provider, task_run) {
                (None, _) => Err(ProviderError::NoProvider {
                    cloud: placement.cloud.clone(),
                }),
                (Some(_), None) => Err(ProviderError::InvalidRequest {
                    message: format!(
                        "task {:?} has no run for alternative {}",
                        task.node.name, placement.alternative
                    ),
                }),
                (Some(provider), Some(task_run)) => {
                    match provider
                        .capabilities()
                        .check(provider.id(), &task_run, &placement)
                    {
                        Err(error) => Err(error),
                        Ok(()) => {
                            let provision = ProvisionRequest {
                                request_id: format!("{launch_id}-{n}"),
                                cluster: cluster.to_string(),
                                placement: placement.clone(),
                                task: task_run.clone(),
                            };
                            self.store.record_intent(
                                cluster,
                                n,
                                provider.id(),
                                &placement,
                                &provision.request_id,
                            )?;
                            tried = true;
                            *reached_provider = true;
                            self.provision_with_retries(provider.as_ref(), &provision, n, &secrets, progress)
                                .await
                                .map(|handle| (handle, task_run))
                        }
                    }
                }
            };
            let error = match result {
                Ok((handle, task_run)) => {
                    self.record_started(cluster, &handle, &task_run.name)?;
                    progress.event(&LaunchEvent::Provisioned {
                        placement: &placement,
                        handle: &handle,
                    });
                    return Ok(LaunchOutcome {
                        cluster: cluster.to_string(),
                        task: task.node.name.clone(),
                        provider: handle.provider.clone(),
                        placement,
                        plan: run.current.clone(),
                        handle,
                        failures,
                    });
                }
                Err(error) => error.redacted(&secrets),
            };
            let action = match error.failover(&placement) {
                // Retries exhausted: this place is not working now; try the next one.
                FailoverAction::Retry => {
                    FailoverAction::Block(crate::error::block_scope(&placement, Scope::Zone))
                }
                action => action,
            };
            // Whatever the failed attempt created must not linger (and cost money); but no more
            // calls with credentials the cloud has just rejected (`down` cleans up later).
            let rejected = matches!(error, ProviderError::Auth { .. });
            let mut left_behind = None;
            if tried
                && !rejected
                && let (Some(provider), FailoverAction::Block(_)) = (provider, &action)
                && let Err(teardown_error) = self.clean_up(provider.as_ref(), cluster).await
            {
                left_behind = Some((provider.id().to_string(), teardown_error.redacted(&secrets)));
            }
            let outcome = match action {
                FailoverAction::Block(_) => "blocked",
                _ => "stopped",
            };
            if tried {
                self.store.finish_attempt(cluster, n, outcome, Some(&error))?;
            } else {
                let cloud = provider.map_or(placement.cloud.as_str(), |p| p.id());
                self.store
                    .record_skipped_attempt(cluster, n, cloud, &placement, outcome, &error)?;
            }
            let attempt = Attempt {
                n,
                placement,
                error,
                action,
            };
            progress.event(&LaunchEvent::Failed { attempt: &attempt });
            let stop = match &attempt.action {
                FailoverAction::Block(blocked) => {
                    run.blocked.push(blocked.clone());
                    false
                }
                _ => true,
            };
            failures.push(attempt);
            if let Some((provider, teardown_error)) = left_behind {
                // Trying elsewhere now could run the cluster twice (and bill twice).
                return Err(fail(
                    failures,
                    format!(
                        "what attempt {n} created on {provider} could not be removed ({teardown_error}); \
                         failover stopped: `skyplan down {cluster}` removes it"
                    ),
                ));
            }
            if stop {
                return Err(fail(
                    failures,
                    "the last error is not one that failover can help with".to_string(),
                ));
            }
        }
    }

    /// Tears down what a failed attempt created, retrying transient errors with the backoff.
    async fn clean_up(&self, provider: &dyn Provider, cluster: &str) -> Result<(), ProviderError> {
        let mut retry = 0;
        loop {
            match provider.teardown(cluster.into()).await {
                Ok(_) => return Ok(()),
                Err(ProviderError::Transient { message }) if retry < self.backoff.max_retries => {
                    retry += 1;
                    tracing::debug!(
                        "cleaning up {cluster} on {}: {message}; retry {retry}",
                        provider.id()
                    );
                    tokio::time::sleep(self.backoff.delay(retry)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn record_started(&self, cluster: &str, handle: &ClusterHandle, name: &str) -> Result<(), ProviderError> {
        let n = self.store.attempts(cluster)?.last().map_or(0, |a| a.n);
        self.store.finish_attempt(cluster, n, "succeeded", None)?;
        self.store.set_status(cluster, RecordStatus::Up)?;
        if let Some(job_id) = handle.job_id {
            self.store
                .upsert_job(&JobRecord::running(cluster, job_id, name))?;
        }
        Ok(())
    }

    async fn provision_with_retries(
        &self,
        provider: &dyn Provider,
        request: &ProvisionRequest,
        n: u32,
        secrets: &[&str],
        progress: &dyn Progress,
    ) -> Result<ClusterHandle, ProviderError> {
        let mut retry = 0;
        loop {
            let started = std::time::Instant::now();
            let provision = provider.provision(request);
            tokio::pin!(provision);
            // A long provision says what it waits for, and for how long, every few seconds.
            let result = loop {
                tokio::select! {
                    result = &mut provision => break result,
                    () = tokio::time::sleep(WAIT_TICK) => {
                        let note = provider.wait_note(&request.cluster);
                        progress.event(&LaunchEvent::Waiting {
                            n,
                            placement: &request.placement,
                            elapsed: started.elapsed(),
                            note: note.as_deref(),
                        });
                    }
                }
            };
            match result {
                Ok(handle) => return Ok(handle),
                Err(error) if error.failover(&request.placement) == FailoverAction::Retry => {
                    if retry >= self.backoff.max_retries {
                        return Err(error);
                    }
                    retry += 1;
                    let delay = self.backoff.delay(retry);
                    let shown = error.redacted(secrets);
                    progress.event(&LaunchEvent::Retrying {
                        n,
                        retry,
                        error: &shown,
                        delay,
                    });
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}
