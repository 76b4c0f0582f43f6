//! `skyplan status`: recorded clusters with their live state refreshed from the providers, and
//! clusters the providers hold that the state store does not know (interrupted launches).

use std::process::ExitCode;

use super::Cli;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these clusters (default: all).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs `status`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let store = skyplan::launch::open_store(&home)?;
    let providers = skyplan::launch::providers(&home);
    let mut report =
        skyplan::launch::runtime()?.block_on(skyplan_providers::status_report(&store, &providers))?;
    if !args.names.is_empty() {
        report.clusters.retain(|v| args.names.contains(&v.record.name));
        report.unrecorded.retain(|c| args.names.contains(&c.name));
    }
    if cli.json {
        super::print_json(&report)?;
    } else if report.clusters.is_empty() && report.unrecorded.is_empty() {
        if report.unlisted.is_empty() {
            super::print_text("No clusters.")?;
        } else {
            super::print_text(&format!(
                "No clusters recorded.\n{}",
                skyplan::render::unlisted_text(&report)
            ))?;
        }
    } else {
        super::print_text(&skyplan::render::status_table(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}
