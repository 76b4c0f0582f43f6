//! `skyplan logs NAME [JOB]`: a job's output (the newest job by default), optionally followed
//! until the job ends.

use std::process::ExitCode;

use anyhow::Context;
use futures::StreamExt;
use skyplan_providers::LogOptions;

use super::Cli;

/// Arguments of `logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cluster name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Job id (default: the newest job).
    #[arg(value_name = "JOB")]
    pub job: Option<u64>,
    /// Keep streaming until the job ends; the exit status is then the job's.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each node's log (before following).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only this node's log (rank).
    #[arg(long, value_name = "RANK")]
    pub node: Option<u32>,
}

/// Runs `logs`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let store = skyplan::launch::open_store(&home)?;
    let record = store.cluster(&args.name)?.with_context(|| {
        format!(
            "cluster {:?} not found; `skyplan status` lists clusters",
            args.name
        )
    })?;
    let providers = skyplan::launch::providers(&home);
    let cloud = record.provider.clone().unwrap_or_default();
    let provider = providers.get(&cloud).with_context(|| {
        format!(
            "cluster {:?} runs on {cloud}, which this build cannot reach",
            args.name
        )
    })?;
    let runtime = skyplan::launch::runtime()?;
    if args.follow && args.tail.is_none() && args.node.is_none() {
        let mut out = std::io::stdout();
        let code = runtime.block_on(skyplan::launch::follow_job(
            provider.as_ref(),
            &args.name,
            args.job,
            &[],
            &mut out,
        ))?;
        return Ok(exit_code(code));
    }
    let options = LogOptions {
        follow: args.follow,
        tail: args.tail,
        node: args.node,
        job: args.job,
    };
    runtime.block_on(async {
        let status = provider.status(args.name.as_str().into()).await?;
        let multi_node = status.nodes.len() > 1 && args.node.is_none();
        let mut stream = provider.logs(args.name.as_str().into(), &options).await?;
        while let Some(line) = stream.next().await {
            super::print_text(&line?.render(multi_node))?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A job's exit code as the process's (1 when it was lost).
pub fn exit_code(code: Option<i32>) -> ExitCode {
    match code {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    }
}
