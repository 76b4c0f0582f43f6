//! `skyplan launch TASK.yaml` (and `skyplan optimize`): parse the task file, apply command-line
//! overrides, plan the cheapest feasible placement, and (without `--dryrun`) run it.

use skyplan::optimizer::spec::duration::parse_positive_duration;
use skyplan::optimizer::spec::{TaskOverrides, parse_env_override, parse_secret_override, parse_task_file};
use skyplan::optimizer::{Objective, Policy};
use std::path::PathBuf;
use std::process::ExitCode;

use super::Cli;

/// Arguments of `launch` and `optimize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task file (SkyPilot YAML; several documents make a pipeline).
    #[arg(value_name = "TASK.yaml")]
    pub task: PathBuf,
    /// Plan only: print the considered resources and the chosen placement, create nothing.
    #[arg(long)]
    pub dryrun: bool,
    /// Cluster name (default: derived from the task name).
    #[arg(short = 'c', long = "cluster", value_name = "NAME")]
    pub cluster: Option<String>,
    /// Return once the job is started instead of streaming its logs.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set or override an env (`K=V`); required for envs whose value is null in the file.
    #[arg(long = "env", value_name = "K=V")]
    pub envs: Vec<String>,
    /// Set a secret (`K=V`): passed to the task, never shown.
    #[arg(long = "secret", value_name = "K=V")]
    pub secrets: Vec<String>,
    /// Where to run: `aws`, `aws/us-east-1`, `gcp/*/us-central1-a`, `k8s/CONTEXT`.
    #[arg(long, value_name = "INFRA")]
    pub infra: Option<String>,
    /// Accelerators, replacing the file's (`L4:1`, `H100:8`).
    #[arg(long, value_name = "NAME:COUNT")]
    pub gpus: Option<String>,
    /// vCPUs per node (`4`, `4+`).
    #[arg(long, value_name = "N[+]")]
    pub cpus: Option<String>,
    /// Memory per node in GB (`16`, `16+`).
    #[arg(long, value_name = "N[+]")]
    pub memory: Option<String>,
    /// Number of nodes.
    #[arg(long, value_name = "N")]
    pub num_nodes: Option<u32>,
    /// Use spot instances.
    #[arg(long)]
    pub use_spot: bool,
    /// What to minimize.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Cost)]
    pub objective: ObjectiveArg,
    /// With `--objective cost`: the whole pipeline must finish within this many hours.
    #[arg(long, value_name = "HOURS")]
    pub deadline: Option<f64>,
    /// Stop the integer program after this long and use the best plan found: seconds, or a
    /// number with a unit (`500ms`, `30s`, `5m`, `2h`), more than 0 and at most 30 days.
    #[arg(long, value_name = "DURATION", default_value = "30")]
    pub time_limit: String,
}

/// `--objective` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectiveArg {
    /// Total dollars (compute + egress).
    Cost,
    /// Makespan (ties broken by cost).
    Time,
}

/// Runs `launch` (with `--dryrun`: the same plan, stopped before provisioning) or `optimize`
/// (the placement study over the whole catalog, enabled clouds or not).
pub fn run(cli: &Cli, args: &Args, optimize: bool) -> anyhow::Result<ExitCode> {
    let mut pipeline = parse_task_file(&args.task)?;
    name_unnamed_tasks(&mut pipeline, &args.task);
    let overrides = overrides(args)?;
    pipeline.apply_overrides(&overrides)?;
    let catalog = super::load_catalog(cli)?;
    let policy = policy(args)?;
    let home = skyplan::home_dir(cli.home.as_deref())?;
    if optimize {
        let live = skyplan::launch::catalog_with_live_offers(&home, catalog)?;
        let plan = skyplan::plan::plan_pipeline(&live, &pipeline, &policy)?;
        if cli.json {
            super::print_json(&plan)?;
        } else {
            super::print_text(
                "Placement study over the whole catalog (every cloud, enabled or not) plus live offers; \
                 `skyplan launch --dryrun` plans on enabled clouds only.",
            )?;
            super::print_text(&skyplan::render::plan_text(&plan))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = skyplan::launch::progress_for_stderr();
    let options = skyplan::launch::LaunchOptions {
        cluster: args.cluster.as_deref(),
        detach: args.detach,
    };
    let planned =
        skyplan::launch::plan_launch(&home, catalog, policy, &pipeline, &options, progress.as_ref())?;
    if args.dryrun {
        if cli.json {
            super::print_json(&planned.plan)?;
        } else {
            super::print_text(&skyplan::render::launch_plan_text(&planned.plan))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !cli.json {
        super::print_text(&skyplan::render::launch_plan_text(&planned.plan))?;
    }
    // With --json, stdout carries only the JSON report; the job's output goes to stderr.
    let mut out: Box<dyn std::io::Write + Send> = if cli.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let report = skyplan::launch::launch_planned(planned, &pipeline, &options, progress.as_ref(), &mut *out)?;
    if cli.json {
        super::print_json(&report)?;
    } else if report.tasks.len() > 1 || report.ran_cost != report.planned_cost {
        super::print_text(&report.summary())?;
    }
    if let Some(task) = &report.failed_task
        && report.tasks.len() > 1
    {
        eprintln!("task {task:?} failed; the tasks that depend on it were not started");
    }
    Ok(match report.exit_code {
        None if args.detach => ExitCode::SUCCESS,
        code => super::logs::exit_code(code),
    })
}

/// Unnamed tasks are named after the file (`train.yaml` -> `train`, or `train-2` in a pipeline).
fn name_unnamed_tasks(pipeline: &mut skyplan::optimizer::spec::Pipeline, file: &std::path::Path) {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("task")
        .to_string();
    let single = pipeline.tasks.len() == 1;
    for (index, task) in pipeline.tasks.iter_mut().enumerate() {
        if task.name.is_none() {
            task.name = Some(if single {
                stem.clone()
            } else {
                format!("{stem}-{}", index + 1)
            });
        }
    }
}

fn overrides(args: &Args) -> anyhow::Result<TaskOverrides> {
    // Each parser's error names its own flag and the name, never the value.
    let envs = args.envs.iter().map(|v| parse_env_override(v));
    let secrets = args.secrets.iter().map(|v| parse_secret_override(v));
    Ok(TaskOverrides {
        envs: envs.collect::<Result<_, _>>()?,
        secrets: secrets.collect::<Result<_, _>>()?,
        infra: args.infra.clone(),
        gpus: args.gpus.clone(),
        use_spot: args.use_spot.then_some(true),
        cpus: args.cpus.clone(),
        memory: args.memory.clone(),
        num_nodes: args.num_nodes,
        ..TaskOverrides::default()
    })
}

fn policy(args: &Args) -> anyhow::Result<Policy> {
    let mut policy = skyplan::plan::default_policy()?;
    policy.time_limit = parse_positive_duration(&args.time_limit)
        .map_err(|err| anyhow::anyhow!("--time-limit {}: {err}", args.time_limit))?;
    policy.objective = match (args.objective, args.deadline) {
        (ObjectiveArg::Time, None) => Objective::Time,
        (ObjectiveArg::Time, Some(_)) => {
            anyhow::bail!("--deadline goes with --objective cost (the default), not time")
        }
        (ObjectiveArg::Cost, None) => Objective::Cost,
        (ObjectiveArg::Cost, Some(hours)) if hours.is_finite() && hours > 0.0 => {
            Objective::CostWithDeadline { hours }
        }
        (ObjectiveArg::Cost, Some(hours)) => {
            anyhow::bail!("--deadline {hours}: expected a positive number of hours")
        }
    };
    Ok(policy)
}
