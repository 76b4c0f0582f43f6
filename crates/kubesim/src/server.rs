//! Starting, addressing and stopping a simulator: the public entry points.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{ServerState, handle};
use crate::cluster::{Cluster, scheduler_loop};
use crate::config::ClustersFile;
use crate::error::{Error, Result};
use crate::kubelet::{kill_all, kubelet_loop};

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many changes each cluster keeps for watches to replay; a watch from an older
    /// resourceVersion gets `410 Expired`. Default 20,000.
    pub watch_history: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            port: 0,
            watch_history: crate::store::HISTORY_LIMIT,
        }
    }
}

/// Entry point: starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Starts a simulator for `config` on 127.0.0.1: the API server, and per cluster a scheduler and
    /// a kubelet. Must be called inside a tokio runtime. The returned handle stops everything (and
    /// kills every container process) when shut down or dropped.
    pub async fn start(config: ClustersFile, options: SimOptions) -> Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|source| Error::Bind {
                port: options.port,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| Error::Bind {
            port: options.port,
            source,
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut clusters = BTreeMap::new();
        let mut tasks = Vec::new();
        for spec in &config.clusters {
            let cluster = Cluster::new(
                spec,
                shutdown_rx.clone(),
                address.to_string(),
                options.watch_history,
            );
            tasks.push(tokio::spawn(scheduler_loop(cluster.clone())));
            tasks.push(tokio::spawn(kubelet_loop(cluster.clone())));
            clusters.insert(spec.name.clone(), cluster);
        }
        let state = Arc::new(ServerState {
            clusters: clusters.clone(),
        });
        let router = axum::Router::new().fallback(handle).with_state(state);
        let mut stop = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%address, clusters = clusters.len(), "kubesim started");
        Ok(RunningSim {
            address,
            cluster_names: config.clusters.iter().map(|c| c.name.clone()).collect(),
            clusters,
            shutdown: shutdown_tx,
            server: Some(server),
            tasks,
        })
    }
}

/// A running simulator. Dropping it stops the server and kills every container process.
#[derive(Debug)]
pub struct RunningSim {
    address: SocketAddr,
    cluster_names: Vec<String>,
    clusters: BTreeMap<String, Arc<Cluster>>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Names of the simulated clusters, in file order.
    pub fn cluster_names(&self) -> &[String] {
        &self.cluster_names
    }

    /// API server URL of one cluster (`http://127.0.0.1:PORT/clusters/NAME`), if it exists.
    pub fn cluster_url(&self, name: &str) -> Option<String> {
        self.clusters
            .contains_key(name)
            .then(|| format!("{}/clusters/{name}", self.base_url()))
    }

    /// A kubeconfig with one cluster and one context per simulated cluster (named after it, namespace
    /// `default`), no credentials, and the first cluster as current context.
    pub fn kubeconfig_yaml(&self) -> String {
        let mut yaml = String::from(
            "# Written by kubesim, a local Kubernetes API simulator (not a real cluster).\napiVersion: v1\nkind: Config\nclusters:\n",
        );
        for name in &self.cluster_names {
            yaml += &format!(
                "- name: {name}\n  cluster:\n    server: {}/clusters/{name}\n",
                self.base_url()
            );
        }
        yaml += "contexts:\n";
        for name in &self.cluster_names {
            yaml += &format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: kubesim\n    namespace: default\n"
            );
        }
        yaml += &format!(
            "current-context: {}\nusers:\n- name: kubesim\n  user: {{}}\npreferences: {{}}\n",
            self.cluster_names.first().map_or("", String::as_str)
        );
        yaml
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| Error::WriteKubeconfig {
            path: path.to_owned(),
            source,
        })
    }

    fn stop(&mut self) {
        self.shutdown.send_replace(true);
        for cluster in self.clusters.values() {
            kill_all(cluster);
        }
    }

    /// Stops serving, kills every container process and waits for the server to finish.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        match self.server.take() {
            Some(server) => match server.await {
                Ok(result) => result.map_err(Error::Serve),
                Err(join) => Err(Error::Serve(std::io::Error::other(join))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs a simulator in the foreground until Ctrl-C, SIGTERM or SIGHUP (then every pod process it
/// started is killed): prints one line saying it is a simulator, its URL
/// and the kubeconfig path (default: `kubesim-<port>.kubeconfig` in the temp directory).
pub async fn run_foreground(clusters_file: &Path, port: u16, kubeconfig_out: Option<&Path>) -> Result<()> {
    let config = ClustersFile::from_path(clusters_file)?;
    let sim = Simulator::start(
        config,
        SimOptions {
            port,
            ..SimOptions::default()
        },
    )
    .await?;
    let kubeconfig: PathBuf = match kubeconfig_out {
        Some(path) => path.to_owned(),
        None => std::env::temp_dir().join(format!("kubesim-{}.kubeconfig", sim.port())),
    };
    sim.write_kubeconfig(&kubeconfig)?;
    println!(
        "kubesim (Kubernetes API simulator, not a real cluster) serving {} clusters [{}] at {}; kubeconfig: {} (export KUBECONFIG={})",
        sim.cluster_names().len(),
        sim.cluster_names().join(", "),
        sim.base_url(),
        kubeconfig.display(),
        kubeconfig.display()
    );
    let signal = stop_signal().await;
    tracing::info!("kubesim: {signal}; killing every pod process and stopping");
    sim.shutdown().await
}

/// Waits for what ends a foreground simulator: Ctrl-C (SIGINT), SIGTERM or SIGHUP. Returns the
/// signal's name. Where a handler cannot be installed, that signal is just not waited for.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut hangup = signal(SignalKind::hangup()).ok();
        let term = async {
            match term.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let hangup = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term => "SIGTERM",
            _ = hangup => "SIGHUP",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
