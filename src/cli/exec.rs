//! `skyplan exec NAME TASK.yaml`: run a task as a new job on an existing cluster (no
//! provisioning, no `setup`, as SkyPilot's `exec`), then stream its logs unless detached.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use skyplan::optimizer::spec::{TaskOverrides, parse_env_override, parse_task_file, parse_task_str};
use skyplan_providers::TaskRun;

use super::Cli;

/// Arguments of `exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cluster name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The task file (one task); or, after `--`, a command to run instead.
    #[arg(value_name = "TASK.yaml", required_unless_present = "command")]
    pub task: Option<PathBuf>,
    /// A command to run as the job (`skyplan exec NAME -- python train.py`), in the cluster's
    /// working directory, without a task file.
    #[arg(last = true, value_name = "CMD", conflicts_with = "task")]
    pub command: Vec<String>,
    /// Set or override an env (`K=V`).
    #[arg(long = "env", value_name = "K=V")]
    pub envs: Vec<String>,
    /// Set a secret (`K=V`): passed to the task, never shown.
    #[arg(long = "secret", value_name = "K=V")]
    pub secrets: Vec<String>,
    /// Return once the job is started instead of streaming its logs.
    #[arg(short = 'd', long)]
    pub detach: bool,
}

/// Runs `exec`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let (mut pipeline, file) = match &args.task {
        Some(file) => (parse_task_file(file)?, file.clone()),
        None => {
            let command = args
                .command
                .iter()
                .map(|word| skyplan_providers::shell_quote(word))
                .collect::<Vec<_>>()
                .join(" ");
            let yaml = serde_json::json!({"name": "command", "run": command}).to_string();
            (parse_task_str(&yaml, "exec -- CMD")?, PathBuf::from("command"))
        }
    };
    let pairs = |values: &[String], flag: &str| -> anyhow::Result<Vec<(String, String)>> {
        values
            .iter()
            .map(|v| {
                parse_env_override(v)
                    .with_context(|| format!("{flag} {}", v.split('=').next().unwrap_or_default()))
            })
            .collect()
    };
    pipeline.apply_overrides(&TaskOverrides {
        envs: pairs(&args.envs, "--env")?,
        secrets: pairs(&args.secrets, "--secret")?,
        ..TaskOverrides::default()
    })?;
    let [spec] = pipeline.tasks.as_slice() else {
        anyhow::bail!(
            "{}: exec runs one task; this file has {}",
            file.display(),
            pipeline.tasks.len()
        );
    };
    let mut task = TaskRun::from_spec(spec)?;
    if task.name == "task" {
        task.name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("task")
            .to_string();
    }
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let store = skyplan::launch::open_store(&home)?;
    let launcher = skyplan_providers::Launcher::new(Default::default(), Default::default(), store)
        .with_providers(skyplan::launch::providers(&home));
    let runtime = skyplan::launch::runtime()?;
    let job = runtime.block_on(launcher.exec(&args.name, &task))?;
    if args.detach {
        super::print_text(&format!(
            "Job {job} submitted to {}; `skyplan logs {} {job} --follow` follows it.",
            args.name, args.name
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let record = launcher
        .store()
        .cluster(&args.name)?
        .context("the cluster vanished")?;
    let provider = record
        .provider
        .as_ref()
        .and_then(|p| launcher.providers().get(p))
        .context("the cluster's provider is not available")?;
    let mut out = std::io::stdout();
    let code = runtime.block_on(skyplan::launch::follow_job(
        provider.as_ref(),
        &args.name,
        Some(job),
        &task.secret_values(),
        &mut out,
    ))?;
    Ok(super::logs::exit_code(code))
}
