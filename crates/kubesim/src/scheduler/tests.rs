//! Unit tests of the scheduler core: kube-scheduler's failure wording, taints and tolerations,
//! capacity and spreading, node affinity operators, unschedulable nodes and pod counts.

use super::*;

fn node(name: &str, gpus: i128, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        allocatable: Resources(BTreeMap::from([
            ("cpu".into(), 8000),
            ("memory".into(), 32 * (1 << 30) * 1000),
            ("nvidia.com/gpu".into(), gpus * 1000),
            ("pods".into(), 110_000),
        ])),
        ..NodeInfo::default()
    }
}

fn gpu_pod(gpus: i128) -> PodRequirements {
    PodRequirements {
        requests: Resources(BTreeMap::from([
            ("nvidia.com/gpu".into(), gpus * 1000),
            ("cpu".into(), 1000),
        ])),
        ..PodRequirements::default()
    }
}

#[test]
fn words_failures_like_kube_scheduler() {
    let mut pod = gpu_pod(2);
    pod.node_selector.insert("pool".into(), "gpu".into());
    let mut scheduler = Scheduler::new(vec![
        node("a", 1, &[("pool", "gpu")]),
        node("b", 0, &[("pool", "cpu")]),
        node("c", 0, &[]),
    ]);
    let err = scheduler.schedule(&pod).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, \
         2 node(s) didn't match Pod's node affinity/selector."
    );
}

#[test]
fn taints_repel_and_tolerations_admit() {
    let mut tainted = node("gpu", 4, &[]);
    tainted.taints.push(Taint {
        key: "nvidia.com/gpu".into(),
        value: "present".into(),
        effect: TaintEffect::NoSchedule,
    });
    let mut scheduler = Scheduler::new(vec![tainted]);
    let err = scheduler.schedule(&gpu_pod(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    );
    let mut pod = gpu_pod(1);
    pod.tolerations.push(Toleration {
        key: "nvidia.com/gpu".into(),
        exists: true,
        value: String::new(),
        effect: None,
    });
    assert_eq!(scheduler.schedule(&pod), Ok(0));
}

#[test]
fn capacity_is_consumed_and_spread() {
    let mut scheduler = Scheduler::new(vec![node("a", 1, &[]), node("b", 1, &[])]);
    let first = scheduler.schedule(&gpu_pod(1)).unwrap();
    let second = scheduler.schedule(&gpu_pod(1)).unwrap();
    assert_ne!(first, second, "least-allocated scoring spreads pods");
    let err = scheduler.schedule(&gpu_pod(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    );
}

#[test]
fn required_node_affinity_operators() {
    let term = |key: &str, operator, values: &[&str]| NodeSelectorTerm {
        match_expressions: vec![NodeSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }],
        match_fields: vec![],
    };
    let n = node("a", 1, &[("gpu.count", "4"), ("zone", "z1")]);
    let cases = [
        (term("zone", SelectorOperator::In, &["z1", "z2"]), true),
        (term("zone", SelectorOperator::NotIn, &["z1"]), false),
        (term("zone", SelectorOperator::Exists, &[]), true),
        (term("zone", SelectorOperator::DoesNotExist, &[]), false),
        (term("gpu.count", SelectorOperator::Gt, &["3"]), true),
        (term("gpu.count", SelectorOperator::Lt, &["3"]), false),
        (term("missing", SelectorOperator::NotIn, &["x"]), true),
    ];
    for (t, expect) in cases {
        let pod = PodRequirements {
            required_node_affinity: vec![t.clone()],
            ..PodRequirements::default()
        };
        assert_eq!(pod.check(&n).is_ok(), expect, "{t:?}");
    }
}

#[test]
fn unschedulable_and_pod_count() {
    let mut cordoned = node("a", 1, &[]);
    cordoned.unschedulable = true;
    let mut full = node("b", 1, &[]);
    full.pod_count = 110;
    let err = Scheduler::new(vec![cordoned, full])
        .schedule(&PodRequirements::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/2 nodes are available: 1 Too many pods, 1 node(s) were unschedulable."
    );
    assert_eq!(
        Scheduler::new(vec![])
            .schedule(&PodRequirements::default())
            .unwrap_err()
            .to_string(),
        "no nodes available to schedule pods"
    );
}
