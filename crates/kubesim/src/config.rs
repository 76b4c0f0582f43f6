//! The clusters file: named simulated clusters and their nodes, read from YAML.
//!
//! ```yaml
//! clusters:
//!   - name: gke-l4
//!     nodes:
//!       - name: l4-node
//!         count: 2            # optional: l4-node-0, l4-node-1
//!         labels: { cloud.google.com/gke-accelerator: nvidia-l4 }
//!         allocatable: { cpu: 8, memory: 32Gi, nvidia.com/gpu: 1 }
//!         taints: [{ key: nvidia.com/gpu, value: present, effect: NoSchedule }]
//! ```
//!
//! Schema errors (unknown fields, bad quantities, bad taint effects) come from the YAML parser with
//! line, column and snippet; consistency errors (duplicate names, names that are not DNS labels) name
//! the field path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::quantity::Quantity;
use crate::scheduler::TaintEffect;

/// A clusters file: the simulated clusters one server hosts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClustersFile {
    /// The clusters, each served under `/clusters/<name>` and given a kubeconfig context `<name>`.
    pub clusters: Vec<ClusterSpec>,
}

/// One simulated cluster.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Cluster name: a DNS label; also the kubeconfig context and cluster name.
    pub name: String,
    /// Nodes (or node pools, with `count`).
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// Images that cannot be pulled here (`*` matches any text, e.g. `private.example.com/*`):
    /// a container with one waits in `ErrImagePull`, then `ImagePullBackOff`, with Kubernetes'
    /// reasons and events, and never starts.
    #[serde(default)]
    pub unpullable_images: Vec<String>,
    /// Seconds a bound pod stays Pending (`ContainerCreating`) before its containers start, as
    /// on a cluster that pulls images or sets up sandboxes; 0 to 3600, default none.
    #[serde(default)]
    pub container_start_delay: Option<f64>,
}

/// A node, or with `count` a pool of identical nodes named `<name>-0` … `<name>-<count-1>`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name (a DNS subdomain), or the name prefix of a pool.
    pub name: String,
    /// Number of identical nodes; absent means one node named exactly `name`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Node labels (in addition to `kubernetes.io/hostname`, `kubernetes.io/os` and `kubernetes.io/arch`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Allocatable resources: `cpu`, `memory`, `nvidia.com/gpu`, `pods` (default 110), any other.
    #[serde(default)]
    pub allocatable: BTreeMap<String, Quantity>,
    /// Node taints.
    #[serde(default)]
    pub taints: Vec<TaintSpec>,
}

/// A node taint in the clusters file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaintSpec {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    #[serde(default)]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: TaintEffect,
}

impl ClustersFile {
    /// Reads and validates a clusters file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadClusters {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a clusters file held in a string.
    pub fn from_yaml_str(yaml: &str) -> Result<Self> {
        Self::parse(yaml, "<string>")
    }

    fn parse(yaml: &str, origin: &str) -> Result<Self> {
        let file: Self = serde_saphyr::from_str(yaml).map_err(|e| Error::ParseClusters {
            path: origin.to_owned(),
            message: user_message(&e),
        })?;
        file.validate(origin)?;
        Ok(file)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let invalid = |field: String, message: String| Error::InvalidClusters {
            path: origin.to_owned(),
            field,
            message,
        };
        if self.clusters.is_empty() {
            return Err(invalid(
                "clusters".into(),
                "at least one cluster is required".into(),
            ));
        }
        let mut cluster_names = BTreeSet::new();
        for (ci, cluster) in self.clusters.iter().enumerate() {
            if !is_dns_label(&cluster.name) {
                return Err(invalid(
                    format!("clusters[{ci}].name"),
                    format!(
                        "{:?} is not a DNS label (lower-case letters, digits and '-', at most 63)",
                        cluster.name
                    ),
                ));
            }
            if !cluster_names.insert(&cluster.name) {
                return Err(invalid(
                    format!("clusters[{ci}].name"),
                    format!("duplicate cluster name {:?}", cluster.name),
                ));
            }
            if let Some(delay) = cluster.container_start_delay
                && !(0.0..=3600.0).contains(&delay)
            {
                return Err(invalid(
                    format!("clusters[{ci}].container_start_delay"),
                    format!("{delay} is not a number of seconds from 0 to 3600"),
                ));
            }
            let mut node_names = BTreeSet::new();
            for (ni, node) in cluster.nodes.iter().enumerate() {
                let field = format!("clusters[{ci}].nodes[{ni}]");
                if node.count == Some(0) {
                    return Err(invalid(
                        format!("{field}.count"),
                        "count must be at least 1".into(),
                    ));
                }
                for name in node.node_names() {
                    if !is_dns_subdomain(&name) {
                        return Err(invalid(
                            format!("{field}.name"),
                            format!("{name:?} is not a valid node name"),
                        ));
                    }
                    if !node_names.insert(name.clone()) {
                        return Err(invalid(
                            format!("{field}.name"),
                            format!("duplicate node name {name:?}"),
                        ));
                    }
                }
                for (key, quantity) in &node.allocatable {
                    if quantity.milli() < 0 {
                        return Err(invalid(
                            format!("{field}.allocatable.{key}"),
                            format!("{quantity} is negative"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The cluster with this name.
    pub fn cluster(&self, name: &str) -> Option<&ClusterSpec> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

impl NodeSpec {
    /// The names of the nodes this entry stands for.
    pub fn node_names(&self) -> Vec<String> {
        match self.count {
            None => vec![self.name.clone()],
            Some(n) => (0..n).map(|i| format!("{}-{i}", self.name)).collect(),
        }
    }
}

/// Whether `name` is an RFC 1123 DNS label.
pub(crate) fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is an RFC 1123 DNS subdomain (object names of most kinds).
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A YAML error in the user's words: `line L column C: what`, one line, without the library's
/// source snippet or its internal names.
fn user_message(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::{MessageFormatter, UserMessageFormatter};
    let inner = error.without_snippet();
    let message: String = UserMessageFormatter
        .format_message(inner)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match inner
        .location()
        .or_else(|| error.location())
        .filter(|l| l.line() > 0)
    {
        Some(l) => format!("line {} column {}: {message}", l.line(), l.column()),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pools_labels_and_quantities() {
        let file = ClustersFile::from_yaml_str(
            "clusters:\n  - name: onprem\n    nodes:\n      - name: h100\n        count: 2\n        labels:\n          nvidia.com/gpu.count: 8\n        allocatable: {cpu: 96, memory: 1Ti, nvidia.com/gpu: 8}\n        taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]\n",
        )
        .unwrap();
        let node = &file.clusters[0].nodes[0];
        assert_eq!(node.node_names(), ["h100-0", "h100-1"]);
        assert_eq!(node.labels["nvidia.com/gpu.count"], "8");
        assert_eq!(node.allocatable["cpu"].milli(), 96_000);
        assert_eq!(node.taints[0].effect, TaintEffect::NoSchedule);
    }

    #[test]
    fn schema_errors_carry_line_and_column() {
        let err = ClustersFile::from_yaml_str(
            "clusters:\n  - name: a\n    nodes:\n      - name: n\n        allocatable: {cpu: 12q}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("invalid clusters file <string>:"), "{err}");
        assert!(err.contains("12q") && err.contains("line 5"), "{err}");
        let err = ClustersFile::from_yaml_str("clusters:\n  - name: a\n    nodez: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nodez") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn consistency_errors_name_the_field() {
        let err = ClustersFile::from_yaml_str("clusters:\n  - name: a\n  - name: a\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid clusters file <string>: clusters[1].name: duplicate cluster name \"a\""
        );
        let err = ClustersFile::from_yaml_str("clusters:\n  - name: Big_Name\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clusters[0].name") && err.contains("DNS label"),
            "{err}"
        );
    }

    #[test]
    fn example_clusters_file_is_valid() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/kubesim-clusters.yaml"
        );
        let file = ClustersFile::from_path(path).unwrap();
        let names: Vec<&str> = file.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["gke-l4", "onprem-h100"]);
        let h100 = &file.cluster("onprem-h100").unwrap().nodes[0];
        assert_eq!(h100.node_names(), ["h100-0", "h100-1"]);
        assert_eq!(h100.taints[0].effect, TaintEffect::NoSchedule);
    }
}
