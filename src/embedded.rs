//! The default catalog, compiled into the binary from `data/` (see `data/README.md` for where
//! each file comes from and `scripts/import-catalog.py` for how it is refreshed).

use skyplan_catalog::{Catalog, CatalogError};
use skyplan_optimizer::{EgressPrices, OptimizerError};

/// `(cloud, file name, contents)` of every embedded offer file.
pub const FILES: &[(&str, &str, &[u8])] = &[
    ("aws", "data/aws.csv", include_bytes!("../data/aws.csv")),
    ("azure", "data/azure.csv", include_bytes!("../data/azure.csv")),
    ("gcp", "data/gcp.csv", include_bytes!("../data/gcp.csv")),
    ("lambda", "data/lambda.csv", include_bytes!("../data/lambda.csv")),
    ("nebius", "data/nebius.csv", include_bytes!("../data/nebius.csv")),
    ("runpod", "data/runpod.csv", include_bytes!("../data/runpod.csv")),
];

/// Parses the embedded catalog.
pub fn catalog() -> Result<Catalog, CatalogError> {
    Catalog::from_sources(FILES.iter().copied())
}

/// The embedded egress price list (`data/egress.csv`).
pub const EGRESS_CSV: &[u8] = include_bytes!("../data/egress.csv");

/// Parses the embedded egress prices.
pub fn egress() -> Result<EgressPrices, OptimizerError> {
    EgressPrices::from_csv("data/egress.csv", EGRESS_CSV)
}
