//! Tests of the `resources` parser: fields, alternatives and the errors bad input gets.

use super::*;
use crate::resources::AlternativeMode;
use crate::yaml::load_documents;

fn resources(yaml: &str) -> Result<ResourcesSpec, SpecError> {
    let docs = load_documents(yaml, "r.yaml")?;
    let node = docs.into_iter().next().unwrap_or_else(Node::null);
    parse_resources(Ctx { file: "r.yaml" }, &node, "resources")
}

#[track_caller]
fn error(yaml: &str) -> String {
    resources(yaml)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("no error for {yaml:?}"))
}

fn accel(name: &str, count: f64) -> Option<(String, f64)> {
    Some((name.to_string(), count))
}

#[test]
fn infra_forms() {
    let p = |s: &str| {
        let infra = parse_infra(s).unwrap();
        (infra.cloud, infra.region, infra.zone)
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(p("aws"), (s("aws"), None, None));
    assert_eq!(p("AWS/us-east-1"), (s("aws"), s("us-east-1"), None));
    assert_eq!(
        p("aws/us-east-1/us-east-1a"),
        (s("aws"), s("us-east-1"), s("us-east-1a"))
    );
    assert_eq!(p("gcp/*/us-central1-a"), (s("gcp"), None, s("us-central1-a")));
    assert_eq!(p("k8s"), (s("kubernetes"), None, None));
    assert_eq!(p("kubernetes"), (s("kubernetes"), None, None));
    assert_eq!(p("k8s/my-ctx"), (s("kubernetes"), s("my-ctx"), None));
    assert_eq!(
        p("k8s/arn:aws:eks:us-east-1:1:cluster/prod"),
        (s("kubernetes"), s("arn:aws:eks:us-east-1:1:cluster/prod"), None)
    );
    assert_eq!(p("*"), (None, None, None));
    assert_eq!(p("*/us-east-1"), (None, s("us-east-1"), None));
    assert!(parse_infra("").is_err());
    assert!(parse_infra("aws//x").is_err());
    assert!(parse_infra("aws/a/b/c").is_err());
    assert!(parse_infra("k8s/").is_err());
    assert_eq!(
        parse_infra("awz/us-east-1").unwrap_err().hint.as_deref(),
        Some("aws/us-east-1")
    );
}

#[test]
fn unknown_cloud_in_infra_is_located_with_hint() {
    assert_eq!(
        error("infra: awz/us-east-1\n"),
        format!(
            "r.yaml:1:8: resources.infra: expected {INFRA_EXPECTED}, found \"awz/us-east-1\"; did you mean \"aws/us-east-1\"?"
        )
    );
    assert!(error("cloud: gpc\n").ends_with("found \"gpc\"; did you mean \"gcp\"?"));
}

#[test]
fn infra_conflicts_with_cloud() {
    assert_eq!(
        error("infra: aws\ncloud: gcp\n"),
        "r.yaml:2:1: resources.cloud: cloud cannot be combined with infra; write the location once, e.g. infra: aws/us-east-1"
    );
    // Old style alone is fine.
    let spec = resources("cloud: k8s\nregion: my-ctx\n").unwrap();
    assert_eq!(spec.base.cloud.as_deref(), Some("kubernetes"));
    assert_eq!(spec.base.region.as_deref(), Some("my-ctx"));
}

#[test]
fn accelerator_forms() {
    let single = |yaml: &str| resources(yaml).unwrap().alternatives();
    for yaml in [
        "accelerators: H100:8\n",
        "accelerators: {H100: 8}\n",
        "accelerators:\n  H100: 8\n",
    ] {
        let alts = single(yaml);
        assert_eq!(alts.mode, AlternativeMode::AnyOf, "{yaml}");
        assert_eq!(alts.requests[0].accelerator, accel("H100", 8.0), "{yaml}");
    }
    assert_eq!(
        single("accelerators: H100\n").requests[0].accelerator,
        accel("H100", 1.0)
    );
    assert_eq!(single("accelerators: [L4:2]\n").mode, AlternativeMode::AnyOf);

    let set = single("accelerators: {L4, A10G:2}\n");
    assert_eq!(set.mode, AlternativeMode::AnyOf);
    let names: Vec<_> = set.requests.iter().map(|r| r.accelerator.clone()).collect();
    assert_eq!(names, vec![accel("L4", 1.0), accel("A10G", 2.0)]);

    let map = single("accelerators: {L4: 1, A10G: 2}\n");
    assert_eq!(map.mode, AlternativeMode::AnyOf);
    assert_eq!(map.requests.len(), 2);

    let list = single("accelerators: [L4:1, {A10G: 1}, T4]\n");
    assert_eq!(list.mode, AlternativeMode::Ordered);
    let names: Vec<_> = list.requests.iter().map(|r| r.accelerator.clone()).collect();
    assert_eq!(
        names,
        vec![accel("L4", 1.0), accel("A10G", 1.0), accel("T4", 1.0)]
    );
}

#[test]
fn bad_accelerators() {
    assert_eq!(
        error("accelerators: L4:x\n"),
        "r.yaml:1:15: resources.accelerators: expected NAME:COUNT with a positive number, e.g. L4:1, found \"L4:x\""
    );
    assert!(error("accelerators: L4:0\n").contains("found \"L4:0\""));
    assert!(
        error("accelerators: {L4: -1}\n")
            .starts_with("r.yaml:1:20: resources.accelerators.L4: expected a positive")
    );
    assert!(
        error("accelerators: [L4:1, 3]\n").starts_with("r.yaml:1:22: resources.accelerators[1]: expected")
    );
    assert!(error("accelerators: []\n").contains("found a list"));
    assert!(error("accelerators: 4\n").contains("found 4"));
    assert!(error("accelerators: \"{L4, A10G}\"\n").contains("found \"{L4, A10G}\""));
    assert!(error("accelerators: L4:1:2\n").contains("found \"L4:1:2\""));
}

#[test]
fn amounts() {
    let spec = resources("cpus: 4+\nmemory: 16\n").unwrap();
    assert_eq!(spec.base.cpus, Some(Amount::at_least(4.0)));
    assert_eq!(spec.base.memory, Some(Amount::exactly(16.0)));
    assert_eq!(
        resources("cpus: 0.5\n").unwrap().base.cpus,
        Some(Amount::exactly(0.5))
    );
    assert_eq!(
        error("cpus: -1\n"),
        "r.yaml:1:7: resources.cpus: expected a positive number, optionally followed by + (e.g. 4 or 4+), found -1"
    );
    assert!(error("memory: lots\n").contains("resources.memory: expected a positive number"));
    assert!(error("cpus: 0\n").contains("found 0"));
}

#[test]
fn ports() {
    let ports = |yaml: &str| resources(yaml).unwrap().base.ports.unwrap();
    assert_eq!(ports("ports: 8000\n"), vec![PortRange::single(8000)]);
    assert_eq!(
        ports("ports: \"8000-8010\"\n"),
        vec![PortRange {
            start: 8000,
            end: 8010
        }]
    );
    assert_eq!(ports("ports: [80, 443, 8000-8002, 80]\n").len(), 3);
    assert_eq!(
        error("ports: 99999\n"),
        "r.yaml:1:8: resources.ports: expected a port 1-65535, a range like 8000-8010, or a list of them, found 99999"
    );
    assert!(error("ports: [80, 0]\n").starts_with("r.yaml:1:13: resources.ports[1]: expected"));
    assert!(error("ports: 9000-8000\n").contains("first port is not above its last"));
    assert!(error("ports: 1.5\n").contains("found 1.5"));
    assert_eq!(PortRange { start: 1, end: 3 }.to_string(), "1-3");
}

#[test]
fn other_fields() {
    let spec = resources(
        "instance_type: p5.48xlarge\nuse_spot: yes\ndisk_size: 256\nimage_id: docker:ubuntu\n\
         labels: {team: ml, tier: 1}\nmax_hourly_cost: 2.5\ndisk_tier: best\nautostop: 10m\n\
         job_recovery: {strategy: failover, max_restarts_on_errors: 3}\n",
    )
    .unwrap();
    let request = &spec.alternatives().requests[0];
    assert_eq!(request.instance_type.as_deref(), Some("p5.48xlarge"));
    assert!(request.use_spot);
    assert_eq!(request.disk_size_gb, Some(256));
    assert_eq!(request.docker_image(), Some("ubuntu"));
    assert_eq!(request.labels.get("tier").map(String::as_str), Some("1"));
    assert_eq!(request.max_hourly_cost, Some(Decimal::new(25, 1)));
    assert!(
        error("use_spot: maybe\n").contains("resources.use_spot: expected true or false, found \"maybe\"")
    );
    assert!(error("disk_size: -5\n").contains("resources.disk_size: expected a positive whole number"));
    assert!(error("max_hourly_cost: -1\n").contains("resources.max_hourly_cost: expected a non-negative"));
    assert!(error("disk_tier: fast\n").contains("expected one of low, medium, high, ultra, best"));
    assert!(
        error("autostop: {idle: 3}\n")
            .contains("resources.autostop.idle: unknown key; did you mean \"idle_minutes\"?")
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        error("acclerators: L4\n"),
        "r.yaml:1:1: resources.acclerators: unknown key; did you mean \"accelerators\"?"
    );
    assert_eq!(
        error("cpus: 2\nenvs: {}\n"),
        "r.yaml:2:1: resources.envs: unknown key; did you mean \"envs (at the top level)\"?"
    );
    assert!(error("qqq: 1\n").contains("unknown key; expected one of: infra, cloud,"));
}

#[test]
fn any_of_expansion() {
    let spec = resources(
        "cpus: 8+\ninfra: aws/us-east-1\nany_of:\n  - accelerators: {L4, A10G}\n  - infra: gcp\n    accelerators: T4\n  - region: us-west-2\n",
    )
    .unwrap();
    let alts = spec.alternatives();
    assert_eq!(alts.mode, AlternativeMode::AnyOf);
    let got: Vec<_> = alts
        .requests
        .iter()
        .map(|r| (r.cloud.clone(), r.region.clone(), r.accelerator.clone(), r.cpus))
        .collect();
    let s = |v: &str| Some(v.to_string());
    let cpus = Some(Amount::at_least(8.0));
    assert_eq!(
        got,
        vec![
            (s("aws"), s("us-east-1"), accel("L4", 1.0), cpus),
            (s("aws"), s("us-east-1"), accel("A10G", 1.0), cpus),
            (s("gcp"), None, accel("T4", 1.0), cpus),
            (s("aws"), s("us-west-2"), None, cpus),
        ]
    );
}

#[test]
fn ordered_expansion() {
    let spec = resources(
        "use_spot: true\nordered:\n  - accelerators: [H100:8, A100-80GB:8]\n  - accelerators: A100:8\n    use_spot: false\n",
    )
    .unwrap();
    let alts = spec.alternatives();
    assert_eq!(alts.mode, AlternativeMode::Ordered);
    let got: Vec<_> = alts
        .requests
        .iter()
        .map(|r| (r.accelerator.clone(), r.use_spot))
        .collect();
    assert_eq!(
        got,
        vec![
            (accel("H100", 8.0), true),
            (accel("A100-80GB", 8.0), true),
            (accel("A100", 8.0), false)
        ]
    );
    // One entry is just a single request.
    assert_eq!(
        resources("ordered:\n  - cpus: 2\n").unwrap().alternatives().mode,
        AlternativeMode::AnyOf
    );
    // No resources at all: one unconstrained request.
    let empty = resources("").unwrap().alternatives();
    assert_eq!((empty.mode, empty.requests.len()), (AlternativeMode::AnyOf, 1));
}

#[test]
fn ambiguous_mixes_are_rejected() {
    assert!(
        error("any_of:\n  - cpus: 2\nordered:\n  - cpus: 4\n")
            .starts_with("r.yaml:3:1: resources.ordered: cannot be combined with any_of")
    );
    assert!(
        error("any_of:\n  - accelerators: [L4, T4]\n")
            .starts_with("r.yaml:2:19: resources.any_of[0].accelerators: an ordered accelerator list cannot be used inside any_of")
    );
    assert!(
        error("accelerators: {L4, T4}\nordered:\n  - cpus: 2\n").starts_with(
            "r.yaml:1:15: resources.accelerators: an accelerator set cannot be used inside ordered"
        )
    );
    assert!(
        error("any_of:\n  - any_of: []\n")
            .contains("resources.any_of[0].any_of: any_of and ordered cannot be nested")
    );
    assert!(error("any_of: []\n").contains("resources.any_of: expected a non-empty list"));
    assert!(error("any_of: [4]\n").contains("resources.any_of[0]: expected a mapping of resource fields"));
    // Built in code, the outer mode wins.
    let spec = ResourcesSpec {
        base: ResourceFields {
            accelerators: Some(AcceleratorSpec::AnyOf(vec![
                ("L4".into(), 1.0),
                ("T4".into(), 1.0),
            ])),
            ..ResourceFields::default()
        },
        ordered: vec![
            ResourceFields::default(),
            ResourceFields {
                cpus: Some(Amount::exactly(2.0)),
                ..ResourceFields::default()
            },
        ],
        any_of: vec![],
    };
    let alts = spec.alternatives();
    assert_eq!((alts.mode, alts.requests.len()), (AlternativeMode::Ordered, 4));
}

#[test]
fn requests_serialize() {
    let spec = resources("accelerators: L4:1\ncpus: 4+\nports: 8000\nmax_hourly_cost: 1.25\n").unwrap();
    let json = serde_json::to_value(&spec.alternatives().requests[0]).unwrap();
    assert_eq!(json["accelerator"], serde_json::json!(["L4", 1.0]));
    assert_eq!(json["cpus"], serde_json::json!("4+"));
    assert_eq!(json["ports"], serde_json::json!([{"start": 8000, "end": 8000}]));
    assert_eq!(json["max_hourly_cost"], serde_json::json!("1.25"));
}
