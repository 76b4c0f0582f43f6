//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skyplan_catalog::Catalog;
use skyplan_optimizer::{Policy, Requirement, TaskNode};
use skyplan_providers::{
    Backoff, ClusterStatus, Launcher, LocalProvider, LogLine, LogOptions, Provider, StateStore,
};

/// A temporary `SKYPLAN_HOME`, removed on drop.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Home {
            dir: tempfile::Builder::new()
                .prefix("skyplan-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> Arc<StateStore> {
        Arc::new(StateStore::open(self.path()).expect("open store"))
    }

    pub fn local(&self) -> Arc<LocalProvider> {
        // No GPUs: tests must not depend on the machine's nvidia-smi.
        Arc::new(LocalProvider::new(self.path()).with_gpus(Vec::new()))
    }

    /// Every file under the home, recursively.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), &mut out);
        out
    }
}

/// Four CPU offers of `aws`, cheapest first: two zones of us-east-1, then two of us-west-2.
pub const AWS_CSV: &str =
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone
m6i.xlarge,,,4,16,0.10,,us-east-1,use1-az1
m6i.xlarge,,,4,16,0.11,,us-east-1,use1-az2
m6i.xlarge,,,4,16,0.12,,us-west-2,usw2-az1
m6i.xlarge,,,4,16,0.13,,us-west-2,usw2-az2
";

pub fn aws_catalog() -> Catalog {
    Catalog::from_csv("aws", "aws.csv", AWS_CSV.as_bytes()).expect("test catalog")
}

/// A task needing 4 vCPUs (which only the catalog's offers have).
pub fn four_cpu_task(name: &str) -> TaskNode {
    TaskNode::new(
        name,
        vec![Requirement {
            cpus: Some("4".parse().expect("amount")),
            ..Default::default()
        }],
    )
}

/// A request to launch [`four_cpu_task`] as `cluster`, running `echo training`.
pub fn launch_request(cluster: &str) -> skyplan_providers::LaunchRequest {
    skyplan_providers::LaunchRequest {
        cluster: cluster.to_string(),
        task: four_cpu_task("train"),
        run: skyplan_providers::TaskRun::command("train", "echo training"),
    }
}

/// An insufficient-capacity error for a zone.
pub fn zone_capacity(message: &str) -> skyplan_providers::ProviderError {
    skyplan_providers::ProviderError::InsufficientCapacity {
        scope: skyplan_providers::Scope::Zone,
        message: message.to_string(),
    }
}

/// A launcher over `catalog` recording in `store`, with test backoff.
pub fn launcher(catalog: Catalog, store: Arc<StateStore>) -> Launcher {
    Launcher::new(catalog, Policy::default(), store).with_backoff(Backoff::fast())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Follows the newest (or given) job's logs to the end.
pub async fn follow_logs(provider: &dyn Provider, cluster: &str, job: Option<u64>) -> Vec<LogLine> {
    let options = LogOptions {
        follow: true,
        job,
        ..Default::default()
    };
    let stream = provider.logs(cluster.into(), &options).await.expect("logs");
    let lines: Vec<_> = tokio::time::timeout(Duration::from_secs(60), stream.collect::<Vec<_>>())
        .await
        .expect("log stream ends when the job ends");
    lines.into_iter().map(|l| l.expect("log line")).collect()
}

/// Waits until job `id` of `cluster` has finished.
pub async fn wait_job(provider: &dyn Provider, cluster: &str, id: u64) -> ClusterStatus {
    let done = move |s: &ClusterStatus| s.job(id).is_some_and(|j| j.state.is_finished());
    provider
        .wait_until(cluster.into(), &done, Duration::from_secs(60))
        .await
        .expect("job finishes")
}

/// Whether a process with this pid exists and is not a zombie (orphans may never be reaped in
/// containers without an init).
pub fn pid_exists(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}
