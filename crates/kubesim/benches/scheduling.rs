//! Scheduling throughput of the kubesim scheduler core, in process (no HTTP, no kubelet).
//!
//! Run: `CARGO_TARGET_DIR=target-kubesim cargo bench -p skyplan-kubesim --bench scheduling`
//!
//! Each iteration schedules every pod of a fresh cluster (made outside the timed part);
//! throughput is reported in pods per second. Every iteration must bind as many pods as a first
//! run did, and some: a scheduler that binds nothing is not fast.
//! Nodes are a mix of GPU nodes (labelled, some tainted) and CPU nodes; pods mix GPU pods with
//! nodeSelectors/tolerations and CPU pods, so every filter runs.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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
        let bind_all =
            |mut scheduler: Scheduler| pods.iter().filter(|p| scheduler.schedule(p).is_ok()).count();
        let expected = bind_all(Scheduler::new(nodes.clone()));
        assert!(expected > 0, "{n_nodes} nodes bind none of {n_pods} pods");
        println!("{n_nodes} nodes x {n_pods} pods: {expected} bound");
        group.throughput(Throughput::Elements(n_pods as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{n_nodes}_nodes_x_{n_pods}_pods")),
            |b| {
                b.iter_batched(
                    || Scheduler::new(nodes.clone()),
                    |scheduler| {
                        let bound = bind_all(scheduler);
                        assert_eq!(bound, expected, "the same cluster binds the same pods");
                        black_box(bound)
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
