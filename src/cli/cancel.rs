//! `skyplan cancel NAME JOB... | --all`: stop jobs on a cluster (every node's processes); the
//! cluster stays up.

use std::process::ExitCode;

use skyplan_providers::JobSelection;

use super::Cli;

/// Arguments of `cancel`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cluster name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Job ids (see `skyplan queue NAME`).
    #[arg(value_name = "JOB")]
    pub jobs: Vec<u64>,
    /// Every job that has not ended.
    #[arg(long, conflicts_with = "jobs")]
    pub all: bool,
}

/// Runs `cancel`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let store = skyplan::launch::open_store(&home)?;
    let launcher = skyplan_providers::Launcher::new(Default::default(), Default::default(), store)
        .with_providers(skyplan::launch::providers(&home));
    if args.jobs.is_empty() && !args.all {
        anyhow::bail!(
            "name the jobs to cancel (`skyplan cancel {} JOB...`, ids from `skyplan queue {}`) or pass --all",
            args.name,
            args.name
        );
    }
    let selection = if args.all {
        JobSelection::All
    } else {
        JobSelection::Ids(args.jobs.clone())
    };
    let cancelled = skyplan::launch::runtime()?.block_on(launcher.cancel(&args.name, &selection))?;
    if cli.json {
        super::print_json(&serde_json::json!({"cluster": args.name, "cancelled": cancelled}))?;
        return Ok(ExitCode::SUCCESS);
    }
    let ids = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let skipped: Vec<u64> = args
        .jobs
        .iter()
        .copied()
        .filter(|j| !cancelled.contains(j))
        .collect();
    let mut lines = Vec::new();
    if cancelled.is_empty() {
        lines.push(format!("No running jobs to cancel on {}.", args.name));
    } else {
        lines.push(format!("Cancelled job {} on {}.", ids(&cancelled), args.name));
    }
    if !skipped.is_empty() {
        lines.push(format!("Job {} had already ended; left as it is.", ids(&skipped)));
    }
    super::print_text(&lines.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}
