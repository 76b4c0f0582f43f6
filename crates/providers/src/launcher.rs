//! The failover launcher: solve, provision the best placement, and on a failover-able error block
//! the right scope, re-solve and try the next placement — until one succeeds or nothing is left.
//! Transient errors are retried with bounded exponential backoff and jitter. Intent is recorded in
//! the state store before anything is created; every attempt is kept and shown on failure.
//!
//! Also here: `down` (state store + every provider's `list()`, so crashed launches are found) and
//! the status refresh `skyplan status` uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use skyplan_catalog::Catalog;
use skyplan_optimizer::{OptimizerError, Placement, Plan, Policy, TaskGraph, TaskNode, solve};

use crate::store::{ClusterRecord, JobRecord, RecordStatus, StateStore};
use crate::{
    ClusterHandle, ClusterStatus, ClusterSummary, FailoverAction, Provider, ProviderError, ProvisionRequest,
    Scope, TaskRun, TeardownOutcome,
};

/// Providers by cloud name (a provider's [`Provider::id`] is the cloud of its offers).
pub type Providers = BTreeMap<String, Arc<dyn Provider>>;

/// Bounded exponential backoff with jitter for transient errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Retries of one placement before it is given up (and its zone blocked).
    pub max_retries: u32,
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Fraction of each delay that is random (0 = none, 1 = "full jitter").
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            max_retries: 4,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// Tiny delays for tests.
    pub fn fast() -> Self {
        Backoff {
            max_retries: 3,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            jitter: 0.5,
        }
    }

    /// The delay before retry `retry` (1-based): `initial × 2^(retry-1)`, capped at `max`, with
    /// its `jitter` fraction drawn at random.
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = skyplan_providers::Backoff { max_retries: 5, initial: Duration::from_millis(100),
    ///     max: Duration::from_millis(250), jitter: 0.0 };
    /// assert_eq!(backoff.delay(1), Duration::from_millis(100));
    /// assert_eq!(backoff.delay(2), Duration::from_millis(200));
    /// assert_eq!(backoff.delay(9), Duration::from_millis(250));
    /// ```
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter * fastrand::f64())
    }
}

/// What to launch: one task (its requirements) and how to run it, on a named cluster.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// Cluster name (lower-case letters, digits and `-`, starting with a letter, at most 63).
    pub cluster: String,
    /// The task's requirements, as the optimizer takes them.
    pub task: TaskNode,
    /// What to run.
    pub run: TaskRun,
}

/// One failed try of a placement.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub n: u32,
    /// The placement tried.
    pub placement: Placement,
    /// What went wrong (secrets redacted).
    #[serde(serialize_with = "error_text")]
    pub error: ProviderError,
    /// What the launcher did about it.
    pub action: FailoverAction,
}

fn error_text<S: serde::Serializer>(error: &ProviderError, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&error.to_string())
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}. {}: {} -> {}",
            self.n,
            describe_placement(&self.placement),
            self.error,
            describe_action(&self.action)
        )
    }
}

/// A placement in one line: `aws/us-east-1/use1-az1 g6.xlarge (L4:1) x2, spot, $1.6096/h`.
pub fn describe_placement(placement: &Placement) -> String {
    let mut place = format!("{}/{}", placement.cloud, placement.region);
    if let Some(zone) = &placement.zone {
        place.push('/');
        place.push_str(zone);
    }
    let mut text = format!("{place} {}", placement.instance_type);
    if placement.accelerator.is_some() {
        text.push_str(&format!(" ({})", placement.accelerator_label()));
    }
    if placement.num_nodes > 1 {
        text.push_str(&format!(" x{}", placement.num_nodes));
    }
    if placement.use_spot {
        text.push_str(", spot");
    }
    text.push_str(&format!(", ${}/h", placement.hourly_price.normalize()));
    text
}

/// A failover action in words: `blocked zone aws/us-east-1/use1-az1`, `retrying`, `stopped`.
pub fn describe_action(action: &FailoverAction) -> String {
    match action {
        FailoverAction::Retry => "retrying".to_string(),
        FailoverAction::Stop => "stopped (not failing over)".to_string(),
        FailoverAction::Block(blocked) => {
            let place: Vec<&str> = [&blocked.cloud, &blocked.region, &blocked.zone]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .collect();
            let scope = if blocked.instance_type.is_some() {
                "instance type"
            } else if blocked.zone.is_some() {
                "zone"
            } else if blocked.region.is_some() {
                "region"
            } else {
                "cloud"
            };
            let mut text = format!("blocked {scope} {}", place.join("/"));
            if let Some(instance_type) = &blocked.instance_type {
                text.push_str(&format!(" {instance_type}"));
            }
            text
        }
    }
}

/// A successful launch.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchOutcome {
    /// Cluster name.
    pub cluster: String,
    /// Provider id.
    pub provider: String,
    /// Where it runs.
    pub placement: Placement,
    /// The plan that chose it (after the failures' blocks).
    pub plan: Plan,
    /// What the provider created.
    pub handle: ClusterHandle,
    /// Placements that failed first, in order.
    pub failures: Vec<Attempt>,
}

/// Why a launch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The cluster name is not usable as a directory name and a label value.
    #[error("invalid cluster name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A cluster of that name is recorded already.
    #[error(
        "cluster {name:?} already exists ({status}); use `skyplan exec {name} TASK` to run on it, or `skyplan down {name}` first"
    )]
    ClusterExists {
        /// The name.
        name: String,
        /// Its recorded status.
        status: RecordStatus,
    },
    /// No placement satisfies the task, before anything was tried.
    #[error(transparent)]
    NoPlacement(#[from] OptimizerError),
    /// Every placement tried failed, or one failed in a way failover cannot help.
    #[error("{}", failure_text(cluster, attempts, reason))]
    Failed {
        /// The cluster.
        cluster: String,
        /// Every attempt, in order.
        attempts: Vec<Attempt>,
        /// Why the launcher stopped.
        reason: String,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] ProviderError),
}

fn failure_text(cluster: &str, attempts: &[Attempt], reason: &str) -> String {
    let mut text = format!(
        "launching cluster {cluster:?} failed after {} attempt{}: {reason}",
        attempts.len(),
        if attempts.len() == 1 { "" } else { "s" }
    );
    for attempt in attempts {
        text.push_str(&format!("\n  {attempt}"));
    }
    text
}

impl LaunchError {
    /// The attempts of a failed launch (empty for the other variants).
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            LaunchError::Failed { attempts, .. } => attempts,
            _ => &[],
        }
    }
}

/// Launch progress, for a spinner on a terminal or plain lines otherwise.
#[derive(Debug, Clone, Copy)]
pub enum LaunchEvent<'a> {
    /// Solving (again, after `blocked` blocks).
    Planning {
        /// The cluster.
        cluster: &'a str,
        /// Blocked patterns so far.
        blocked: usize,
    },
    /// A provider's live offers could not be read; the static catalog is used for it.
    OffersUnavailable {
        /// The provider.
        provider: &'a str,
        /// Why.
        error: &'a ProviderError,
    },
    /// Provisioning attempt `n` on `placement`.
    Trying {
        /// Attempt number.
        n: u32,
        /// The placement.
        placement: &'a Placement,
    },
    /// A transient error; retrying after `delay`.
    Retrying {
        /// Attempt number.
        n: u32,
        /// Retry number (1-based).
        retry: u32,
        /// The error.
        error: &'a ProviderError,
        /// The backoff delay.
        delay: Duration,
    },
    /// Attempt `n` failed.
    Failed {
        /// The attempt.
        attempt: &'a Attempt,
    },
    /// The cluster is up and its job started.
    Provisioned {
        /// The placement.
        placement: &'a Placement,
        /// What was created.
        handle: &'a ClusterHandle,
    },
}

impl fmt::Display for LaunchEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchEvent::Planning { cluster, blocked: 0 } => write!(f, "planning {cluster}"),
            LaunchEvent::Planning { cluster, blocked } => {
                write!(f, "re-planning {cluster} ({blocked} places blocked)")
            }
            LaunchEvent::OffersUnavailable { provider, error } => {
                write!(f, "live offers of {provider} unavailable: {error}")
            }
            LaunchEvent::Trying { n, placement } => {
                write!(f, "attempt {n}: provisioning {}", describe_placement(placement))
            }
            LaunchEvent::Retrying {
                n,
                retry,
                error,
                delay,
            } => write!(
                f,
                "attempt {n}: {error}; retry {retry} in {:.1}s",
                delay.as_secs_f64()
            ),
            LaunchEvent::Failed { attempt } => write!(f, "attempt {attempt}"),
            LaunchEvent::Provisioned { placement, handle } => write!(
                f,
                "cluster {} is up on {}",
                handle.cluster,
                describe_placement(placement)
            ),
        }
    }
}

/// Receives [`LaunchEvent`]s. The CLI shows a spinner on a terminal and plain lines otherwise.
pub trait Progress: Send + Sync {
    /// Called for each event, in order.
    fn event(&self, event: &LaunchEvent<'_>);
}

/// Ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &LaunchEvent<'_>) {}
}

/// Forwards each event's text to a function (tests collect them; CLIs print them).
pub struct LineProgress<F: Fn(String) + Send + Sync>(pub F);

impl<F: Fn(String) + Send + Sync> Progress for LineProgress<F> {
    fn event(&self, event: &LaunchEvent<'_>) {
        (self.0)(event.to_string());
    }
}

/// Checks a cluster name: it becomes a directory name, a label value and part of resource
/// names, so lower-case letters, digits and `-`, starting with a letter, at most 63 characters.
pub fn check_cluster_name(name: &str) -> Result<(), LaunchError> {
    let invalid = |reason: &str| {
        Err(LaunchError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > 63 {
        return invalid("must be 1 to 63 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return invalid("must start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return invalid("may hold only lower-case letters, digits and '-'");
    }
    if name.ends_with('-') {
        return invalid("must not end with '-'");
    }
    Ok(())
}

/// Places tasks with the optimizer and provisions them on providers, failing over.
///
/// ```
/// use std::sync::Arc;
/// use skyplan_catalog::Catalog;
/// use skyplan_optimizer::{Policy, TaskNode};
/// use skyplan_providers::{Launcher, LaunchRequest, LocalProvider, NoProgress, StateStore, TaskRun};
/// let home = std::env::temp_dir().join(format!("skyplan-launch-doc-{}", std::process::id()));
/// let store = Arc::new(StateStore::open(&home).unwrap());
/// let launcher = Launcher::new(Catalog::default(), Policy::default(), store)
///     .with_provider(Arc::new(LocalProvider::new(&home)));
/// let request = LaunchRequest {
///     cluster: "doc".into(),
///     task: TaskNode::new("hello", vec![]),
///     run: TaskRun::command("hello", "echo hello from $SKYPLAN_NODE_RANK"),
/// };
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let outcome = runtime.block_on(launcher.launch(&request, &NoProgress)).unwrap();
/// assert_eq!(outcome.placement.cloud, "local");
/// runtime.block_on(launcher.down("doc")).unwrap();
/// # let _ = std::fs::remove_dir_all(home);
/// ```
pub struct Launcher {
    providers: Providers,
    catalog: Catalog,
    policy: Policy,
    store: Arc<StateStore>,
    backoff: Backoff,
    max_attempts: u32,
}

impl fmt::Debug for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launcher")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("offers", &self.catalog.offers().len())
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl Launcher {
    /// A launcher over `catalog` (static offers) and `policy`, recording in `store`, with no
    /// providers yet.
    pub fn new(catalog: Catalog, policy: Policy, store: Arc<StateStore>) -> Self {
        Launcher {
            providers: Providers::new(),
            catalog,
            policy,
            store,
            backoff: Backoff::default(),
            max_attempts: 32,
        }
    }

    /// Registers `provider` for the cloud named by its id.
    pub fn with_provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(provider.id().to_string(), provider);
        self
    }

    /// Replaces the providers.
    pub fn with_providers(mut self, providers: Providers) -> Self {
        self.providers = providers;
        self
    }

    /// Sets the backoff for transient errors.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Caps the placements tried in one launch (default 32).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The registered providers.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The state store.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// Launches `request.run` on the cheapest placement that works, failing over as the errors
    /// say. Returns once the task has started (see [`Provider::provision`]).
    pub async fn launch(
        &self,
        request: &LaunchRequest,
        progress: &dyn Progress,
    ) -> Result<LaunchOutcome, LaunchError> {
        let cluster = request.cluster.as_str();
        check_cluster_name(cluster)?;
        let launch_id = format!("{cluster}-{:016x}", fastrand::u64(..));
        if let Some(existing) = self
            .store
            .try_begin_launch(cluster, &launch_id, Some(&request.run))?
        {
            return Err(LaunchError::ClusterExists {
                name: cluster.to_string(),
                status: existing.status,
            });
        }
        let result = self.place_and_provision(request, &launch_id, progress).await;
        if result.is_err() {
            // Keep the record (and its attempts) as FAILED: `status` shows it, `down` removes it,
            // and a new launch of the same name replaces it.
            self.store.set_status(cluster, RecordStatus::Failed)?;
        }
        result
    }

    async fn live_catalog(&self, progress: &dyn Progress) -> (Catalog, Policy) {
        let mut catalog = self.catalog.clone();
        let mut policy = self.policy.clone();
        let answers = futures::future::join_all(
            self.providers
                .values()
                .map(|p| async move { (p.id(), p.offers().await) }),
        )
        .await;
        for (provider, answer) in answers {
            match answer {
                Ok(live) => {
                    catalog.extend(live.offers);
                    policy.capacity.extend(live.capacity);
                }
                Err(error) => {
                    tracing::warn!("live offers of {provider}: {error}");
                    progress.event(&LaunchEvent::OffersUnavailable {
                        provider,
                        error: &error,
                    });
                }
            }
        }
        (catalog, policy)
    }

    async fn place_and_provision(
        &self,
        request: &LaunchRequest,
        launch_id: &str,
        progress: &dyn Progress,
    ) -> Result<LaunchOutcome, LaunchError> {
        let cluster = request.cluster.as_str();
        let secrets = request.run.secret_values();
        let (catalog, mut policy) = self.live_catalog(progress).await;
        let mut graph = TaskGraph::default();
        graph.add_task(request.task.clone());
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
            progress.event(&LaunchEvent::Planning {
                cluster,
                blocked: policy.blocked.len(),
            });
            let plan = match solve(&catalog, &graph, &policy) {
                Ok(plan) => plan,
                Err(error) if failures.is_empty() => return Err(LaunchError::NoPlacement(error)),
                Err(error) => return Err(fail(failures, format!("no placement left: {error}"))),
            };
            let Some(placement) = plan.tasks.first().map(|t| t.chosen.clone()) else {
                return Err(fail(failures, "the plan has no task".to_string()));
            };
            n += 1;
            progress.event(&LaunchEvent::Trying {
                n,
                placement: &placement,
            });
            let provider = self.providers.get(&placement.cloud);
            let mut tried = false;
            let result = match provider {
                None => Err(ProviderError::NoProvider {
                    cloud: placement.cloud.clone(),
                }),
                Some(provider) => match provider
                    .capabilities()
                    .check(provider.id(), &request.run, &placement)
                {
                    Err(error) => Err(error),
                    Ok(()) => {
                        let provision = ProvisionRequest {
                            request_id: format!("{launch_id}-{n}"),
                            cluster: cluster.to_string(),
                            placement: placement.clone(),
                            task: request.run.clone(),
                        };
                        self.store.record_intent(
                            cluster,
                            n,
                            provider.id(),
                            &placement,
                            &provision.request_id,
                        )?;
                        tried = true;
                        self.provision_with_retries(provider.as_ref(), &provision, n, &secrets, progress)
                            .await
                    }
                },
            };
            let error = match result {
                Ok(handle) => {
                    self.store.finish_attempt(cluster, n, "succeeded", None)?;
                    self.store.set_status(cluster, RecordStatus::Up)?;
                    if let Some(job_id) = handle.job_id {
                        self.store.upsert_job(&JobRecord {
                            cluster: cluster.to_string(),
                            id: job_id,
                            name: request.run.name.clone(),
                            status: crate::JobState::Running,
                            exit_code: None,
                            log_path: None,
                            started_at: unix_now(),
                            ended_at: None,
                        })?;
                    }
                    progress.event(&LaunchEvent::Provisioned {
                        placement: &placement,
                        handle: &handle,
                    });
                    return Ok(LaunchOutcome {
                        cluster: cluster.to_string(),
                        provider: handle.provider.clone(),
                        placement,
                        plan,
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
            if tried && let (Some(provider), FailoverAction::Block(_)) = (provider, &action) {
                // Whatever the failed attempt created must not linger (and cost money).
                if let Err(teardown_error) = provider.teardown(cluster).await {
                    tracing::warn!(
                        "cleaning up after attempt {n} on {}: {teardown_error}",
                        provider.id()
                    );
                }
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
                    policy.blocked.push(blocked.clone());
                    false
                }
                _ => true,
            };
            failures.push(attempt);
            if stop {
                return Err(fail(
                    failures,
                    "the last error is not one that failover can help with".to_string(),
                ));
            }
        }
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
            match provider.provision(request).await {
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

    /// Runs `task` as a new job on the existing cluster `name`; records the job.
    pub async fn exec(&self, name: &str, task: &TaskRun) -> Result<u64, ProviderError> {
        let record = self
            .store
            .cluster(name)?
            .ok_or_else(|| ProviderError::cluster_not_found(name))?;
        if record.status != RecordStatus::Up {
            return Err(ProviderError::InvalidRequest {
                message: format!("cluster {name:?} is {}, not UP", record.status),
            });
        }
        let provider = self.provider_of(&record)?;
        let job_id = provider
            .exec(name, task)
            .await
            .map_err(|e| e.redacted(&task.secret_values()))?;
        self.store.upsert_job(&JobRecord {
            cluster: name.to_string(),
            id: job_id,
            name: task.name.clone(),
            status: crate::JobState::Running,
            exit_code: None,
            log_path: None,
            started_at: unix_now(),
            ended_at: None,
        })?;
        Ok(job_id)
    }

    fn provider_of(&self, record: &ClusterRecord) -> Result<&Arc<dyn Provider>, ProviderError> {
        let cloud = record.provider.clone().unwrap_or_default();
        self.providers
            .get(&cloud)
            .ok_or(ProviderError::NoProvider { cloud })
    }

    /// Tears down cluster `name` everywhere it might be: see [`teardown_cluster`].
    pub async fn down(&self, name: &str) -> Result<DownOutcome, ProviderError> {
        teardown_cluster(&self.store, &self.providers, name).await
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What `down` did for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownOutcome {
    /// The cluster.
    pub name: String,
    /// Providers asked to tear it down, with their answers.
    pub torn_down: Vec<(String, TeardownOutcome)>,
    /// Whether a state-store record was removed.
    pub record_removed: bool,
    /// Problems that did not stop the teardown (a provider whose `list()` failed).
    pub warnings: Vec<String>,
}

impl DownOutcome {
    /// Whether anything existed (a record, or resources at some provider).
    pub fn found(&self) -> bool {
        self.record_removed
            || self
                .torn_down
                .iter()
                .any(|(_, o)| *o == TeardownOutcome::Requested)
    }
}

/// Tears down cluster `name`: at the provider its record names, and at every provider whose
/// `list()` finds resources labeled with it (a launch killed before it could record anything),
/// then removes the record. Idempotent: a second call finds nothing and succeeds.
///
/// The record is kept (and an error returned) when a teardown fails, or when the record names a
/// provider that is not configured while the cluster may still exist.
pub async fn teardown_cluster(
    store: &StateStore,
    providers: &Providers,
    name: &str,
) -> Result<DownOutcome, ProviderError> {
    let record = store.cluster(name)?;
    let mut outcome = DownOutcome {
        name: name.to_string(),
        torn_down: Vec::new(),
        record_removed: false,
        warnings: Vec::new(),
    };
    let mut asked = BTreeSet::new();
    if let Some(record) = &record
        && let Some(cloud) = &record.provider
    {
        match providers.get(cloud) {
            Some(provider) => {
                outcome
                    .torn_down
                    .push((cloud.clone(), provider.teardown(name).await?));
                asked.insert(cloud.clone());
            }
            None if record.status == RecordStatus::Failed => outcome.warnings.push(format!(
                "its last attempt was on {cloud}, which is not configured here; nothing should be left there"
            )),
            None => return Err(ProviderError::NoProvider { cloud: cloud.clone() }),
        }
    }
    for (id, provider) in providers {
        if asked.contains(id) {
            continue;
        }
        match provider.list().await {
            Ok(clusters) => {
                if clusters.iter().any(|c| c.name == name) {
                    outcome
                        .torn_down
                        .push((id.clone(), provider.teardown(name).await?));
                }
            }
            Err(error) => outcome
                .warnings
                .push(format!("could not list clusters on {id}: {error}")),
        }
    }
    outcome.record_removed = store.remove_cluster(name)?;
    Ok(outcome)
}

/// A cluster as `skyplan status` shows it: the record, the provider's live view, and the jobs.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The state-store record.
    pub record: ClusterRecord,
    /// The provider's live status, when it answered.
    pub live: Option<ClusterStatus>,
    /// Why there is no live status (provider missing, unreachable, cluster gone).
    pub live_error: Option<String>,
    /// Recorded jobs, refreshed from the live status.
    pub jobs: Vec<JobRecord>,
}

/// Everything `skyplan status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Recorded clusters, by name.
    pub clusters: Vec<ClusterView>,
    /// Clusters providers hold that the store does not know (crashed launches); `down` removes
    /// them.
    pub unrecorded: Vec<ClusterSummary>,
}

/// Reads every recorded cluster's live status from its provider (updating recorded jobs), and
/// every provider's `list()` for clusters the store does not know.
pub async fn status_report(store: &StateStore, providers: &Providers) -> Result<StatusReport, ProviderError> {
    let records = store.clusters()?;
    let mut views = Vec::with_capacity(records.len());
    for record in &records {
        views.push(refresh_cluster(store, providers, record).await?);
    }
    let known: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
    let mut unrecorded = Vec::new();
    for provider in providers.values() {
        if let Ok(clusters) = provider.list().await {
            unrecorded.extend(clusters.into_iter().filter(|c| !known.contains(c.name.as_str())));
        }
    }
    Ok(StatusReport {
        clusters: views,
        unrecorded,
    })
}

/// One cluster's live view (see [`status_report`]).
pub async fn refresh_cluster(
    store: &StateStore,
    providers: &Providers,
    record: &ClusterRecord,
) -> Result<ClusterView, ProviderError> {
    let mut live = None;
    let mut live_error = None;
    if record.status == RecordStatus::Failed {
        live_error = Some("launch failed; `skyplan down` removes the record".to_string());
    } else {
        match record.provider.as_ref().and_then(|p| providers.get(p)) {
            None => {
                live_error = Some(match &record.provider {
                    Some(cloud) => format!("no provider for cloud {cloud} is configured"),
                    None => "not provisioned yet".to_string(),
                })
            }
            Some(provider) => match provider.status(&record.name).await {
                Ok(status) => {
                    for job in &status.jobs {
                        store.update_job_state(&record.name, job.id, job.state, job.exit_code)?;
                    }
                    live = Some(status);
                }
                Err(error) => live_error = Some(error.to_string()),
            },
        }
    }
    Ok(ClusterView {
        record: record.clone(),
        live,
        live_error,
        jobs: store.jobs(&record.name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_bounds() {
        let backoff = Backoff {
            max_retries: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
            jitter: 0.5,
        };
        for _ in 0..100 {
            let first = backoff.delay(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let capped = backoff.delay(10);
            assert!(
                capped >= Duration::from_millis(150) && capped <= Duration::from_millis(300),
                "{capped:?}"
            );
        }
    }

    #[test]
    fn cluster_names_are_checked() {
        for good in ["a", "dev-1", "x".repeat(63).as_str()] {
            assert!(check_cluster_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "Dev", "a_b", "a-", "x".repeat(64).as_str(), "../etc"] {
            assert!(check_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placements_and_actions_read_well() {
        let mut placement = crate::test_placement("aws", "us-east-1", Some("use1-az1"), "g6.xlarge");
        placement.accelerator = Some("L4".into());
        placement.accelerator_count = 1.0;
        placement.num_nodes = 2;
        placement.use_spot = true;
        assert_eq!(
            describe_placement(&placement),
            "aws/us-east-1/use1-az1 g6.xlarge (L4:1) x2, spot, $1/h"
        );
        let err = ProviderError::QuotaExceeded {
            scope: Scope::Region,
            message: "x".into(),
        };
        assert_eq!(
            describe_action(&err.failover(&placement)),
            "blocked region aws/us-east-1"
        );
    }
}
