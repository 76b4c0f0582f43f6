//! `skyplan check`: which providers this build can launch on, and why the others cannot.

use std::process::ExitCode;

use super::Cli;

/// Arguments of `check` (none).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `check`.
pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> {
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let checks = skyplan::launch::check_providers(&home)?;
    if cli.json {
        super::print_json(&checks)?;
        return Ok(ExitCode::SUCCESS);
    }
    for check in &checks {
        let mark = if check.usable { "enabled " } else { "disabled" };
        super::print_text(&format!("{mark}  {:<11} {}", check.cloud, check.detail))?;
    }
    Ok(ExitCode::SUCCESS)
}
