//! `skyplan show-gpus`: accelerators on offer, or every offer for one accelerator.

use std::process::ExitCode;

use anyhow::Context;
use skyplan::catalog::{AcceleratorFilter, OfferQuery, parse_accelerator_request};

use super::Cli;

/// Arguments of `show-gpus`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accelerator, optionally with a count (`L4`, `H100:8`). Without it: one row per accelerator.
    #[arg(value_name = "NAME[:COUNT]")]
    pub name: Option<String>,
    /// Show everything: TPUs in the summary; every zone as its own row (instead of folding zones
    /// of a region into the cheapest) when listing offers. `--json` always lists every offer.
    #[arg(long)]
    pub all: bool,
    /// Only this cloud (`aws`, `gcp`, ...).
    #[arg(long, value_name = "C")]
    pub cloud: Option<String>,
    /// Only this region.
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Only offers with a spot price, ordered by it.
    #[arg(long)]
    pub spot: bool,
}

#[derive(serde::Serialize)]
struct SummaryJson<'a> {
    accelerator: &'a str,
    counts: Vec<serde_json::Value>,
    clouds: &'a [String],
    cheapest: Option<&'a skyplan::catalog::Offer>,
    cheapest_spot: Option<&'a skyplan::catalog::Offer>,
}

/// Runs `show-gpus` (catalog offers plus live offers from this machine and configured clusters).
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    // Live offers too: this machine's GPUs (`--cloud local`) and free capacity of configured
    // Kubernetes clusters.
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let catalog = skyplan::launch::catalog_with_live_offers(&home, super::load_catalog(cli)?)?;
    let mut query = OfferQuery {
        cloud: args.cloud.clone(),
        region: args.region.clone(),
        spot: args.spot,
        ..Default::default()
    };
    if let Some(cloud) = &args.cloud
        && !catalog.clouds().iter().any(|c| c.eq_ignore_ascii_case(cloud))
    {
        anyhow::bail!(
            "--cloud {cloud:?}: no such cloud in the catalog; expected one of: {}",
            catalog.clouds().join(", ")
        );
    }
    let Some(name) = &args.name else {
        let mut summaries = catalog.accelerator_summaries(&query);
        if !args.all {
            summaries.retain(|s| !s.name.starts_with("tpu-"));
        }
        if args.spot {
            summaries.retain(|s| s.cheapest_spot.is_some());
        }
        if cli.json {
            let json: Vec<SummaryJson<'_>> = summaries
                .iter()
                .map(|s| SummaryJson {
                    accelerator: &s.name,
                    counts: s.counts.iter().map(|c| count_json(*c)).collect(),
                    clouds: &s.clouds,
                    cheapest: s.cheapest,
                    cheapest_spot: s.cheapest_spot,
                })
                .collect();
            super::print_json(&json)?;
        } else if summaries.is_empty() {
            super::print_text("No accelerators match.")?;
        } else {
            super::print_text(&skyplan::render::accelerator_summary_table(&summaries))?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (given, count) = parse_accelerator_request(name).context("show-gpus NAME[:COUNT]")?;
    let canonical = catalog.resolve_accelerator(&given)?;
    query.accelerator = AcceleratorFilter::Named {
        name: canonical,
        count,
    };
    let offers = catalog.query(&query);
    if cli.json {
        super::print_json(&offers)?;
    } else if offers.is_empty() {
        super::print_text(&format!(
            "No offers for {name}{}.",
            if args.spot { " on spot" } else { "" }
        ))?;
    } else {
        super::print_text(&skyplan::render::offers_table(&offers, args.all))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn count_json(count: f64) -> serde_json::Value {
    if count.fract() == 0.0 {
        serde_json::json!(count as i64)
    } else {
        serde_json::json!(count)
    }
}
