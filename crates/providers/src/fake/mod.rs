//! A fake provider for tests anywhere (feature `testing`): clusters in memory, every call
//! recorded, and errors primed at every step (before and after creating part of a cluster, in
//! status, logs, teardown and exec) per cloud, region, zone and instance type — the way
//! Karpenter's fake cloud provider injects insufficient-capacity errors. It is held to the same
//! contract as real backends (it passes `conformance`).
//!
//! It does not run commands; it "runs" a task line by line in time (see [`Timing`]): `echo`
//! prints (with `$VAR` / `${VAR}` expanded from the task's envs and node variables; secrets
//! expand to `<redacted>`), `sleep N` waits and `exit N` sets the node's exit code. Jobs are
//! Pending, then Running, then finished, and `logs` with `follow` streams lines as they are
//! printed.

mod faults;
mod script;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use rust_decimal::Decimal;
use skyplan_catalog::Offer;
use skyplan_optimizer::{CapacityLimit, Placement};

pub use faults::{ErrorMatch, Step};
pub use script::Timing;

use faults::Faults;
use script::FakeJob;

use crate::{
    CLUSTER_LABEL, Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary,
    JobSelection, LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider, ProviderError,
    ProvisionRequest, TaskRun, TeardownOutcome,
};

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `offers()`.
    Offers,
    /// `provision(request)`.
    Provision {
        /// The request id.
        request_id: String,
        /// The cluster.
        cluster: String,
        /// The placement.
        placement: Box<Placement>,
    },
    /// `status(cluster)`.
    Status {
        /// The cluster.
        cluster: String,
    },
    /// `list()`.
    List,
    /// `logs(cluster, ..)`.
    Logs {
        /// The cluster.
        cluster: String,
    },
    /// `teardown(cluster)`.
    Teardown {
        /// The cluster.
        cluster: String,
    },
    /// `exec(cluster, ..)`.
    Exec {
        /// The cluster.
        cluster: String,
    },
    /// `cancel`.
    Cancel {
        /// The cluster.
        cluster: String,
    },
}

#[derive(Debug, Clone)]
struct FakeCluster {
    request_id: String,
    placement: Placement,
    /// Nodes the request asked for.
    num_nodes: u32,
    /// Nodes created so far: one after an [`Step::AfterCreate`] error.
    created: u32,
    /// Every node made and the job started.
    complete: bool,
    jobs: Vec<FakeJob>,
}

#[derive(Debug, Default)]
struct FakeState {
    clusters: BTreeMap<String, FakeCluster>,
    calls: Vec<Call>,
    faults: Faults,
}

/// An in-memory provider that records calls and fails on demand.
///
/// ```
/// use skyplan_providers::fake::{ErrorMatch, FakeProvider, Step};
/// use skyplan_providers::{ProviderError, Scope};
/// let fake = FakeProvider::new("aws");
/// fake.prime_error(
///     ErrorMatch::zone("us-east-1", "use1-az1"),
///     ProviderError::InsufficientCapacity { scope: Scope::Zone, message: "no p5 left".into() },
///     1,
/// );
/// fake.prime(
///     Step::Teardown,
///     ErrorMatch::any(),
///     ProviderError::Transient { message: "throttled".into() },
///     1,
/// );
/// assert!(fake.calls().is_empty());
/// ```
#[derive(Debug)]
pub struct FakeProvider {
    id: String,
    offers: Vec<Offer>,
    capacity: Vec<CapacityLimit>,
    capabilities: Capabilities,
    timing: Timing,
    state: Arc<Mutex<FakeState>>,
}

fn lock(state: &Mutex<FakeState>) -> MutexGuard<'_, FakeState> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeProvider {
    /// A fake for cloud `id` that can do everything, with no live offers and the default
    /// [`Timing`].
    pub fn new(id: &str) -> Self {
        FakeProvider {
            id: id.to_string(),
            offers: Vec::new(),
            capacity: Vec::new(),
            capabilities: Capabilities {
                spot: true,
                multi_node: true,
                docker_images: true,
                ports: true,
                exec: true,
                workdir: true,
                file_mounts: true,
                bucket_mounts: false,
                disk_size: true,
            },
            timing: Timing::default(),
            state: Arc::new(Mutex::new(FakeState::default())),
        }
    }

    /// Reports `offers` from `offers()`.
    pub fn with_offers(mut self, offers: Vec<Offer>) -> Self {
        self.offers = offers;
        self
    }

    /// Reports `capacity` rows from `offers()`.
    pub fn with_capacity(mut self, capacity: Vec<CapacityLimit>) -> Self {
        self.capacity = capacity;
        self
    }

    /// Claims these capabilities (and keeps to them: what is not claimed is `Unsupported`).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Jobs take this long.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// The next `times` `provision` calls matching `matcher` fail with `error` before creating
    /// anything (the same as [`FakeProvider::prime`] at [`Step::Provision`]).
    pub fn prime_error(&self, matcher: ErrorMatch, error: ProviderError, times: usize) {
        self.prime(Step::Provision, matcher, error, times);
    }

    /// The next `times` calls at `step` matching `matcher` fail with `error`. Primed errors are
    /// checked in the order they were primed.
    pub fn prime(&self, step: Step, matcher: ErrorMatch, error: ProviderError, times: usize) {
        self.lock().faults.prime(step, matcher, error, times);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The placements of every `provision` call, in order (retries included).
    pub fn provisioned_placements(&self) -> Vec<Placement> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Provision { placement, .. } => Some((**placement).clone()),
                _ => None,
            })
            .collect()
    }

    /// Names of the clusters that exist now (partly created ones included).
    pub fn cluster_names(&self) -> Vec<String> {
        self.lock().clusters.keys().cloned().collect()
    }

    /// Records `call`, then answers the error primed for `step` on `cluster`, if any.
    fn enter(
        &self,
        call: Call,
        step: Step,
        cluster: Option<&str>,
    ) -> Result<MutexGuard<'_, FakeState>, ProviderError> {
        let mut state = self.lock();
        state.calls.push(call);
        let placement = cluster
            .and_then(|c| state.clusters.get(c))
            .map(|c| c.placement.clone());
        state.faults.take(step, placement.as_ref())?;
        Ok(state)
    }

    fn start_job(&self, id: u64, task: &TaskRun, cluster: &FakeCluster, with_setup: bool) -> FakeJob {
        let ips: Vec<String> = nodes(cluster.num_nodes).into_iter().map(|n| n.ip).collect();
        FakeJob::start(
            id,
            task,
            &ips,
            cluster.placement.accelerator_count,
            with_setup,
            self.timing,
        )
    }

    fn handle(&self, name: &str, cluster: &FakeCluster) -> ClusterHandle {
        ClusterHandle {
            cluster: name.to_string(),
            provider: self.id.clone(),
            request_id: cluster.request_id.clone(),
            nodes: nodes(cluster.num_nodes),
            job_id: Some(1),
        }
    }
}

fn nodes(num_nodes: u32) -> Vec<NodeInfo> {
    (0..num_nodes)
        .map(|rank| NodeInfo {
            rank,
            ip: format!("10.0.0.{}", rank + 1),
        })
        .collect()
}

fn not_found(cluster: &str) -> ProviderError {
    ProviderError::cluster_not_found(cluster)
}

#[async_trait]
impl Provider for FakeProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn offers(&self) -> Result<LiveOffers, ProviderError> {
        self.lock().calls.push(Call::Offers);
        Ok(LiveOffers {
            offers: self.offers.clone(),
            capacity: self.capacity.clone(),
        })
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        let name = request.cluster.as_str();
        let mut state = self.lock();
        state.calls.push(Call::Provision {
            request_id: request.request_id.clone(),
            cluster: name.to_string(),
            placement: Box::new(request.placement.clone()),
        });
        state.faults.take(Step::Provision, Some(&request.placement))?;
        self.capabilities
            .check(&self.id, &request.task, &request.placement)?;
        let num_nodes = request.placement.num_nodes.max(request.task.num_nodes).max(1);
        if let Some(existing) = state.clusters.get_mut(name) {
            if existing.request_id != request.request_id {
                return Err(ProviderError::InvalidRequest {
                    message: format!(
                        "cluster {name:?} exists already in {} {} (created by another request)",
                        self.id, existing.placement.region
                    ),
                });
            }
            if !existing.complete {
                // A retry after a failure past creation: finish the cluster, start the job.
                existing.created = existing.num_nodes;
                existing.complete = true;
                let job = self.start_job(1, &request.task, existing, true);
                existing.jobs.push(job);
            }
            return Ok(self.handle(name, existing));
        }
        let mut cluster = FakeCluster {
            request_id: request.request_id.clone(),
            placement: request.placement.clone(),
            num_nodes,
            created: 1,
            complete: false,
            jobs: Vec::new(),
        };
        if let Err(error) = state.faults.take(Step::AfterCreate, Some(&request.placement)) {
            state.clusters.insert(name.to_string(), cluster);
            return Err(error);
        }
        cluster.created = num_nodes;
        cluster.complete = true;
        cluster
            .jobs
            .push(self.start_job(1, &request.task, &cluster, true));
        let handle = self.handle(name, &cluster);
        state.clusters.insert(name.to_string(), cluster);
        Ok(handle)
    }

    async fn status(&self, cluster: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError> {
        let name = cluster.name;
        let state = self.enter(
            Call::Status {
                cluster: name.to_string(),
            },
            Step::Status,
            Some(name),
        )?;
        let found = state.clusters.get(name).ok_or_else(|| not_found(name))?;
        let now = Instant::now();
        Ok(ClusterStatus {
            cluster: name.to_string(),
            state: if !found.complete {
                ClusterState::Provisioning
            } else {
                ClusterState::Up
            },
            nodes: nodes(found.created),
            jobs: found.jobs.iter().map(|j| j.status(now)).collect(),
        })
    }

    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError> {
        let state = self.enter(Call::List, Step::List, None)?;
        Ok(state
            .clusters
            .iter()
            .map(|(name, c)| ClusterSummary {
                name: name.clone(),
                provider: self.id.clone(),
                region: c.placement.region.clone(),
                request_id: Some(c.request_id.clone()),
                labels: BTreeMap::from([(CLUSTER_LABEL.to_string(), name.clone())]),
            })
            .collect())
    }

    async fn logs(&self, cluster: ClusterRef<'_>, options: &LogOptions) -> Result<LogStream, ProviderError> {
        let name = cluster.name.to_string();
        let state = self.enter(
            Call::Logs {
                cluster: name.clone(),
            },
            Step::Logs,
            Some(&name),
        )?;
        let found = state.clusters.get(&name).ok_or_else(|| not_found(&name))?;
        let job = match options.job {
            Some(id) => found.jobs.iter().find(|j| j.id == id),
            None => found.jobs.last(),
        }
        .ok_or_else(|| ProviderError::NotFound {
            what: match options.job {
                Some(id) => format!("job {id} of cluster {name:?}"),
                None => format!("a job on cluster {name:?}"),
            },
        })?;
        let (job_id, ends_at) = (job.id, job.ends_at());
        let now = Instant::now();
        let mut lines: Vec<(Instant, LogLine)> = job
            .timeline()
            .into_iter()
            .filter(|(_, l)| options.node.is_none_or(|n| n == l.node))
            .filter(|(at, _)| options.follow || *at <= now)
            .collect();
        drop(state);
        if let Some(tail) = options.tail {
            // The last `tail` lines of each node printed so far; later ones are followed.
            let mut keep = vec![false; lines.len()];
            let mut per_node: BTreeMap<u32, usize> = BTreeMap::new();
            for (i, (at, line)) in lines.iter().enumerate().rev() {
                let seen = per_node.entry(line.node).or_default();
                if *at > now {
                    keep[i] = true;
                } else if *seen < tail {
                    *seen += 1;
                    keep[i] = true;
                }
            }
            let mut keep = keep.into_iter();
            lines.retain(|_| keep.next().unwrap_or(false));
        }
        if !options.follow {
            return Ok(Box::pin(futures::stream::iter(
                lines.into_iter().map(|(_, l)| Ok(l)),
            )));
        }
        // Follow: each line when it is printed; the stream ends when the job ends, or when the
        // cluster is torn down meanwhile.
        let shared = Arc::clone(&self.state);
        let alive = move || {
            lock(&shared)
                .clusters
                .get(&name)
                .is_some_and(|c| c.jobs.iter().any(|j| j.id == job_id))
        };
        let lines = lines.into_iter().map(Some).chain([None]);
        let stream = futures::stream::unfold((lines, alive), move |(mut lines, alive)| async move {
            let next = lines.next()?;
            let at = next.as_ref().map_or(ends_at, |(at, _)| *at);
            tokio::time::sleep_until(at.into()).await;
            match next {
                Some((_, line)) if alive() => Some((Ok(line), (lines, alive))),
                _ => None,
            }
        });
        Ok(Box::pin(stream))
    }

    async fn teardown(&self, cluster: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError> {
        let name = cluster.name;
        let mut state = self.enter(
            Call::Teardown {
                cluster: name.to_string(),
            },
            Step::Teardown,
            Some(name),
        )?;
        Ok(match state.clusters.remove(name) {
            Some(_) => TeardownOutcome::Terminated,
            None => TeardownOutcome::AlreadyGone,
        })
    }

    async fn exec(&self, cluster: ClusterRef<'_>, task: &TaskRun) -> Result<u64, ProviderError> {
        let name = cluster.name;
        let mut state = self.enter(
            Call::Exec {
                cluster: name.to_string(),
            },
            Step::Exec,
            Some(name),
        )?;
        if !self.capabilities.exec {
            return Err(ProviderError::Unsupported {
                message: format!("exec on an existing cluster is not supported on {}", self.id),
            });
        }
        let found = state.clusters.get_mut(name).ok_or_else(|| not_found(name))?;
        self.capabilities.check(&self.id, task, &found.placement)?;
        let id = found.jobs.iter().map(|j| j.id).max().unwrap_or(0) + 1;
        let job = self.start_job(id, task, found, false);
        found.jobs.push(job);
        Ok(id)
    }

    async fn cancel(&self, cluster: ClusterRef<'_>, jobs: &JobSelection) -> Result<Vec<u64>, ProviderError> {
        let name = cluster.name;
        let mut state = self.enter(
            Call::Cancel {
                cluster: name.to_string(),
            },
            Step::Cancel,
            Some(name),
        )?;
        if !self.capabilities.exec {
            return Err(ProviderError::Unsupported {
                message: format!("cancelling jobs is not supported on {}", self.id),
            });
        }
        let found = state.clusters.get_mut(name).ok_or_else(|| not_found(name))?;
        if let JobSelection::Ids(ids) = jobs
            && let Some(missing) = ids.iter().find(|id| !found.jobs.iter().any(|j| j.id == **id))
        {
            return Err(ProviderError::NotFound {
                what: format!("job {missing} on cluster {name:?}"),
            });
        }
        let now = Instant::now();
        Ok(found
            .jobs
            .iter_mut()
            .filter(|j| match jobs {
                JobSelection::All => true,
                JobSelection::Ids(ids) => ids.contains(&j.id),
            })
            .filter_map(|j| j.cancel(now).then_some(j.id))
            .collect())
    }
}

/// A placement (1 node, $1/h, CPU-only) for tests.
pub fn placement(cloud: &str, region: &str, zone: Option<&str>, instance_type: &str) -> Placement {
    Placement {
        cloud: cloud.to_string(),
        region: region.to_string(),
        zone: zone.map(str::to_string),
        instance_type: instance_type.to_string(),
        accelerator: None,
        accelerator_count: 0.0,
        vcpus: Some(4.0),
        memory_gib: Some(16.0),
        use_spot: false,
        hourly_price: Decimal::ONE,
        num_nodes: 1,
        alternative: 0,
    }
}

/// A CPU-only offer with 4 vCPUs and 16 GiB at `price` $/h (on-demand), for tests.
pub fn offer(cloud: &str, region: &str, zone: Option<&str>, instance_type: &str, price: Decimal) -> Offer {
    Offer {
        cloud: cloud.to_string(),
        region: region.to_string(),
        zone: zone.map(str::to_string),
        instance_type: instance_type.to_string(),
        accelerator: None,
        accelerator_count: 0.0,
        vcpus: Some(4.0),
        memory_gib: Some(16.0),
        accelerator_memory_mib: None,
        price: Some(price),
        spot_price: None,
    }
}
