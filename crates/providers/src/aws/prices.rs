//! Live spot prices: the newest `DescribeSpotPriceHistory` price per instance type and zone,
//! as rows of a spot price overlay ([`skyplan_catalog::SpotPrice`]) that the CLI keeps in
//! `SKYPLAN_HOME` and lays over the catalog. The catalog files in `data/` are never touched.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::SystemTime;

use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use rust_decimal::Decimal;
use skyplan_catalog::SpotPrice;

use super::{AWS, AwsProvider, map_sdk_error};
use crate::ProviderError;

impl AwsProvider {
    /// The current Linux spot price of each of `instance_types` (all types when empty) in every
    /// zone of `region`, with zones written as zone ids like the catalog's. A price EC2 answers
    /// that is not a decimal is an error naming the type and zone.
    pub async fn spot_prices(
        &self,
        region: &str,
        instance_types: &[String],
    ) -> Result<Vec<SpotPrice>, ProviderError> {
        let zone_ids: BTreeMap<String, String> = self.zones(region).await?.into_iter().collect();
        let client = self.client(region).await;
        let mut pages = client
            .describe_spot_price_history()
            .product_descriptions("Linux/UNIX")
            .start_time(DateTime::from(SystemTime::now()))
            .set_instance_types(if instance_types.is_empty() {
                None
            } else {
                Some(instance_types.iter().map(|t| t.as_str().into()).collect())
            })
            .into_paginator()
            .send();
        // Newest price per (type, zone).
        let mut newest: BTreeMap<(String, String), (DateTime, Decimal)> = BTreeMap::new();
        // A cloud that keeps handing out next tokens must not keep us here: at 1000 entries a
        // page, this bound is far beyond any region's history for one moment.
        const MAX_PAGES: usize = 1000;
        let mut read = 0;
        while let Some(page) = pages.next().await {
            read += 1;
            if read > MAX_PAGES {
                return Err(ProviderError::Transient {
                    message: format!(
                        "aws {region}: DescribeSpotPriceHistory: still paging after {MAX_PAGES} pages; stopped"
                    ),
                });
            }
            let page = page.map_err(|e| map_sdk_error(region, "DescribeSpotPriceHistory", e))?;
            for entry in page.spot_price_history() {
                let (Some(kind), Some(zone), Some(price)) = (
                    entry.instance_type(),
                    entry.availability_zone(),
                    entry.spot_price(),
                ) else {
                    continue;
                };
                let price = Decimal::from_str(price.trim())
                    .ok()
                    .filter(|p| !p.is_sign_negative() && *p <= skyplan_catalog::money::MAX_HOURLY_PRICE)
                    .ok_or_else(|| ProviderError::Transient {
                        message: format!(
                            "aws {region}: DescribeSpotPriceHistory: price {:?} of {} in {zone} is not a price from 0 to {} $/h",
                            price.chars().take(40).collect::<String>(),
                            kind.as_str(),
                            skyplan_catalog::money::MAX_HOURLY_PRICE
                        ),
                    })?;
                let when = entry.timestamp().copied().unwrap_or(DateTime::from_secs(0));
                let key = (kind.as_str().to_string(), zone.to_string());
                match newest.get(&key) {
                    Some((seen, _)) if *seen >= when => {}
                    _ => {
                        newest.insert(key, (when, price));
                    }
                }
            }
        }
        Ok(newest
            .into_iter()
            .map(|((instance_type, zone), (when, price))| SpotPrice {
                cloud: AWS.to_string(),
                region: region.to_string(),
                zone: Some(zone_ids.get(&zone).cloned().unwrap_or(zone)),
                instance_type,
                price,
                timestamp: when.fmt(DateTimeFormat::DateTime).unwrap_or_default(),
            })
            .collect())
    }
}
