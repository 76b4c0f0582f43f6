//! The `kubernetes:` section of `SKYPLAN_HOME/config.yaml` (which contexts, namespace, internal
//! prices, provision timeout) and finding the kubeconfig the way kubectl does (`KUBECONFIG`, then
//! `~/.kube/config`). Other top-level sections of the file belong to other backends and are
//! ignored here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use skyplan_catalog::{MoneyError, money};

use crate::ProviderError;

/// Default time a pod may stay unbound before the context is given up.
pub const DEFAULT_PROVISION_TIMEOUT: Duration = Duration::from_secs(10);

/// Default namespace.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Internal prices of cluster capacity, per hour; all default to 0 (own clusters are free).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// $/hour of one GPU, by canonical accelerator name (`L4`, `H100`, ...) or the raw label
    /// value; unlisted models cost 0.
    #[serde(default, deserialize_with = "decimal_map")]
    pub gpu_hour: BTreeMap<String, Decimal>,
    /// $/hour of one vCPU.
    #[serde(default, deserialize_with = "decimal")]
    pub vcpu_hour: Decimal,
    /// $/hour of one GiB of memory.
    #[serde(default, deserialize_with = "decimal")]
    pub memory_gib_hour: Decimal,
}

impl Pricing {
    /// The hourly price of a slice: `count` GPUs of `accelerator`, `vcpus` and `memory_gib`.
    ///
    /// ```
    /// # #[cfg(feature = "kubernetes")] {
    /// use rust_decimal::Decimal;
    /// let mut pricing = skyplan_providers::kubernetes::Pricing::default();
    /// pricing.gpu_hour.insert("L4".into(), Decimal::new(25, 2));
    /// pricing.vcpu_hour = Decimal::new(1, 2);
    /// assert_eq!(pricing.price(Some("L4"), 2.0, 4.0, 16.0).unwrap(), Decimal::new(54, 2));
    /// # }
    /// ```
    ///
    /// Quantities count to 3 decimals. Errors (through the catalog's checked money operations)
    /// when a quantity is not a finite non-negative number or the price cannot be represented.
    pub fn price(
        &self,
        accelerator: Option<&str>,
        count: f64,
        vcpus: f64,
        memory_gib: f64,
    ) -> Result<Decimal, MoneyError> {
        let per_gpu = accelerator
            .and_then(|a| self.gpu_hour.get(a))
            .copied()
            .unwrap_or_default();
        let part = |rate: Decimal, amount: f64, unit: &str| {
            money::mul(rate, money::quantity(amount, unit)?.round_dp(3), unit)
        };
        money::sum([
            part(per_gpu, count, "GPU")?,
            part(self.vcpu_hour, vcpus, "vCPU")?,
            part(self.memory_gib_hour, memory_gib, "GiB")?,
        ])
        .map(|price| price.normalize())
    }
}

/// The `kubernetes:` section of `config.yaml`.
///
/// ```yaml
/// kubernetes:
///   contexts: [gke-l4, onprem-h100]   # default: the kubeconfig's current context
///   namespace: default
///   provision_timeout: 10             # seconds (or "10s", "2m") a pod may stay unbound
///   pricing:                          # $/hour, all default 0
///     gpu_hour: {L4: 0.25, H100: 2.0}
///     vcpu_hour: 0.01
///     memory_gib_hour: 0.001
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Kubeconfig contexts to use, in order; empty: the current context.
    #[serde(default)]
    pub contexts: Vec<String>,
    /// Namespace for everything skyplan creates; default `default`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Internal prices.
    #[serde(default)]
    pub pricing: Pricing,
    /// How long a pod may stay unbound before the context is given up (default 10 s).
    #[serde(default, deserialize_with = "duration_opt")]
    pub provision_timeout: Option<Duration>,
    /// Kubeconfig file to read instead of `KUBECONFIG` / `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
}

impl KubernetesConfig {
    /// The namespace (default `default`).
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The provision timeout (default 10 s).
    pub fn provision_timeout(&self) -> Duration {
        self.provision_timeout.unwrap_or(DEFAULT_PROVISION_TIMEOUT)
    }

    /// Parses the `kubernetes:` section of a whole `config.yaml` text; `None` when the file has
    /// no such section. `file` names the file in errors.
    pub fn from_config_yaml(text: &str, file: &str) -> Result<Option<Self>, ProviderError> {
        #[derive(Deserialize)]
        struct ConfigFile {
            #[serde(default)]
            kubernetes: Option<KubernetesConfig>,
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        let parsed: ConfigFile =
            serde_saphyr::from_str(text).map_err(|err| ProviderError::InvalidRequest {
                message: format!("{file}: {err}"),
            })?;
        Ok(parsed.kubernetes)
    }

    /// Reads `home/config.yaml`; `Ok(None)` when the file or its `kubernetes:` section is absent.
    pub fn load(home: &Path) -> Result<Option<Self>, ProviderError> {
        let path = home.join("config.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_config_yaml(&text, &path.display().to_string()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ProviderError::io(format!("reading {}", path.display()), err)),
        }
    }
}

/// Where kubectl would read its kubeconfig: every path in `KUBECONFIG` (`:`-separated) that is
/// set, else `~/.kube/config`. Paths are returned whether or not they exist.
pub fn kubeconfig_paths() -> Vec<PathBuf> {
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    std::env::var_os("HOME")
        .map(|home| vec![PathBuf::from(home).join(".kube").join("config")])
        .unwrap_or_default()
}

fn decimal_from_text(text: &str) -> Result<Decimal, String> {
    text.trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| format!("{text:?} is not a price"))
        .and_then(|d| {
            if d.is_sign_negative() {
                Err(format!("price {text} is negative"))
            } else if d > money::MAX_HOURLY_PRICE {
                Err(format!(
                    "price {} $/h is above the largest accepted, {} $/h",
                    money::show(d),
                    money::MAX_HOURLY_PRICE
                ))
            } else {
                Ok(d)
            }
        })
}

/// A number or numeric string, parsed exactly (no float rounding).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

impl NumberOrText {
    fn text(self) -> String {
        match self {
            NumberOrText::Int(n) => n.to_string(),
            NumberOrText::Float(f) => f.to_string(),
            NumberOrText::Text(t) => t,
        }
    }
}

fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    decimal_from_text(&NumberOrText::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

fn decimal_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Decimal>, D::Error> {
    let raw = BTreeMap::<String, NumberOrText>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let price =
            decimal_from_text(&value.text()).map_err(|e| serde::de::Error::custom(format!("{name}: {e}")))?;
        let key = skyplan_catalog::canonical_accelerator_with_memory(&name, None).unwrap_or(name);
        out.insert(key, price);
    }
    Ok(out)
}

/// Seconds as a number, or a string with an `s`/`m` suffix.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (seconds, or e.g. \"10s\", \"2m\")"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let raw = Option::<NumberOrText>::deserialize(d)?;
    raw.map(|r| parse_duration(&r.text()).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let yaml = "aws: {regions: [us-east-1]}\nkubernetes:\n  contexts: [gke-l4, onprem-h100]\n  namespace: jobs\n  provision_timeout: 2m\n  pricing:\n    gpu_hour: {L4: 0.25, nvidia-h100-80gb: \"2.10\"}\n    vcpu_hour: 0.01\n";
        let config = KubernetesConfig::from_config_yaml(yaml, "config.yaml")
            .expect("valid")
            .expect("section");
        assert_eq!(config.contexts, ["gke-l4", "onprem-h100"]);
        assert_eq!(config.namespace(), "jobs");
        assert_eq!(config.provision_timeout(), Duration::from_secs(120));
        assert_eq!(config.pricing.gpu_hour["L4"].to_string(), "0.25");
        assert_eq!(config.pricing.gpu_hour["H100"].to_string(), "2.10");
        assert_eq!(config.pricing.vcpu_hour.to_string(), "0.01");
        assert!(config.pricing.memory_gib_hour.is_zero());
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(
            KubernetesConfig::from_config_yaml("", "c.yaml").expect("empty"),
            None
        );
        let config = KubernetesConfig::from_config_yaml("kubernetes: {}\n", "c.yaml")
            .expect("valid")
            .expect("section");
        assert_eq!(config.provision_timeout(), DEFAULT_PROVISION_TIMEOUT);
        assert_eq!(config.namespace(), "default");
        let err =
            KubernetesConfig::from_config_yaml("kubernetes:\n  contxts: [a]\n", "c.yaml").expect_err("typo");
        let text = err.to_string();
        assert!(text.contains("c.yaml") && text.contains("contxts"), "{text}");
        let err = KubernetesConfig::from_config_yaml("kubernetes:\n  pricing: {vcpu_hour: -1}\n", "c.yaml")
            .expect_err("negative");
        assert!(err.to_string().contains("negative"), "{err}");
        for key in [
            "vcpu_hour: 1e28",
            "memory_gib_hour: \"1000000.5\"",
            "gpu_hour: {H100: 1e28}",
        ] {
            let yaml = format!("kubernetes:\n  pricing: {{{key}}}\n");
            let err = KubernetesConfig::from_config_yaml(&yaml, "c.yaml").expect_err("too dear");
            let text = err.to_string();
            assert!(
                text.contains("c.yaml") && text.contains("above the largest accepted, 1000000 $/h"),
                "{text}"
            );
        }
        let at_bound =
            KubernetesConfig::from_config_yaml("kubernetes:\n  pricing: {vcpu_hour: 1000000}\n", "c.yaml");
        assert!(matches!(at_bound, Ok(Some(_))), "{at_bound:?}");
    }

    #[test]
    fn slice_prices_are_checked() {
        let mut pricing = Pricing::default();
        pricing.gpu_hour.insert("H100".into(), money::MAX_HOURLY_PRICE);
        pricing.vcpu_hour = money::MAX_HOURLY_PRICE;
        assert_eq!(
            pricing.price(Some("H100"), 8.0, 2.0, 1e6).expect("in range"),
            Decimal::from(10_000_000)
        );
        let err = pricing.price(Some("H100"), 8.0, 1e25, 0.0).expect_err("overflow");
        assert_eq!(err.expression, "1000000 $/vCPU × 1e25 vCPU");
        let err = pricing.price(None, 0.0, f64::NAN, 0.0).expect_err("not a number");
        assert!(err.to_string().contains("cannot be priced"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
