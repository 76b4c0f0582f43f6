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
    let elsewhere = request_for("aws", "eu-north-1", Some("eun1-az1"), 2);
    runtime().block_on(conformance::run_all(&fake, &factory, Some(&elsewhere)));
}

#[test]
fn fake_without_exec_or_spot_says_unsupported() {
    let fake = FakeProvider::new("aws").with_capabilities(skyplan_providers::Capabilities {
        multi_node: true,
        ..Default::default()
    });
    let factory = request_for("aws", "us-east-1", None, 2);
    let rt = runtime();
    rt.block_on(conformance::exec_keeps_to_capabilities(&fake, &factory));
    rt.block_on(conformance::capabilities_match_unsupported(&fake, &factory));
}

#[test]
fn local_provider_keeps_the_contract() {
    let home = Home::new();
    let local = home.local();
    let factory = request_for(LOCAL, LOCAL, None, 2);
    runtime().block_on(conformance::run_all(local.as_ref(), &factory, None));
    // Nothing left behind: no cluster directories, no trash.
    let leftovers: Vec<_> = std::fs::read_dir(home.path().join(LOCAL))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
