//! Scheduling throughput of the kubesim scheduler core, in process (no HTTP, no kubelet).
//!
//! Run: `CARGO_TARGET_DIR=target-kubesim cargo bench -p skyplan-kubesim --bench scheduling`
//!
//! Each iteration schedules every pod of a fresh cluster; throughput is reported in pods per second.
//! Nodes are a mix of GPU nodes (labelled, some tainted) and CPU nodes; pods mix GPU pods with
//! nodeSelectors/tolerations and CPU pods, so every filter runs.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skyplan_kubesim::scheduler::{
    NodeInfo, PodRequirements, Resources, Scheduler, Taint, TaintEffect, Toleration,
};

const GIB_MILLI: i128 = (1 << 30) * 1000;

fn nodes(count: usize) -> Vec<NodeInfo> {
    (0..count)
        .map(|i| {
            let gpu = i % 4 == 0;
            let mut labels = BTreeMap::from([("kubernetes.io/hostname".to_string(), format!("node-{i}"))]);
            let mut allocatable = BTreeMap::from([
                ("cpu".to_string(), 64_000),
                ("memory".to_string(), 256 * GIB_MILLI),
                ("pods".to_string(), 110_000),
            ]);
            let mut taints = Vec::new();
            if gpu {
                labels.insert("nvidia.com/gpu.product".into(), "NVIDIA-H100-80GB-HBM3".into());
                allocatable.insert("nvidia.com/gpu".into(), 8_000);
                if i % 8 == 0 {
                    taints.push(Taint {
                        key: "nvidia.com/gpu".into(),
                        value: "present".into(),
                        effect: TaintEffect::NoSchedule,
                    });
                }
            }
            NodeInfo {
                name: format!("node-{i}"),
                labels,
                taints,
                allocatable: Resources(allocatable),
                ..NodeInfo::default()
            }
        })
        .collect()
}

fn pods(count: usize) -> Vec<PodRequirements> {
    (0..count)
        .map(|i| {
            let mut requests =
                BTreeMap::from([("cpu".to_string(), 2_000), ("memory".to_string(), 8 * GIB_MILLI)]);
            let mut pod = PodRequirements::default();
            if i % 3 == 0 {
                requests.insert("nvidia.com/gpu".into(), 1_000);
                pod.node_selector
                    .insert("nvidia.com/gpu.product".into(), "NVIDIA-H100-80GB-HBM3".into());
                pod.tolerations.push(Toleration {
                    key: "nvidia.com/gpu".into(),
                    exists: true,
                    value: String::new(),
                    effect: None,
                });
            }
            pod.requests = Resources(requests);
            pod
        })
        .collect()
}

fn scheduling(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule_pending_pods");
    group.sample_size(10);
    for (n_nodes, n_pods) in [(100, 1_000), (1_000, 10_000)] {
        let (nodes, pods) = (nodes(n_nodes), pods(n_pods));
        group.throughput(Throughput::Elements(n_pods as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{n_nodes}_nodes_x_{n_pods}_pods")),
            &(nodes, pods),
            |b, (nodes, pods)| {
                b.iter(|| {
                    let mut scheduler = Scheduler::new(nodes.clone());
                    let bound = pods.iter().filter(|p| scheduler.schedule(p).is_ok()).count();
                    black_box(bound)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
