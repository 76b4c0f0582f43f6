//! `skyplan down NAME... | --all`: tear clusters down wherever they are (the state store's
//! record and every provider's labeled resources), idempotently, and say only what was
//! verified: what is still there is an error (exit 1), what is shutting down is named.

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
    let mut unlisted = false;
    let names: Vec<String> = if args.all {
        let mut all: BTreeSet<String> = store.clusters()?.into_iter().map(|c| c.name).collect();
        for provider in providers.values() {
            match runtime.block_on(provider.list()) {
                Ok(clusters) => all.extend(clusters.into_iter().map(|c| c.name)),
                Err(err) => {
                    // What it holds cannot be known, so `down --all` cannot say all is gone.
                    unlisted = true;
                    eprintln!("error: could not list clusters on {}: {err}", provider.id());
                }
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
                if !outcome.verified {
                    failed = true;
                }
                if !cli.json {
                    super::print_text(&down_text(name, &outcome))?;
                    for warning in &outcome.warnings {
                        super::print_text(&format!("  warning: {warning}"))?;
                    }
                    if !outcome.verified {
                        eprintln!(
                            "error: could not verify that {name} is gone everywhere (see the warnings); run `skyplan down {name}` again"
                        );
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
    Ok(if failed || unlisted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What `down` verified for one cluster: "Terminated" only when nothing carrying its label is
/// left, "Terminating" with what is still shutting down.
fn down_text(name: &str, outcome: &skyplan_providers::DownOutcome) -> String {
    if !outcome.found() {
        return format!("Cluster {name} not found; nothing to remove.");
    }
    let places: Vec<&str> = outcome
        .torn_down
        .iter()
        .filter(|(_, o)| o.existed())
        .map(|(p, _)| p.as_str())
        .collect();
    let on = if places.is_empty() {
        " (only its record was left)".to_string()
    } else {
        format!(" on {}", places.join(", "))
    };
    let terminating = outcome.terminating();
    if terminating.is_empty() {
        format!("Terminated {name}{on}.")
    } else {
        format!(
            "Terminating {name}{on}; still shutting down: {}.",
            terminating.join(", ")
        )
    }
}
