//! The backend registry: which backends this build has, which of them are configured for a
//! `SKYPLAN_HOME`, and why each other cloud cannot be launched on. One table, one constructor
//! shape (`configure(home) -> Result<Option<provider>, ProviderError>`), so a new backend is one
//! folder plus one row here.
//!
//! Launches plan only on *enabled* backends ([`Backends::enabled`]); `skyplan check` and the
//! "cheaper but not enabled" notes read [`Backends::disabled`]. A backend whose configuration is
//! there but broken (a bad `config.yaml` value, a kubeconfig context with no usable server) is
//! never silently skipped: it is in [`Backends::unusable`] with its error, and
//! [`Backends::check_usable`] is the error that commands needing every backend (`launch`,
//! `check`) exit with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::{Provider, ProviderError, Providers, UnavailableProvider};

/// The Kubernetes backend's id (also when this build has no such backend).
pub(crate) const KUBERNETES_ID: &str = "kubernetes";

/// Every cloud skyplan knows, in the order `skyplan check` lists them.
pub const KNOWN_CLOUDS: &[&str] = skyplan_spec::KNOWN_CLOUDS;

/// What a backend's configuration step answers: its provider, or `None` when not configured.
type Configured = Result<Option<Arc<dyn Provider>>, ProviderError>;

/// One backend this build has.
struct Backend {
    /// Cloud name (the provider's id).
    id: &'static str,
    /// Finds its configuration for a home: `Ok(None)` when it is not configured.
    configure: fn(&Path) -> Configured,
    /// What "not configured" means for it, for `skyplan check`.
    not_configured: &'static str,
}

/// The backends compiled into this build, in check order.
fn compiled_backends() -> Vec<Backend> {
    #[allow(unused_mut)]
    let mut backends: Vec<Backend> = Vec::new();
    #[cfg(feature = "local")]
    backends.push(Backend {
        id: crate::LOCAL,
        configure: |home| {
            Ok(Some(
                Arc::new(crate::LocalProvider::new(home)) as Arc<dyn Provider>
            ))
        },
        not_configured: "always configured",
    });
    #[cfg(feature = "kubernetes")]
    backends.push(Backend {
        id: crate::KUBERNETES,
        configure: |home| {
            Ok(crate::KubernetesProvider::from_home(home)?.map(|p| Arc::new(p) as Arc<dyn Provider>))
        },
        not_configured: "not configured: no kubeconfig (KUBECONFIG, ~/.kube/config) and no `kubernetes:` \
                         section in SKYPLAN_HOME/config.yaml",
    });
    #[cfg(feature = "aws")]
    backends.push(Backend {
        id: crate::AWS,
        configure: |_home| Ok(crate::AwsProvider::from_env()?.map(|p| Arc::new(p) as Arc<dyn Provider>)),
        not_configured: "not configured: no AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, \
                         ~/.aws/credentials or ~/.aws/config)",
    });
    backends
}

/// Why a cloud without a backend in this build cannot be launched on.
fn missing_backend(cloud: &str) -> String {
    match cloud {
        "kubernetes" | "aws" => format!("this build has no {cloud} backend: build with `--features {cloud}`"),
        _ => format!("no {cloud} backend yet: `skyplan optimize` plans its offers, launches cannot use them"),
    }
}

/// Why a configuration is unusable, without the "invalid request" prefix (the message already
/// names the file and field).
fn unusable_reason(err: &ProviderError) -> String {
    match err {
        ProviderError::InvalidRequest { message } => message.clone(),
        other => other.to_string(),
    }
}

/// The backends for one `SKYPLAN_HOME`: the usable providers, and for every other cloud why it
/// is not enabled.
#[derive(Clone, Default)]
pub struct Backends {
    /// Providers by cloud. A backend whose configuration is there but unusable (a missing
    /// kubeconfig context, a broken `config.yaml`) is an [`UnavailableProvider`] here, so that
    /// `status` and `down` of clusters recorded on it say why; it is not enabled.
    pub providers: Providers,
    /// Cloud → why launches cannot use it (not configured, configuration unusable, no backend in
    /// this build).
    pub disabled: BTreeMap<String, String>,
    /// Cloud → the error of a backend whose configuration is there but unusable (also in
    /// `disabled`, and an [`UnavailableProvider`] in `providers`).
    pub unusable: BTreeMap<String, ProviderError>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("disabled", &self.disabled)
            .field("unusable", &self.unusable.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Backends {
    /// The backends this build has, configured for `home`, without any network call.
    ///
    /// ```
    /// let home = std::env::temp_dir().join(format!("skyplan-registry-doc-{}", std::process::id()));
    /// let backends = skyplan_providers::Backends::configure(&home);
    /// assert!(backends.is_enabled("local"));
    /// assert!(backends.disabled["lambda"].contains("no lambda backend"));
    /// ```
    pub fn configure(home: &Path) -> Self {
        let mut backends = Backends::default();
        for backend in compiled_backends() {
            match (backend.configure)(home) {
                Ok(Some(provider)) => {
                    backends.providers.insert(backend.id.to_string(), provider);
                }
                Ok(None) => {
                    backends
                        .disabled
                        .insert(backend.id.to_string(), backend.not_configured.to_string());
                }
                Err(reason) => {
                    backends.disabled.insert(
                        backend.id.to_string(),
                        format!("configured but unusable: {}", unusable_reason(&reason)),
                    );
                    backends.providers.insert(
                        backend.id.to_string(),
                        Arc::new(UnavailableProvider::new(backend.id, reason.clone())),
                    );
                    backends.unusable.insert(backend.id.to_string(), reason);
                }
            }
        }
        for cloud in KNOWN_CLOUDS {
            if !backends.providers.contains_key(*cloud) && !backends.disabled.contains_key(*cloud) {
                backends
                    .disabled
                    .insert(cloud.to_string(), missing_backend(cloud));
            }
        }
        backends
    }

    /// Backends made of the given providers, all enabled (for embedding and tests).
    pub fn from_providers(providers: Providers) -> Self {
        Backends {
            providers,
            disabled: BTreeMap::new(),
            unusable: BTreeMap::new(),
        }
    }

    /// `Ok` when no backend is configured but unusable; otherwise an error naming each such
    /// backend and why (the file, field and what was expected, as its configuration step said).
    ///
    /// ```
    /// use skyplan_providers::{Backends, ProviderError};
    /// let mut backends = Backends::default();
    /// assert!(backends.check_usable().is_ok());
    /// let broken = ProviderError::InvalidRequest { message: "config.yaml:3:14: kubernetes.namespace: …".into() };
    /// backends.unusable.insert("kubernetes".into(), broken);
    /// let err = backends.check_usable().unwrap_err().to_string();
    /// assert!(err.contains("the kubernetes backend is configured but unusable: config.yaml:3:14"), "{err}");
    /// ```
    pub fn check_usable(&self) -> Result<(), ProviderError> {
        if self.unusable.is_empty() {
            return Ok(());
        }
        let reasons: Vec<String> = self
            .unusable
            .iter()
            .map(|(cloud, err)| {
                format!(
                    "the {cloud} backend is configured but unusable: {}",
                    unusable_reason(err)
                )
            })
            .collect();
        Err(ProviderError::InvalidRequest {
            message: reasons.join("; "),
        })
    }

    /// Adds an enabled provider (replacing one of the same id).
    pub fn insert(&mut self, provider: Arc<dyn Provider>) {
        let id = provider.id().to_string();
        self.disabled.remove(&id);
        self.unusable.remove(&id);
        self.providers.insert(id, provider);
    }

    /// Whether launches may plan on `cloud`.
    pub fn is_enabled(&self, cloud: &str) -> bool {
        self.providers.contains_key(cloud) && !self.disabled.contains_key(cloud)
    }

    /// The enabled clouds.
    pub fn enabled(&self) -> impl Iterator<Item = &str> {
        self.providers
            .keys()
            .map(String::as_str)
            .filter(|cloud| !self.disabled.contains_key(*cloud))
    }

    /// Why `cloud` is not enabled (`None` when it is). A cloud nobody has heard of is "unknown".
    pub fn why_disabled(&self, cloud: &str) -> Option<String> {
        if self.is_enabled(cloud) {
            return None;
        }
        Some(
            self.disabled
                .get(cloud)
                .cloned()
                .unwrap_or_else(|| missing_backend(cloud)),
        )
    }
}
