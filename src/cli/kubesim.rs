//! `skyplan kubesim`: runs the bundled Kubernetes API *simulator* in the foreground, for demos and
//! for trying bursting without a real cluster. It is not a Kubernetes cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Cli;

/// Arguments of `kubesim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The clusters file (named clusters with their nodes); see examples/kubesim-clusters.yaml.
    #[arg(long, value_name = "FILE")]
    pub clusters: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,
    /// Where to write the kubeconfig (one context per simulated cluster).
    #[arg(long, value_name = "OUT")]
    pub kubeconfig: Option<PathBuf>,
}

/// Runs the simulator until Ctrl-C, SIGTERM or SIGHUP, then kills every pod process it started.
pub fn run(_cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(skyplan_kubesim::run_foreground(
        &args.clusters,
        args.port,
        args.kubeconfig.as_deref(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
