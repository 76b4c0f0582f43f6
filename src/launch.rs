//! Running plans: the facade between the CLI and `skyplan-providers`. Builds the configured
//! providers and the state store for a `SKYPLAN_HOME`, launches pipelines (task by task, in
//! dependency order) with failover, follows their logs, and reports progress — a spinner on a
//! terminal, plain lines otherwise. The logic lives in `skyplan-providers`; this stays thin.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::interrupt::{Interrupted, Interrupts};
use skyplan_catalog::Catalog;
use skyplan_optimizer::Policy;
use skyplan_optimizer::spec::{Pipeline, redact_text};
use skyplan_providers::{
    Backends, ClusterStatus, LaunchError, LaunchEvent, LaunchOutcome, LaunchPlan, Launcher, LogOptions,
    PipelineRequest, PipelineRun, Progress, Provider, ProviderError, Providers, StateStore, TaskProgress,
};

/// The backends this build has, configured for `home` (see [`Backends::configure`]): `local`
/// always; `kubernetes` (feature `kubernetes`) when `home/config.yaml` has a `kubernetes:`
/// section or a kubeconfig exists; `aws` (feature `aws`) when the standard AWS chain has
/// credentials. No network is asked to find out.
pub fn backends(home: &Path) -> Backends {
    Backends::configure(home)
}

/// Every registered provider for `home` (enabled, or a stand-in that says why not), for
/// `status`, `logs` and `down` of recorded clusters.
pub fn providers(home: &Path) -> Providers {
    backends(home).providers
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

/// `catalog` plus the live offers of the enabled providers for `home` (this machine's shape for
/// `local`, free capacity of configured clusters): what `show-gpus` and the placement study
/// `optimize` look at. Launches plan through [`Launcher::plan`] instead. An error when a backend
/// is configured but unusable (its configuration is broken): the offers would silently lack it.
pub fn catalog_with_live_offers(home: &Path, mut catalog: Catalog) -> anyhow::Result<Catalog> {
    let backends = backends(home);
    backends.check_usable()?;
    let providers: Vec<_> = backends
        .providers
        .values()
        .filter(|p| backends.is_enabled(p.id()))
        .collect();
    runtime()?.block_on(async {
        for provider in providers {
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
/// digits, as SkyPilot's `sky-XXXX` names. `launch` uses it; for the same name on every call
/// see [`cluster_name_for_task`].
pub fn default_cluster_name(task_name: &str) -> String {
    format!("{}-{:04x}", cluster_name_for_task(task_name), fastrand::u16(..))
}

/// The deterministic cluster name of a task, without a random part: its name made valid
/// (lower-case letters, digits and `-`, at most 44 characters, `sky-` in front when it would
/// not start with a letter). `render` names clusters with it, so two renders agree.
///
/// ```
/// use skyplan::launch::cluster_name_for_task;
/// assert_eq!(cluster_name_for_task("My_Task"), "my-task");
/// assert_eq!(cluster_name_for_task("7b-serve"), "sky-7b-serve");
/// assert_eq!(cluster_name_for_task("My_Task"), cluster_name_for_task("My_Task"));
/// ```
pub fn cluster_name_for_task(task_name: &str) -> String {
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
    base.trim_end_matches('-').to_string()
}

/// How [`launch_planned`] names clusters and whether it waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaunchOptions<'a> {
    /// Cluster name; generated from the first task's name when `None`.
    pub cluster: Option<&'a str>,
    /// Return once the last task has started instead of streaming its logs.
    pub detach: bool,
}

/// A launch planned and ready to run: the launcher (enabled backends of a home), the request
/// (clusters named) and the plan that `--dryrun` shows.
pub struct PlannedLaunch {
    /// The launcher for the home.
    pub launcher: Launcher,
    /// Tasks and clusters.
    pub request: PipelineRequest,
    /// The joint plan on the enabled backends, live capacity included.
    pub plan: LaunchPlan,
    /// The runtime the providers' clients were first used on (their connections live on it).
    runtime: tokio::runtime::Runtime,
}

/// The one plan path: the pipeline planned for launching from `home` (enabled backends only,
/// their live offers and capacity, one solve of the whole pipeline). `launch --dryrun` prints
/// this plan; `launch` then runs it with [`launch_planned`].
pub fn plan_launch(
    home: &Path,
    catalog: Catalog,
    policy: Policy,
    pipeline: &Pipeline,
    options: &LaunchOptions<'_>,
    progress: &dyn Progress,
) -> anyhow::Result<PlannedLaunch> {
    if pipeline.topological_order().is_none() {
        anyhow::bail!("the pipeline's dependencies form a cycle");
    }
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
    skyplan_optimizer::check_accelerators(&catalog, pipeline)?;
    let request = PipelineRequest::from_pipeline(pipeline, &base)?;
    // A backend whose configuration is broken is an error, not a silently smaller choice.
    let backends = backends(home);
    backends.check_usable()?;
    let launcher = Launcher::new(catalog, policy, open_store(home)?).with_backends(backends);
    let runtime = runtime()?;
    let plan = runtime.block_on(launcher.plan(&request, progress))?;
    Ok(PlannedLaunch {
        launcher,
        request,
        plan,
        runtime,
    })
}

/// What [`launch_planned`] did.
#[derive(Debug, serde::Serialize)]
pub struct LaunchReport {
    /// One launch per task started, in the order run.
    pub launches: Vec<LaunchOutcome>,
    /// Every task's final state (`succeeded`, `failed`, `skipped`, or `launched` when detached).
    pub tasks: Vec<TaskReport>,
    /// The plan's total $ before launching.
    #[serde(with = "rust_decimal::serde::str")]
    pub planned_cost: rust_decimal::Decimal,
    /// The total $ of the plan that ran (after failover re-solves).
    #[serde(with = "rust_decimal::serde::str")]
    pub ran_cost: rust_decimal::Decimal,
    /// The exit code of the last job followed (`None` when detached).
    pub exit_code: Option<i32>,
    /// The first task that failed, if any.
    pub failed_task: Option<String>,
}

/// One task of a [`LaunchReport`].
#[derive(Debug, serde::Serialize)]
pub struct TaskReport {
    /// Task name.
    pub name: String,
    /// Its cluster.
    pub cluster: String,
    /// Where it ran and how it ended.
    #[serde(flatten)]
    pub progress: TaskProgress,
}

impl LaunchReport {
    /// "Ran: ..." lines: where each task ran and the total, next to the first plan's when they
    /// differ.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for task in &self.tasks {
            let place = match &task.progress {
                TaskProgress::Launched { placement } | TaskProgress::Succeeded { placement } => {
                    skyplan_providers::describe_placement(placement)
                }
                TaskProgress::Failed {
                    placement: Some(placement),
                    ..
                } => skyplan_providers::describe_placement(placement),
                _ => "-".to_string(),
            };
            let state = match &task.progress {
                TaskProgress::Pending => "pending".to_string(),
                TaskProgress::Launched { .. } => "running".to_string(),
                TaskProgress::Succeeded { .. } => "succeeded".to_string(),
                TaskProgress::Failed { .. } => "failed".to_string(),
                TaskProgress::Skipped { because } => format!("not started ({because} failed)"),
            };
            lines.push(format!("  {} on {place}: {state}", task.name));
        }
        let total = if self.ran_cost == self.planned_cost {
            format!("Ran as planned: {} $ total.", self.ran_cost.normalize())
        } else {
            format!(
                "Ran: {} $ total (first plan: {} $).",
                self.ran_cost.normalize(),
                self.planned_cost.normalize()
            )
        };
        format!("{total}\n{}", lines.join("\n"))
    }
}

/// Launches `planned` as planned: each task on the place the joint plan chose (failing over
/// with launched tasks pinned), in dependency order; a task starts only when all its parents
/// succeeded, and a failed task stops its descendants. Unless `options.detach`, streams each
/// job's logs to `out` (secrets scrubbed, `(rank=N)` prefixes for multi-node jobs) and waits
/// for it. With `detach`, the last task is left running (earlier ones are still awaited: their
/// successors depend on them). Fails with the first launch error that stopped the pipeline;
/// a job's non-zero exit is in the report.
pub fn launch_planned(
    planned: PlannedLaunch,
    pipeline: &Pipeline,
    options: &LaunchOptions<'_>,
    progress: &dyn Progress,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<LaunchReport> {
    let PlannedLaunch {
        launcher,
        request,
        plan,
        runtime,
    } = planned;
    let order = request
        .topological_order()
        .ok_or_else(|| anyhow::anyhow!("the pipeline's dependencies form a cycle"))?;
    let secrets = pipeline.secret_values();
    let planned_cost = plan.plan.total_cost;
    let mut run = PipelineRun::new(request, plan);
    let mut launches = Vec::new();
    let mut exit_code = None;
    let mut failed_task: Option<String> = None;
    let mut launch_error: Option<LaunchError> = None;
    let interrupts = Interrupts::install(&runtime);
    for (position, &index) in order.iter().enumerate() {
        let task = run.request.tasks[index].clone();
        let name = task.cluster.clone();
        if let Some(parent) = run.blocked_by(index) {
            run.skip(index, parent);
            continue;
        }
        let up: Vec<String> = launches
            .iter()
            .map(|l: &LaunchOutcome| l.cluster.clone())
            .collect();
        let launched = runtime.block_on(async {
            tokio::select! {
                result = launcher.launch_task(&mut run, index, progress) => Some(result),
                () = interrupts.wait() => None,
            }
        });
        let Some(launched) = launched else {
            let message = clean_up_interrupted(&runtime, &launcher, &name, &up, &interrupts);
            return Err(anyhow::Error::new(Interrupted { message }));
        };
        let outcome = match launched {
            Ok(outcome) => outcome,
            Err(error) => {
                failed_task.get_or_insert_with(|| task.node.name.clone());
                launch_error.get_or_insert(error);
                continue;
            }
        };
        let provider = launcher
            .providers()
            .get(&outcome.provider)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("provider {} vanished", outcome.provider))?;
        let job = outcome.handle.job_id;
        launches.push(outcome);
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
        let followed = runtime.block_on(async {
            tokio::select! {
                code = follow_job(provider.as_ref(), &name, job, &secrets, out) => Some(code),
                () = interrupts.wait() => None,
            }
        });
        let Some(code) = followed else {
            return Err(anyhow::Error::new(Interrupted {
                message: format!(
                    "stopped following the logs of {name}; its job keeps running: `skyplan logs {name} --follow` \
                     resumes, `skyplan down {name}` stops it"
                ),
            }));
        };
        let code = code?;
        let _ = runtime.block_on(refresh_recorded_jobs(&launcher, &name));
        exit_code = code;
        let reason = match code {
            Some(0) => String::new(),
            Some(code) => format!("its job exited with code {code}"),
            None => "its job was lost".to_string(),
        };
        run.finish(index, code == Some(0), reason);
        if code != Some(0) {
            failed_task.get_or_insert_with(|| task.node.name.clone());
        }
    }
    let tasks = run
        .request
        .tasks
        .iter()
        .zip(&run.tasks)
        .map(|(task, progress)| TaskReport {
            name: task.node.name.clone(),
            cluster: task.cluster.clone(),
            progress: progress.clone(),
        })
        .collect();
    let report = LaunchReport {
        launches,
        tasks,
        planned_cost,
        ran_cost: run.current.total_cost,
        exit_code,
        failed_task,
    };
    if let Some(error) = launch_error {
        let task = report.failed_task.clone().unwrap_or_default();
        // The reason leads the first line; the attempts follow, then what ran.
        return Err(anyhow::anyhow!(
            "task {task:?} failed to launch: {error}\n{}",
            report.summary()
        ));
    }
    Ok(report)
}

/// After Ctrl-C stopped the launch of `name`: removes what its interrupted attempt created
/// (bounded; a second Ctrl-C exits at once) and says what was cleaned up and what is left,
/// including the clusters of this pipeline that were already up (`up`).
fn clean_up_interrupted(
    runtime: &tokio::runtime::Runtime,
    launcher: &Launcher,
    name: &str,
    up: &[String],
    interrupts: &Interrupts,
) -> String {
    const CLEANUP_BOUND: Duration = Duration::from_secs(300);
    interrupts.leaving(format!(
        "whatever cluster {name} had created (`skyplan down {name}` removes it)"
    ));
    eprintln!(
        "\nInterrupted: removing what the launch of {name} created (up to {}s; Ctrl-C again exits at once)...",
        CLEANUP_BOUND.as_secs()
    );
    let teardown = skyplan_providers::teardown_cluster(launcher.store(), launcher.providers(), name);
    let mut message = match runtime.block_on(async { tokio::time::timeout(CLEANUP_BOUND, teardown).await }) {
        Ok(Ok(outcome)) if outcome.verified && outcome.terminating().is_empty() => {
            format!("the launch of {name} was stopped and nothing of it is left")
        }
        Ok(Ok(outcome)) if outcome.verified => format!(
            "the launch of {name} was stopped; still shutting down: {}",
            outcome.terminating().join(", ")
        ),
        Ok(Ok(outcome)) => format!(
            "the launch of {name} was stopped, but not every provider could be asked ({}); \
             `skyplan down {name}` removes what is left",
            outcome.warnings.join("; ")
        ),
        Ok(Err(error)) => format!(
            "the launch of {name} was stopped; cleaning up failed ({error}): `skyplan down {name}` removes what is left"
        ),
        Err(_) => format!(
            "the launch of {name} was stopped; cleaning up took over {}s: `skyplan down {name}` removes what is left",
            CLEANUP_BOUND.as_secs()
        ),
    };
    if !up.is_empty() {
        message.push_str(&format!(
            "; already up and left running: {} (`skyplan down {}` removes them)",
            up.join(", "),
            up.join(" ")
        ));
    }
    interrupts.leaving(String::new());
    message
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
    let status = provider.status(cluster.into()).await?;
    let job = job.or_else(|| status.latest_job().map(|j| j.id));
    let multi_node = status.nodes.len() > 1;
    let options = LogOptions {
        follow: true,
        job,
        ..Default::default()
    };
    let mut stream = provider.logs(cluster.into(), &options).await?;
    while let Some(line) = stream.next().await {
        let line = line?;
        let text = redact_text(&line.render(multi_node), secrets);
        writeln!(out, "{text}").map_err(|err| ProviderError::io("writing logs", err))?;
    }
    let finished =
        move |s: &ClusterStatus| job.and_then(|id| s.job(id)).is_none_or(|j| j.state.is_finished());
    let status = provider
        .wait_until(cluster.into(), &finished, Duration::from_secs(365 * 24 * 3600))
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
    let backends = backends(home);
    let runtime = runtime()?;
    let mut checks = Vec::new();
    for cloud in skyplan_providers::KNOWN_CLOUDS {
        let check = match (backends.why_disabled(cloud), backends.providers.get(*cloud)) {
            (None, Some(provider)) => match runtime.block_on(provider.check()) {
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
            (reason, _) => ProviderCheck {
                cloud: cloud.to_string(),
                usable: false,
                detail: reason.unwrap_or_else(|| "not enabled".to_string()),
            },
        };
        checks.push(check);
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_cluster_names() {
        for task in ["My_Task", "train", "123", "---", "", "a".repeat(80).as_str()] {
            for name in [default_cluster_name(task), cluster_name_for_task(task)] {
                assert!(
                    skyplan_providers::check_cluster_name(&name).is_ok(),
                    "{task} -> {name}"
                );
            }
        }
        assert_eq!(cluster_name_for_task("---"), "sky");
        assert!(default_cluster_name("train").starts_with("train-"));
    }
}
