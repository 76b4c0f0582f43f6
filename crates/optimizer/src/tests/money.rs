//! Money in the optimizer: candidate costs, plan totals and egress bills are checked, and an
//! amount that cannot be represented is `OptimizerError::Money` naming the task and the inputs —
//! never a panic, and never a duration silently priced as one hour.

use rust_decimal::Decimal;
use skyplan_catalog::{Catalog, Offer};

use super::{egress, gpu};
use crate::{OptimizerError, Policy, Requirement, TaskGraph, TaskNode, solve, solve_greedy};

fn offer(cloud: &str, region: &str, price: Decimal) -> Offer {
    Offer {
        cloud: cloud.to_string(),
        region: region.to_string(),
        zone: None,
        instance_type: "p5.48xlarge".to_string(),
        accelerator: Some("H100".to_string()),
        accelerator_count: 8.0,
        vcpus: Some(192.0),
        memory_gib: Some(2048.0),
        accelerator_memory_mib: None,
        price: Some(price),
        spot_price: None,
    }
}

fn h100_task(name: &str, nodes: u32, hours: f64) -> TaskNode {
    TaskNode {
        num_nodes: nodes,
        duration_hours: hours,
        ..TaskNode::new(name, vec![gpu("H100", 8.0)])
    }
}

fn money_error(result: Result<crate::Plan, OptimizerError>) -> (String, String) {
    match result {
        Err(err @ OptimizerError::Money { .. }) => {
            let cause = std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default();
            (err.to_string(), cause)
        }
        other => panic!("expected a money error, got {other:?}"),
    }
}

#[test]
fn candidate_costs_that_overflow_name_the_task_and_inputs() {
    // Offers built in code skip the file bound: the costing itself is checked.
    let catalog = Catalog::from_offers(vec![offer("aws", "us-east-1", Decimal::MAX)]);
    let mut graph = TaskGraph::default();
    graph.add_task(h100_task("train", 1000, 1e27));
    let (message, cause) = money_error(solve(&catalog, &graph, &Policy::default()));
    assert_eq!(
        message,
        "task \"train\" on aws/us-east-1 p5.48xlarge: the cost cannot be computed"
    );
    assert!(
        cause.starts_with("price 7.923e28 $/h × 1000 nodes × 1e27 h is too large"),
        "{cause}"
    );
    assert!(matches!(
        solve_greedy(&catalog, &graph, &Policy::default()),
        Err(OptimizerError::Money { .. })
    ));
}

#[test]
fn durations_beyond_decimal_are_errors_not_one_hour() {
    let catalog = Catalog::from_offers(vec![offer("aws", "us-east-1", Decimal::new(9832, 2))]);
    for hours in [1e30, f64::INFINITY, f64::NAN, -1.0] {
        let mut graph = TaskGraph::default();
        graph.add_task(h100_task("train", 1, hours));
        let (_, cause) = money_error(solve(&catalog, &graph, &Policy::default()));
        assert!(cause.starts_with("price 98.32 $/h × 1 nodes × "), "{cause}");
    }
    // A requirement's own duration is checked the same way.
    let mut graph = TaskGraph::default();
    let requirement = Requirement {
        duration_hours: Some(1e30),
        ..gpu("H100", 8.0)
    };
    graph.add_task(TaskNode::new("train", vec![requirement]));
    let (_, cause) = money_error(solve(&catalog, &graph, &Policy::default()));
    assert!(cause.contains("× 1e30 h"), "{cause}");
    // Within range the cost is the product, exactly.
    let mut graph = TaskGraph::default();
    graph.add_task(h100_task("train", 1000, 1e6));
    let plan = solve(&catalog, &graph, &Policy::default()).unwrap();
    assert_eq!(
        plan.total_cost,
        Decimal::new(9832, 2) * Decimal::from(1_000_000_000u32)
    );
}

#[test]
fn plan_totals_that_overflow_are_errors() {
    // Each task's cost fits; their sum does not.
    let half = Decimal::MAX / Decimal::TWO + Decimal::ONE;
    let catalog = Catalog::from_offers(vec![offer("aws", "us-east-1", half)]);
    let mut graph = TaskGraph::default();
    graph.add_task(h100_task("a", 1, 1.0));
    graph.add_task(h100_task("b", 1, 1.0));
    let (message, cause) = money_error(solve(&catalog, &graph, &Policy::default()));
    assert_eq!(
        message,
        "the plan's compute cost (adding task \"b\"): the cost cannot be computed"
    );
    assert!(
        cause.contains(" $ + ") && cause.contains("is too large"),
        "{cause}"
    );
}

#[test]
fn egress_bills_that_overflow_name_the_edge() {
    let catalog = Catalog::from_offers(vec![
        offer("aws", "us-east-1", Decimal::ONE),
        offer("gcp", "us-east4", Decimal::ONE),
    ]);
    let on = |cloud: &str| Requirement {
        cloud: Some(cloud.to_string()),
        ..gpu("H100", 8.0)
    };
    let mut graph = TaskGraph::default();
    let prep = graph.add_task(TaskNode::new("prep", vec![on("aws")]));
    let train = graph.add_task(TaskNode::new("train", vec![on("gcp")]));
    graph.add_edge(prep, train, 1e30);
    let policy = Policy {
        egress: egress(),
        ..Default::default()
    };
    let (message, cause) = money_error(solve(&catalog, &graph, &policy));
    assert_eq!(
        message,
        "egress from task \"prep\" to task \"train\": the cost cannot be computed"
    );
    assert!(cause.starts_with("0.09 $/GB × 1e30 GB is too large"), "{cause}");
    // A representable bill is exact.
    let mut graph = TaskGraph::default();
    let prep = graph.add_task(TaskNode::new("prep", vec![on("aws")]));
    let train = graph.add_task(TaskNode::new("train", vec![on("gcp")]));
    graph.add_edge(prep, train, 100.0);
    let plan = solve(&catalog, &graph, &policy).unwrap();
    assert_eq!(plan.egress_cost, Decimal::new(9, 0));
}

#[test]
fn costs_beyond_the_solvers_range_are_refused_by_the_integer_program() {
    // 1e6 $/h × 1000 nodes × 1e6 h = 1e15 $ is the most the integer program is handed.
    let catalog = Catalog::from_offers(vec![offer("aws", "us-east-1", Decimal::from(1_000_000))]);
    let ilp = Policy {
        force_ilp: true,
        ..Policy::default()
    };
    let mut graph = TaskGraph::default();
    graph.add_task(h100_task("train", 1000, 1e6));
    let plan = solve(&catalog, &graph, &ilp).unwrap();
    assert_eq!(plan.total_cost, Decimal::from_scientific("1e15").unwrap());
    let mut graph = TaskGraph::default();
    graph.add_task(h100_task("train", 2000, 1e6));
    let (message, cause) = money_error(solve(&catalog, &graph, &ilp));
    assert_eq!(
        message,
        "task \"train\" on aws/us-east-1 p5.48xlarge: the cost cannot be computed"
    );
    assert!(
        cause.starts_with("cost 2e15 $ is too large for the integer program"),
        "{cause}"
    );
    // The exact algorithms compare `Decimal`s and have no such limit.
    assert!(solve(&catalog, &graph, &Policy::default()).is_ok());
}

#[test]
fn egress_prices_beyond_the_bound_are_located_errors() {
    let text = b"cloud,source_region,kind,usd_per_gb\naws,*,internet,1000.01\n";
    let err = crate::EgressPrices::from_csv("egress.csv", text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("egress.csv:2: column `usd_per_gb`: expected a non-negative decimal of at most 1000"),
        "{err}"
    );
    let text = b"cloud,source_region,kind,usd_per_gb\naws,*,internet,1000\n";
    assert!(crate::EgressPrices::from_csv("egress.csv", text).is_ok());
}
