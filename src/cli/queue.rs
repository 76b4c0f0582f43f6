//! `skyplan queue [NAME...]`: each cluster's jobs (id, name, submitted, started, duration,
//! status, exit code), refreshed from its provider.

use std::process::ExitCode;

use super::Cli;

/// Arguments of `queue`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these clusters (default: all).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs `queue`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let store = skyplan::launch::open_store(&home)?;
    let providers = skyplan::launch::providers(&home);
    let runtime = skyplan::launch::runtime()?;
    let mut records = store.clusters()?;
    if !args.names.is_empty() {
        if let Some(missing) = args.names.iter().find(|n| !records.iter().any(|r| &r.name == *n)) {
            anyhow::bail!("cluster {missing:?} not found; `skyplan status` lists clusters");
        }
        records.retain(|r| args.names.contains(&r.name));
    }
    let now = skyplan::queue::unix_now();
    let mut queues = Vec::with_capacity(records.len());
    for record in &records {
        let view = runtime.block_on(skyplan_providers::refresh_cluster(&store, &providers, record))?;
        queues.push(skyplan::queue::queue(&view, now));
    }
    if cli.json {
        super::print_json(&queues)?;
    } else if queues.is_empty() {
        super::print_text("No clusters.")?;
    } else {
        let tables: Vec<String> = queues
            .iter()
            .map(|q| skyplan::queue::queue_table(q, now))
            .collect();
        super::print_text(&tables.join("\n\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}
