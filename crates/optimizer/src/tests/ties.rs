//! Equal-cost ties: every algorithm prefers the locations the rest of the plan uses, then the home
//! geography (neutral places between home and elsewhere), then names; no tie-break changes a cost.

use proptest::prelude::*;
use skyplan_catalog::{Catalog, Offer};

use super::floors::repo_catalog;
use super::{HEADER, egress, gpu, one, random_instance};
use crate::problem::build_problem;
use crate::solve::assemble;
use crate::{
    CapacityLimit, CapacityResource, Geography, Objective, Policy, Requirement, SolverKind, TaskGraph,
    TaskNode, greedy, ilp, solve, solve_greedy, ties,
};

#[test]
fn a100x8_lands_in_a_us_lambda_region_at_the_same_price() {
    let catalog = repo_catalog();
    let task = one(TaskNode::new("train", vec![gpu("A100", 8.0)]));
    let plan = solve(catalog, &task, &Policy::default()).unwrap();
    let by_name = solve(
        catalog,
        &task,
        &Policy {
            home: Geography::none(),
            ..Default::default()
        },
    )
    .unwrap();
    let chosen = &plan.tasks[0].chosen;
    assert_eq!(
        (chosen.cloud.as_str(), chosen.region.as_str()),
        ("lambda", "us-east-1")
    );
    // Names alone put it in asia-northeast-1 (the order before the home geography existed).
    assert_eq!(by_name.tasks[0].chosen.region, "asia-northeast-1");
    assert_eq!(plan.total_cost, by_name.total_cost);
    assert_eq!(plan.total_cost.to_string(), "10.32");
}

/// Lambda A100:8 at one price in three regions, and a Kubernetes cluster at the same price.
fn lambda_fixture() -> Catalog {
    let lambda = format!(
        "{HEADER}\n\
         gpu_8x_a100,A100,8,124,1800,10.32,,asia-northeast-1,\n\
         gpu_8x_a100,A100,8,124,1800,10.32,,europe-central-1,\n\
         gpu_8x_a100,A100,8,124,1800,10.32,,us-west-1,\n\
         gpu_8x_a100,A100,8,124,1800,10.32,,us-east-1,\n\
         gpu_8x_h100,H100,8,208,1800,23.92,,us-west-1,\n\
         gpu_8x_h100,H100,8,208,1800,29.00,,us-east-1,\n"
    );
    let mut catalog = Catalog::from_csv("lambda", "lambda.csv", lambda.as_bytes()).unwrap();
    catalog.extend([Offer {
        cloud: "kubernetes".into(),
        region: "onprem".into(),
        zone: None,
        instance_type: "124CPU--1800GB--A100:8".into(),
        accelerator: Some("A100".into()),
        accelerator_count: 8.0,
        vcpus: Some(124.0),
        memory_gib: Some(1800.0),
        accelerator_memory_mib: None,
        price: Some("10.32".parse().unwrap()),
        spot_price: None,
    }]);
    catalog
}

#[test]
fn home_geography_is_configurable_and_clusters_are_neutral() {
    let catalog = lambda_fixture();
    let task = one(TaskNode::new("train", vec![gpu("A100", 8.0)]));
    let plan = solve(&catalog, &task, &Policy::default()).unwrap();
    let order: Vec<&str> = std::iter::once(&plan.tasks[0].chosen)
        .chain(&plan.tasks[0].alternatives)
        .map(|p| p.region.as_str())
        .collect();
    // Home (by name), then the cluster of unknown geography, then the rest (by name).
    assert_eq!(
        order,
        [
            "us-east-1",
            "us-west-1",
            "onprem",
            "asia-northeast-1",
            "europe-central-1"
        ]
    );
    let region_with = |home: Geography| {
        let policy = Policy {
            home,
            ..Default::default()
        };
        solve(&catalog, &task, &policy).unwrap().tasks[0]
            .chosen
            .region
            .clone()
    };
    assert_eq!(
        region_with(Geography::new("eu", ["eu-", "europe-"])),
        "europe-central-1"
    );
    // No home: names alone, cloud first (`kubernetes` < `lambda`), as before geographies.
    assert_eq!(region_with(Geography::none()), "onprem");
}

/// `train` (A100:8, tied in three places) and `serve` (H100:8, cheapest only in us-west-1).
fn train_and_serve(edge: bool) -> TaskGraph {
    let mut graph = TaskGraph::default();
    let train = graph.add_task(TaskNode::new("train", vec![gpu("A100", 8.0)]));
    let serve = graph.add_task(TaskNode::new("serve", vec![gpu("H100", 8.0)]));
    if edge {
        graph.add_edge(train, serve, 50.0);
    }
    graph
}

#[test]
fn every_solver_prefers_the_plans_own_locations() {
    let catalog = lambda_fixture();
    let priced = Policy {
        egress: egress(), // AWS and GCP rates; Lambda's transfers are free
        ..Default::default()
    };
    let cases = [
        (train_and_serve(false), Policy::default(), SolverKind::Independent),
        (train_and_serve(true), priced.clone(), SolverKind::ChainDp),
        (
            train_and_serve(true),
            Policy {
                force_ilp: true,
                ..priced.clone()
            },
            SolverKind::IlpHighs,
        ),
        (train_and_serve(true), priced, SolverKind::Greedy),
    ];
    for (graph, policy, kind) in cases {
        let plan = if kind == SolverKind::Greedy {
            solve_greedy(&catalog, &graph, &policy).unwrap()
        } else {
            solve(&catalog, &graph, &policy).unwrap()
        };
        assert_eq!(plan.solver, kind);
        let train = &plan.task("train").unwrap().chosen;
        // us-west-1, where serve runs, over us-east-1 (first by name).
        assert_eq!(
            (train.cloud.as_str(), train.region.as_str()),
            ("lambda", "us-west-1"),
            "{kind:?}"
        );
        assert_eq!(plan.total_cost.to_string(), "34.24", "{kind:?}");
    }
    // With us-west-1's GPUs all taken by serve, train cannot follow it there.
    let full = Policy {
        capacity: vec![CapacityLimit {
            name: "lambda us-west-1 GPUs".into(),
            cloud: "lambda".into(),
            region: Some("us-west-1".into()),
            spot: None,
            resource: CapacityResource::Gpus { accelerator: None },
            limit: 8.0,
        }],
        ..Default::default()
    };
    let plan = solve(&catalog, &train_and_serve(false), &full).unwrap();
    assert_eq!(plan.solver, SolverKind::IlpHighs);
    assert_eq!(plan.task("train").unwrap().chosen.region, "us-east-1");
    assert_eq!(plan.task("serve").unwrap().chosen.region, "us-west-1");
    // The integer program alone, for one task, follows the home geography too.
    let ilp = solve(
        &catalog,
        &one(TaskNode::new("train", vec![gpu("A100", 8.0)])),
        &Policy {
            force_ilp: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ilp.tasks[0].chosen.region, "us-east-1");
}

/// Like `random_instance`, with prices drawn from three values so that ties are everywhere.
fn tied_instance(seed: u64, tasks: usize, capacity: bool) -> super::Instance {
    let mut instance = random_instance(seed, tasks, false, capacity);
    let mut rng = super::Rng(seed.rotate_left(17) | 1);
    let mut sources = Vec::new();
    for cloud in ["aws", "gcp", "lambda"] {
        let mut text = format!("{HEADER}\n");
        for region in ["r1", "us-r2", "r3"] {
            for gpu in ["L4", "H100"] {
                let price = 1 + rng.below(3);
                text.push_str(&format!("{gpu}-vm,{gpu},1,8,32,{price},,{region},{region}-a\n"));
            }
        }
        sources.push((cloud, text));
    }
    instance.catalog =
        Catalog::from_sources(sources.iter().map(|(c, t)| (*c, "x.csv", t.as_bytes()))).unwrap();
    instance
}

#[test]
fn ties_never_lengthen_the_makespan() {
    // 20 $ either way: A100:8 at home for 2 hours, or H100:8 elsewhere for 1 hour.
    let csv = format!(
        "{HEADER}\n\
         slow,A100,8,124,1800,10,,us-east-1,\n\
         fast,H100,8,208,1800,20,,asia-northeast-1,\n"
    );
    let catalog = Catalog::from_csv("lambda", "lambda.csv", csv.as_bytes()).unwrap();
    let task = TaskNode::new(
        "train",
        vec![
            Requirement {
                duration_hours: Some(2.0),
                ..gpu("A100", 8.0)
            },
            Requirement {
                duration_hours: Some(1.0),
                ..gpu("H100", 8.0)
            },
        ],
    );
    let time = Policy {
        objective: Objective::Time,
        ..Default::default()
    };
    let plan = solve(&catalog, &one(task.clone()), &time).unwrap();
    assert_eq!(plan.tasks[0].chosen.instance_type, "fast");
    assert_eq!(plan.makespan_hours, 1.0);
    // Under the cost objective the tie goes home.
    let plan = solve(&catalog, &one(task), &Policy::default()).unwrap();
    assert_eq!(plan.tasks[0].chosen.instance_type, "slow");
    assert_eq!(plan.total_cost.to_string(), "20");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Settling ties after any algorithm leaves the total cost and the makespan as they were.
    #[test]
    fn settling_ties_never_changes_cost_or_makespan(
        seed in any::<u64>(),
        tasks in 1usize..7,
        capacity in any::<bool>(),
    ) {
        let instance = tied_instance(seed, tasks, capacity);
        let policy = Policy {
            mip_gap: 0.0,
            ..instance.policy.clone()
        };
        let problem = build_problem(&instance.catalog, &instance.graph, &policy).unwrap();
        let mut choices = Vec::new();
        choices.extend(greedy::greedy(&problem, &policy));
        if let Ok(outcome) = ilp::solve(&problem, &policy) {
            choices.push(outcome.choice);
        }
        for before in choices {
            let mut after = before.clone();
            ties::settle(&problem, &policy, &mut after);
            let (was, is) = (
                assemble(&problem, &before, &policy, SolverKind::Greedy).unwrap(),
                assemble(&problem, &after, &policy, SolverKind::Greedy).unwrap(),
            );
            prop_assert_eq!(was.total_cost, is.total_cost);
            prop_assert!(is.makespan_hours <= was.makespan_hours + 1e-9);
            super::check_invariants(&instance, &is);
        }
        // And the solvers' plans are still optimal: the same cost with the ties settled by name.
        let by_name = Policy { home: Geography::none(), ..policy.clone() };
        if let (Ok(a), Ok(b)) = (
            solve(&instance.catalog, &instance.graph, &policy),
            solve(&instance.catalog, &instance.graph, &by_name),
        ) {
            prop_assert_eq!(a.total_cost, b.total_cost);
        }
    }
}
