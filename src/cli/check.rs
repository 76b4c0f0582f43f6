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
    // Failure when a configured backend cannot be used (a broken config, an unreachable API).
    let backends = skyplan::launch::backends(&home);
    let failed = checks
        .iter()
        .any(|c| !c.usable && (backends.unusable.contains_key(&c.cloud) || backends.is_enabled(&c.cloud)));
    let code = if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if cli.json {
        super::print_json(&checks)?;
        return Ok(code);
    }
    for check in &checks {
        let mark = if check.usable { "enabled " } else { "disabled" };
        super::print_text(&format!("{mark}  {:<11} {}", check.cloud, check.detail))?;
    }
    Ok(code)
}
