//! The [`Provider`] trait every backend implements, and the plain data it takes and returns.
//!
//! Providers never choose where to run: a [`ProvisionRequest`] carries the optimizer's
//! [`Placement`], and the provider either does exactly that or reports a typed
//! [`ProviderError`] from which the launcher decides what to try next.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::Stream;
use serde::Serialize;
use skyplan_catalog::Offer;
use skyplan_optimizer::{CapacityLimit, Placement};

pub use crate::jobs::{JobSelection, JobState, JobStatus};
use crate::{ProviderError, TaskRun};

/// The label (tag) every backend puts on every resource it creates, with the cluster name as
/// value. [`Provider::list`] finds clusters by it, which is what lets `skyplan down` clean up
/// after a crash even when the state store never heard of the cluster.
pub const CLUSTER_LABEL: &str = "skyplan.dev/cluster";

/// What a provider can do; the launcher checks a task against it before provisioning
/// ([`Capabilities::check`]), and backends call the same check in `provision`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Spot (preemptible) capacity.
    pub spot: bool,
    /// Tasks with more than one node.
    pub multi_node: bool,
    /// `image_id: docker:...` container images.
    pub docker_images: bool,
    /// Opening ports to the outside.
    pub ports: bool,
    /// Running further jobs on an existing cluster ([`Provider::exec`]).
    pub exec: bool,
    /// Copying `workdir` (a local directory) to each node before setup.
    pub workdir: bool,
    /// Copying local `file_mounts` sources to their paths on each node before setup.
    pub file_mounts: bool,
    /// Mounting cloud buckets (`s3://`, `gs://`, storage objects) as `file_mounts`.
    pub bucket_mounts: bool,
    /// Sizing the boot disk (`disk_size`).
    pub disk_size: bool,
}

impl Capabilities {
    /// `Ok` when `provider` can run `task` on `placement`, else the [`ProviderError::Unsupported`]
    /// that makes failover skip this provider for the task.
    pub fn check(&self, provider: &str, task: &TaskRun, placement: &Placement) -> Result<(), ProviderError> {
        let unsupported = |what: String| {
            Err(ProviderError::Unsupported {
                message: format!("{what} is not supported on {provider}"),
            })
        };
        if let Some(image) = task.docker_image()
            && !self.docker_images
        {
            return unsupported(format!("image_id docker:{image}"));
        }
        if task.num_nodes > 1 && !self.multi_node {
            return unsupported(format!("num_nodes {}", task.num_nodes));
        }
        if placement.use_spot && !self.spot {
            return unsupported("use_spot".to_string());
        }
        if !task.ports.is_empty() && !self.ports {
            return unsupported("opening ports".to_string());
        }
        if let Some(workdir) = &task.workdir
            && !self.workdir
        {
            return unsupported(format!("workdir {}", workdir.display()));
        }
        for (path, mount) in &task.file_mounts {
            let supported = if mount.is_local() {
                self.file_mounts
            } else {
                self.bucket_mounts
            };
            if !supported {
                return unsupported(format!("file_mounts {path} ({})", mount.describe()));
            }
        }
        if let Some(size) = task.disk_size_gb
            && !self.disk_size
        {
            return unsupported(format!("disk_size {size}"));
        }
        Ok(())
    }
}

/// Live offers and free capacity a provider reports right now (e.g. this machine's shape, a
/// Kubernetes cluster's free GPUs). Merged into the catalog and the policy before each solve.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveOffers {
    /// Offers to add to the catalog.
    pub offers: Vec<Offer>,
    /// Capacity rows to add to the policy.
    pub capacity: Vec<CapacityLimit>,
}

/// Create a cluster at a placement and start a task on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvisionRequest {
    /// Idempotency key: provisioning twice with the same id creates one cluster.
    pub request_id: String,
    /// Cluster name (lower-case letters, digits, `-`; at most 63 characters).
    pub cluster: String,
    /// Where to run, exactly.
    pub placement: Placement,
    /// What to run.
    pub task: TaskRun,
}

/// One node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Rank, 0-based; rank 0 is the head.
    pub rank: u32,
    /// Address other nodes reach it at.
    pub ip: String,
}

/// What [`Provider::provision`] created (or found, for a repeated request id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterHandle {
    /// Cluster name.
    pub cluster: String,
    /// Provider id.
    pub provider: String,
    /// The request id that created it.
    pub request_id: String,
    /// Nodes, by rank.
    pub nodes: Vec<NodeInfo>,
    /// The job the request's task runs as, if it has a `setup` or `run`.
    pub job_id: Option<u64>,
}

/// A cluster's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterState {
    /// Being created; not yet running jobs.
    Provisioning,
    /// Nodes are up (whether or not a job is running).
    Up,
    /// Creation failed or the nodes were lost; only teardown is left to do.
    Failed,
}

impl fmt::Display for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterState::Provisioning => "PROVISIONING",
            ClusterState::Up => "UP",
            ClusterState::Failed => "FAILED",
        })
    }
}

/// A cluster's live status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// Cluster name.
    pub cluster: String,
    /// Lifecycle state.
    pub state: ClusterState,
    /// Nodes, by rank.
    pub nodes: Vec<NodeInfo>,
    /// Jobs, oldest first.
    pub jobs: Vec<JobStatus>,
}

impl ClusterStatus {
    /// The job with id `id`.
    pub fn job(&self, id: u64) -> Option<&JobStatus> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// The newest job.
    pub fn latest_job(&self) -> Option<&JobStatus> {
        self.jobs.iter().max_by_key(|j| j.id)
    }
}

/// A cluster a provider knows, found by [`CLUSTER_LABEL`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    /// Cluster name (the label's value).
    pub name: String,
    /// Provider id.
    pub provider: String,
    /// Region (Kubernetes context).
    pub region: String,
    /// The request id that created it, when the provider recorded one.
    pub request_id: Option<String>,
    /// Every label on the cluster's resources.
    pub labels: BTreeMap<String, String>,
}

/// Which logs to read, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the job ends (otherwise: what is there now, then end).
    pub follow: bool,
    /// Only the last `n` lines of each node's log before following.
    pub tail: Option<usize>,
    /// Only this node's log.
    pub node: Option<u32>,
    /// This job; the newest when `None`.
    pub job: Option<u64>,
}

/// One line of a job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Node rank it came from.
    pub node: u32,
    /// The text, without the newline.
    pub text: String,
}

impl LogLine {
    /// The line as shown to users: prefixed with `(rank=N) ` when the job has several nodes.
    pub fn render(&self, multi_node: bool) -> String {
        if multi_node {
            format!("(rank={}) {}", self.node, self.text)
        } else {
            self.text.clone()
        }
    }
}

/// A stream of log lines; ends when the logs end (or, with `follow`, when the job ends).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, ProviderError>> + Send>>;

/// What [`Provider::teardown`] did, as verified afterwards by looking up the cluster's label
/// where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TeardownOutcome {
    /// The cluster existed, and nothing carrying its label is left.
    Terminated,
    /// The cluster existed; these resources are still shutting down (each described with
    /// where it is, e.g. `instance i-0abc (shutting-down) in eu-north-1`) and need no more
    /// calls to go away.
    Terminating {
        /// What is still shutting down.
        remaining: Vec<String>,
    },
    /// Nothing by that name existed.
    AlreadyGone,
}

impl TeardownOutcome {
    /// Whether the cluster existed.
    pub fn existed(&self) -> bool {
        !matches!(self, TeardownOutcome::AlreadyGone)
    }
}

/// A cluster by name, with where the state store recorded it, when it did: backends look there
/// as well as in the places they are configured for (`SKYPLAN_AWS_REGIONS`, the configured
/// Kubernetes contexts), so a cluster launched before a setting changed is still found.
///
/// ```
/// use skyplan_providers::ClusterRef;
/// let bare: ClusterRef = "train".into();
/// assert_eq!((bare.name, bare.region), ("train", None));
/// let placed = ClusterRef::new("train").at(Some("eu-north-1"), Some("eun1-az1"));
/// assert_eq!(placed.to_string(), "train");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterRef<'a> {
    /// The cluster name (the value of [`CLUSTER_LABEL`]).
    pub name: &'a str,
    /// The recorded region (a Kubernetes context for the `kubernetes` backend).
    pub region: Option<&'a str>,
    /// The recorded zone.
    pub zone: Option<&'a str>,
}

impl<'a> ClusterRef<'a> {
    /// A cluster known only by name.
    pub fn new(name: &'a str) -> Self {
        ClusterRef {
            name,
            region: None,
            zone: None,
        }
    }

    /// The same cluster, recorded at `region` / `zone`.
    pub fn at(self, region: Option<&'a str>, zone: Option<&'a str>) -> Self {
        ClusterRef { region, zone, ..self }
    }
}

impl<'a> From<&'a str> for ClusterRef<'a> {
    fn from(name: &'a str) -> Self {
        ClusterRef::new(name)
    }
}

impl<'a> From<&'a String> for ClusterRef<'a> {
    fn from(name: &'a String) -> Self {
        ClusterRef::new(name)
    }
}

impl fmt::Display for ClusterRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A predicate over a cluster's status, for [`Provider::wait_until`].
pub type StatusPredicate<'a> = &'a (dyn Fn(&ClusterStatus) -> bool + Send + Sync);

/// A place that runs tasks: a cloud, a Kubernetes cluster, this machine.
///
/// Object-safe (`Arc<dyn Provider>`), async, and `Send + Sync`. Every method is a contract; the
/// shared suite in `conformance` (feature `testing`) checks it for every backend.
///
/// ```
/// use std::sync::Arc;
/// use skyplan_providers::{LocalProvider, Provider};
/// let home = std::env::temp_dir().join(format!("skyplan-doc-{}", std::process::id()));
/// let provider: Arc<dyn Provider> = Arc::new(LocalProvider::new(&home));
/// assert_eq!(provider.id(), "local");
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let live = runtime.block_on(provider.offers()).unwrap();
/// assert_eq!(live.offers[0].cloud, "local");
/// assert!(live.offers.iter().all(|o| o.price.unwrap().is_zero()));
/// # let _ = std::fs::remove_dir_all(home);
/// ```
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's id, which is also the cloud name of its offers (`local`, `aws`,
    /// `kubernetes`).
    fn id(&self) -> &str;

    /// What this provider can do.
    fn capabilities(&self) -> Capabilities;

    /// Whether this provider may plan on `offer`'s place: false for regions (or contexts)
    /// outside the ones it is configured for, e.g. `SKYPLAN_AWS_REGIONS`. The same setting
    /// bounds where [`Provider::list`] looks; a recorded cluster is still found where it was
    /// recorded ([`ClusterRef`]).
    fn serves(&self, offer: &Offer) -> bool {
        let _ = offer;
        true
    }

    /// Live offers and free capacity. Cheap enough to call before every launch; a provider
    /// whose prices come from the static catalog returns only capacity rows (or nothing).
    async fn offers(&self) -> Result<LiveOffers, ProviderError>;

    /// Creates the cluster at `request.placement`, labels every resource with
    /// [`CLUSTER_LABEL`] = `request.cluster`, and starts `request.task` as job 1.
    ///
    /// - Idempotent on `request.request_id`: a repeat returns the existing cluster's handle and
    ///   starts nothing new.
    /// - A cluster of that name created by another request id: [`ProviderError::InvalidRequest`].
    /// - Capacity or quota short: [`ProviderError::InsufficientCapacity`] /
    ///   [`ProviderError::QuotaExceeded`] with the scope of the shortage; whatever was created
    ///   is left for [`Provider::teardown`], which the launcher calls before trying elsewhere.
    /// - A task this provider cannot run: [`ProviderError::Unsupported`].
    ///
    /// Returns once the task has started; it does not wait for it to finish.
    async fn provision(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError>;

    /// What a running [`Provider::provision`] of `cluster` waits for now (e.g. "pod x-0
    /// Pending: FailedScheduling: ..."), for progress lines; `None` when it cannot tell.
    fn wait_note(&self, cluster: &str) -> Option<String> {
        let _ = cluster;
        None
    }

    /// The cluster's state and jobs. [`ProviderError::NotFound`] when it does not exist (never
    /// created, or torn down) where it was recorded nor where this provider looks.
    async fn status(&self, cluster: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError>;

    /// Every cluster this provider holds resources for, found by [`CLUSTER_LABEL`] (not from
    /// the state store), so that crashed launches can be found and torn down.
    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError>;

    /// A job's output (the newest job unless `options.job`). With `follow`, the stream ends
    /// when the job ends; without, it ends after the lines written so far.
    /// [`ProviderError::NotFound`] for an unknown cluster or job.
    async fn logs(&self, cluster: ClusterRef<'_>, options: &LogOptions) -> Result<LogStream, ProviderError>;

    /// Stops every job and deletes every resource of the cluster, where it was recorded and
    /// wherever this provider looks, then looks again by [`CLUSTER_LABEL`] and says what it
    /// found: [`TeardownOutcome::Terminated`] only when nothing is left,
    /// [`TeardownOutcome::Terminating`] with what is still shutting down, and an error naming
    /// what is still there otherwise. Idempotent: [`TeardownOutcome::AlreadyGone`] when nothing
    /// of that name exists, never an error for that.
    async fn teardown(&self, cluster: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError>;

    /// Runs `task` as a new job on an existing cluster (`setup` is not run again, as in
    /// SkyPilot's `exec`) and returns the job id. [`ProviderError::NotFound`] for an unknown
    /// cluster; [`ProviderError::Unsupported`] by default.
    async fn exec(&self, cluster: ClusterRef<'_>, task: &TaskRun) -> Result<u64, ProviderError> {
        let _ = (cluster, task);
        Err(ProviderError::Unsupported {
            message: format!("exec on an existing cluster is not supported on {}", self.id()),
        })
    }

    /// Stops the selected jobs of `cluster` on every node (their process groups) and marks them
    /// [`JobState::Cancelled`]; returns the ids it stopped, oldest first. A job that has
    /// already ended is left as it is (and not returned); an unknown id is
    /// [`ProviderError::NotFound`] before anything is stopped. Every provider that claims
    /// [`Capabilities::exec`] implements it; [`ProviderError::Unsupported`] by default.
    async fn cancel(&self, cluster: ClusterRef<'_>, jobs: &JobSelection) -> Result<Vec<u64>, ProviderError> {
        let _ = (cluster, jobs);
        Err(ProviderError::Unsupported {
            message: format!("cancelling jobs is not supported on {}", self.id()),
        })
    }

    /// Whether this provider can launch now, as a one-line description for `skyplan check`;
    /// the reason as an error when it cannot. By default: the shapes of [`Provider::offers`].
    async fn check(&self) -> Result<String, ProviderError> {
        let live = self.offers().await?;
        Ok(live
            .offers
            .iter()
            .map(|o| {
                format!(
                    "{} ({} vCPUs, {} GiB, {})",
                    o.instance_type,
                    o.vcpus.map_or("?".to_string(), skyplan_catalog::format_count),
                    o.memory_gib
                        .map_or("?".to_string(), skyplan_catalog::format_count),
                    if o.accelerator.is_some() {
                        o.accelerator_label()
                    } else {
                        "no GPU".to_string()
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Polls [`Provider::status`] until `predicate` holds (returning that status) or `timeout`
    /// passes ([`ProviderError::Timeout`]). Errors from `status`, `NotFound` included, end the
    /// wait.
    async fn wait_until(
        &self,
        cluster: ClusterRef<'_>,
        predicate: StatusPredicate<'_>,
        timeout: Duration,
    ) -> Result<ClusterStatus, ProviderError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(20);
        loop {
            let status = self.status(cluster).await?;
            if predicate(&status) {
                return Ok(status);
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Err(ProviderError::Timeout {
                    what: format!("cluster {:?}", cluster.name),
                    seconds: elapsed.as_secs_f64(),
                });
            }
            tokio::time::sleep(delay.min(timeout - elapsed)).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

/// Stands in for a provider that is configured but unusable (a kubeconfig context missing, a
/// broken `config.yaml`, a bad AWS setting): `offers`, `check` and `provision` answer with the
/// reason, so that `skyplan check` and launches say why; `status`, `list`, `logs` and `teardown`
/// answer the reason too (what it holds cannot be known).
#[derive(Debug, Clone)]
pub struct UnavailableProvider {
    id: String,
    reason: ProviderError,
}

impl UnavailableProvider {
    /// A stand-in for provider `id` failing with `reason`.
    pub fn new(id: &str, reason: ProviderError) -> Self {
        UnavailableProvider {
            id: id.to_string(),
            reason,
        }
    }
}

#[async_trait]
impl Provider for UnavailableProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn offers(&self) -> Result<LiveOffers, ProviderError> {
        Err(self.reason.clone())
    }

    async fn provision(&self, _request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        Err(ProviderError::Auth {
            message: self.reason.to_string(),
        })
    }

    // What it holds cannot be known: `status` says UNKNOWN with the reason, and `down` must not
    // say anything is gone.
    async fn status(&self, _cluster: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError> {
        Err(self.reason.clone())
    }

    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError> {
        Err(self.reason.clone())
    }

    async fn logs(
        &self,
        _cluster: ClusterRef<'_>,
        _options: &LogOptions,
    ) -> Result<LogStream, ProviderError> {
        Err(self.reason.clone())
    }

    async fn teardown(&self, _cluster: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError> {
        Err(self.reason.clone())
    }
}
