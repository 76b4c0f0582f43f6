//! The offers skyplan places work on: SkyPilot-format price catalogs loaded into [`Offer`]s with
//! exact `Decimal` prices, canonical accelerator names with their cloud and Kubernetes aliases, and
//! indexed, price-ordered queries.
//!
//! This crate is pure data: no network, no clocks. The only IO is [`Catalog::load_dir`].
//!
//! ```
//! use skyplan_catalog::{Catalog, OfferQuery};
//! let csv = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n\
//!            p5.48xlarge,H100,8,192,2048,98.32,,us-east-1,use1-az1\n";
//! let catalog = Catalog::from_csv("aws", "aws.csv", csv.as_bytes()).unwrap();
//! let mut query = OfferQuery::accelerator("H100", Some(8.0));
//! assert_eq!(catalog.query(&query).len(), 1);
//! query.spot = true; // no spot price in that row: spot is not offered there
//! assert!(catalog.query(&query).is_empty());
//! ```

mod accelerator;
mod amount;
mod catalog;
mod error;
pub mod gcp;
mod load;
pub mod money;
mod offer;
mod overlay;
mod rows;
#[cfg(test)]
mod tests;

pub use accelerator::{
    KNOWN_ACCELERATORS, canonical_accelerator, canonical_accelerator_with_memory, closest_accelerator,
};
pub use amount::Amount;
pub use catalog::{
    AcceleratorFilter, AcceleratorSummary, Catalog, OfferQuery, compare_offers, parse_accelerator_request,
};
pub use error::CatalogError;
pub use money::MoneyError;
pub use offer::{Offer, format_count, serialize_count};
pub use overlay::{SPOT_OVERLAY_HEADER, SpotPrice, parse_spot_overlay, write_spot_overlay};
pub use rows::LoadReport;
