//! This machine's shape for the `local` backend: CPUs, memory, and GPUs from `nvidia-smi`, as
//! price-0 offers.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use skyplan_catalog::{Offer, canonical_accelerator_with_memory};

/// The cloud and region name of local offers.
pub const LOCAL: &str = "local";

/// One GPU of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Canonical accelerator name (`H200`), or the product name when unknown.
    pub name: String,
    /// Memory in MiB, when reported.
    pub memory_mib: Option<u64>,
}

/// Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv[,noheader][,nounits]`
/// output (the `index` column is optional; a header line and `MiB` units are skipped).
///
/// ```
/// let gpus = skyplan_providers::parse_nvidia_smi("0, NVIDIA H200, 143771\n");
/// assert_eq!(gpus[0].name, "H200");
/// assert_eq!(gpus[0].memory_mib, Some(143771));
/// ```
pub fn parse_nvidia_smi(text: &str) -> Vec<Gpu> {
    let mut gpus = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.iter().any(|f| f.eq_ignore_ascii_case("name")) {
            continue; // header
        }
        let (name, memory) = match fields.as_slice() {
            [index, name, memory, ..] if index.parse::<u32>().is_ok() => (*name, Some(*memory)),
            [name, memory] => (*name, Some(*memory)),
            [name] => (*name, None),
            _ => continue,
        };
        if name.is_empty() {
            continue;
        }
        let memory_mib = memory.and_then(|m| m.trim_end_matches("MiB").trim().parse::<u64>().ok());
        let canonical =
            canonical_accelerator_with_memory(name, memory_mib).unwrap_or_else(|| name.replace(' ', "-"));
        gpus.push(Gpu {
            name: canonical,
            memory_mib,
        });
    }
    gpus
}

/// Runs `nvidia-smi` (when it is on `PATH`) and parses its GPUs; none when it is missing,
/// fails, or takes longer than 10 seconds.
pub fn detect_gpus() -> Vec<Gpu> {
    let child = Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Vec::new();
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return Vec::new(),
            Ok(None) if start.elapsed() > Duration::from_secs(10) => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!("nvidia-smi did not answer within 10s; assuming no GPUs");
                return Vec::new();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let Some(mut stdout) = child.stdout.take() else {
        return Vec::new();
    };
    let mut text = String::new();
    if std::io::Read::read_to_string(&mut stdout, &mut text).is_err() {
        return Vec::new();
    }
    parse_nvidia_smi(&text)
}

/// vCPUs available to this process.
pub fn cpu_count() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// Total memory in GiB from `/proc/meminfo`, when readable.
pub fn memory_gib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1024.0 / 1024.0 * 100.0).floor() / 100.0)
}

/// This machine as offers, all at price 0: one CPU-only shape, and per GPU model with `n` GPUs
/// one shape per count `1..=n` (so a task asking for `H200:1` matches an 8-GPU machine).
pub fn machine_offers(cpus: f64, memory_gib: Option<f64>, gpus: &[Gpu]) -> Vec<Offer> {
    let offer = |instance_type: String, accelerator: Option<(&str, u32, Option<u64>)>| Offer {
        cloud: LOCAL.to_string(),
        region: LOCAL.to_string(),
        zone: None,
        instance_type,
        accelerator: accelerator.map(|(name, _, _)| name.to_string()),
        accelerator_count: accelerator.map_or(0.0, |(_, count, _)| f64::from(count)),
        vcpus: Some(cpus),
        memory_gib,
        accelerator_memory_mib: accelerator.and_then(|(_, _, memory)| memory),
        price: Some(Decimal::ZERO),
        spot_price: None,
    };
    let mut offers = vec![offer(LOCAL.to_string(), None)];
    let mut models: BTreeMap<&str, (u32, Option<u64>)> = BTreeMap::new();
    for gpu in gpus {
        let entry = models.entry(gpu.name.as_str()).or_insert((0, gpu.memory_mib));
        entry.0 += 1;
    }
    for (name, (count, memory)) in models {
        for k in 1..=count {
            offers.push(offer(format!("local-{name}x{k}"), Some((name, k, memory))));
        }
    }
    offers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `nvidia-smi` output captured on an H200 machine (copied from the shared fixtures).
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fixtures/nvidia-smi-h200");

    fn fixture(name: &str) -> Option<String> {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).ok()
    }

    #[test]
    fn parses_real_h200_output() {
        let inline = "0, NVIDIA H200, 143771\n";
        let noheader = fixture("nvidia-smi-query-noheader.csv").expect("fixture present");
        let expected = vec![Gpu {
            name: "H200".into(),
            memory_mib: Some(143771),
        }];
        assert_eq!(parse_nvidia_smi(&noheader), expected);
        assert_eq!(parse_nvidia_smi(inline), expected);
        let with_header = fixture("nvidia-smi-query.csv").expect("fixture present");
        assert_eq!(parse_nvidia_smi(&with_header), expected);
    }

    #[test]
    fn parses_several_gpus_and_memory_variants() {
        let text = "0, NVIDIA A100-SXM4-80GB, 81920\n1, NVIDIA A100-SXM4-80GB, 81920\n2, Tesla T4, 15360\n";
        let gpus = parse_nvidia_smi(text);
        let names: Vec<&str> = gpus.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["A100-80GB", "A100-80GB", "T4"]);
        assert!(parse_nvidia_smi("").is_empty());
        assert!(parse_nvidia_smi("garbage,,\n").is_empty());
    }

    #[test]
    fn offers_cover_each_gpu_count_at_price_zero() {
        let gpus = parse_nvidia_smi("0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\n");
        let offers = machine_offers(16.0, Some(128.0), &gpus);
        let shapes: Vec<(String, f64)> = offers
            .iter()
            .map(|o| (o.instance_type.clone(), o.accelerator_count))
            .collect();
        assert_eq!(
            shapes,
            [
                ("local".to_string(), 0.0),
                ("local-H200x1".to_string(), 1.0),
                ("local-H200x2".to_string(), 2.0)
            ]
        );
        assert!(
            offers
                .iter()
                .all(|o| o.price == Some(Decimal::ZERO) && o.cloud == LOCAL)
        );
    }

    #[test]
    fn meminfo_total_in_gib() {
        let text = "MemTotal:       24573768 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_meminfo(text), Some(23.43));
        assert_eq!(parse_meminfo("nothing"), None);
    }
}
