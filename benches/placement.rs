//! Placement studies: `cargo bench --bench placement` (one study: `cargo bench --bench placement -- dag/1000`).
//!
//! Sizes grow by 10×, each benchmark names its size. Every study runs on the embedded catalog
//! (10k real offers) with the embedded egress prices:
//! - `single/*`: one task over the whole catalog;
//! - `chain/N`: N tasks in a pipeline, each handing 1–100 GB to the next (exact DP);
//! - `dag/N`: random DAGs, each task with 1–2 parents (integer program, HiGHS);
//! - `shared_gpus/1000`: 1,000 H100 jobs sharing 64 free GPUs of an on-prem cluster: the joint
//!   integer program against greedy per-task choice. The dollars each plan costs are printed.
//!
//! Every study also checks what it claims, and panics when a claim breaks: the exact plan never
//! costs more than greedy per-task choice, and it is proven optimal (no time limit hit, no gap).
//! With optimizations on, the 10,000-task DAG must solve within 5× the README's "about 4 s".
//! CI runs the studies once each as tests (`cargo test --bench placement`), so a claim that
//! breaks fails CI.

#![allow(clippy::unwrap_used)] // benchmarks on fixed data: failing loudly is right

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use skyplan::catalog::{Catalog, Offer};
use skyplan_optimizer::{
    CapacityLimit, CapacityResource, Plan, Policy, Requirement, TaskGraph, TaskNode, solve, solve_greedy,
};

/// The claims every study makes of its exact plan: proven optimal, and no dearer than greedy.
fn check_claims(study: &str, plan: &Plan, greedy: &Plan) {
    assert!(
        !plan.hit_time_limit && plan.mip_gap.is_none_or(|gap| gap <= 1e-9),
        "{study}: not proven optimal (time limit hit: {}, gap {:?})",
        plan.hit_time_limit,
        plan.mip_gap
    );
    assert!(
        plan.total_cost <= greedy.total_cost,
        "{study}: the exact plan costs {} $, greedy {} $",
        plan.total_cost,
        greedy.total_cost
    );
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A mix of what ML pipelines ask for: CPU prep, single-GPU and multi-GPU training, serving.
fn requirement(rng: &mut Rng) -> Requirement {
    let gpu = |name: &str, count: f64| Requirement {
        accelerator: Some((name.into(), count)),
        ..Default::default()
    };
    match rng.below(6) {
        0 => Requirement {
            cpus: Some("8+".parse().unwrap()),
            memory: Some("32+".parse().unwrap()),
            ..Default::default()
        },
        1 => Requirement {
            cpus: Some("4".parse().unwrap()),
            ..Default::default()
        },
        2 => gpu("L4", 1.0),
        3 => gpu("A100", 1.0),
        4 => gpu("H100", 8.0),
        _ => gpu("T4", 1.0),
    }
}

fn chain(n: usize, seed: u64) -> TaskGraph {
    let mut rng = Rng(seed);
    let mut graph = TaskGraph::default();
    let mut previous = None;
    for i in 0..n {
        let id = graph.add_task(TaskNode::new(format!("t{i}"), vec![requirement(&mut rng)]));
        if let Some(p) = previous {
            graph.add_edge(p, id, (1 + rng.below(100)) as f64);
        }
        previous = Some(id);
    }
    graph
}

fn dag(n: usize, seed: u64) -> TaskGraph {
    let mut rng = Rng(seed);
    let mut graph = TaskGraph::default();
    let ids: Vec<_> = (0..n)
        .map(|i| graph.add_task(TaskNode::new(format!("t{i}"), vec![requirement(&mut rng)])))
        .collect();
    for i in 1..n {
        let parents = 1 + rng.below(2) as usize;
        for _ in 0..parents {
            // Mostly recent parents, like real pipelines.
            let back = 1 + rng.below(10.min(i as u64)) as usize;
            graph.add_edge(ids[i - back], ids[i], (1 + rng.below(100)) as f64);
        }
    }
    graph
}

fn policy() -> Policy {
    Policy {
        egress: skyplan::embedded::egress().unwrap(),
        time_limit: Duration::from_secs(60),
        ..Default::default()
    }
}

fn single(c: &mut Criterion, catalog: &Catalog) {
    let mut group = c.benchmark_group("single");
    let policy = policy();
    for (name, req) in [
        (
            "L4:1",
            Requirement {
                accelerator: Some(("L4".into(), 1.0)),
                ..Default::default()
            },
        ),
        (
            "H100:8_spot",
            Requirement {
                accelerator: Some(("H100".into(), 8.0)),
                use_spot: true,
                ..Default::default()
            },
        ),
        (
            "cpu_4+",
            Requirement {
                cpus: Some("4+".parse().unwrap()),
                ..Default::default()
            },
        ),
    ] {
        let mut graph = TaskGraph::default();
        graph.add_task(TaskNode::new("t", vec![req]));
        let plan = solve(catalog, &graph, &policy).unwrap();
        let greedy = solve_greedy(catalog, &graph, &policy).unwrap();
        println!(
            "single/{name}: solver {:?}, total {} $",
            plan.solver, plan.total_cost
        );
        check_claims(&format!("single/{name}"), &plan, &greedy);
        assert_eq!(
            plan.total_cost, greedy.total_cost,
            "single/{name}: one task has one best offer"
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(solve(catalog, &graph, &policy).unwrap()))
        });
    }
    group.finish();
}

fn chains(c: &mut Criterion, catalog: &Catalog) {
    let mut group = c.benchmark_group("chain");
    group.sample_size(10);
    let policy = policy();
    for n in [10, 100, 1000] {
        let graph = chain(n, 7);
        let plan = solve(catalog, &graph, &policy).unwrap();
        let greedy = solve_greedy(catalog, &graph, &policy).unwrap();
        println!(
            "chain/{n}: solver {:?}, total {} $ (greedy {} $)",
            plan.solver, plan.total_cost, greedy.total_cost
        );
        check_claims(&format!("chain/{n}"), &plan, &greedy);
        group.bench_with_input(BenchmarkId::from_parameter(n), &graph, |b, g| {
            b.iter(|| black_box(solve(catalog, g, &policy).unwrap()))
        });
    }
    group.finish();
}

fn dags(c: &mut Criterion, catalog: &Catalog) {
    let mut group = c.benchmark_group("dag");
    group.sample_size(10);
    let policy = policy();
    // SKYPLAN_BENCH_MAX_TASKS=N skips larger sizes (their setup alone solves them once).
    let max: usize = std::env::var("SKYPLAN_BENCH_MAX_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    for n in [10, 50, 100, 1000, 10_000].into_iter().filter(|&n| n <= max) {
        let graph = dag(n, 11);
        let plan = solve(catalog, &graph, &policy).unwrap();
        let greedy = solve_greedy(catalog, &graph, &policy).unwrap();
        println!(
            "dag/{n}: solver {:?} in {:.1} ms, total {} $ (greedy {} $), gap {:?}, time limit hit: {}",
            plan.solver, plan.solve_ms, plan.total_cost, greedy.total_cost, plan.mip_gap, plan.hit_time_limit
        );
        check_claims(&format!("dag/{n}"), &plan, &greedy);
        if n >= 10_000 && !cfg!(debug_assertions) {
            assert!(
                plan.solve_ms <= 20_000.0,
                "dag/{n}: {:.1} s, the README says about 4 s",
                plan.solve_ms / 1000.0
            );
        }
        if n >= 10_000 {
            group.measurement_time(Duration::from_secs(1));
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &graph, |b, g| {
            b.iter(|| black_box(solve(catalog, g, &policy).unwrap()))
        });
    }
    group.finish();
}

fn shared_gpus(c: &mut Criterion, catalog: &Catalog) {
    // An on-prem cluster with 64 free H100s at an internal rate of 0.50 $/GPU-hour.
    let mut catalog = catalog.clone();
    catalog.extend([1.0, 2.0, 4.0, 8.0].map(|count| Offer {
        cloud: "kubernetes".into(),
        region: "onprem".into(),
        zone: None,
        instance_type: format!("{count}x-H100-pod"),
        accelerator: Some("H100".into()),
        accelerator_count: count,
        vcpus: Some(16.0 * count),
        memory_gib: Some(128.0 * count),
        accelerator_memory_mib: Some(81920),
        price: Some(rust_decimal::Decimal::new(50, 2) * rust_decimal::Decimal::try_from(count).unwrap()),
        spot_price: None,
    }));
    let mut rng = Rng(3);
    let mut graph = TaskGraph::default();
    for i in 0..1000 {
        let count = [1.0, 2.0, 4.0, 8.0][rng.below(4) as usize];
        let mut task = TaskNode::new(
            format!("job{i}"),
            vec![Requirement {
                accelerator: Some(("H100".into(), count)),
                ..Default::default()
            }],
        );
        task.duration_hours = (1 + rng.below(8)) as f64;
        graph.add_task(task);
    }
    let policy = Policy {
        capacity: vec![CapacityLimit {
            name: "k8s/onprem free H100".into(),
            cloud: "kubernetes".into(),
            region: Some("onprem".into()),
            spot: None,
            resource: CapacityResource::Gpus {
                accelerator: Some("H100".into()),
            },
            limit: 64.0,
        }],
        ..policy()
    };
    let joint = solve(&catalog, &graph, &policy).unwrap();
    let greedy = solve_greedy(&catalog, &graph, &policy).unwrap();
    println!(
        "shared_gpus/1000: joint ILP {} $ in {:.1} ms vs greedy {} $ in {:.1} ms: saves {} $",
        joint.total_cost,
        joint.solve_ms,
        greedy.total_cost,
        greedy.solve_ms,
        greedy.total_cost - joint.total_cost
    );
    check_claims("shared_gpus/1000", &joint, &greedy);
    let mut group = c.benchmark_group("shared_gpus");
    group.sample_size(10);
    group.bench_function("1000/joint_ilp", |b| {
        b.iter(|| black_box(solve(&catalog, &graph, &policy).unwrap()))
    });
    group.bench_function("1000/greedy", |b| {
        b.iter(|| black_box(solve_greedy(&catalog, &graph, &policy).unwrap()))
    });
    group.finish();
}

fn placement(c: &mut Criterion) {
    let catalog = skyplan::embedded::catalog().unwrap();
    single(c, &catalog);
    chains(c, &catalog);
    dags(c, &catalog);
    shared_gpus(c, &catalog);
}

criterion_group!(benches, placement);
criterion_main!(benches);
