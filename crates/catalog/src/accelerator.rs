//! Accelerator names: one canonical spelling per model (`L4`, `A100-80GB`, `H100`, ...), and the
//! aliases clouds and Kubernetes node labels use for them.
//!
//! Matching is exact on canonical names: an `A100` (40 GB) never satisfies an `A100-80GB` request.
//! Label spellings that carry a memory size (`NVIDIA-A100-SXM4-80GB`) are mapped to the
//! memory-specific canonical name, so a smaller-memory GPU is never taken for a larger one.

/// Canonical names that are known even when no loaded catalog offers them (from SkyPilot's
/// `accelerators.csv`, plus newer models seen on Kubernetes nodes).
pub const KNOWN_ACCELERATORS: &[&str] = &[
    "A10",
    "A100",
    "A100-80GB",
    "A100-80GB-SXM",
    "A10G",
    "A40",
    "A4000",
    "A6000",
    "B200",
    "GB200",
    "GH200",
    "Gaudi HL-205",
    "H100",
    "H100-MEGA",
    "H100-NVL",
    "H100-NVLINK",
    "H100-SXM",
    "H200",
    "K80",
    "L4",
    "L40",
    "L40S",
    "M4000",
    "M60",
    "MI300X",
    "P100",
    "P4",
    "P4000",
    "RTX3060",
    "RTX3080",
    "RTX3090",
    "RTX4000-Ada",
    "RTX4090",
    "RTX5070",
    "RTX5090",
    "RTX6000",
    "RTX6000-Ada",
    "RTXA4000",
    "RTXA4500",
    "RTXA5000",
    "RTXA6000",
    "Radeon MI25",
    "Radeon Pro V520",
    "T4",
    "T4g",
    "V100",
    "V100-32GB",
];

/// Label values that are not a plain case-insensitive spelling of a canonical name.
/// GKE (`cloud.google.com/gke-accelerator`) and a few others.
const ALIASES: &[(&str, &str)] = &[
    ("nvidia-tesla-k80", "K80"),
    ("nvidia-tesla-p4", "P4"),
    ("nvidia-tesla-p100", "P100"),
    ("nvidia-tesla-v100", "V100"),
    ("nvidia-tesla-t4", "T4"),
    ("nvidia-tesla-a100", "A100"),
    ("nvidia-a100-80gb", "A100-80GB"),
    ("nvidia-l4", "L4"),
    ("nvidia-h100-80gb", "H100"),
    ("nvidia-h100-mega-80gb", "H100-MEGA"),
    ("nvidia-h200-141gb", "H200"),
    ("nvidia-b200", "B200"),
    ("nvidia-gb200", "GB200"),
    ("nvidia-l40s", "L40S"),
    ("nvidia-a10g", "A10G"),
];

/// Model tokens recognised inside long product strings such as GPU Feature Discovery's
/// `nvidia.com/gpu.product` (`NVIDIA-H100-80GB-HBM3`) or `nvidia-smi` names
/// (`NVIDIA H100 80GB HBM3`). Order matters: longer tokens first.
const PRODUCT_TOKENS: &[(&str, &str)] = &[
    ("GH200", "GH200"),
    ("GB200", "GB200"),
    ("H200", "H200"),
    ("H100", "H100"),
    ("B200", "B200"),
    ("A100", "A100"),
    ("A10G", "A10G"),
    ("A10", "A10"),
    ("A40", "A40"),
    ("L40S", "L40S"),
    ("L40", "L40"),
    ("L4", "L4"),
    ("T4G", "T4g"),
    ("T4", "T4"),
    ("V100", "V100"),
    ("P100", "P100"),
    ("P4", "P4"),
    ("K80", "K80"),
    ("M60", "M60"),
    ("4090", "RTX4090"),
    ("3090", "RTX3090"),
];

/// Returns the canonical spelling of an accelerator name or alias, or `None` if it is unknown.
///
/// `extra` lists further canonical names (e.g. those found in a loaded catalog).
///
/// ```
/// use skyplan_catalog::canonical_accelerator;
/// assert_eq!(canonical_accelerator("nvidia-l4", &[]).as_deref(), Some("L4"));
/// assert_eq!(canonical_accelerator("a100-80gb", &[]).as_deref(), Some("A100-80GB"));
/// assert_eq!(canonical_accelerator("NVIDIA-A100-SXM4-40GB", &[]).as_deref(), Some("A100"));
/// assert_eq!(canonical_accelerator("NVIDIA-H100-80GB-HBM3", &[]).as_deref(), Some("H100"));
/// assert_eq!(canonical_accelerator("no-such-gpu", &[]), None);
/// ```
pub fn canonical_accelerator(name: &str, extra: &[&str]) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if let Some(found) = KNOWN_ACCELERATORS
        .iter()
        .chain(extra.iter())
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        return Some((*found).to_string());
    }
    if let Some((_, canonical)) = ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)) {
        return Some((*canonical).to_string());
    }
    if name.to_ascii_lowercase().starts_with("tpu-") {
        return Some(name.to_ascii_lowercase());
    }
    from_product_string(name)
}

/// Canonical name from a product string, taking a memory size in it (or given separately in MiB,
/// as Karpenter's `karpenter.k8s.aws/instance-gpu-memory` label does) into account.
///
/// ```
/// use skyplan_catalog::canonical_accelerator_with_memory;
/// assert_eq!(canonical_accelerator_with_memory("a100", Some(81920)).as_deref(), Some("A100-80GB"));
/// assert_eq!(canonical_accelerator_with_memory("a100", Some(40960)).as_deref(), Some("A100"));
/// ```
pub fn canonical_accelerator_with_memory(name: &str, memory_mib: Option<u64>) -> Option<String> {
    let base = canonical_accelerator(name, &[])?;
    Some(match (base.as_str(), memory_mib) {
        ("A100", Some(mib)) if mib >= 80 * 1000 => "A100-80GB".to_string(),
        ("V100", Some(mib)) if mib >= 32 * 1000 => "V100-32GB".to_string(),
        _ => base,
    })
}

fn from_product_string(name: &str) -> Option<String> {
    let normalized = name.to_ascii_uppercase().replace([' ', '_'], "-");
    let tokens: Vec<&str> = normalized.split('-').filter(|t| !t.is_empty()).collect();
    let base = tokens.iter().find_map(|token| {
        PRODUCT_TOKENS.iter().find_map(|(model, canonical)| {
            let rest = token.strip_prefix("RTX").unwrap_or(token);
            (rest == *model).then_some(*canonical)
        })
    })?;
    let memory_gb = tokens
        .iter()
        .filter_map(|t| t.strip_suffix("GB").and_then(|n| n.parse::<u32>().ok()))
        .max();
    let has = |word: &str| tokens.contains(&word);
    let canonical = match base {
        "A100" if memory_gb.is_some_and(|gb| gb >= 80) => "A100-80GB",
        "V100" if memory_gb.is_some_and(|gb| gb >= 32) => "V100-32GB",
        "H100" if has("MEGA") => "H100-MEGA",
        "H100" if has("NVL") => "H100-NVL",
        other => other,
    };
    Some(canonical.to_string())
}

/// The known name closest to `name`, for "did you mean" hints.
pub fn closest_accelerator<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // No accelerator name is this long: no hint, and no time spent comparing a huge value.
    if name.len() > 64 {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(label: &str, expect: Option<&str>) {
        assert_eq!(
            canonical_accelerator(label, &[]).as_deref(),
            expect,
            "label {label:?}"
        );
    }

    #[test]
    fn gke_labels() {
        check("nvidia-l4", Some("L4"));
        check("nvidia-tesla-t4", Some("T4"));
        check("nvidia-h100-80gb", Some("H100"));
        check("nvidia-tesla-a100", Some("A100"));
        check("nvidia-a100-80gb", Some("A100-80GB"));
        check("nvidia-h100-mega-80gb", Some("H100-MEGA"));
    }

    #[test]
    fn gpu_feature_discovery_products() {
        check("NVIDIA-H100-80GB-HBM3", Some("H100"));
        check("NVIDIA-A100-SXM4-80GB", Some("A100-80GB"));
        check("NVIDIA-A100-SXM4-40GB", Some("A100"));
        check("NVIDIA-A100-PCIE-40GB", Some("A100"));
        check("NVIDIA-L4", Some("L4"));
        check("NVIDIA-A10G", Some("A10G"));
        check("Tesla-T4", Some("T4"));
        check("Tesla-V100-SXM2-32GB", Some("V100-32GB"));
        check("Tesla-V100-SXM2-16GB", Some("V100"));
        check("NVIDIA-H200", Some("H200"));
        check("NVIDIA-GeForce-RTX-4090", Some("RTX4090"));
        check("NVIDIA-H100-NVL", Some("H100-NVL"));
    }

    #[test]
    fn nvidia_smi_names() {
        check("NVIDIA H200", Some("H200"));
        check("NVIDIA H100 80GB HBM3", Some("H100"));
        check("NVIDIA A100-SXM4-80GB", Some("A100-80GB"));
    }

    #[test]
    fn karpenter_and_skypilot_labels() {
        check("a10g", Some("A10G"));
        check("l40s", Some("L40S"));
        check("h100", Some("H100"));
        assert_eq!(
            canonical_accelerator_with_memory("a100", Some(81920)).as_deref(),
            Some("A100-80GB")
        );
        assert_eq!(
            canonical_accelerator_with_memory("v100", Some(16384)).as_deref(),
            Some("V100")
        );
    }

    #[test]
    fn smaller_memory_never_becomes_larger() {
        // A 40 GB A100 label must not canonicalise to the 80 GB model, whatever the spelling.
        for label in ["nvidia-tesla-a100", "NVIDIA-A100-SXM4-40GB", "A100", "a100"] {
            assert_ne!(
                canonical_accelerator(label, &[]).as_deref(),
                Some("A100-80GB"),
                "{label}"
            );
        }
    }

    #[test]
    fn unknown_and_tpu() {
        check("", None);
        check("quantum-9000", None);
        check("TPU-V5P-8", Some("tpu-v5p-8"));
        check("L4", Some("L4"));
        check("Custom", None);
        assert_eq!(
            canonical_accelerator("Custom", &["Custom"]).as_deref(),
            Some("Custom")
        );
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(
            closest_accelerator("H10", KNOWN_ACCELERATORS.iter().copied()).as_deref(),
            Some("H100")
        );
        assert_eq!(
            closest_accelerator("zzzzzz", KNOWN_ACCELERATORS.iter().copied()),
            None
        );
    }
}
