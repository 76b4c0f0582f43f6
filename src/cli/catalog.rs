//! `skyplan catalog refresh --cloud aws`: newer spot prices from the cloud's spot price history,
//! kept as an overlay in `SKYPLAN_HOME/catalog/spot-prices.csv` and laid over the catalog by every
//! command. The catalog files (`data/`, `--catalog-dir`) are never written.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context;
use skyplan::catalog::{SpotPrice, write_spot_overlay};
use skyplan::providers::AwsProvider;

use super::Cli;

/// Subcommands of `catalog`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Fetch current spot prices into the home's overlay.
    Refresh(RefreshArgs),
}

/// Arguments of `catalog refresh`.
#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    /// The cloud to ask (only `aws` so far).
    #[arg(long, value_name = "C")]
    pub cloud: String,
    /// Only these regions (repeatable; default: every region of the cloud in the catalog).
    #[arg(long = "region", value_name = "R")]
    pub regions: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
struct RegionReport {
    region: String,
    prices: usize,
    offers_updated: usize,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    overlay: String,
    regions: Vec<RegionReport>,
}

/// Runs `catalog`.
pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Refresh(args) = command;
    if args.cloud != "aws" {
        anyhow::bail!(
            "--cloud {:?}: refreshing prices is supported for aws only",
            args.cloud
        );
    }
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let provider = AwsProvider::from_env()?.ok_or_else(|| {
        anyhow::anyhow!(
            "aws is not configured: no AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials or ~/.aws/config)"
        )
    })?;
    let base = skyplan::load_catalog(cli.catalog_dir.as_deref())?;
    let catalog_regions: BTreeSet<&str> = base
        .offers()
        .iter()
        .filter(|o| o.cloud == "aws")
        .map(|o| o.region.as_str())
        .collect();
    for region in &args.regions {
        if !catalog_regions.contains(region.as_str()) {
            anyhow::bail!(
                "--region {region:?}: the catalog has no aws offers there; it has: {}",
                catalog_regions.iter().copied().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let regions: Vec<String> = if args.regions.is_empty() {
        catalog_regions.iter().map(|r| r.to_string()).collect()
    } else {
        args.regions.clone()
    };
    let runtime = skyplan::launch::runtime()?;
    let mut fresh: Vec<SpotPrice> = Vec::new();
    let mut reports = Vec::new();
    // Regions are disjoint, so one copy counts each region's updated offers.
    let mut probe = base.clone();
    for region in &regions {
        let types: BTreeSet<&str> = base
            .offers()
            .iter()
            .filter(|o| o.cloud == "aws" && o.region == *region)
            .map(|o| o.instance_type.as_str())
            .collect();
        eprintln!(
            "aws {region}: reading spot price history for {} instance types",
            types.len()
        );
        let rows = runtime
            .block_on(provider.spot_prices(region, &[]))
            .with_context(|| format!("refreshing aws spot prices in {region}"))?;
        let rows: Vec<SpotPrice> = rows
            .into_iter()
            .filter(|r| types.contains(r.instance_type.as_str()))
            .collect();
        let offers_updated = probe.apply_spot_prices(&rows);
        reports.push(RegionReport {
            region: region.clone(),
            prices: rows.len(),
            offers_updated,
        });
        fresh.extend(rows);
    }
    let path = skyplan::spot_overlay_path(&home);
    let mut kept = skyplan::read_spot_overlay(&home)?;
    kept.retain(|r| !(r.cloud == "aws" && regions.contains(&r.region)));
    kept.extend(fresh);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let temporary = path.with_extension("csv.tmp");
    std::fs::write(&temporary, write_spot_overlay(&kept))
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))?;
    let report = Report {
        overlay: path.display().to_string(),
        regions: reports,
    };
    if cli.json {
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["REGION", "SPOT PRICES", "OFFERS UPDATED"]);
    for region in &report.regions {
        table.add_row(vec![
            region.region.clone(),
            region.prices.to_string(),
            region.offers_updated.to_string(),
        ]);
    }
    super::print_text(&format!(
        "{table}\nSaved to {} (data/ is unchanged).",
        report.overlay
    ))?;
    Ok(ExitCode::SUCCESS)
}
