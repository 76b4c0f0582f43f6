//! The `kubernetes:` section of `SKYPLAN_HOME/config.yaml` (which contexts, namespace, internal
//! prices, provision and request timeouts) and finding the kubeconfig the way kubectl does
//! (`KUBECONFIG`, then `~/.kube/config`). Other top-level sections of the file belong to other
//! backends and are ignored here.
//!
//! Every value is checked while it is read, so an error carries `file:line:column`, the field
//! (`kubernetes.provision_timeout`) and what was expected: durations go through the one bounded
//! parser ([`skyplan_spec::duration`]), the namespace must be an RFC 1123 label.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::{MessageFormatter, UserMessageFormatter};
use skyplan_catalog::{MoneyError, money};

use crate::ProviderError;

/// Default time a pod may stay unbound before the context is given up.
pub const DEFAULT_PROVISION_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on one Kubernetes API call (connect, credential plugin, answer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Default namespace.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Internal prices of cluster capacity, per hour; all default to 0 (own clusters are free).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with gpu_hour, vcpu_hour and memory_gib_hour"
)]
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
///   namespace: default                # an RFC 1123 label
///   provision_timeout: 10             # seconds (or "10s", "2m") a pod may stay unbound
///   request_timeout: 20               # bound on each API call and credential plugin run
///   pricing:                          # $/hour, all default 0
///     gpu_hour: {L4: 0.25, H100: 2.0}
///     vcpu_hour: 0.01
///     memory_gib_hour: 0.001
/// ```
///
/// Durations are seconds or a number with a unit (`250ms`, `30s`, `5m`, `2h`), more than 0
/// and at most 30 days.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with contexts, namespace, pricing, provision_timeout, request_timeout or kubeconfig"
)]
pub struct KubernetesConfig {
    /// Kubeconfig contexts to use, in order; empty: the current context.
    #[serde(default)]
    pub contexts: Vec<String>,
    /// Namespace for everything skyplan creates; default `default`. Checked to be an RFC 1123
    /// label ([`check_namespace`]).
    #[serde(default, deserialize_with = "namespace_opt")]
    pub namespace: Option<String>,
    /// Internal prices.
    #[serde(default)]
    pub pricing: Pricing,
    /// How long a pod may stay unbound before the context is given up (default 10 s).
    #[serde(default, deserialize_with = "provision_timeout_opt")]
    pub provision_timeout: Option<Duration>,
    /// Bound on each Kubernetes API call: connecting, running the kubeconfig's credential
    /// plugin, and the API server's answer (default 20 s).
    #[serde(default, deserialize_with = "request_timeout_opt")]
    pub request_timeout: Option<Duration>,
    /// Kubeconfig file to read instead of `KUBECONFIG` / `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
}

/// The whole `config.yaml`: only the `kubernetes:` section is read here.
#[derive(Deserialize)]
#[serde(expecting = "a mapping of sections such as `kubernetes:`")]
struct ConfigFile {
    #[serde(default)]
    kubernetes: Option<KubernetesConfig>,
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

    /// The bound on one API call (default 20 s).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    /// Parses the `kubernetes:` section of a whole `config.yaml` text; `None` when the file has
    /// no such section. `file` names the file in errors, which read
    /// `FILE:LINE:COLUMN: kubernetes.FIELD: what was expected`.
    pub fn from_config_yaml(text: &str, file: &str) -> Result<Option<Self>, ProviderError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let options = serde_saphyr::options! {
            // `.nan` and `.inf` reach the field's own check, which names the field and the range.
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        };
        let parsed: ConfigFile = serde_saphyr::from_str_with_options(text, options).map_err(|err| {
            ProviderError::InvalidRequest {
                message: yaml_error_message(&err, file),
            }
        })?;
        Ok(parsed.kubernetes)
    }

    /// Reads `home/config.yaml`; `Ok(None)` when the file or its `kubernetes:` section is absent.
    pub fn load(home: &Path) -> Result<Option<Self>, ProviderError> {
        let path = home.join("config.yaml");
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Self::from_config_yaml(&text, &path.display().to_string()),
                Err(_) => Err(ProviderError::InvalidRequest {
                    message: format!("{}: the file is not UTF-8 text", path.display()),
                }),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ProviderError::io(format!("reading {}", path.display()), err)),
        }
    }
}

/// `FILE:LINE:COLUMN: message` for a YAML error, in serde-saphyr's user wording without its
/// source snippet (control characters flattened, so one error is one line).
pub(crate) fn yaml_error_message(error: &serde_saphyr::Error, file: &str) -> String {
    let inner = error.without_snippet();
    let location = inner.location().or_else(|| error.location());
    let message: String = UserMessageFormatter
        .format_message(inner)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match location.filter(|l| l.line() > 0) {
        Some(l) if l.column() > 0 => format!("{file}:{}:{}: {message}", l.line(), l.column()),
        Some(l) => format!("{file}:{}: {message}", l.line()),
        None => format!("{file}: {message}"),
    }
}

/// Checks a Kubernetes namespace name: an RFC 1123 label (at most 63 characters, lower-case
/// letters, digits and `-`, starting and ending with a letter or digit).
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use skyplan_providers::kubernetes::config::check_namespace;
/// assert!(check_namespace("team-a").is_ok());
/// assert!(check_namespace("../x").unwrap_err().contains("RFC 1123"));
/// # }
/// ```
pub fn check_namespace(name: &str) -> Result<(), String> {
    const RULE: &str = "a namespace must be an RFC 1123 label: 1 to 63 lower-case letters, digits or \
                        '-', starting and ending with a letter or digit";
    let shown: String = name.chars().take(70).collect();
    let shown = if shown.len() < name.len() {
        format!("{:?}... ({} characters)", shown, name.chars().count())
    } else {
        format!("{name:?}")
    };
    if name.is_empty() {
        return Err(format!("namespace is empty; {RULE}"));
    }
    if name.len() > 63 {
        return Err(format!("namespace {shown} is longer than 63 characters; {RULE}"));
    }
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ends_ok = name.bytes().next().is_some_and(alnum) && name.bytes().last().is_some_and(alnum);
    if !valid_chars || !ends_ok {
        return Err(format!("namespace {shown} is not valid; {RULE}"));
    }
    Ok(())
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
        .map_err(|_| format!("{text:?} is not a price (expected a number of $/hour, e.g. 0.25)"))
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

/// A scalar number or string, kept as text: prices are parsed exactly (no float rounding) and
/// durations by the shared parser. Floats print in the shortest form that reads back
/// (`1e20`, not twenty-one digits).
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = ScalarText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ScalarText, E> {
                let text = if v != 0.0 && !(1e-4..1e15).contains(&v.abs()) {
                    format!("{v:e}")
                } else {
                    v.to_string()
                };
                Ok(ScalarText(text))
            }
            fn visit_str<E>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    decimal_from_text(&ScalarText::deserialize(d)?.0).map_err(de::Error::custom)
}

fn decimal_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Decimal>, D::Error> {
    let raw = BTreeMap::<String, ScalarText>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let price = decimal_from_text(&value.0).map_err(|e| de::Error::custom(format!("{name}: {e}")))?;
        let key = skyplan_catalog::canonical_accelerator_with_memory(&name, None).unwrap_or(name);
        out.insert(key, price);
    }
    Ok(out)
}

/// A duration field: the shared bounded parser, positive, the field named in the error.
fn duration_field<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Option<Duration>, D::Error> {
    let Some(raw) = Option::<ScalarText>::deserialize(d)? else {
        return Ok(None);
    };
    skyplan_spec::duration::parse_positive_duration(&raw.0)
        .map(Some)
        .map_err(|err| de::Error::custom(format!("kubernetes.{field}: {err}")))
}

fn provision_timeout_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_field(d, "provision_timeout")
}

fn request_timeout_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_field(d, "request_timeout")
}

fn namespace_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(name) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    check_namespace(&name).map_err(|err| de::Error::custom(format!("kubernetes.namespace: {err}")))?;
    Ok(Some(name))
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
    fn durations_go_through_the_bounded_parser_and_name_the_line() {
        for value in [
            "1e20",
            "18446744073709551616",
            "'1e18m'",
            "1e300",
            "-3",
            "0",
            ".nan",
            "soon",
        ] {
            let yaml = format!("kubernetes:\n  contexts: [a]\n  provision_timeout: {value}\n");
            let err = KubernetesConfig::from_config_yaml(&yaml, "/h/config.yaml")
                .expect_err(value)
                .to_string();
            assert!(err.contains("/h/config.yaml:3:"), "{value}: {err}");
            assert!(err.contains("kubernetes.provision_timeout"), "{value}: {err}");
            assert!(err.contains("30 days"), "{value}: {err}");
        }
        let config = KubernetesConfig::from_config_yaml("kubernetes:\n  request_timeout: 1.5s\n", "c.yaml")
            .expect("valid")
            .expect("section");
        assert_eq!(config.request_timeout(), Duration::from_millis(1500));
        assert_eq!(config.provision_timeout(), DEFAULT_PROVISION_TIMEOUT);
    }

    #[test]
    fn namespaces_are_rfc_1123_labels() {
        let long = "a".repeat(300);
        for bad in ["''", "UPPER_case", long.as_str(), "../x", "-a", "a-", "\"a b\""] {
            let yaml = format!("kubernetes:\n  namespace: {bad}\n");
            let err = KubernetesConfig::from_config_yaml(&yaml, "c.yaml")
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("RFC 1123") && err.contains("c.yaml:2:"),
                "{bad}: {err}"
            );
            assert!(err.len() < 400, "{err}");
        }
        for good in ["default", "team-a", "a", "0abc9"] {
            assert!(check_namespace(good).is_ok(), "{good}");
        }
        assert!(check_namespace(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn errors_do_not_leak_internal_names() {
        for yaml in [
            "- a\n",
            "kubernetes: 5\n",
            "kubernetes:\n  pricing: [1]\n",
            "kubernetes:\n  pricing: {vcpu_hour: [1]}\n",
            "kubernetes:\n  provision_timeout: [1]\n",
        ] {
            let err = KubernetesConfig::from_config_yaml(yaml, "c.yaml")
                .expect_err(yaml)
                .to_string();
            for internal in [
                "untagged",
                "ConfigFile",
                "KubernetesConfig",
                "ScalarText",
                "Pricing",
            ] {
                assert!(!err.contains(internal), "{yaml}: {err}");
            }
            assert!(err.contains("c.yaml"), "{err}");
        }
    }
}
