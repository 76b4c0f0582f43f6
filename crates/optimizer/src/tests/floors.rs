//! Per-GPU host floors: applied to GCP host + attachable GPU offers only, only when a requirement
//! leaves the host's size open, overridable, and never a reason for a task to be infeasible.

use std::sync::OnceLock;

use skyplan_catalog::{Amount, Catalog, Offer};

use super::{HEADER, gpu, one};
use crate::{HostFloor, HostFloors, Policy, Requirement, TaskNode, solve};

/// The repository's catalog (`data/`), loaded once.
pub(super) fn repo_catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        Catalog::load_dir(&dir).expect("the repository's catalog loads")
    })
}

/// GCP N1 hosts of 1 to 8 vCPUs and an attachable T4 in one zone, plus AWS's `g4dn.xlarge`.
fn attach_fixture() -> Catalog {
    let gcp = format!(
        "{HEADER}\n\
         n1-standard-1,,,1,3.75,0.0475,0.01,us-central1,us-central1-a\n\
         n1-standard-2,,,2,7.5,0.095,0.02,us-central1,us-central1-a\n\
         n1-standard-4,,,4,15,0.19,0.04,us-central1,us-central1-a\n\
         n1-standard-8,,,8,30,0.38,0.08,us-central1,us-central1-a\n\
         ,T4,1,,,0.35,0.14,us-central1,us-central1-a\n"
    );
    let aws = format!("{HEADER}\ng4dn.xlarge,T4,1,4,16,0.526,0.17,us-east-1,use1-az1\n");
    Catalog::from_sources([
        ("gcp", "gcp.csv", gcp.as_bytes()),
        ("aws", "aws.csv", aws.as_bytes()),
    ])
    .unwrap()
}

/// A Kubernetes cluster's free share of a T4 node: 2 vCPUs and 8 GiB, cheaper than any cloud.
fn small_cluster_t4() -> Offer {
    Offer {
        cloud: "kubernetes".into(),
        region: "onprem".into(),
        zone: None,
        instance_type: "2CPU--8GB--T4:1".into(),
        accelerator: Some("T4".into()),
        accelerator_count: 1.0,
        vcpus: Some(2.0),
        memory_gib: Some(8.0),
        accelerator_memory_mib: None,
        price: Some("0.1".parse().unwrap()),
        spot_price: None,
    }
}

fn chosen_type(catalog: &Catalog, requirement: Requirement, policy: &Policy) -> String {
    let plan = solve(catalog, &one(TaskNode::new("t", vec![requirement])), policy).unwrap();
    plan.tasks[0].chosen.instance_type.clone()
}

#[test]
fn v100_and_t4_without_a_host_size_get_a_sized_host_on_the_real_catalog() {
    let catalog = repo_catalog();
    let plan = solve(
        catalog,
        &one(TaskNode::new("train", vec![gpu("V100", 1.0)])),
        &Policy::default(),
    )
    .unwrap();
    let chosen = &plan.tasks[0].chosen;
    assert!(
        chosen.vcpus.unwrap() >= 8.0 && chosen.memory_gib.unwrap() >= 30.0,
        "{chosen:?}"
    );
    // GCP n1-standard-8 + V100 (0.38 + 2.48) stays cheaper than AWS p3.2xlarge (3.06).
    assert_eq!(
        (chosen.cloud.as_str(), chosen.instance_type.as_str()),
        ("gcp", "n1-standard-8")
    );
    assert_eq!(plan.total_cost.to_string(), "2.86");
    assert!(
        plan.tasks[0]
            .alternatives
            .iter()
            .all(|a| a.vcpus.unwrap_or(8.0) >= 8.0),
        "no 1-vCPU host among the failover alternatives either"
    );
    let t4 = solve(
        catalog,
        &one(TaskNode::new("infer", vec![gpu("T4", 1.0)])),
        &Policy::default(),
    )
    .unwrap();
    assert!(
        t4.tasks[0].chosen.vcpus.unwrap() >= 4.0,
        "{:?}",
        t4.tasks[0].chosen
    );
    // Turned off, the cheapest host is the 1-vCPU n1-standard-1 (the behaviour before floors).
    let off = Policy {
        host_floors: HostFloors::off(),
        ..Default::default()
    };
    assert_eq!(chosen_type(catalog, gpu("V100", 1.0), &off), "n1-standard-1");
}

#[test]
fn floors_apply_only_where_the_host_is_a_choice() {
    let catalog = attach_fixture();
    let policy = Policy::default();
    // T4 floor 4 vCPU / 15 GiB: n1-standard-4 + T4 (0.54) loses to g4dn.xlarge (0.526), whose
    // fixed shape is never floored.
    assert_eq!(chosen_type(&catalog, gpu("T4", 1.0), &policy), "g4dn.xlarge");
    let gcp_only = Requirement {
        cloud: Some("gcp".into()),
        ..gpu("T4", 1.0)
    };
    assert_eq!(chosen_type(&catalog, gcp_only.clone(), &policy), "n1-standard-4");
    // A live cluster's share is a fixed shape too: smaller than the floor, still usable.
    let mut with_cluster = attach_fixture();
    with_cluster.extend([small_cluster_t4()]);
    assert_eq!(
        chosen_type(&with_cluster, gpu("T4", 1.0), &policy),
        "2CPU--8GB--T4:1"
    );
    // A requirement that sizes its host (cpus, memory or an instance type) gets no floor.
    for sized in [
        Requirement {
            cpus: Some(Amount::at_least(1.0)),
            ..gcp_only.clone()
        },
        Requirement {
            memory: Some(Amount::at_least(2.0)),
            ..gcp_only.clone()
        },
        Requirement {
            instance_type: Some("n1-standard-1".into()),
            ..gcp_only.clone()
        },
    ] {
        assert_eq!(chosen_type(&catalog, sized, &policy), "n1-standard-1");
    }
}

#[test]
fn floors_are_overridable_and_never_make_a_task_infeasible() {
    let catalog = attach_fixture();
    let gcp_only = Requirement {
        cloud: Some("gcp".into()),
        ..gpu("T4", 1.0)
    };
    let mut two_vcpus = HostFloors::default();
    two_vcpus
        .per_accelerator
        .insert("T4".into(), HostFloor::standard(2.0));
    let custom = Policy {
        host_floors: two_vcpus,
        ..Default::default()
    };
    assert_eq!(chosen_type(&catalog, gcp_only.clone(), &custom), "n1-standard-2");
    // A price cap below every sized host: the requirement is solved without the floor.
    let capped = Requirement {
        max_hourly_cost: Some("0.5".parse().unwrap()),
        ..gcp_only
    };
    assert_eq!(chosen_type(&catalog, capped, &Policy::default()), "n1-standard-1");
    // The floor scales with the count and leaves fixed GPU machine types alone.
    let floors = HostFloors::default();
    assert_eq!(floors.floor_for("V100", 4.0), Some((32.0, 120.0)));
    let g2 = Offer {
        cloud: "gcp".into(),
        instance_type: "g2-standard-4".into(),
        accelerator: Some("L4".into()),
        vcpus: Some(1.0),
        ..small_cluster_t4()
    };
    assert!(floors.admits(&g2) && !HostFloors::host_is_chosen(&g2));
}
