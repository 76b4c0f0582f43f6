//! The `local` backend, the embedded default: runs tasks as processes on this machine.
//!
//! A cluster is a directory `$SKYPLAN_HOME/local/<cluster>/` holding `cluster.json` (name,
//! request id, labels), one working directory per node (`nodes/<rank>/`, a copy of the task's
//! `workdir`), and one directory per job (`jobs/<id>/`) with the job's scripts, per-node logs,
//! pid files and exit codes. Everything `down` needs is on disk, so a fresh process can tear down
//! what a crashed one started.
//!
//! The nodes of a cluster share this machine: `provision` refuses a cluster whose nodes together
//! ask for more vCPUs, memory or GPUs than it has (`fit`), so failover goes elsewhere.
//!
//! Each node runs `bash` on a small wrapper script that runs `setup` (a failure fails the job)
//! then `run`, and writes its exit code. Processes get their own process group (so teardown kills
//! everything they started) and outlive the CLI that launched them. Secret values are passed in
//! the environment only, and scrubbed from the log as it is written.

mod fit;
mod jobs;
mod logs;
mod machine;
mod process;
mod sync;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use machine::{Gpu, LOCAL, cpu_count, detect_gpus, machine_offers, memory_gib, parse_nvidia_smi};

use crate::{
    CLUSTER_LABEL, Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary,
    JobSelection, LiveOffers, LogOptions, LogStream, NodeInfo, Provider, ProviderError, ProvisionRequest,
    TaskRun, TeardownOutcome,
};

/// What `cluster.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterMeta {
    name: String,
    request_id: String,
    labels: BTreeMap<String, String>,
    num_nodes: u32,
    gpus_per_node: f64,
    instance_type: String,
    created_unix: u64,
}

/// Runs tasks on this machine. See the module docs for the on-disk layout.
#[derive(Debug)]
pub struct LocalProvider {
    root: PathBuf,
    gpus: OnceLock<Vec<Gpu>>,
}

impl LocalProvider {
    /// A provider keeping its clusters under `home/local/`. GPUs are detected with `nvidia-smi`
    /// on first use.
    pub fn new(home: &Path) -> Self {
        LocalProvider {
            root: home.join(LOCAL),
            gpus: OnceLock::new(),
        }
    }

    /// Uses `gpus` instead of asking `nvidia-smi` (for tests and machines where it lies).
    pub fn with_gpus(self, gpus: Vec<Gpu>) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(gpus);
        LocalProvider { gpus: cell, ..self }
    }

    /// The directory of cluster `name`.
    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn gpus(&self) -> &[Gpu] {
        self.gpus.get_or_init(detect_gpus)
    }

    fn read_meta(&self, name: &str) -> Result<Option<ClusterMeta>, ProviderError> {
        let path = self.cluster_dir(name).join("cluster.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| ProviderError::state(format!("reading {}", path.display()), err)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ProviderError::io(format!("reading {}", path.display()), err)),
        }
    }

    fn nodes(meta: &ClusterMeta) -> Vec<NodeInfo> {
        (0..meta.num_nodes)
            .map(|rank| NodeInfo {
                rank,
                ip: "127.0.0.1".to_string(),
            })
            .collect()
    }

    fn handle(meta: &ClusterMeta) -> ClusterHandle {
        ClusterHandle {
            cluster: meta.name.clone(),
            provider: LOCAL.to_string(),
            request_id: meta.request_id.clone(),
            nodes: Self::nodes(meta),
            job_id: Some(1),
        }
    }

    fn create(&self, request: &ProvisionRequest, dir: &Path) -> Result<ClusterHandle, ProviderError> {
        let placement = &request.placement;
        let meta = ClusterMeta {
            name: request.cluster.clone(),
            request_id: request.request_id.clone(),
            // The task's labels, and the cluster label (which a task label cannot override).
            labels: request
                .task
                .labels
                .clone()
                .into_iter()
                .chain([(CLUSTER_LABEL.to_string(), request.cluster.clone())])
                .collect(),
            num_nodes: placement.num_nodes.max(request.task.num_nodes).max(1),
            gpus_per_node: placement.accelerator_count,
            instance_type: placement.instance_type.clone(),
            created_unix: jobs::unix_now(),
        };
        let bytes = serde_json::to_vec_pretty(&meta)
            .map_err(|err| ProviderError::state("serializing cluster metadata", err))?;
        jobs::write_atomic(&dir.join("cluster.json"), &bytes)?;
        for rank in 0..meta.num_nodes {
            let node_dir = dir.join("nodes").join(rank.to_string());
            jobs::create_dir_all(&node_dir)?;
            sync::sync_task_files(&request.task, &node_dir)?;
        }
        jobs::start_job(
            dir,
            1,
            &meta.name,
            meta.num_nodes,
            meta.gpus_per_node,
            &request.task,
            true,
        )
        .map_err(jobs::StartError::into_provider_error)?;
        Ok(Self::handle(&meta))
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn id(&self) -> &str {
        LOCAL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            spot: false,
            multi_node: true,
            docker_images: false,
            ports: true,
            exec: true,
            workdir: true,
            file_mounts: true,
            bucket_mounts: false,
            disk_size: false,
        }
    }

    /// One price-0 offer per shape of this machine; no capacity rows (local clusters share the
    /// machine).
    async fn offers(&self) -> Result<LiveOffers, ProviderError> {
        Ok(LiveOffers {
            offers: machine_offers(cpu_count(), memory_gib(), self.gpus()),
            capacity: Vec::new(),
        })
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        if request.placement.cloud != LOCAL {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "placement on {} handed to the local provider",
                    request.placement.cloud
                ),
            });
        }
        self.capabilities()
            .check(LOCAL, &request.task, &request.placement)?;
        let machine = fit::Machine {
            cpus: cpu_count(),
            memory_gib: memory_gib(),
            gpus: self.gpus().iter().map(|gpu| gpu.name.clone()).collect(),
        };
        fit::check_fits(&machine, request)?;
        jobs::create_dir_all(&self.root)?;
        let dir = self.cluster_dir(&request.cluster);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return match self.read_meta(&request.cluster)? {
                    Some(meta) if meta.request_id == request.request_id => Ok(Self::handle(&meta)),
                    Some(_) => Err(ProviderError::InvalidRequest {
                        message: format!(
                            "local cluster {:?} exists already (created by another request)",
                            request.cluster
                        ),
                    }),
                    None => Err(ProviderError::InvalidRequest {
                        message: format!(
                            "{} exists without cluster.json (an interrupted launch?); `skyplan down {}` removes it",
                            dir.display(),
                            request.cluster
                        ),
                    }),
                };
            }
            Err(err) => return Err(ProviderError::io(format!("creating {}", dir.display()), err)),
        }
        let created = self.create(request, &dir);
        if created.is_err() {
            // Leave nothing half-made behind.
            let _ = jobs::destroy_cluster_dir(&self.root, &dir);
        }
        created
    }

    async fn status(&self, cluster: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError> {
        let cluster = cluster.name;
        let dir = self.cluster_dir(cluster);
        if !dir.is_dir() {
            return Err(ProviderError::cluster_not_found(cluster));
        }
        let Some(meta) = self.read_meta(cluster)? else {
            return Ok(ClusterStatus {
                cluster: cluster.to_string(),
                state: ClusterState::Provisioning,
                nodes: Vec::new(),
                jobs: Vec::new(),
            });
        };
        Ok(ClusterStatus {
            cluster: cluster.to_string(),
            state: ClusterState::Up,
            nodes: Self::nodes(&meta),
            jobs: jobs::job_statuses(&dir)?,
        })
    }

    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(ProviderError::io(format!("listing {}", self.root.display()), err)),
        };
        let mut clusters = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !entry.path().is_dir() {
                continue; // `.trash-*`: being removed
            }
            let meta = self.read_meta(&name).ok().flatten();
            let labels = meta.as_ref().map_or_else(
                || BTreeMap::from([(CLUSTER_LABEL.to_string(), name.clone())]),
                |m| m.labels.clone(),
            );
            if labels.get(CLUSTER_LABEL) != Some(&name) {
                continue;
            }
            clusters.push(ClusterSummary {
                name,
                provider: LOCAL.to_string(),
                region: LOCAL.to_string(),
                request_id: meta.map(|m| m.request_id),
                labels,
            });
        }
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(clusters)
    }

    async fn logs(&self, cluster: ClusterRef<'_>, options: &LogOptions) -> Result<LogStream, ProviderError> {
        let cluster = cluster.name;
        let dir = self.cluster_dir(cluster);
        if !dir.is_dir() {
            return Err(ProviderError::cluster_not_found(cluster));
        }
        logs::log_stream(&dir, cluster, options)
    }

    async fn teardown(&self, cluster: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError> {
        let cluster = cluster.name;
        let dir = self.cluster_dir(cluster);
        if !dir.exists() {
            return Ok(TeardownOutcome::AlreadyGone);
        }
        jobs::destroy_cluster_dir(&self.root, &dir)?;
        Ok(TeardownOutcome::Terminated)
    }

    async fn cancel(&self, cluster: ClusterRef<'_>, jobs: &JobSelection) -> Result<Vec<u64>, ProviderError> {
        let name = cluster.name;
        if self.read_meta(name)?.is_none() {
            return Err(ProviderError::cluster_not_found(name));
        }
        // Blocks for up to the stop grace period, as teardown does.
        jobs::cancel_jobs(&self.cluster_dir(name), name, jobs)
    }

    async fn exec(&self, cluster: ClusterRef<'_>, task: &TaskRun) -> Result<u64, ProviderError> {
        let cluster = cluster.name;
        let dir = self.cluster_dir(cluster);
        let meta = self
            .read_meta(cluster)?
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        if let Some(image) = task.docker_image() {
            return Err(ProviderError::Unsupported {
                message: format!("image_id docker:{image} is not supported on local"),
            });
        }
        if task.num_nodes > meta.num_nodes {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "the task needs {} nodes; cluster {cluster:?} has {}",
                    task.num_nodes, meta.num_nodes
                ),
            });
        }
        for rank in 0..meta.num_nodes {
            sync::sync_task_files(task, &dir.join("nodes").join(rank.to_string()))?;
        }
        let start = Instant::now();
        loop {
            let id = jobs::next_job_id(&dir)?;
            match jobs::start_job(&dir, id, cluster, meta.num_nodes, meta.gpus_per_node, task, false) {
                Ok(()) => return Ok(id),
                // Another exec took this id first.
                Err(jobs::StartError::Taken) if start.elapsed() < Duration::from_secs(5) => continue,
                Err(jobs::StartError::Taken) => {
                    return Err(ProviderError::Transient {
                        message: format!("could not allocate a job id on {cluster:?}"),
                    });
                }
                Err(jobs::StartError::Failed(err)) => return Err(err),
            }
        }
    }
}
