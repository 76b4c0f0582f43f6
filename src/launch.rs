//! Running plans: the facade between the CLI and `skyplan-providers`. Builds the configured
//! providers and the state store for a `SKYPLAN_HOME`, launches pipelines (task by task, in
//! dependency order) with failover, follows their logs, and reports progress — a spinner on a
//! terminal, plain lines otherwise. The logic lives in `skyplan-providers`; this stays thin.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skyplan_catalog::Catalog;
use skyplan_optimizer::Policy;
use skyplan_optimizer::spec::{Pipeline, redact_text};
use skyplan_providers::{
    ClusterStatus, LaunchEvent, LaunchOutcome, LaunchRequest, Launcher, LogOptions, Progress, Provider,
    ProviderError, Providers, StateStore, TaskRun,
};

/// The providers this build can use, for clusters kept under `home`: `local` always;
/// `kubernetes` (feature `kubernetes`) when `home/config.yaml` has a `kubernetes:` section or a
/// kubeconfig exists (`KUBECONFIG`, `~/.kube/config`) — when that configuration is unusable, a
/// stand-in that says why (in `skyplan check` and launches); `aws` (feature `aws`) when the
/// standard AWS chain has credentials to work with (no network is asked to find out).
pub fn providers(home: &Path) -> Providers {
    let mut providers = Providers::new();
    let local: Arc<dyn Provider> = Arc::new(skyplan_providers::LocalProvider::new(home));
    providers.insert(local.id().to_string(), local);
    #[cfg(feature = "kubernetes")]
    insert_configured(
        &mut providers,
        skyplan_providers::KUBERNETES,
        skyplan_providers::KubernetesProvider::from_home(home),
    );
    #[cfg(feature = "aws")]
    insert_configured(
        &mut providers,
        skyplan_providers::AWS,
        skyplan_providers::AwsProvider::from_env(),
    );
    providers
}

/// Adds a backend that may be configured: nothing when it is not, the provider when it is, and
/// a stand-in that says why when its configuration is unusable.
#[cfg(any(feature = "kubernetes", feature = "aws"))]
fn insert_configured<P: Provider + 'static>(
    providers: &mut Providers,
    id: &str,
    configured: Result<Option<P>, ProviderError>,
) {
    let provider: Arc<dyn Provider> = match configured {
        Ok(None) => return,
        Ok(Some(provider)) => Arc::new(provider),
        Err(reason) => Arc::new(skyplan_providers::UnavailableProvider::new(id, reason)),
    };
    providers.insert(id.to_string(), provider);
}

/// Opens the state store in `home`.
pub fn open_store(home: &Path) -> Result<Arc<StateStore>, ProviderError> {
    Ok(Arc::new(StateStore::open(home)?))
}

/// The async runtime CLI commands run provider calls on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// `catalog` plus the live offers of the providers for `home` (this machine's shape for
/// `local`), so that a `--dryrun` plan matches what `launch` will do.
pub fn catalog_with_live_offers(home: &Path, mut catalog: Catalog) -> std::io::Result<Catalog> {
    let providers = providers(home);
    runtime()?.block_on(async {
        for provider in providers.values() {
            match provider.offers().await {
                Ok(live) => catalog.extend(live.offers),
                Err(err) => tracing::warn!(
                    "{}: live offers unavailable, planning without them: {err}",
                    provider.id()
                ),
            }
        }
    });
    Ok(catalog)
}

/// A cluster name for a task: its name made valid (`My_Task` → `my-task`) plus 4 random hex
/// digits, as SkyPilot's `sky-XXXX` names.
pub fn default_cluster_name(task_name: &str) -> String {
    let mut base: String = task_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base = base.trim_matches('-').to_string();
    base.truncate(40);
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base = format!("sky-{base}");
    }
    format!("{}-{:04x}", base.trim_end_matches('-'), fastrand::u16(..))
}

/// How [`launch_pipeline`] names clusters and whether it waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaunchOptions<'a> {
    /// Cluster name; generated from the first task's name when `None`.
    pub cluster: Option<&'a str>,
    /// Return once the last task has started instead of streaming its logs.
    pub detach: bool,
}

/// What [`launch_pipeline`] did.
#[derive(Debug, serde::Serialize)]
pub struct LaunchReport {
    /// One launch per task, in the order run.
    pub launches: Vec<LaunchOutcome>,
    /// The exit code of the last job followed (`None` when detached).
    pub exit_code: Option<i32>,
}

/// Launches every task of `pipeline` in dependency order, each on its own cluster
/// (`options.cluster`, or a generated name; `NAME-1`, `NAME-2`, ... for several tasks), failing
/// over as needed. Unless `options.detach`, streams each job's logs to `out` (secrets scrubbed, `(rank=N)` prefixes for
/// multi-node jobs) and waits for it; a task that fails stops the pipeline. With `detach`, the
/// last task is left running (earlier ones are still awaited: their successors depend on them).
pub fn launch_pipeline(
    home: &Path,
    catalog: Catalog,
    policy: Policy,
    pipeline: &Pipeline,
    options: &LaunchOptions<'_>,
    progress: &dyn Progress,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<LaunchReport> {
    let order = pipeline
        .topological_order()
        .ok_or_else(|| anyhow::anyhow!("the pipeline's dependencies form a cycle"))?;
    let graph = skyplan_optimizer::TaskGraph::from_pipeline(pipeline);
    let nodes: Vec<_> = graph.task_ids().map(|id| graph.task(id).clone()).collect();
    let secrets = pipeline.secret_values();
    let base = match options.cluster {
        Some(name) => name.to_string(),
        None => default_cluster_name(
            pipeline
                .tasks
                .first()
                .and_then(|t| t.name.as_deref())
                .unwrap_or("task"),
        ),
    };
    let store = open_store(home)?;
    let launcher = Launcher::new(catalog, policy, store).with_providers(providers(home));
    let runtime = runtime()?;
    let mut report = LaunchReport {
        launches: Vec::new(),
        exit_code: None,
    };
    for (position, &index) in order.iter().enumerate() {
        let (Some(spec), Some(node)) = (pipeline.tasks.get(index), nodes.get(index)) else {
            continue;
        };
        let name = if order.len() == 1 {
            base.clone()
        } else {
            format!("{base}-{}", index + 1)
        };
        let request = LaunchRequest {
            cluster: name.clone(),
            task: node.clone(),
            run: TaskRun::from_spec(spec)?,
        };
        let outcome = runtime.block_on(launcher.launch(&request, progress))?;
        let provider = launcher
            .providers()
            .get(&outcome.provider)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("provider {} vanished", outcome.provider))?;
        let job = outcome.handle.job_id;
        report.launches.push(outcome);
        let last = position + 1 == order.len();
        if options.detach && last {
            writeln!(
                out,
                "Job submitted to cluster {name}. Follow it with `skyplan logs {name} --follow`; stop it with `skyplan down {name}`."
            )?;
            break;
        }
        writeln!(
            out,
            "Streaming logs of {name} (Ctrl-C stops streaming, not the job; `skyplan down {name}` stops it)."
        )?;
        let code = runtime.block_on(follow_job(provider.as_ref(), &name, job, &secrets, out))?;
        let _ = runtime.block_on(refresh_recorded_jobs(&launcher, &name));
        report.exit_code = code;
        if code != Some(0) {
            break;
        }
    }
    Ok(report)
}

async fn refresh_recorded_jobs(launcher: &Launcher, name: &str) -> Result<(), ProviderError> {
    if let Some(record) = launcher.store().cluster(name)? {
        skyplan_providers::refresh_cluster(launcher.store(), launcher.providers(), &record).await?;
    }
    Ok(())
}

/// Streams job `job` (the newest when `None`) of `cluster` to `out` until it ends, then returns
/// its exit code (`None` when it was lost). Lines are scrubbed of `secrets`; multi-node jobs get
/// `(rank=N)` prefixes.
pub async fn follow_job(
    provider: &dyn Provider,
    cluster: &str,
    job: Option<u64>,
    secrets: &[&str],
    out: &mut (dyn Write + Send),
) -> Result<Option<i32>, ProviderError> {
    let status = provider.status(cluster).await?;
    let job = job.or_else(|| status.latest_job().map(|j| j.id));
    let multi_node = status.nodes.len() > 1;
    let options = LogOptions {
        follow: true,
        job,
        ..Default::default()
    };
    let mut stream = provider.logs(cluster, &options).await?;
    while let Some(line) = stream.next().await {
        let line = line?;
        let text = redact_text(&line.render(multi_node), secrets);
        writeln!(out, "{text}").map_err(|err| ProviderError::io("writing logs", err))?;
    }
    let finished =
        move |s: &ClusterStatus| job.and_then(|id| s.job(id)).is_none_or(|j| j.state.is_finished());
    let status = provider
        .wait_until(cluster, &finished, Duration::from_secs(365 * 24 * 3600))
        .await?;
    Ok(job.and_then(|id| status.job(id)).and_then(|j| j.exit_code))
}

/// Progress as plain lines on stderr (for logs and pipes).
#[derive(Debug, Default)]
pub struct PlainProgress;

impl Progress for PlainProgress {
    fn event(&self, event: &LaunchEvent<'_>) {
        eprintln!("{event}");
    }
}

/// Progress as a spinner on a terminal: the current step spins; failures and the outcome stay
/// as lines above it.
#[derive(Debug)]
pub struct SpinnerProgress {
    bar: indicatif::ProgressBar,
}

impl Default for SpinnerProgress {
    fn default() -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        SpinnerProgress { bar }
    }
}

impl Progress for SpinnerProgress {
    fn event(&self, event: &LaunchEvent<'_>) {
        match event {
            LaunchEvent::Failed { .. } | LaunchEvent::OffersUnavailable { .. } => {
                self.bar.println(format!("  ✗ {event}"));
            }
            LaunchEvent::Provisioned { .. } => {
                self.bar.println(format!("  ✓ {event}"));
                self.bar.finish_and_clear();
            }
            _ => self.bar.set_message(event.to_string()),
        }
    }
}

/// A spinner when stderr is a terminal, plain lines otherwise.
pub fn progress_for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(SpinnerProgress::default())
    } else {
        Box::new(PlainProgress)
    }
}

/// One line of `skyplan check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderCheck {
    /// Cloud name.
    pub cloud: String,
    /// Whether launches can use it.
    pub usable: bool,
    /// What it offers, or why it cannot be used.
    pub detail: String,
}

/// Which clouds this build can launch on, and why not.
pub fn check_providers(home: &Path) -> std::io::Result<Vec<ProviderCheck>> {
    let providers = providers(home);
    let runtime = runtime()?;
    let mut checks = Vec::new();
    for cloud in skyplan_optimizer::spec::KNOWN_CLOUDS {
        let check = match providers.get(*cloud) {
            None => ProviderCheck {
                cloud: cloud.to_string(),
                usable: false,
                detail: if *cloud == "kubernetes" && cfg!(feature = "kubernetes") {
                    "not configured: no kubeconfig (KUBECONFIG, ~/.kube/config) and no `kubernetes:` section in \
                     SKYPLAN_HOME/config.yaml"
                        .to_string()
                } else if *cloud == "aws" && cfg!(feature = "aws") {
                    "not configured: no AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials or \
                     ~/.aws/config)"
                        .to_string()
                } else if *cloud == "aws" {
                    "this build has no aws backend: build with `--features aws`; its offers are planned but \
                     cannot be launched"
                        .to_string()
                } else {
                    "no backend for it in this build yet; its offers are planned but cannot be launched"
                        .to_string()
                },
            },
            Some(provider) => match runtime.block_on(provider.check()) {
                Ok(detail) => ProviderCheck {
                    cloud: cloud.to_string(),
                    usable: true,
                    detail,
                },
                Err(err) => ProviderCheck {
                    cloud: cloud.to_string(),
                    usable: false,
                    detail: err.to_string(),
                },
            },
        };
        checks.push(check);
    }
    Ok(checks)
}

/// The `skyplan status` table.
pub fn status_table(report: &skyplan_providers::StatusReport) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_header([
        "NAME",
        "INFRA",
        "RESOURCES",
        "STATUS",
        "JOBS",
        "LAUNCHED",
    ]);
    for view in &report.clusters {
        let record = &view.record;
        let placement = record.placement.as_ref();
        let text = |key: &str| {
            placement
                .and_then(|p| p.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let infra = [text("cloud"), text("region"), text("zone")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        let nodes = placement
            .and_then(|p| p.get("num_nodes"))
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        let resources = match text("instance_type") {
            Some(shape) if nodes > 1 => format!("{nodes}x {shape}"),
            Some(shape) => shape,
            None => "-".to_string(),
        };
        let status = match (&view.live, &view.live_error) {
            (Some(live), _) => live.state.to_string(),
            (None, Some(error)) => format!("{} ({error})", record.status),
            (None, None) => record.status.to_string(),
        };
        let jobs = view
            .jobs
            .last()
            .map(|j| match j.exit_code {
                Some(code) => format!("{} {} (exit {code})", j.id, j.status),
                None => format!("{} {}", j.id, j.status),
            })
            .unwrap_or_else(|| "-".to_string());
        table.add_row(vec![
            record.name.clone(),
            if infra.is_empty() { "-".to_string() } else { infra },
            resources,
            status,
            jobs,
            ago(record.created_at),
        ]);
    }
    let mut out = table.to_string();
    if !report.unrecorded.is_empty() {
        let names: Vec<String> = report
            .unrecorded
            .iter()
            .map(|c| format!("{} ({})", c.name, c.provider))
            .collect();
        out.push_str(&format!(
            "\n\nNot in the state store (an interrupted launch?); `skyplan down NAME` removes them: {}",
            names.join(", ")
        ));
    }
    out
}

fn ago(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let seconds = (now - unix).max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_cluster_names() {
        for task in ["My_Task", "train", "123", "---", "a".repeat(80).as_str()] {
            let name = default_cluster_name(task);
            assert!(
                skyplan_providers::check_cluster_name(&name).is_ok(),
                "{task} -> {name}"
            );
        }
    }
}
