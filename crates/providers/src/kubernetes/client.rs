//! Building the Kubernetes clients, with every wait bounded.
//!
//! - Kubeconfig files are read and merged as kubectl does ([`load_kubeconfigs`]), remembering
//!   which file each cluster, context and user came from, so errors name the file.
//! - Every configured context is checked up front ([`check_context`]): its cluster exists and its
//!   `server:` is an `http://` or `https://` URL with a host. A client is only ever built from a
//!   checked URL (kube panics on a server URL without a scheme, inside a worker task).
//! - A kubeconfig credential plugin (`users[].user.exec`) is run here, not by kube: kube runs it
//!   synchronously, beyond the reach of any timeout. Here it runs as a child process under
//!   `kubernetes.request_timeout` and is killed (its process group) when that passes; its token
//!   or client certificate is handed to kube as static credentials, and the client is rebuilt
//!   (the plugin run again) a minute before the credential expires.
//! - Every API call carries the same bound ([`RequestTimeoutLayer`]): connecting and writing
//!   through kube's own timeouts, the answer (until its headers arrive) through a layer, so a
//!   stopped API server is a [`ProviderError::Timeout`] that says what it waited for. Log streams
//!   may stay quiet for longer once open.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::credential::{run_exec_plugin, static_credentials};

use crate::ProviderError;

/// Which file each cluster, context and user of a merged kubeconfig came from (the first file
/// that defines a name wins, as in kubectl's merge).
#[derive(Debug, Clone, Default)]
pub(crate) struct KubeconfigSources {
    files: Vec<PathBuf>,
    clusters: BTreeMap<String, PathBuf>,
    contexts: BTreeMap<String, PathBuf>,
    users: BTreeMap<String, PathBuf>,
}

impl KubeconfigSources {
    fn record(&mut self, path: &Path, kubeconfig: &Kubeconfig) {
        self.files.push(path.to_path_buf());
        for cluster in &kubeconfig.clusters {
            self.clusters
                .entry(cluster.name.clone())
                .or_insert_with(|| path.to_path_buf());
        }
        for context in &kubeconfig.contexts {
            self.contexts
                .entry(context.name.clone())
                .or_insert_with(|| path.to_path_buf());
        }
        for user in &kubeconfig.auth_infos {
            self.users
                .entry(user.name.clone())
                .or_insert_with(|| path.to_path_buf());
        }
    }

    /// `kubeconfig FILE` for an entry, or the files read when the entry's origin is unknown.
    pub(crate) fn file(&self, found: Option<&PathBuf>) -> String {
        match found {
            Some(path) => format!("kubeconfig {}", path.display()),
            None if self.files.is_empty() => "the kubeconfig".to_string(),
            None => format!(
                "kubeconfig {}",
                self.files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Reads and merges the kubeconfig files among `paths` that exist; `Ok(None)` when none does.
/// An error names the file that could not be read or merged.
pub(crate) fn load_kubeconfigs(
    paths: &[PathBuf],
) -> Result<Option<(Kubeconfig, KubeconfigSources)>, ProviderError> {
    let mut merged: Option<Kubeconfig> = None;
    let mut sources = KubeconfigSources::default();
    for path in paths.iter().filter(|p| p.is_file()) {
        let next = read_kubeconfig(path)?;
        sources.record(path, &next);
        merged = Some(match merged {
            None => next,
            Some(current) => current.merge(next).map_err(|err| ProviderError::InvalidRequest {
                message: format!("kubeconfig {}: {err}", path.display()),
            })?,
        });
    }
    Ok(merged.map(|kubeconfig| (kubeconfig, sources)))
}

/// Reads one kubeconfig file; the error names it.
pub(crate) fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, ProviderError> {
    let bytes = std::fs::read(path)
        .map_err(|err| ProviderError::io(format!("reading kubeconfig {}", path.display()), err))?;
    let text = String::from_utf8(bytes).map_err(|_| ProviderError::InvalidRequest {
        message: format!("kubeconfig {}: the file is not UTF-8 text", path.display()),
    })?;
    Kubeconfig::from_yaml(&text).map_err(|err| ProviderError::InvalidRequest {
        message: format!("kubeconfig {}: {}", path.display(), one_line(&err.to_string())),
    })
}

pub(super) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Checks what a client for `context` needs from the kubeconfig: the context, its cluster, and
/// the cluster's `server:` URL (`http`/`https` with a host). Errors name the file, the context,
/// the cluster and the field.
pub(crate) fn check_context(
    kubeconfig: &Kubeconfig,
    sources: &KubeconfigSources,
    context: &str,
) -> Result<(), ProviderError> {
    let invalid = |message: String| ProviderError::InvalidRequest { message };
    let named = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .ok_or_else(|| invalid(format!("{}: no context {context:?}", sources.file(None))))?;
    let context_file = sources.file(sources.contexts.get(context));
    let Some(details) = &named.context else {
        return Err(invalid(format!(
            "{context_file}: context {context:?} has no `context:` (expected `context: {{cluster: NAME, user: NAME}}`)"
        )));
    };
    let cluster_name = details.cluster.as_str();
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .ok_or_else(|| {
            invalid(format!(
                "{context_file}: context {context:?} names cluster {cluster_name:?} (`context.cluster`), which is not in the kubeconfig"
            ))
        })?;
    let cluster_file = sources.file(sources.clusters.get(cluster_name));
    let server = cluster
        .cluster
        .as_ref()
        .and_then(|c| c.server.as_deref())
        .ok_or_else(|| {
            invalid(format!(
                "{cluster_file}: cluster {cluster_name:?} (context {context:?}) has no `cluster.server` (expected e.g. https://10.0.0.1:6443)"
            ))
        })?;
    check_server_url(server).map_err(|reason| {
        invalid(format!(
            "{cluster_file}: cluster {cluster_name:?} (context {context:?}): `cluster.server: {}`: {reason}",
            shorten(server)
        ))
    })?;
    if let Some(user) = details.user.as_deref().filter(|u| !u.is_empty())
        && !kubeconfig.auth_infos.iter().any(|u| u.name == user)
    {
        return Err(invalid(format!(
            "{context_file}: context {context:?} names user {user:?} (`context.user`), which is not in the kubeconfig"
        )));
    }
    Ok(())
}

pub(crate) fn shorten(text: &str) -> String {
    let short: String = text
        .chars()
        .take(80)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if short.len() < text.len() {
        format!("{short}...")
    } else {
        short
    }
}

/// Checks an API server URL: `http://` or `https://`, a host (name, IPv4, or `[IPv6]`), an
/// optional port from 1 to 65535, no user info.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use skyplan_providers::kubernetes::check_server_url;
/// assert!(check_server_url("https://10.0.0.1:6443").is_ok());
/// assert!(check_server_url("http://[::1]:8080/clusters/a").is_ok());
/// assert!(check_server_url("localhost").unwrap_err().contains("http://"));
/// assert!(check_server_url("https://:6443").is_err());
/// # }
/// ```
pub fn check_server_url(url: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected http:// or https:// and a host, e.g. https://10.0.0.1:6443";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("no scheme; {EXPECTED}"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "scheme {:?} is not http or https; {EXPECTED}",
            shorten(scheme)
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("user info in the URL is not supported; {EXPECTED}"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return Err(format!("unclosed '[' in the host; {EXPECTED}"));
        };
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("{:?} is not an IPv6 address; {EXPECTED}", shorten(inner)));
        }
        match after {
            "" => (inner, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (inner, Some(port)),
                None => return Err(format!("unexpected text after the IPv6 address; {EXPECTED}")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host; {EXPECTED}"));
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!(
            "host {:?} is not a host name or address; {EXPECTED}",
            shorten(host)
        ));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "port {:?} is not a number from 1 to 65535; {EXPECTED}",
            shorten(port)
        ));
    }
    if !rest[authority.len()..].chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("the URL has spaces or control characters; {EXPECTED}"));
    }
    Ok(())
}

/// The cached client of one context, rebuilt when its plugin-issued credential is about to
/// expire.
#[derive(Default)]
pub(crate) struct ClientCell {
    cached: tokio::sync::Mutex<Option<CachedClient>>,
}

impl std::fmt::Debug for ClientCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCell").finish_non_exhaustive()
    }
}

struct CachedClient {
    client: kube::Client,
    /// When to build it again: a minute before the credential plugin's token expires.
    rebuild_at: Option<SystemTime>,
}

/// Margin before a plugin-issued credential expires at which the client is rebuilt.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

impl ClientCell {
    /// The client for `context`, built on first use (and again when its credential is about to
    /// expire), every step within `timeout`.
    pub(crate) async fn get(
        &self,
        kubeconfig: &Kubeconfig,
        sources: &KubeconfigSources,
        context: &str,
        timeout: Duration,
    ) -> Result<kube::Client, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref()
            && current.rebuild_at.is_none_or(|at| SystemTime::now() < at)
        {
            return Ok(current.client.clone());
        }
        let built = build_client(kubeconfig, sources, context, timeout).await?;
        let client = built.client.clone();
        *cached = Some(built);
        Ok(client)
    }
}

async fn build_client(
    kubeconfig: &Kubeconfig,
    sources: &KubeconfigSources,
    context: &str,
    timeout: Duration,
) -> Result<CachedClient, ProviderError> {
    check_context(kubeconfig, sources, context)?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let context_file = sources.file(sources.contexts.get(context));
    let loaded = tokio::time::timeout(
        timeout,
        kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options),
    )
    .await
    .map_err(|_| ProviderError::Timeout {
        what: format!("the kubeconfig of context {context} ({context_file}) to load"),
        seconds: timeout.as_secs_f64(),
    })?;
    let mut config = loaded.map_err(|err| ProviderError::Auth {
        message: format!(
            "kubernetes context {context} ({context_file}): {}",
            one_line(&err.to_string())
        ),
    })?;
    // Build only from a checked URL (check_context checked the text; this is what kube parsed).
    let server = config.cluster_url.to_string();
    let scheme_ok = matches!(config.cluster_url.scheme_str(), Some("http" | "https"));
    if !scheme_ok || config.cluster_url.host().is_none_or(str::is_empty) {
        return Err(ProviderError::InvalidRequest {
            message: format!(
                "{context_file}: context {context:?}: `cluster.server: {}` is not an http(s) URL with a host",
                shorten(&server)
            ),
        });
    }
    let mut rebuild_at = None;
    if let Some(exec) = config.auth_info.exec.clone() {
        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let owner = format!(
            "user {user:?} of context {context} ({})",
            sources.file(sources.users.get(&user))
        );
        let credential = run_exec_plugin(&exec, timeout, &owner).await?;
        rebuild_at = credential
            .expires
            .map(|at| at.checked_sub(REFRESH_MARGIN).unwrap_or(SystemTime::UNIX_EPOCH));
        config.auth_info =
            static_credentials(&config.auth_info, &credential).map_err(|message| ProviderError::Auth {
                message: format!("credential plugin of {owner}: {message}"),
            })?;
    }
    config.connect_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // No read timeout: an open log stream may stay quiet for long. The layer bounds each answer.
    let layer = RequestTimeoutLayer {
        timeout,
        server: Arc::from(server.trim_end_matches('/')),
    };
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(|err| ProviderError::InvalidRequest {
            message: format!(
                "kubernetes context {context} ({context_file}): creating a client: {}",
                one_line(&err.to_string())
            ),
        })?
        .with_layer(&layer)
        .build();
    Ok(CachedClient { client, rebuild_at })
}

/// A request that got no answer within the configured bound.
#[derive(Debug)]
pub(crate) struct RequestTimedOut {
    /// The API server asked.
    pub server: Arc<str>,
    /// The bound.
    pub timeout: Duration,
}

impl std::fmt::Display for RequestTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no answer from the API server at {} within {:.1}s",
            self.server,
            self.timeout.as_secs_f64()
        )
    }
}

impl std::error::Error for RequestTimedOut {}

/// The [`RequestTimedOut`] inside a kube service error, if that is what it is.
pub(crate) fn timed_out<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a RequestTimedOut> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<RequestTimedOut>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bounds the time until each request's answer (its headers) arrives.
#[derive(Debug, Clone)]
struct RequestTimeoutLayer {
    timeout: Duration,
    server: Arc<str>,
}

impl<S> tower_layer::Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
            server: self.server.clone(),
        }
    }
}

/// The service [`RequestTimeoutLayer`] makes.
#[derive(Debug, Clone)]
struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
    server: Arc<str>,
}

impl<S, Request> tower_service::Service<Request> for RequestTimeout<S>
where
    S: tower_service::Service<Request>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let answer = self.inner.call(request);
        let timeout = self.timeout;
        let server = self.server.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(RequestTimedOut { server, timeout }) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        for good in [
            "https://10.0.0.1:6443",
            "http://127.0.0.1:8080/clusters/a",
            "https://api.example.com",
            "HTTPS://k8s.local/",
            "http://[::1]:80",
        ] {
            assert!(check_server_url(good).is_ok(), "{good}");
        }
        for (bad, want) in [
            ("localhost", "no scheme"),
            ("127.0.0.1", "no scheme"),
            ("foo", "no scheme"),
            ("ftp://x", "not http or https"),
            ("https://", "no host"),
            ("https://:6443", "no host"),
            ("https://a:0", "port"),
            ("https://a:99999", "port"),
            ("https://a:x", "port"),
            ("https://u:p@a", "user info"),
            ("https://a b", "not a host name"),
            ("http://[zz]:1", "IPv6"),
            ("http://a/b c", "spaces"),
        ] {
            let err = check_server_url(bad).expect_err(bad);
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
