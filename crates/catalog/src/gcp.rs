//! GCP's catalog rules. GCP lists GPUs that attach to a VM as rows without an instance type, and
//! GPU machine families (`a2-*`, `a3-*`, `g2-*`) with an empty accelerator column and a price for
//! the VM part only. An offer is host VM + its GPUs, priced as the sum, following SkyPilot's GCP
//! catalog (`_ACC_INSTANCE_TYPE_DICTS`, `_NUM_ACC_TO_MAX_CPU_AND_MEMORY`):
//!
//! - A100, A100-80GB, L4, H100, H100-MEGA, H200, B200 come only inside their machine types.
//! - K80, P4, P100, V100, T4 attach to N1 hosts, up to a vCPU/memory limit per GPU count.
//! - TPUs are TPU VMs (instance type `TPU-VM`); the host costs nothing extra.
//! - A GPU machine type is never a CPU-only offer, even when its GPUs cannot be priced.
//! - A row that names its accelerators itself is taken as it is, price included.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::rows::{LoadReport, Row};
use crate::{CatalogError, Offer, money};

/// Machine types that carry a fixed accelerator set: (accelerator, count, machine types).
const MACHINE_TYPE_GPUS: &[(&str, u32, &[&str])] = &[
    ("A100", 1, &["a2-highgpu-1g"]),
    ("A100", 2, &["a2-highgpu-2g"]),
    ("A100", 4, &["a2-highgpu-4g"]),
    ("A100", 8, &["a2-highgpu-8g"]),
    ("A100", 16, &["a2-megagpu-16g"]),
    ("A100-80GB", 1, &["a2-ultragpu-1g"]),
    ("A100-80GB", 2, &["a2-ultragpu-2g"]),
    ("A100-80GB", 4, &["a2-ultragpu-4g"]),
    ("A100-80GB", 8, &["a2-ultragpu-8g"]),
    (
        "L4",
        1,
        &[
            "g2-standard-4",
            "g2-standard-8",
            "g2-standard-12",
            "g2-standard-16",
            "g2-standard-32",
        ],
    ),
    ("L4", 2, &["g2-standard-24"]),
    ("L4", 4, &["g2-standard-48"]),
    ("L4", 8, &["g2-standard-96"]),
    ("H100", 1, &["a3-highgpu-1g"]),
    ("H100", 2, &["a3-highgpu-2g"]),
    ("H100", 4, &["a3-highgpu-4g"]),
    ("H100", 8, &["a3-highgpu-8g"]),
    ("H100-MEGA", 8, &["a3-megagpu-8g"]),
    ("H200", 8, &["a3-ultragpu-8g"]),
    ("B200", 8, &["a4-highgpu-8g"]),
];

/// Families whose machines all carry GPUs: never offered CPU-only.
const GPU_FAMILIES: &[&str] = &["a2-", "a3-", "a4-", "g2-", "g4-"];

/// Host families that GPUs attach to.
const ATTACH_HOST_FAMILIES: &[&str] = &["n1-standard-", "n1-highmem-", "n1-highcpu-"];

/// (accelerator, count) -> the largest host (vCPUs, memory GiB) it may attach to.
const ATTACH_LIMITS: &[(&str, u32, f64, f64)] = &[
    ("K80", 1, 8.0, 52.0),
    ("K80", 2, 16.0, 104.0),
    ("K80", 4, 32.0, 208.0),
    ("K80", 8, 64.0, 208.0),
    ("V100", 1, 12.0, 78.0),
    ("V100", 2, 24.0, 156.0),
    ("V100", 4, 48.0, 312.0),
    ("V100", 8, 96.0, 624.0),
    ("T4", 1, 48.0, 312.0),
    ("T4", 2, 48.0, 312.0),
    ("T4", 4, 96.0, 624.0),
    ("P4", 1, 24.0, 156.0),
    ("P4", 2, 48.0, 312.0),
    ("P4", 4, 96.0, 624.0),
    ("P100", 1, 16.0, 104.0),
    ("P100", 2, 32.0, 208.0),
    ("P100", 4, 96.0, 624.0),
];

/// The accelerators a GCP machine type carries, if it is a GPU machine type.
pub fn machine_type_accelerators(instance_type: &str) -> Option<(&'static str, u32)> {
    MACHINE_TYPE_GPUS
        .iter()
        .find(|(_, _, types)| types.contains(&instance_type))
        .map(|(acc, count, _)| (*acc, *count))
}

/// Host + GPU price in one market: offered only where both are; an amount too large to add is
/// an error naming both rows.
fn sum(
    file: &str,
    host: &Row,
    gpu: &Row,
    pick: impl Fn(&Row) -> Option<Decimal>,
) -> Result<Option<Decimal>, CatalogError> {
    let (Some(a), Some(b)) = (pick(host), pick(gpu)) else {
        return Ok(None);
    };
    money::add(a, b).map(Some).map_err(|source| CatalogError::Money {
        file: file.to_string(),
        line: host.line,
        what: format!("the prices of host line {} and GPU line {}", host.line, gpu.line),
        source,
    })
}

type PlaceKey = (String, Option<String>);

/// Turns GCP rows into offers (see the module docs for the rules).
pub(crate) fn combine(
    file: &str,
    rows: Vec<Row>,
    report: &mut LoadReport,
) -> Result<Vec<Offer>, CatalogError> {
    let mut hosts: Vec<Row> = Vec::new();
    let mut attachable: Vec<Row> = Vec::new();
    for row in rows {
        if row.instance_type.is_empty() {
            if row.accelerator.is_some() {
                attachable.push(row);
            } else {
                report.warnings.push(format!(
                    "{file}:{}: row has neither InstanceType nor AcceleratorName, left out",
                    row.line
                ));
            }
        } else {
            hosts.push(row);
        }
    }
    // (accelerator, count, region, zone) -> the attachable GPU row.
    let gpu_rows: HashMap<(String, u64, PlaceKey), &Row> = attachable
        .iter()
        .filter_map(|r| {
            Some((
                (
                    r.accelerator.clone()?,
                    r.count.to_bits(),
                    (r.region.clone(), r.zone.clone()),
                ),
                r,
            ))
        })
        .collect();
    // (region, zone) -> N1 hosts there.
    let mut n1_hosts: HashMap<PlaceKey, Vec<&Row>> = HashMap::new();
    for host in &hosts {
        if ATTACH_HOST_FAMILIES
            .iter()
            .any(|f| host.instance_type.starts_with(f))
        {
            n1_hosts
                .entry((host.region.clone(), host.zone.clone()))
                .or_default()
                .push(host);
        }
    }

    let mut offers = Vec::with_capacity(hosts.len() + attachable.len() * 4);
    let mut push =
        |host: Option<&Row>, gpu: Option<&Row>, offers: &mut Vec<Offer>| -> Result<(), CatalogError> {
            let (base, price, spot_price) = match (host, gpu) {
                (Some(h), Some(g)) => (
                    g,
                    sum(file, h, g, |r| r.price)?,
                    sum(file, h, g, |r| r.spot_price)?,
                ),
                (Some(only), None) | (None, Some(only)) => (only, only.price, only.spot_price),
                (None, None) => return Ok(()),
            };
            if price.is_none() && spot_price.is_none() {
                report.unpriced += 1;
                return Ok(());
            }
            offers.push(Offer {
                cloud: "gcp".to_string(),
                region: base.region.clone(),
                zone: base.zone.clone(),
                instance_type: host.map_or_else(|| "TPU-VM".to_string(), |h| h.instance_type.clone()),
                accelerator: gpu.and_then(|g| g.accelerator.clone()),
                accelerator_count: gpu.map_or(0.0, |g| g.count),
                vcpus: host.and_then(|h| h.vcpus),
                memory_gib: host.and_then(|h| h.memory_gib),
                accelerator_memory_mib: gpu.and_then(|g| g.gpu_memory_mib),
                price,
                spot_price,
            });
            Ok(())
        };

    for host in &hosts {
        if host.accelerator.is_some() {
            // The row names its accelerators itself (a hand-written or future catalog row): its
            // price is taken as the whole shape's price.
            offers.push(Offer {
                cloud: "gcp".to_string(),
                region: host.region.clone(),
                zone: host.zone.clone(),
                instance_type: host.instance_type.clone(),
                accelerator: host.accelerator.clone(),
                accelerator_count: host.count,
                vcpus: host.vcpus,
                memory_gib: host.memory_gib,
                accelerator_memory_mib: host.gpu_memory_mib,
                price: host.price,
                spot_price: host.spot_price,
            });
        } else if let Some((acc, count)) = machine_type_accelerators(&host.instance_type) {
            let key = (
                acc.to_string(),
                f64::from(count).to_bits(),
                (host.region.clone(), host.zone.clone()),
            );
            match gpu_rows.get(&key) {
                Some(gpu) => push(Some(host), Some(gpu), &mut offers)?,
                None => report.unpriced_gpu_hosts += 1,
            }
        } else if GPU_FAMILIES.iter().any(|f| host.instance_type.starts_with(f)) {
            // A GPU machine type whose GPUs we cannot name or price (e.g. a3-edgegpu-8g).
            report.unpriced_gpu_hosts += 1;
        } else {
            push(Some(host), None, &mut offers)?;
        }
    }
    for gpu in &attachable {
        let Some(acc) = gpu.accelerator.as_deref() else {
            continue;
        };
        if acc.starts_with("tpu-") {
            push(None, Some(gpu), &mut offers)?;
            continue;
        }
        let limit = ATTACH_LIMITS
            .iter()
            .find(|(name, count, _, _)| *name == acc && f64::from(*count) == gpu.count);
        let Some(&(_, _, max_cpus, max_memory)) = limit else {
            continue; // Comes only inside its machine types (handled above), or not attachable at this count.
        };
        for host in n1_hosts
            .get(&(gpu.region.clone(), gpu.zone.clone()))
            .into_iter()
            .flatten()
        {
            let fits =
                host.vcpus.is_some_and(|c| c <= max_cpus) && host.memory_gib.is_some_and(|m| m <= max_memory);
            if fits {
                push(Some(host), Some(gpu), &mut offers)?;
            }
        }
    }
    Ok(offers)
}
