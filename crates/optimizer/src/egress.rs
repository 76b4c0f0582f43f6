//! Egress prices between locations (cloud + region), from `data/egress.csv`.
//!
//! Data leaving a region costs the *source* cloud's rate: free within a region, the inter-region
//! rate to another region of the same cloud, and the internet rate to any other cloud. A row for a
//! specific source region overrides the cloud's `*` row. Clouds without rows (Kubernetes clusters,
//! `local`) cost nothing to leave. Cross-zone traffic inside a region is not modelled.

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::OptimizerError;

/// Where a placement runs, at the granularity egress is priced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// Cloud.
    pub cloud: String,
    /// Region (Kubernetes context).
    pub region: String,
}

/// Which kind of transfer a rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EgressKind {
    /// To another region of the same cloud.
    InterRegion,
    /// To the internet, and so to any other cloud.
    Internet,
}

/// $/GB rates by (cloud, source region or any, kind).
///
/// ```
/// use skyplan_optimizer::{EgressPrices, Location};
/// let csv = "cloud,source_region,kind,usd_per_gb,source\naws,*,internet,0.09,x\naws,*,inter_region,0.02,x\n";
/// let prices = EgressPrices::from_csv("egress.csv", csv.as_bytes()).unwrap();
/// let at = |c: &str, r: &str| Location { cloud: c.into(), region: r.into() };
/// assert_eq!(prices.per_gb(&at("aws", "us-east-1"), &at("aws", "us-west-2")).to_string(), "0.02");
/// assert_eq!(prices.per_gb(&at("aws", "us-east-1"), &at("gcp", "us-east4")).to_string(), "0.09");
/// assert!(prices.per_gb(&at("aws", "us-east-1"), &at("aws", "us-east-1")).is_zero());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EgressPrices {
    rates: HashMap<(String, Option<String>, EgressKindKey), Decimal>,
}

type EgressKindKey = u8;

fn key(kind: EgressKind) -> EgressKindKey {
    match kind {
        EgressKind::InterRegion => 0,
        EgressKind::Internet => 1,
    }
}

impl EgressPrices {
    /// Parses the egress CSV (`cloud,source_region,kind,usd_per_gb[,source]`; `*` = any region;
    /// kind `inter_region` or `internet`).
    pub fn from_csv(file: &str, bytes: &[u8]) -> Result<Self, OptimizerError> {
        let err = |line: u64, message: String| OptimizerError::EgressFile {
            file: file.to_string(),
            line,
            message,
        };
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
        let headers = reader
            .headers()
            .map_err(|e| err(1, format!("unreadable header: {e}")))?
            .clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| err(1, format!("missing column `{name}`")))
        };
        let (cloud_col, region_col, kind_col, price_col) = (
            column("cloud")?,
            column("source_region")?,
            column("kind")?,
            column("usd_per_gb")?,
        );
        let mut rates = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                err(
                    e.position().map_or(0, |p| p.line()),
                    format!("malformed CSV: {e}"),
                )
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let field = |i: usize| record.get(i).unwrap_or_default().trim();
            let cloud = field(cloud_col).to_ascii_lowercase();
            if cloud.is_empty() {
                return Err(err(line, "column `cloud`: expected a cloud name".into()));
            }
            let region = match field(region_col) {
                "" | "*" => None,
                r => Some(r.to_string()),
            };
            let kind = match field(kind_col) {
                "inter_region" => EgressKind::InterRegion,
                "internet" => EgressKind::Internet,
                other => {
                    return Err(err(
                        line,
                        format!("column `kind`: expected inter_region or internet, found {other:?}"),
                    ));
                }
            };
            let price = Decimal::from_str(field(price_col))
                .ok()
                .filter(|p| !p.is_sign_negative() && *p <= skyplan_catalog::money::MAX_PRICE_PER_GB)
                .ok_or_else(|| {
                    err(
                        line,
                        format!(
                            "column `usd_per_gb`: expected a non-negative decimal of at most 1000, found {:?}",
                            field(price_col)
                        ),
                    )
                })?;
            rates.insert((cloud, region, key(kind)), price);
        }
        Ok(EgressPrices { rates })
    }

    /// The rate for data leaving `source` by `kind`.
    pub fn rate(&self, source: &Location, kind: EgressKind) -> Decimal {
        let cloud = source.cloud.to_ascii_lowercase();
        self.rates
            .get(&(cloud.clone(), Some(source.region.clone()), key(kind)))
            .or_else(|| self.rates.get(&(cloud, None, key(kind))))
            .copied()
            .unwrap_or(Decimal::ZERO)
    }

    /// $/GB for moving data from `from` to `to`.
    pub fn per_gb(&self, from: &Location, to: &Location) -> Decimal {
        if from == to {
            Decimal::ZERO
        } else if from.cloud.eq_ignore_ascii_case(&to.cloud) {
            self.rate(from, EgressKind::InterRegion)
        } else {
            self.rate(from, EgressKind::Internet)
        }
    }

    /// Whether every rate is zero (egress cannot change a plan).
    pub fn is_free(&self) -> bool {
        self.rates.values().all(Decimal::is_zero)
    }
}
