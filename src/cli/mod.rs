//! Command-line definitions (clap) and dispatch. Each subcommand lives in its own module.

mod cancel;
#[cfg(feature = "aws")]
mod catalog;
mod check;
mod down;
mod exec;
#[cfg(feature = "kubesim")]
mod kubesim;
mod launch;
mod logs;
mod queue;
#[cfg(feature = "kubernetes")]
mod render;
mod show_gpus;
mod status;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Place GPU and CPU jobs on the cheapest place that can run them right now.
#[derive(Debug, Parser)]
#[command(name = "skyplan", version, about, propagate_version = true)]
pub struct Cli {
    /// Use the catalog CSVs in DIR instead of the embedded catalog.
    #[arg(long, global = true, env = "SKYPLAN_CATALOG_DIR", value_name = "DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// Directory for skyplan's state and config [default: ~/.skyplan].
    #[arg(long, global = true, env = "SKYPLAN_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug); also SKYPLAN_LOG=filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List accelerators on offer, or every offer for one accelerator (cheapest first).
    ShowGpus(show_gpus::Args),
    /// Plan a task (or pipeline) and run it on the cheapest feasible place.
    Launch(launch::Args),
    /// Plan a task or pipeline without running it (same as `launch --dryrun`).
    Optimize(launch::Args),
    /// Show clusters, their live state and their latest job.
    Status(status::Args),
    /// Show (or follow) a job's output.
    Logs(logs::Args),
    /// Run a task as a new job on an existing cluster.
    Exec(exec::Args),
    /// List a cluster's jobs (all clusters by default).
    Queue(queue::Args),
    /// Stop jobs on a cluster; the cluster stays up.
    Cancel(cancel::Args),
    /// Tear down clusters and everything they run.
    Down(down::Args),
    /// Show which clouds this build can launch on, and why not.
    Check(check::Args),
    /// Refresh catalog prices from a cloud (`catalog refresh --cloud aws`).
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Catalog(catalog::Command),
    /// Print the Kubernetes objects the backend creates for a task (`--target kubernetes`).
    #[cfg(feature = "kubernetes")]
    Render(render::Args),
    /// Run the bundled Kubernetes API simulator (kubesim) in the foreground.
    #[cfg(feature = "kubesim")]
    Kubesim(kubesim::Args),
}

/// Parses arguments, runs the command, prints errors, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match &cli.command {
        Command::ShowGpus(args) => show_gpus::run(&cli, args),
        Command::Launch(args) => launch::run(&cli, args, false),
        Command::Optimize(args) => launch::run(&cli, args, true),
        Command::Status(args) => status::run(&cli, args),
        Command::Logs(args) => logs::run(&cli, args),
        Command::Exec(args) => exec::run(&cli, args),
        Command::Queue(args) => queue::run(&cli, args),
        Command::Cancel(args) => cancel::run(&cli, args),
        Command::Down(args) => down::run(&cli, args),
        Command::Check(args) => check::run(&cli, args),
        #[cfg(feature = "aws")]
        Command::Catalog(command) => catalog::run(&cli, command),
        #[cfg(feature = "kubernetes")]
        Command::Render(args) => render::run(&cli, args),
        #[cfg(feature = "kubesim")]
        Command::Kubesim(args) => kubesim::run(&cli, args),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<skyplan::interrupt::Interrupted>().is_some() => {
            let _ = writeln!(std::io::stderr(), "{err}");
            ExitCode::from(skyplan::interrupt::EXIT_INTERRUPTED)
        }
        Err(err) => {
            let mut message = format!("error: {err}");
            for cause in err.chain().skip(1) {
                // An error that already says its cause (`{source}` in its message) is not
                // followed by the same words again.
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message.push_str(&format!("\n  caused by: {cause}"));
                }
            }
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr: skyplan's own crates at warn (-v info, -vv debug); the libraries under them
/// (kube, the AWS SDK, hyper) only from -vv on, so their log lines never reach users as if
/// they were ours; colour only on a terminal without `NO_COLOR`. `SKYPLAN_LOG` overrides.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    let ours = [
        "skyplan",
        "skyplan_providers",
        "skyplan_catalog",
        "skyplan_optimizer",
        "skyplan_spec",
        "skyplan_kubesim",
    ];
    let (level, others) = match verbose {
        0 => ("warn", "off"),
        1 => ("info", "off"),
        _ => ("debug", "debug"),
    };
    let default = std::iter::once(others.to_string())
        .chain(ours.iter().map(|c| format!("{c}={level}")))
        .collect::<Vec<_>>()
        .join(",");
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKYPLAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

/// Loads the catalog the global flags select with the home's spot price overlay laid over it
/// (`skyplan catalog refresh`), logging what loading resolved.
pub fn load_catalog(cli: &Cli) -> anyhow::Result<skyplan::catalog::Catalog> {
    let mut catalog = skyplan::load_catalog(cli.catalog_dir.as_deref())?;
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let changed = skyplan::apply_spot_overlay(&mut catalog, &home)?;
    if changed > 0 {
        tracing::info!(
            "{}: newer spot prices for {changed} offers",
            skyplan::spot_overlay_path(&home).display()
        );
    }
    for warning in &catalog.report().warnings {
        // The embedded catalog's quirks are known and documented in data/README.md.
        if cli.catalog_dir.is_some() {
            tracing::warn!("{warning}");
        } else {
            tracing::debug!("{warning}");
        }
    }
    Ok(catalog)
}

/// A closed stdout (`skyplan ... | head`) is not an error worth reporting.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// Writes `text` and a newline to stdout.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Writes `value` as pretty JSON to stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
