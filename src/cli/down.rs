//! `skyplan down NAME... | --all`: tear clusters down wherever they are (the state store's
//! record and every provider's labeled resources), idempotently, and say what was removed.

use std::collections::BTreeSet;
use std::process::ExitCode;

use super::Cli;

/// Arguments of `down`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Clusters to tear down.
    #[arg(value_name = "NAME", required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every cluster: recorded ones and any a provider holds.
    #[arg(short, long)]
    pub all: bool,
}

/// Runs `down`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let store = skyplan::launch::open_store(&home)?;
    let providers = skyplan::launch::providers(&home);
    let runtime = skyplan::launch::runtime()?;
    let names: Vec<String> = if args.all {
        let mut all: BTreeSet<String> = store.clusters()?.into_iter().map(|c| c.name).collect();
        for provider in providers.values() {
            if let Ok(clusters) = runtime.block_on(provider.list()) {
                all.extend(clusters.into_iter().map(|c| c.name));
            }
        }
        all.into_iter().collect()
    } else {
        args.names.clone()
    };
    let mut outcomes = Vec::new();
    let mut failed = false;
    for name in &names {
        match runtime.block_on(skyplan_providers::teardown_cluster(&store, &providers, name)) {
            Ok(outcome) => {
                if !cli.json {
                    let text = if outcome.found() {
                        let places: Vec<&str> = outcome.torn_down.iter().map(|(p, _)| p.as_str()).collect();
                        format!(
                            "Terminated {name}{}.",
                            if places.is_empty() {
                                String::new()
                            } else {
                                format!(" on {}", places.join(", "))
                            }
                        )
                    } else {
                        format!("Cluster {name} not found; nothing to remove.")
                    };
                    super::print_text(&text)?;
                    for warning in &outcome.warnings {
                        super::print_text(&format!("  warning: {warning}"))?;
                    }
                }
                outcomes.push(outcome);
            }
            Err(err) => {
                failed = true;
                eprintln!("error: tearing down {name}: {err}");
            }
        }
    }
    if cli.json {
        super::print_json(&outcomes)?;
    } else if names.is_empty() {
        super::print_text("No clusters.")?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
