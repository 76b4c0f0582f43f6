//! Where a task may run and the small values of `resources`: `infra` strings (`aws/us-east-1`,
//! `k8s/CONTEXT`), cloud names, accelerator requests (`L4:1`) and amounts (`4+`).

use serde::Serialize;
use skyplan_catalog::{Amount, parse_accelerator_request};

use super::yaml::closest;

/// Cloud names `infra` and `cloud` accept, canonical spelling (`k8s` is an alias of
/// `kubernetes`).
pub const KNOWN_CLOUDS: &[&str] = &[
    "aws",
    "gcp",
    "azure",
    "lambda",
    "runpod",
    "nebius",
    "kubernetes",
    "local",
];

/// The longest accelerator name accepted (the longest known one has 20 characters).
const MAX_ACCELERATOR_NAME_CHARS: usize = 64;

pub(super) const ACCELERATOR_EXPECTED: &str = "NAME:COUNT with a positive number, e.g. L4:1";
pub(super) const AMOUNT_EXPECTED: &str = "a positive number, optionally followed by + (e.g. 4 or 4+)";
pub(super) const PORTS_EXPECTED: &str = "a port 1-65535, a range like 8000-8010, or a list of them";
pub(super) const INFRA_EXPECTED: &str = "CLOUD, CLOUD/REGION or CLOUD/REGION/ZONE (e.g. aws/us-east-1, gcp/*/us-central1-a, \
     k8s/my-context) where CLOUD is one of aws, gcp, azure, lambda, runpod, nebius, kubernetes (k8s), local or *";
pub(super) const CLOUD_EXPECTED: &str =
    "one of aws, gcp, azure, lambda, runpod, nebius, kubernetes (k8s), local";

/// A parsed `infra` value; `None` parts mean any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Infra {
    /// Canonical lowercase cloud (`kubernetes` for `k8s`).
    pub cloud: Option<String>,
    /// Region, or the kubeconfig context for Kubernetes.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
}

/// Why an `infra` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraError {
    /// The accepted forms.
    pub expected: String,
    /// For a misspelled cloud, the infra string with the cloud corrected.
    pub hint: Option<String>,
}

/// Parses `aws`, `aws/us-east-1`, `gcp/*/us-central1-a`, `k8s/my/context` or `*`; `*` or an
/// absent part means any. For Kubernetes everything after `k8s/` is the context.
///
/// ```
/// use skyplan_spec::parse_infra;
/// let infra = parse_infra("k8s/my-ctx").unwrap();
/// assert_eq!((infra.cloud.as_deref(), infra.region.as_deref()), (Some("kubernetes"), Some("my-ctx")));
/// assert_eq!(parse_infra("awz").unwrap_err().hint.as_deref(), Some("aws"));
/// ```
pub fn parse_infra(text: &str) -> Result<Infra, InfraError> {
    let trimmed = text.trim();
    let bad = || InfraError {
        expected: INFRA_EXPECTED.to_string(),
        hint: None,
    };
    if trimmed.is_empty() {
        return Err(bad());
    }
    let (head, rest) = match trimmed.split_once('/') {
        Some((head, rest)) => (head, Some(rest)),
        None => (trimmed, None),
    };
    let cloud = if head == "*" {
        None
    } else {
        match canonical_cloud(head) {
            Some(cloud) => Some(cloud),
            None => {
                let hint = closest(head, KNOWN_CLOUDS.iter().copied().chain(["k8s"]))
                    .map(|c| rest.map(|r| format!("{c}/{r}")).unwrap_or_else(|| c.to_string()));
                return Err(InfraError {
                    expected: INFRA_EXPECTED.to_string(),
                    hint,
                });
            }
        }
    };
    let any = |part: &str| (part != "*").then(|| part.to_string());
    let Some(rest) = rest else {
        return Ok(Infra {
            cloud,
            region: None,
            zone: None,
        });
    };
    if cloud.as_deref() == Some("kubernetes") {
        let context = rest.trim();
        if context.is_empty() {
            return Err(bad());
        }
        return Ok(Infra {
            cloud,
            region: any(context),
            zone: None,
        });
    }
    let parts: Vec<&str> = rest.split('/').map(str::trim).collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let region = parts.first().and_then(|p| any(p));
    let zone = parts.get(1).and_then(|p| any(p));
    Ok(Infra { cloud, region, zone })
}

/// The canonical name of a cloud (`K8s` → `kubernetes`), or `None` when unknown.
pub fn canonical_cloud(name: &str) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    if lower == "k8s" {
        return Some("kubernetes".to_string());
    }
    KNOWN_CLOUDS.contains(&lower.as_str()).then_some(lower)
}

/// A cloud name as skyplan compares it: [`canonical_cloud`] for known clouds, the lower-case
/// spelling for any other (a catalog file may name a cloud skyplan has no entry for).
///
/// ```
/// use skyplan_spec::normalize_cloud;
/// assert_eq!(normalize_cloud("K8s"), "kubernetes");
/// assert_eq!(normalize_cloud("MyCloud"), "mycloud");
/// ```
pub fn normalize_cloud(cloud: &str) -> String {
    canonical_cloud(cloud).unwrap_or_else(|| cloud.trim().to_ascii_lowercase())
}

/// Parses `NAME[:COUNT]` (count 1 when absent), as `accelerators: L4:1` and `--gpus` take it.
/// Names are not checked against known accelerators here (the catalog does that, with hints),
/// but must not hold YAML punctuation: `"{L4, A10G}"` in quotes is a mistake, not a name.
pub fn parse_accelerator(text: &str) -> Result<(String, f64), String> {
    let (name, count) = parse_accelerator_request(text).map_err(|_| ACCELERATOR_EXPECTED.to_string())?;
    if name.contains(['{', '}', '[', ']', ',', ':', '"', '\'']) {
        return Err(ACCELERATOR_EXPECTED.to_string());
    }
    if name.chars().count() > MAX_ACCELERATOR_NAME_CHARS {
        return Err(format!(
            "NAME:COUNT with a NAME of at most {MAX_ACCELERATOR_NAME_CHARS} characters, e.g. L4:1"
        ));
    }
    Ok((name, count.unwrap_or(1.0)))
}

/// Parses an `Amount` (`4`, `4+`) that must be positive.
pub fn parse_positive_amount(text: &str) -> Result<Amount, String> {
    match text.parse::<Amount>() {
        Ok(amount) if amount.value > 0.0 => Ok(amount),
        _ => Err(AMOUNT_EXPECTED.to_string()),
    }
}
