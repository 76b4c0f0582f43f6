//! The shared contract (`skyplan_providers::conformance`) against every backend built here.

use skyplan_providers::fake::{FakeProvider, placement};
use skyplan_providers::{LOCAL, ProvisionRequest, TaskRun, conformance};

use crate::util::{Home, runtime};

fn request_for(
    cloud: &str,
    region: &str,
    zone: Option<&str>,
    nodes: u32,
) -> impl Fn(&str) -> ProvisionRequest {
    let mut placement = placement(cloud, region, zone, "test-shape");
    placement.num_nodes = nodes;
    move |cluster: &str| ProvisionRequest {
        request_id: String::new(),
        cluster: cluster.to_string(),
        placement: placement.clone(),
        task: TaskRun {
            num_nodes: nodes,
            ..TaskRun::default()
        },
    }
}

#[test]
fn fake_provider_keeps_the_contract() {
    let fake = FakeProvider::new("aws");
    let factory = request_for("aws", "us-east-1", Some("use1-az1"), 2);
    runtime().block_on(conformance::run_all(&fake, &factory));
}

#[test]
fn local_provider_keeps_the_contract() {
    let home = Home::new();
    let local = home.local();
    let factory = request_for(LOCAL, LOCAL, None, 2);
    runtime().block_on(conformance::run_all(local.as_ref(), &factory));
    // Nothing left behind: no cluster directories, no trash.
    let leftovers: Vec<_> = std::fs::read_dir(home.path().join(LOCAL))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
