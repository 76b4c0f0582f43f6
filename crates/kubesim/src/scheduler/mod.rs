//! The scheduler core: which node a pending pod binds to, or why no node fits.
//!
//! This is pure, synchronous code over plain data (no store, no HTTP, no clock), so the server's
//! scheduling loop and the criterion bench drive the same thing. It follows kube-scheduler's default
//! filters in kube-scheduler's order — `NodeUnschedulable`, `NodeName`, `TaintToleration`,
//! `NodeAffinity` (nodeSelector and required node affinity), `NodeResourcesFit` — stopping at the
//! first failing filter per node, and words failures as kube-scheduler does
//! (`0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node
//! affinity/selector.`). Among feasible nodes it prefers the least allocated (cpu and memory), as the
//! default `NodeResourcesFit` scoring does; ties go to the earlier node, so results are deterministic.
//! Preemption is not simulated.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::quantity::parse_milli;

/// Resource amounts in milli-units by resource name (`cpu`, `memory`, `nvidia.com/gpu`, `pods`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources(pub BTreeMap<String, i128>);

impl Resources {
    /// The amount of `name` in milli-units (0 when absent).
    pub fn get(&self, name: &str) -> i128 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Adds every amount of `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        for (name, milli) in &other.0 {
            *self.0.entry(name.clone()).or_insert(0) += milli;
        }
    }

    /// Subtracts every amount of `other` from `self`.
    pub fn subtract(&mut self, other: &Resources) {
        for (name, milli) in &other.0 {
            *self.0.entry(name.clone()).or_insert(0) -= milli;
        }
    }

    /// Parses a Kubernetes resource map (`{"cpu": "500m"}`); `what` names it in errors.
    pub fn from_quantities<'a>(
        quantities: impl IntoIterator<Item = (&'a String, &'a str)>,
        what: &str,
    ) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (name, text) in quantities {
            let milli = parse_milli(text)
                .map_err(|why| format!("{what}[{name}]: quantity {text:?} is invalid: {why}"))?;
            out.insert(name.clone(), milli);
        }
        Ok(Self(out))
    }
}

/// How a taint repels pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum TaintEffect {
    /// New pods that do not tolerate the taint are not scheduled onto the node.
    NoSchedule,
    /// The scheduler tries to avoid the node (a preference; ignored by filtering).
    PreferNoSchedule,
    /// Like `NoSchedule`; a real kubelet would also evict running pods (not simulated).
    NoExecute,
}

impl TaintEffect {
    /// Parses the Kubernetes spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "NoSchedule" => Some(Self::NoSchedule),
            "PreferNoSchedule" => Some(Self::PreferNoSchedule),
            "NoExecute" => Some(Self::NoExecute),
            _ => None,
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Taint key, e.g. `nvidia.com/gpu`.
    pub key: String,
    /// Taint value (may be empty).
    pub value: String,
    /// Effect on pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Key to match; empty with `exists` tolerates every taint.
    pub key: String,
    /// `true` for operator `Exists` (value ignored), `false` for `Equal`.
    pub exists: bool,
    /// Value to match for `Equal`.
    pub value: String,
    /// Effect to match; `None` matches every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint` (Kubernetes' `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|effect| effect != taint.effect) {
            return false;
        }
        if self.key.is_empty() {
            return self.exists;
        }
        self.key == taint.key && (self.exists || self.value == taint.value)
    }
}

/// Operator of a node selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, as an integer, is greater than the single value.
    Gt,
    /// The label's value, as an integer, is less than the single value.
    Lt,
}

/// One requirement of a node selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorRequirement {
    /// Label key (or field name for `matchFields`, only `metadata.name`).
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values the operator compares with.
    pub values: Vec<String>,
}

impl NodeSelectorRequirement {
    fn matches(&self, value: Option<&str>) -> bool {
        let number = |text: &str| text.parse::<i64>().ok();
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOperator::NotIn => !value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
            SelectorOperator::Gt | SelectorOperator::Lt => {
                let (Some(have), Some(want)) = (
                    value.and_then(number),
                    self.values.first().and_then(|v| number(v)),
                ) else {
                    return false;
                };
                if self.operator == SelectorOperator::Gt {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A node selector term: every requirement must hold (terms of one affinity are ORed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// Requirements on node fields (`metadata.name`).
    pub match_fields: Vec<NodeSelectorRequirement>,
}

impl NodeSelectorTerm {
    fn matches(&self, node: &NodeInfo) -> bool {
        // An empty term matches no node, as in Kubernetes.
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self
                .match_fields
                .iter()
                .all(|r| r.matches((r.key == "metadata.name").then_some(node.name.as_str())))
    }
}

/// What the scheduler knows about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Allocatable resources; `pods` caps the pod count.
    pub allocatable: Resources,
    /// Sum of the requests of pods bound to the node and not finished.
    pub requested: Resources,
    /// Number of pods bound to the node and not finished.
    pub pod_count: u32,
}

/// What the scheduler needs to know about one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequirements {
    /// Effective requests: max(sum of containers, each init container) plus overhead.
    pub requests: Resources,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// Terms of `requiredDuringSchedulingIgnoredDuringExecution` (ORed); empty means none.
    pub required_node_affinity: Vec<NodeSelectorTerm>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// `spec.nodeName` when the pod names its node.
    pub node_name: Option<String>,
}

/// Why a pod fits no node: the number of nodes and how many nodes failed for each reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Number of nodes considered.
    pub num_nodes: usize,
    /// Reason → number of nodes that gave it.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    /// kube-scheduler's wording: reasons as `"<count> <reason>"`, sorted as strings, joined by `, `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.num_nodes,
            parts.join(", ")
        )
    }
}

impl std::error::Error for FitError {}

const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// Requests assumed for scoring when a pod states none (kube-scheduler's non-zero defaults).
const DEFAULT_CPU_MILLI: i128 = 100;
const DEFAULT_MEMORY_MILLI: i128 = 200 * 1024 * 1024 * 1000;

impl PodRequirements {
    /// Filters `node` for this pod: `Ok(())` if it fits, else the reasons of the first failing filter.
    pub fn check(&self, node: &NodeInfo) -> Result<(), Vec<String>> {
        if node.unschedulable
            && !self.tolerations.iter().any(|t| {
                t.tolerates(&Taint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    value: String::new(),
                    effect: TaintEffect::NoSchedule,
                })
            })
        {
            return Err(vec![REASON_UNSCHEDULABLE.into()]);
        }
        if self.node_name.as_ref().is_some_and(|name| *name != node.name) {
            return Err(vec![REASON_NODE_NAME.into()]);
        }
        if let Some(taint) = node.taints.iter().find(|taint| {
            taint.effect != TaintEffect::PreferNoSchedule
                && !self.tolerations.iter().any(|t| t.tolerates(taint))
        }) {
            return Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key, taint.value
            )]);
        }
        let selector_ok = self
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v));
        let affinity_ok = self.required_node_affinity.is_empty()
            || self.required_node_affinity.iter().any(|term| term.matches(node));
        if !selector_ok || !affinity_ok {
            return Err(vec![REASON_AFFINITY.into()]);
        }
        let mut reasons = Vec::new();
        if let Some(max_pods) = node.allocatable.0.get("pods")
            && i128::from(node.pod_count) + 1 > max_pods / 1000
        {
            reasons.push(REASON_TOO_MANY_PODS.to_owned());
        }
        for (name, want) in &self.requests.0 {
            if *want > 0 && name != "pods" && *want > node.allocatable.get(name) - node.requested.get(name) {
                reasons.push(format!("Insufficient {name}"));
            }
        }
        if reasons.is_empty() { Ok(()) } else { Err(reasons) }
    }

    /// Builds the requirements of a pod object.
    pub fn from_pod(pod: &Pod) -> Result<Self, String> {
        let Some(spec) = &pod.spec else {
            return Err("spec: Required value".into());
        };
        let container_requests = |c: &k8s_openapi::api::core::v1::Container, what: String| {
            let Some(resources) = &c.resources else {
                return Ok(Resources::default());
            };
            let mut merged: BTreeMap<&String, &str> = BTreeMap::new();
            // Limits stand in for missing requests, as API defaulting does.
            for source in [&resources.limits, &resources.requests].into_iter().flatten() {
                for (name, q) in source {
                    merged.insert(name, q.0.as_str());
                }
            }
            Resources::from_quantities(merged, &what)
        };
        let mut requests = Resources::default();
        for (i, c) in spec.containers.iter().enumerate() {
            requests.add(&container_requests(c, format!("spec.containers[{i}].resources"))?);
        }
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            let init = container_requests(c, format!("spec.initContainers[{i}].resources"))?;
            for (name, milli) in init.0 {
                let slot = requests.0.entry(name).or_insert(0);
                *slot = (*slot).max(milli);
            }
        }
        if let Some(overhead) = &spec.overhead {
            requests.add(&Resources::from_quantities(
                overhead.iter().map(|(k, q)| (k, q.0.as_str())),
                "spec.overhead",
            )?);
        }
        let required_node_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .map(|selector| {
                selector
                    .node_selector_terms
                    .iter()
                    .map(convert_term)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let tolerations = spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| {
                Ok(Toleration {
                    key: t.key.clone().unwrap_or_default(),
                    exists: t.operator.as_deref() == Some("Exists"),
                    value: t.value.clone().unwrap_or_default(),
                    effect: match t.effect.as_deref() {
                        None | Some("") => None,
                        Some(e) => {
                            Some(TaintEffect::parse(e).ok_or(format!("unknown toleration effect {e:?}"))?)
                        }
                    },
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            requests,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity,
            tolerations,
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
        })
    }
}

fn convert_term(term: &k8s_openapi::api::core::v1::NodeSelectorTerm) -> Result<NodeSelectorTerm, String> {
    let convert = |reqs: &Option<Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>>| {
        reqs.iter()
            .flatten()
            .map(|r| {
                let operator = match r.operator.as_str() {
                    "In" => SelectorOperator::In,
                    "NotIn" => SelectorOperator::NotIn,
                    "Exists" => SelectorOperator::Exists,
                    "DoesNotExist" => SelectorOperator::DoesNotExist,
                    "Gt" => SelectorOperator::Gt,
                    "Lt" => SelectorOperator::Lt,
                    other => return Err(format!("unknown node selector operator {other:?}")),
                };
                Ok(NodeSelectorRequirement {
                    key: r.key.clone(),
                    operator,
                    values: r.values.clone().unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, String>>()
    };
    Ok(NodeSelectorTerm {
        match_expressions: convert(&term.match_expressions)?,
        match_fields: convert(&term.match_fields)?,
    })
}

impl NodeInfo {
    /// Builds the scheduler's view of a node object (with nothing requested yet).
    pub fn from_node(node: &Node) -> Result<Self, String> {
        let spec = node.spec.clone().unwrap_or_default();
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let taints = spec
            .taints
            .iter()
            .flatten()
            .map(|t| {
                Ok(Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: TaintEffect::parse(&t.effect)
                        .ok_or(format!("unknown taint effect {:?}", t.effect))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.unschedulable.unwrap_or(false),
            allocatable: Resources::from_quantities(
                allocatable.into_iter().flatten().map(|(k, q)| (k, q.0.as_str())),
                "status.allocatable",
            )?,
            requested: Resources::default(),
            pod_count: 0,
        })
    }

    fn least_allocated_score(&self, pod: &Resources) -> i128 {
        let mut total = 0;
        for (name, default) in [("cpu", DEFAULT_CPU_MILLI), ("memory", DEFAULT_MEMORY_MILLI)] {
            let capacity = self.allocatable.get(name);
            let want = match pod.get(name) {
                0 => default,
                n => n,
            };
            let used = self.requested.get(name) + want;
            if capacity > 0 && used <= capacity {
                total += (capacity - used) * 100 / capacity;
            }
        }
        total
    }
}

/// Binds pods to nodes one at a time, keeping track of what each node has left.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    nodes: Vec<NodeInfo>,
}

impl Scheduler {
    /// A scheduler over `nodes` (their `requested` and `pod_count` count pods already bound).
    pub fn new(nodes: Vec<NodeInfo>) -> Self {
        Self { nodes }
    }

    /// The nodes with their current usage.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Index of the node with this name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Records a pod already bound to node `index` (it uses resources without being scheduled).
    pub fn assume(&mut self, index: usize, pod: &PodRequirements) {
        if let Some(node) = self.nodes.get_mut(index) {
            node.requested.add(&pod.requests);
            node.pod_count += 1;
        }
    }

    /// Picks a node for `pod` and records its requests there; returns the node's index, or why none fits.
    pub fn schedule(&mut self, pod: &PodRequirements) -> Result<usize, FitError> {
        let mut best: Option<(usize, i128)> = None;
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (index, node) in self.nodes.iter().enumerate() {
            match pod.check(node) {
                Ok(()) => {
                    let score = node.least_allocated_score(&pod.requests);
                    if best.is_none_or(|(_, best_score)| score > best_score) {
                        best = Some((index, score));
                    }
                }
                Err(node_reasons) => {
                    for reason in node_reasons {
                        *reasons.entry(reason).or_insert(0) += 1;
                    }
                }
            }
        }
        match best {
            Some((index, _)) => {
                self.assume(index, pod);
                Ok(index)
            }
            None => Err(FitError {
                num_nodes: self.nodes.len(),
                reasons,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
