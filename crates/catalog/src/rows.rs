//! What a catalog file holds on its way to offers: one validated CSV [`Row`] (before cloud rules
//! such as GCP's host + GPU pairing turn rows into offers) and the [`LoadReport`] of what loading
//! collapsed, resolved or left out.

use rust_decimal::Decimal;

use crate::Offer;

/// What loading did besides producing offers: counts and warnings worth showing a user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Data rows read (header excluded).
    pub rows: usize,
    /// Rows identical to an earlier row, collapsed into it.
    pub exact_duplicates: usize,
    /// Rows that conflicted with another row for the same shape and place; one was kept.
    pub conflicts_resolved: usize,
    /// Rows with neither an on-demand nor a spot price (nothing can be bought there).
    pub unpriced: usize,
    /// GPU machine types left out because no accelerator price exists for them in that zone, or
    /// because the machine type is not one whose GPUs are known.
    pub unpriced_gpu_hosts: usize,
    /// Human-readable warnings (conflicting duplicates, rows that could not be used).
    pub warnings: Vec<String>,
}

impl LoadReport {
    pub(crate) fn absorb(&mut self, other: LoadReport) {
        self.rows += other.rows;
        self.exact_duplicates += other.exact_duplicates;
        self.conflicts_resolved += other.conflicts_resolved;
        self.unpriced += other.unpriced;
        self.unpriced_gpu_hosts += other.unpriced_gpu_hosts;
        self.warnings.extend(other.warnings);
    }
}

/// One validated CSV row, before cloud-specific rules turn rows into offers.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub line: u64,
    pub instance_type: String,
    pub accelerator: Option<String>,
    pub count: f64,
    pub vcpus: Option<f64>,
    pub memory_gib: Option<f64>,
    pub gpu_info_name: Option<String>,
    pub gpu_memory_mib: Option<u64>,
    pub price: Option<Decimal>,
    pub spot_price: Option<Decimal>,
    pub region: String,
    pub zone: Option<String>,
}

impl Row {
    pub(crate) fn into_offer(self, cloud: &str) -> Offer {
        Offer {
            cloud: cloud.to_string(),
            region: self.region,
            zone: self.zone,
            instance_type: self.instance_type,
            accelerator: self.accelerator,
            accelerator_count: self.count,
            vcpus: self.vcpus,
            memory_gib: self.memory_gib,
            accelerator_memory_mib: self.gpu_memory_mib,
            price: self.price,
            spot_price: self.spot_price,
        }
    }
}
