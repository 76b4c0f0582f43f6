//! The launcher: the one plan path and the failover loop. [`Launcher::plan`] gathers live
//! offers from the enabled providers once and solves the whole pipeline once (`launch --dryrun`
//! stops there); [`Launcher::launch_task`] provisions each task where that plan put it, and on a
//! failover-able error blocks the right scope, re-solves with launched tasks pinned, and tries
//! the next place. Intent is recorded in the state store before anything is created; every
//! attempt is kept and shown on failure.
//!
//! - `plan.rs`: live offers, enabled clouds, notes, "which clouds could run it".
//! - `pipeline.rs`: [`PipelineRequest`] and [`PipelineRun`] (task states, pinning).
//! - `attempt.rs`: one task's attempts, retries and blocks.
//! - `events.rs`: progress events and the attempt history.
//! - `teardown.rs`: `down` and `status`.

mod attempt;
mod events;
mod pipeline;
mod plan;
mod teardown;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use skyplan_catalog::Catalog;
use skyplan_optimizer::{OptimizerError, Placement, Plan, Policy, TaskNode};

pub use events::{
    Attempt, LaunchEvent, LineProgress, NoProgress, Progress, describe_action, describe_placement,
};
pub use pipeline::{LaunchTask, PipelineRequest, PipelineRun, TaskProgress};
pub use plan::{DisabledCloud, LaunchPlan};
pub use teardown::{
    ClusterView, DownOutcome, ShownState, StatusReport, Unlisted, refresh_cluster, status_report,
    teardown_cluster,
};

use crate::store::{ClusterRecord, JobRecord, RecordStatus, StateStore};
use crate::{Backends, ClusterHandle, ClusterRef, JobSelection, JobState, Provider, ProviderError, TaskRun};

/// Providers by cloud name (a provider's [`Provider::id`] is the cloud of its offers).
pub type Providers = std::collections::BTreeMap<String, Arc<dyn Provider>>;

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

/// A successful launch.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchOutcome {
    /// Cluster name.
    pub cluster: String,
    /// Task name.
    pub task: String,
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
    /// No enabled cloud can run a task; these clouds could, if they were enabled.
    #[error("{}", not_enabled_text(task, clouds))]
    NotEnabled {
        /// The task.
        task: String,
        /// The clouds that have offers for it, and why each is not enabled.
        clouds: Vec<DisabledCloud>,
    },
    /// An enabled cloud has offers for a task, but only outside the regions (contexts) its
    /// provider is configured for.
    #[error(
        "no configured region can run task {task:?}: {cloud} has offers for it only outside the regions it is \
         configured for (cheapest: {cheapest}); widen them (SKYPLAN_AWS_REGIONS for aws) to plan there"
    )]
    OutsideConfigured {
        /// The task.
        task: String,
        /// The cloud.
        cloud: String,
        /// Its cheapest offer outside, described.
        cheapest: String,
    },
    /// A task was not started because a task it depends on failed.
    #[error("task {task:?} was not started: task {parent:?}, which it depends on, failed")]
    ParentFailed {
        /// The task not started.
        task: String,
        /// The failed ancestor.
        parent: String,
    },
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

fn not_enabled_text(task: &str, clouds: &[DisabledCloud]) -> String {
    let mut text = format!(
        "no enabled cloud can run task {task:?}; {} could:",
        if clouds.len() == 1 { "this one" } else { "these" }
    );
    for cloud in clouds {
        text.push_str(&format!("\n  {}: {}", cloud.cloud, cloud.reason));
    }
    text.push_str("\n(`skyplan check` shows every cloud; `skyplan optimize` plans on all of them)");
    text
}

fn failure_text(cluster: &str, attempts: &[Attempt], reason: &str) -> String {
    let mut text = format!(
        "launching cluster {cluster:?} failed after {} attempt{}: ",
        attempts.len(),
        if attempts.len() == 1 { "" } else { "s" }
    );
    match failure_lead(attempts) {
        Some(lead) => text.push_str(&format!("{lead}; {reason}")),
        None => text.push_str(reason),
    }
    for attempt in attempts {
        text.push_str(&format!("\n  {attempt}"));
    }
    text
}

/// The one reason that ended a launch, and the attempts counted by reason: "no capacity in
/// us-east-1, us-east-2 (aws) (3 insufficient capacity)", "authentication failed on aws: ...".
/// The reason is the most frequent one (the last attempt's on a tie).
fn failure_lead(attempts: &[Attempt]) -> Option<String> {
    let last = attempts.last()?;
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for attempt in attempts {
        let kind = attempt.error.kind();
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    let top = counts
        .iter()
        .max_by_key(|(kind, n)| (*n, *kind == last.error.kind()))
        .map_or(last.error.kind(), |(kind, _)| *kind);
    let of_kind: Vec<&Attempt> = attempts.iter().filter(|a| a.error.kind() == top).collect();
    // "us-east-1, us-east-2 (aws); ctx-a (kubernetes)": clouds in the order tried.
    let places = || {
        let mut clouds: Vec<(&str, Vec<&str>)> = Vec::new();
        for attempt in &of_kind {
            let (cloud, region) = (
                attempt.placement.cloud.as_str(),
                attempt.placement.region.as_str(),
            );
            match clouds.iter_mut().find(|(c, _)| *c == cloud) {
                Some((_, regions)) if !regions.contains(&region) => regions.push(region),
                Some(_) => {}
                None => clouds.push((cloud, vec![region])),
            }
        }
        clouds
            .iter_mut()
            .map(|(cloud, regions)| {
                regions.sort_unstable();
                format!("{} ({cloud})", regions.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let example = of_kind.last().map_or(String::new(), |a| a.error.to_string());
    let lead = match top {
        "auth" => {
            let clouds: std::collections::BTreeSet<&str> =
                of_kind.iter().map(|a| a.placement.cloud.as_str()).collect();
            let message = match of_kind.last().map(|a| &a.error) {
                Some(crate::ProviderError::Auth { message }) => message.clone(),
                _ => example,
            };
            format!(
                "authentication failed on {}: {message}",
                clouds.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
        "insufficient_capacity" | "unschedulable" => format!("no capacity in {}", places()),
        "quota_exceeded" => format!("quota exceeded in {}", places()),
        _ => example,
    };
    let counted = counts
        .iter()
        .map(|(kind, n)| format!("{n} {}", kind.replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!("{lead} ({counted})"))
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
    backends: Backends,
    catalog: Catalog,
    policy: Policy,
    store: Arc<StateStore>,
    backoff: Backoff,
    max_attempts: u32,
}

impl fmt::Debug for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launcher")
            .field("backends", &self.backends)
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
            backends: Backends::default(),
            catalog,
            policy,
            store,
            backoff: Backoff::default(),
            max_attempts: 32,
        }
    }

    /// Registers `provider`, enabled, for the cloud named by its id.
    pub fn with_provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.backends.insert(provider);
        self
    }

    /// Replaces the providers: all of them enabled.
    pub fn with_providers(mut self, providers: Providers) -> Self {
        self.backends = Backends::from_providers(providers);
        self
    }

    /// Replaces the backends (enabled providers, and why the other clouds are not enabled).
    pub fn with_backends(mut self, backends: Backends) -> Self {
        self.backends = backends;
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

    /// The registered providers (enabled or not).
    pub fn providers(&self) -> &Providers {
        &self.backends.providers
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The state store.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// Launches one task on the cheapest placement that works: [`Launcher::plan`], then
    /// [`Launcher::launch_task`]. Returns once the task has started (see
    /// [`Provider::provision`]).
    pub async fn launch(
        &self,
        request: &LaunchRequest,
        progress: &dyn Progress,
    ) -> Result<LaunchOutcome, LaunchError> {
        check_cluster_name(&request.cluster)?;
        let pipeline = PipelineRequest::single(&request.cluster, request.task.clone(), request.run.clone());
        if let Some(existing) = self.store.cluster(&request.cluster)?
            && existing.status != RecordStatus::Failed
        {
            return Err(LaunchError::ClusterExists {
                name: request.cluster.clone(),
                status: existing.status,
            });
        }
        let plan = self.plan(&pipeline, progress).await?;
        let mut run = PipelineRun::new(pipeline, plan);
        self.launch_task(&mut run, 0, progress).await
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
            .exec(ClusterRef::from(&record), task)
            .await
            .map_err(|e| e.redacted(&task.secret_values()))?;
        self.store
            .upsert_job(&JobRecord::running(name, job_id, &task.name))?;
        Ok(job_id)
    }

    /// Stops the selected jobs of cluster `name` (see [`Provider::cancel`]) and records them
    /// CANCELLED; returns the ids stopped.
    pub async fn cancel(&self, name: &str, jobs: &JobSelection) -> Result<Vec<u64>, ProviderError> {
        let record = self
            .store
            .cluster(name)?
            .ok_or_else(|| ProviderError::cluster_not_found(name))?;
        let provider = self.provider_of(&record)?;
        let cancelled = provider.cancel(ClusterRef::from(&record), jobs).await?;
        for id in &cancelled {
            self.store
                .update_job_state(name, *id, JobState::Cancelled, None)?;
        }
        Ok(cancelled)
    }

    /// The provider a recorded cluster runs on.
    fn provider_of(&self, record: &ClusterRecord) -> Result<&Arc<dyn Provider>, ProviderError> {
        let cloud = record.provider.clone().unwrap_or_default();
        self.backends
            .providers
            .get(&cloud)
            .ok_or(ProviderError::NoProvider { cloud })
    }

    /// Tears down cluster `name` everywhere it might be: see [`teardown_cluster`].
    pub async fn down(&self, name: &str) -> Result<DownOutcome, ProviderError> {
        teardown_cluster(&self.store, &self.backends.providers, name).await
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

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
