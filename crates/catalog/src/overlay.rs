//! Spot price overlays: newer spot prices (e.g. from a cloud's spot price history) kept apart
//! from the catalog files and laid over a loaded [`Catalog`] with [`Catalog::apply_spot_prices`].
//!
//! The file is a CSV with the header `Cloud,Region,AvailabilityZone,InstanceType,SpotPrice,Timestamp`
//! ([`SPOT_OVERLAY_HEADER`]); zones are written as the catalog writes them (zone ids for AWS).

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::{Catalog, CatalogError};

/// The overlay file's header.
pub const SPOT_OVERLAY_HEADER: [&str; 6] = [
    "Cloud",
    "Region",
    "AvailabilityZone",
    "InstanceType",
    "SpotPrice",
    "Timestamp",
];

/// One spot price for an instance type in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotPrice {
    /// Cloud, lower-case.
    pub cloud: String,
    /// Region.
    pub region: String,
    /// Zone (as in the catalog); `None` applies to every zone of the region.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: String,
    /// $/hour.
    pub price: Decimal,
    /// When the cloud set this price (RFC 3339), as reported.
    pub timestamp: String,
}

/// Parses an overlay file; `file` names it in errors.
///
/// ```
/// let csv = "Cloud,Region,AvailabilityZone,InstanceType,SpotPrice,Timestamp\n\
///            aws,us-east-1,use1-az1,g6.xlarge,0.3512,2026-12-01T00:00:00Z\n";
/// let rows = skyplan_catalog::parse_spot_overlay("spot.csv", csv.as_bytes()).unwrap();
/// assert_eq!(rows[0].price.to_string(), "0.3512");
/// let bad = "Cloud,Region,AvailabilityZone,InstanceType,SpotPrice,Timestamp\naws,r,z,t,cheap,x\n";
/// let err = skyplan_catalog::parse_spot_overlay("spot.csv", bad.as_bytes()).unwrap_err();
/// assert!(err.to_string().starts_with("spot.csv:2: column 5 (`SpotPrice`)"), "{err}");
/// ```
pub fn parse_spot_overlay(file: &str, bytes: &[u8]) -> Result<Vec<SpotPrice>, CatalogError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let csv_error = |e: csv::Error| CatalogError::Csv {
        file: file.to_string(),
        line: e.position().map_or(0, |p| p.line()),
        source: e,
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut index = [0usize; 6];
    for (slot, column) in index.iter_mut().zip(SPOT_OVERLAY_HEADER) {
        *slot = header
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| CatalogError::MissingColumn {
                file: file.to_string(),
                column,
                found: header.join(","),
            })?;
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |n: usize| record.get(index[n]).unwrap_or_default().trim();
        let invalid = |n: usize, expected: &'static str| CatalogError::InvalidValue {
            file: file.to_string(),
            line,
            column: SPOT_OVERLAY_HEADER[n].to_string(),
            column_number: index[n] + 1,
            value: field(n).to_string(),
            expected,
        };
        for required in [0, 1, 3] {
            if field(required).is_empty() {
                return Err(invalid(required, "a value"));
            }
        }
        let price = Decimal::from_str(field(4))
            .ok()
            .filter(|p| !p.is_sign_negative() && *p <= crate::money::MAX_HOURLY_PRICE)
            .ok_or_else(|| invalid(4, "a price in $/hour of at most 1000000, such as 0.3512"))?;
        rows.push(SpotPrice {
            cloud: field(0).to_ascii_lowercase(),
            region: field(1).to_string(),
            zone: Some(field(2).to_string()).filter(|z| !z.is_empty()),
            instance_type: field(3).to_string(),
            price,
            timestamp: field(5).to_string(),
        });
    }
    Ok(rows)
}

/// The overlay file for `rows`, sorted, as [`parse_spot_overlay`] reads it.
pub fn write_spot_overlay(rows: &[SpotPrice]) -> String {
    let mut sorted: Vec<&SpotPrice> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.cloud, &a.region, &a.zone, &a.instance_type).cmp(&(
            &b.cloud,
            &b.region,
            &b.zone,
            &b.instance_type,
        ))
    });
    let mut out = SPOT_OVERLAY_HEADER.join(",");
    out.push('\n');
    for row in sorted {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            row.cloud,
            row.region,
            row.zone.as_deref().unwrap_or_default(),
            row.instance_type,
            row.price,
            row.timestamp
        ));
    }
    out
}

impl Catalog {
    /// Sets the spot price of every offer matching a row (cloud, region, instance type, and
    /// zone unless the row has none), including offers that had no spot price; returns how many
    /// offers changed. Rows that match no offer add nothing: the shapes come from the catalog.
    pub fn apply_spot_prices(&mut self, rows: &[SpotPrice]) -> usize {
        let mut by_place = std::collections::HashMap::new();
        for row in rows {
            by_place.insert(
                (
                    row.cloud.as_str(),
                    row.region.as_str(),
                    row.instance_type.as_str(),
                    row.zone.as_deref(),
                ),
                row.price,
            );
        }
        let mut changed = 0;
        for offer in &mut self.offers {
            let exact = (
                offer.cloud.as_str(),
                offer.region.as_str(),
                offer.instance_type.as_str(),
                offer.zone.as_deref(),
            );
            let region_wide = (exact.0, exact.1, exact.2, None);
            let Some(price) = by_place.get(&exact).or_else(|| by_place.get(&region_wide)) else {
                continue;
            };
            if offer.spot_price != Some(*price) {
                offer.spot_price = Some(*price);
                changed += 1;
            }
        }
        if changed > 0 {
            self.reindex();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n\
        g6.xlarge,L4,1,4,16,0.8048,0.40,us-east-1,use1-az1\n\
        g6.xlarge,L4,1,4,16,0.8048,0.41,us-east-1,use1-az2\n\
        g6.xlarge,L4,1,4,16,0.8048,,us-west-2,usw2-az1\n";

    fn row(region: &str, zone: Option<&str>, price: &str) -> SpotPrice {
        SpotPrice {
            cloud: "aws".into(),
            region: region.into(),
            zone: zone.map(Into::into),
            instance_type: "g6.xlarge".into(),
            price: Decimal::from_str(price).expect("price"),
            timestamp: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn overlay_sets_zone_and_region_prices_and_reorders_spot_queries() {
        let mut catalog = Catalog::from_csv("aws", "aws.csv", CSV.as_bytes()).expect("catalog");
        let rows = vec![
            row("us-east-1", Some("use1-az2"), "0.10"),
            row("us-west-2", None, "0.20"),
        ];
        assert_eq!(catalog.apply_spot_prices(&rows), 2);
        let mut query = crate::OfferQuery::accelerator("L4", Some(1.0));
        query.spot = true;
        let offers = catalog.query(&query);
        let zones: Vec<_> = offers.iter().map(|o| o.zone.as_deref().unwrap_or("-")).collect();
        assert_eq!(zones, ["use1-az2", "usw2-az1", "use1-az1"]);
        assert_eq!(
            offers[0].spot_price.map(|p| p.to_string()).as_deref(),
            Some("0.10")
        );
    }

    #[test]
    fn written_overlays_read_back() {
        let rows = vec![
            row("us-west-2", None, "0.2"),
            row("us-east-1", Some("use1-az1"), "0.1"),
        ];
        let text = write_spot_overlay(&rows);
        let back = parse_spot_overlay("o.csv", text.as_bytes()).expect("parse");
        assert_eq!(back, vec![rows[1].clone(), rows[0].clone()]);
    }

    #[test]
    fn overlay_errors_name_file_line_and_column() {
        let missing = parse_spot_overlay("o.csv", b"Cloud,Region\naws,x\n").expect_err("no columns");
        assert!(
            missing.to_string().contains("missing column `AvailabilityZone`"),
            "{missing}"
        );
        let negative = "Cloud,Region,AvailabilityZone,InstanceType,SpotPrice,Timestamp\naws,r,z,t,-1,x\n";
        let err = parse_spot_overlay("o.csv", negative.as_bytes()).expect_err("negative");
        assert!(err.to_string().starts_with("o.csv:2: column 5"), "{err}");
        let empty_type = "Cloud,Region,AvailabilityZone,InstanceType,SpotPrice,Timestamp\naws,r,z,,1,x\n";
        let err = parse_spot_overlay("o.csv", empty_type.as_bytes()).expect_err("no type");
        assert!(err.to_string().contains("`InstanceType`"), "{err}");
    }
}
