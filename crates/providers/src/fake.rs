//! A fake provider for tests anywhere (feature `testing`): clusters in memory, every call
//! recorded, and errors primed per cloud, region, zone and instance type — the way Karpenter's
//! fake cloud provider injects insufficient-capacity errors. It is held to the same contract as
//! real backends (it passes `conformance`).
//!
//! It does not run commands; it "runs" a task by printing what each `echo` line of `setup` and
//! `run` would print (with `$VAR` / `${VAR}` expanded from the task's envs and node variables;
//! secrets expand to `<redacted>`), and an `exit N` line sets the job's exit code.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rust_decimal::Decimal;
use skyplan_catalog::Offer;
use skyplan_optimizer::{CapacityLimit, Placement};
use skyplan_spec::REDACTED;

use crate::{
    CLUSTER_LABEL, Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary,
    JobState, JobStatus, LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider, ProviderError,
    ProvisionRequest, TaskRun, TeardownOutcome, node_variables,
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
}

/// Which provision requests a primed error applies to; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorMatch {
    /// Cloud.
    pub cloud: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: Option<String>,
}

impl ErrorMatch {
    /// Matches every request.
    pub fn any() -> Self {
        ErrorMatch::default()
    }

    /// Matches one zone of a region.
    pub fn zone(region: &str, zone: &str) -> Self {
        ErrorMatch {
            region: Some(region.to_string()),
            zone: Some(zone.to_string()),
            ..Default::default()
        }
    }

    /// Matches a whole region.
    pub fn region(region: &str) -> Self {
        ErrorMatch {
            region: Some(region.to_string()),
            ..Default::default()
        }
    }

    /// Matches the exact place and shape of `placement`.
    pub fn placement(placement: &Placement) -> Self {
        ErrorMatch {
            cloud: Some(placement.cloud.clone()),
            region: Some(placement.region.clone()),
            zone: placement.zone.clone(),
            instance_type: Some(placement.instance_type.clone()),
        }
    }

    /// Whether a request for `placement` matches.
    pub fn matches(&self, placement: &Placement) -> bool {
        self.cloud.as_deref().is_none_or(|c| c == placement.cloud)
            && self.region.as_deref().is_none_or(|r| r == placement.region)
            && self
                .zone
                .as_deref()
                .is_none_or(|z| placement.zone.as_deref() == Some(z))
            && self
                .instance_type
                .as_deref()
                .is_none_or(|t| t == placement.instance_type)
    }
}

#[derive(Debug)]
struct Primed {
    matcher: ErrorMatch,
    error: ProviderError,
    remaining: usize,
}

#[derive(Debug, Clone)]
struct FakeJob {
    id: u64,
    name: String,
    lines: Vec<LogLine>,
    node_exit_codes: Vec<i32>,
}

#[derive(Debug, Clone)]
struct FakeCluster {
    request_id: String,
    placement: Placement,
    num_nodes: u32,
    jobs: Vec<FakeJob>,
}

#[derive(Debug, Default)]
struct FakeState {
    clusters: BTreeMap<String, FakeCluster>,
    calls: Vec<Call>,
    primed: Vec<Primed>,
}

/// An in-memory provider that records calls and fails on demand.
///
/// ```
/// use skyplan_providers::fake::{ErrorMatch, FakeProvider};
/// use skyplan_providers::{ProviderError, Scope};
/// let fake = FakeProvider::new("aws");
/// fake.prime_error(
///     ErrorMatch::zone("us-east-1", "use1-az1"),
///     ProviderError::InsufficientCapacity { scope: Scope::Zone, message: "no p5 left".into() },
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
    state: Mutex<FakeState>,
}

impl FakeProvider {
    /// A fake for cloud `id` that can do everything, with no live offers.
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
            state: Mutex::new(FakeState::default()),
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

    /// Claims these capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next `times` provision requests matching `matcher` fail with `error` (primed errors
    /// are checked in the order they were primed).
    pub fn prime_error(&self, matcher: ErrorMatch, error: ProviderError, times: usize) {
        self.lock().primed.push(Primed {
            matcher,
            error,
            remaining: times,
        });
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

    /// Names of the clusters that exist now.
    pub fn cluster_names(&self) -> Vec<String> {
        self.lock().clusters.keys().cloned().collect()
    }

    fn record(&self, call: Call) {
        self.lock().calls.push(call);
    }

    fn run_job(id: u64, task: &TaskRun, num_nodes: u32, gpus_per_node: f64, with_setup: bool) -> FakeJob {
        let ips: Vec<String> = nodes(num_nodes).into_iter().map(|n| n.ip).collect();
        let mut lines = Vec::new();
        let mut node_exit_codes = Vec::new();
        for rank in 0..num_nodes {
            let mut env: BTreeMap<String, String> = task.envs.clone();
            env.extend(task.secrets.keys().map(|k| (k.clone(), REDACTED.to_string())));
            env.extend(node_variables(rank, &ips, gpus_per_node));
            let script = [
                if with_setup { task.setup.as_deref() } else { None },
                task.run.as_deref(),
            ];
            let mut code = 0;
            'scripts: for text in script.into_iter().flatten() {
                for line in text.lines().map(str::trim) {
                    if let Some(rest) = line.strip_prefix("echo ") {
                        let text = expand(rest.trim().trim_matches(|c| c == '"' || c == '\''), &env);
                        lines.push(LogLine { node: rank, text });
                    } else if let Some(rest) = line.strip_prefix("exit ") {
                        code = rest.trim().parse().unwrap_or(1);
                        break 'scripts;
                    }
                }
            }
            node_exit_codes.push(code);
        }
        FakeJob {
            id,
            name: task.name.clone(),
            lines,
            node_exit_codes,
        }
    }
}

/// Expands `$NAME` and `${NAME}` from `env` (unknown names expand to nothing).
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(env.get(name).map_or("", String::as_str));
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

fn job_status(job: &FakeJob) -> JobStatus {
    let code = job.node_exit_codes.iter().copied().find(|c| *c != 0).unwrap_or(0);
    JobStatus {
        id: job.id,
        name: job.name.clone(),
        state: if code == 0 {
            JobState::Succeeded
        } else {
            JobState::Failed
        },
        exit_code: Some(code),
        node_exit_codes: job.node_exit_codes.iter().map(|c| Some(*c)).collect(),
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

#[async_trait]
impl Provider for FakeProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn offers(&self) -> Result<LiveOffers, ProviderError> {
        self.record(Call::Offers);
        Ok(LiveOffers {
            offers: self.offers.clone(),
            capacity: self.capacity.clone(),
        })
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        let mut state = self.lock();
        state.calls.push(Call::Provision {
            request_id: request.request_id.clone(),
            cluster: request.cluster.clone(),
            placement: Box::new(request.placement.clone()),
        });
        if let Some(primed) = state
            .primed
            .iter_mut()
            .find(|p| p.remaining > 0 && p.matcher.matches(&request.placement))
        {
            primed.remaining -= 1;
            return Err(primed.error.clone());
        }
        self.capabilities
            .check(&self.id, &request.task, &request.placement)?;
        let num_nodes = request.placement.num_nodes.max(request.task.num_nodes).max(1);
        if let Some(existing) = state.clusters.get(&request.cluster) {
            if existing.request_id != request.request_id {
                return Err(ProviderError::InvalidRequest {
                    message: format!("cluster {:?} exists already (another request)", request.cluster),
                });
            }
            return Ok(ClusterHandle {
                cluster: request.cluster.clone(),
                provider: self.id.clone(),
                request_id: existing.request_id.clone(),
                nodes: nodes(existing.num_nodes),
                job_id: Some(1),
            });
        }
        let job = Self::run_job(
            1,
            &request.task,
            num_nodes,
            request.placement.accelerator_count,
            true,
        );
        state.clusters.insert(
            request.cluster.clone(),
            FakeCluster {
                request_id: request.request_id.clone(),
                placement: request.placement.clone(),
                num_nodes,
                jobs: vec![job],
            },
        );
        Ok(ClusterHandle {
            cluster: request.cluster.clone(),
            provider: self.id.clone(),
            request_id: request.request_id.clone(),
            nodes: nodes(num_nodes),
            job_id: Some(1),
        })
    }

    async fn status(&self, cluster: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError> {
        let cluster = cluster.name;
        let mut state = self.lock();
        state.calls.push(Call::Status {
            cluster: cluster.to_string(),
        });
        let found = state
            .clusters
            .get(cluster)
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        Ok(ClusterStatus {
            cluster: cluster.to_string(),
            state: ClusterState::Up,
            nodes: nodes(found.num_nodes),
            jobs: found.jobs.iter().map(job_status).collect(),
        })
    }

    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError> {
        let mut state = self.lock();
        state.calls.push(Call::List);
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
        let cluster = cluster.name;
        let mut state = self.lock();
        state.calls.push(Call::Logs {
            cluster: cluster.to_string(),
        });
        let found = state
            .clusters
            .get(cluster)
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        let job = match options.job {
            Some(id) => found.jobs.iter().find(|j| j.id == id),
            None => found.jobs.last(),
        }
        .ok_or_else(|| ProviderError::NotFound {
            what: format!("job on cluster {cluster:?}"),
        })?;
        let mut lines: Vec<LogLine> = job
            .lines
            .iter()
            .filter(|l| options.node.is_none_or(|n| n == l.node))
            .cloned()
            .collect();
        if let Some(tail) = options.tail {
            lines.drain(..lines.len().saturating_sub(tail));
        }
        Ok(Box::pin(futures::stream::iter(lines.into_iter().map(Ok))))
    }

    async fn teardown(&self, cluster: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError> {
        let cluster = cluster.name;
        let mut state = self.lock();
        state.calls.push(Call::Teardown {
            cluster: cluster.to_string(),
        });
        Ok(match state.clusters.remove(cluster) {
            Some(_) => TeardownOutcome::Terminated,
            None => TeardownOutcome::AlreadyGone,
        })
    }

    async fn exec(&self, cluster: ClusterRef<'_>, task: &TaskRun) -> Result<u64, ProviderError> {
        let cluster = cluster.name;
        let mut state = self.lock();
        state.calls.push(Call::Exec {
            cluster: cluster.to_string(),
        });
        let found = state
            .clusters
            .get_mut(cluster)
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        let id = found.jobs.len() as u64 + 1;
        let job = Self::run_job(
            id,
            task,
            task.num_nodes.max(1),
            found.placement.accelerator_count,
            false,
        );
        found.jobs.push(job);
        Ok(id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_handles_both_forms_and_unknowns() {
        let env = BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("B_C".to_string(), "2".to_string()),
        ]);
        assert_eq!(expand("a=$A b=${B_C} c=$NOPE $ end", &env), "a=1 b=2 c= $ end");
    }

    #[test]
    fn matchers_use_wildcards() {
        let p = placement("aws", "us-east-1", Some("use1-az1"), "m6i.large");
        assert!(ErrorMatch::any().matches(&p));
        assert!(ErrorMatch::zone("us-east-1", "use1-az1").matches(&p));
        assert!(!ErrorMatch::zone("us-east-1", "use1-az2").matches(&p));
        assert!(ErrorMatch::region("us-east-1").matches(&p));
        assert!(ErrorMatch::placement(&p).matches(&p));
    }
}
