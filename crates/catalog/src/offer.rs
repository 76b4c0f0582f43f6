//! `Offer`: one purchasable shape in one place. Plain data; filtering and ordering live on
//! [`crate::Catalog`].

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

/// One purchasable shape in one place: a cloud instance type in a region/zone, or free capacity
/// on a Kubernetes cluster.
///
/// Prices are dollars per hour for the whole shape (host VM plus its accelerators). `None` means
/// that market (on-demand or spot) is not offered there — never zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    /// Cloud or cluster provider, lower-case (`aws`, `gcp`, `kubernetes`, ...).
    pub cloud: String,
    /// Region (for Kubernetes: the kubeconfig context).
    pub region: String,
    /// Availability zone, if the cloud has zones (AWS uses zone IDs such as `use1-az1`).
    pub zone: Option<String>,
    /// Instance type (`TPU-VM` for GCP TPU VMs).
    pub instance_type: String,
    /// Canonical accelerator name, if the shape has accelerators.
    pub accelerator: Option<String>,
    /// Number of accelerators (0 without any).
    #[serde(serialize_with = "serialize_count")]
    pub accelerator_count: f64,
    /// vCPUs, when the catalog says (unknown for TPU VMs).
    pub vcpus: Option<f64>,
    /// Memory in GiB, when the catalog says.
    pub memory_gib: Option<f64>,
    /// Memory of one accelerator in MiB, when the catalog says.
    #[serde(skip)]
    pub accelerator_memory_mib: Option<u64>,
    /// On-demand $/hour, or `None` where on-demand is not offered.
    #[serde(serialize_with = "price_as_string")]
    pub price: Option<Decimal>,
    /// Spot $/hour, or `None` where spot is not offered.
    #[serde(serialize_with = "price_as_string")]
    pub spot_price: Option<Decimal>,
}

impl Offer {
    /// The price in the chosen market, if that market is offered.
    pub fn price_for(&self, spot: bool) -> Option<Decimal> {
        if spot { self.spot_price } else { self.price }
    }

    /// `accelerator:count` (e.g. `L4:1`), or `-` for CPU-only shapes.
    pub fn accelerator_label(&self) -> String {
        match &self.accelerator {
            Some(name) => format!("{name}:{}", format_count(self.accelerator_count)),
            None => "-".to_string(),
        }
    }

    /// Whether the offer is in this place and of this instance type; `None` matches anything
    /// (cloud compared case-insensitively). Shared by queries and blocked-place patterns.
    pub fn is_at(
        &self,
        cloud: Option<&str>,
        region: Option<&str>,
        zone: Option<&str>,
        instance_type: Option<&str>,
    ) -> bool {
        cloud.is_none_or(|c| self.cloud.eq_ignore_ascii_case(c))
            && region.is_none_or(|r| self.region == r)
            && zone.is_none_or(|z| self.zone.as_deref() == Some(z))
            && instance_type.is_none_or(|t| self.instance_type == t)
    }

    /// The zone if there is one, else the region.
    pub fn place(&self) -> &str {
        self.zone.as_deref().unwrap_or(&self.region)
    }
}

/// Formats a count without a trailing `.0` (`8`, `0.5`).
pub fn format_count(count: f64) -> String {
    if count.fract() == 0.0 && count.abs() < 1e15 {
        format!("{}", count as i64)
    } else {
        format!("{count}")
    }
}

/// Serializes an accelerator count as an integer when it is whole (`8`, not `8.0`), as the
/// catalogs write it; for `#[serde(serialize_with)]` on other types carrying counts.
pub fn serialize_count<S: Serializer>(count: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if count.fract() == 0.0 && count.abs() < 1e15 {
        serializer.serialize_i64(*count as i64)
    } else {
        serializer.serialize_f64(*count)
    }
}

fn price_as_string<S: Serializer>(price: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
    match price {
        Some(p) => serializer.serialize_str(&p.to_string()),
        None => serializer.serialize_none(),
    }
}
