//! Data-driven tests of loading and querying, on small catalogs written inline. Each test names
//! the trap in the real data it guards against.

use rust_decimal::Decimal;

use crate::{AcceleratorFilter, Amount, Catalog, CatalogError, OfferQuery};

/// Prices at and beyond the bounds, and sums that cannot be represented.
mod money;

/// Property test: arbitrary bytes and mutated rows never panic the loader, and errors are located.
mod fuzz;

const AWS_HEADER: &str = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone";
const GCP_HEADER: &str = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice";

fn load(cloud: &str, text: &str) -> Catalog {
    Catalog::from_csv(cloud, &format!("{cloud}.csv"), text.as_bytes()).expect("fixture loads")
}

fn load_err(text: &[u8]) -> String {
    Catalog::from_csv("aws", "bad.csv", text)
        .expect_err("fixture must fail")
        .to_string()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn gcp_fixture() -> Catalog {
    load(
        "gcp",
        &format!(
            "{GCP_HEADER}\n\
             g2-standard-4,4.0,16.0,,,,us-east4,us-east4-a,0.14631,0.05851\n\
             g2-standard-8,8.0,32.0,,,,us-east4,us-east4-a,0.29262,0.11702\n\
             a3-highgpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,10.0,3.0\n\
             a3-edgegpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,9.0,2.0\n\
             n1-standard-1,1.0,3.75,,,,us-east4,us-east4-a,0.0475,0.01\n\
             n1-standard-16,16.0,60.0,,,,us-east4,us-east4-a,0.76,0.16\n\
             n1-standard-64,64.0,240.0,,,,us-east4,us-east4-a,3.04,0.64\n\
             ,,,L4,1,{{'Gpus': [{{'MemoryInfo': {{'SizeInMiB': 24576}}}}]}},us-east4,us-east4-a,0.55821,0.2233\n\
             ,,,H100,8,,us-east4,us-east4-a,70.0,\n\
             ,,,T4,1,,us-east4,us-east4-a,0.35,0.07\n\
             ,,,tpu-v5p-8,1,,us-east4,us-east4-a,4.2,2.1\n\
             ,,,tpu-v5p-8,1,,us-east4,us-east4-a,4.2,2.1\n"
        ),
    )
}

#[test]
fn gcp_offer_is_host_plus_gpus() {
    let catalog = gcp_fixture();
    let l4 = catalog.query(&OfferQuery::accelerator("L4", Some(1.0)));
    let names: Vec<&str> = l4.iter().map(|o| o.instance_type.as_str()).collect();
    assert_eq!(names, ["g2-standard-4", "g2-standard-8"]);
    assert_eq!(l4[0].price, Some(dec("0.70452")));
    assert_eq!(l4[0].spot_price, Some(dec("0.28181")));
    assert_eq!(l4[0].accelerator_memory_mib, Some(24576));
    // H100 has no spot price in that zone: the combined offer has none either.
    let h100 = catalog.query(&OfferQuery::accelerator("H100", Some(8.0)));
    assert_eq!(h100.len(), 1);
    assert_eq!((h100[0].price, h100[0].spot_price), (Some(dec("80.0")), None));
}

#[test]
fn gcp_attachable_gpus_go_on_n1_hosts_within_limits() {
    let catalog = gcp_fixture();
    let t4 = catalog.query(&OfferQuery::accelerator("T4", Some(1.0)));
    let hosts: Vec<&str> = t4.iter().map(|o| o.instance_type.as_str()).collect();
    // T4:1 attaches to hosts up to 48 vCPUs / 312 GB: n1-standard-64 is too big.
    assert_eq!(hosts, ["n1-standard-1", "n1-standard-16"]);
    assert_eq!(t4[0].price, Some(dec("0.3975")));
}

#[test]
fn gcp_cpu_only_never_lands_on_gpu_families() {
    let catalog = gcp_fixture();
    let query = OfferQuery {
        accelerator: AcceleratorFilter::None,
        ..Default::default()
    };
    let types: Vec<&str> = catalog
        .query(&query)
        .iter()
        .map(|o| o.instance_type.as_str())
        .collect();
    assert_eq!(types, ["n1-standard-1", "n1-standard-16", "n1-standard-64"]);
    // a3-edgegpu-8g carries GPUs we cannot price: left out entirely, and counted.
    assert!(
        catalog
            .offers()
            .iter()
            .all(|o| o.instance_type != "a3-edgegpu-8g")
    );
    assert_eq!(catalog.report().unpriced_gpu_hosts, 1);
}

#[test]
fn gcp_tpus_are_tpu_vms_and_exact_duplicates_collapse() {
    let catalog = gcp_fixture();
    let tpus = catalog.query(&OfferQuery::accelerator("tpu-v5p-8", None));
    assert_eq!(tpus.len(), 1, "the duplicate row collapses");
    assert_eq!(tpus[0].instance_type, "TPU-VM");
    assert_eq!(tpus[0].vcpus, None);
    assert_eq!(catalog.report().exact_duplicates, 1);
}

#[test]
fn empty_price_means_market_not_offered() {
    let catalog = load(
        "aws",
        &format!(
            "{AWS_HEADER}\n\
             p5e.48xlarge,H200,8.0,192.0,2048.0,,,14.925,ap-southeast-3,apse3-az1\n\
             p5e.48xlarge,H200,8.0,192.0,2048.0,,,,eu-north-1,eun1-az1\n\
             g6.xlarge,L4,1.0,4.0,16.0,,0.8048,,us-east-1,use1-az1\n"
        ),
    );
    let mut query = OfferQuery::accelerator("H200", Some(8.0));
    assert!(
        catalog.query(&query).is_empty(),
        "no on-demand price: not offered on demand, not free"
    );
    query.spot = true;
    let spot = catalog.query(&query);
    assert_eq!(spot.len(), 1);
    assert_eq!(spot[0].zone.as_deref(), Some("apse3-az1"));
    assert_eq!(
        catalog.report().unpriced,
        1,
        "the row with neither price is left out"
    );
    assert_eq!(
        catalog
            .offers()
            .iter()
            .filter(|o| o.instance_type == "p5e.48xlarge")
            .count(),
        1
    );
    let mut l4 = OfferQuery::accelerator("L4", Some(1.0));
    l4.spot = true;
    assert!(catalog.query(&l4).is_empty());
}

#[test]
fn conflicting_duplicates_resolve_deterministically_with_a_warning() {
    let a100 = "\"{'Gpus': [{'Name': 'A100', 'MemoryInfo': {'SizeInMiB': 81920}}]}\"";
    let a100_80 = "\"{'Gpus': [{'Name': 'A100-80GB', 'MemoryInfo': {'SizeInMiB': 81920}}]}\"";
    let rows = [
        format!("p4de.24xlarge,A100-80GB,8.0,96.0,1152.0,{a100},40.96575,7.807400,us-east-1,use1-az4"),
        format!("p4de.24xlarge,A100-80GB,8.0,96.0,1152.0,{a100_80},40.96575,,us-east-1,use1-az4"),
    ];
    // Whatever the order in the file, the self-consistent row (GpuInfo agrees) wins.
    for text in [
        format!("{AWS_HEADER}\n{}\n{}\n", rows[0], rows[1]),
        format!("{AWS_HEADER}\n{}\n{}\n", rows[1], rows[0]),
    ] {
        let catalog = load("aws", &text);
        let offers = catalog.query(&OfferQuery::accelerator("A100-80GB", Some(8.0)));
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].spot_price, None);
        assert_eq!(catalog.report().conflicts_resolved, 1);
        let warning = &catalog.report().warnings[0];
        assert!(
            warning.contains("p4de.24xlarge") && warning.contains("use1-az4"),
            "{warning}"
        );
    }
}

#[test]
fn azure_has_regions_without_zones_and_any_column_order() {
    let catalog = load(
        "azure",
        "Region,Price,SpotPrice,InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Generation,Extra\n\
         eastus,6.98,6.98,Standard_NC40ads_H100_v5,H100,1,40.0,320,H100,V2,x\n",
    );
    let offers = catalog.query(&OfferQuery::accelerator("H100", Some(1.0)));
    assert_eq!(offers[0].zone, None);
    assert_eq!(offers[0].region, "eastus");
    assert_eq!(offers[0].place(), "eastus");
}

#[test]
fn queries_filter_and_order() {
    let catalog = load(
        "aws",
        &format!(
            "{AWS_HEADER}\n\
             m6i.large,,,2.0,8.0,,0.096,0.04,us-east-1,use1-az1\n\
             m6i.xlarge,,,4.0,16.0,,0.192,0.03,us-east-1,use1-az1\n\
             m6i.2xlarge,,,8.0,32.0,,0.384,0.09,us-west-2,usw2-az1\n\
             g6.xlarge,L4,1.0,4.0,16.0,,0.8048,0.30,us-east-1,use1-az1\n"
        ),
    );
    let types = |q: &OfferQuery| {
        catalog
            .query(q)
            .iter()
            .map(|o| o.instance_type.clone())
            .collect::<Vec<_>>()
    };
    let cpu = OfferQuery {
        accelerator: AcceleratorFilter::None,
        ..Default::default()
    };
    assert_eq!(types(&cpu), ["m6i.large", "m6i.xlarge", "m6i.2xlarge"]);
    assert_eq!(
        types(&OfferQuery {
            cpus: Some(Amount::at_least(4.0)),
            ..cpu.clone()
        }),
        ["m6i.xlarge", "m6i.2xlarge"]
    );
    assert_eq!(
        types(&OfferQuery {
            cpus: Some(Amount::exactly(4.0)),
            ..cpu.clone()
        }),
        ["m6i.xlarge"]
    );
    assert_eq!(
        types(&OfferQuery {
            memory: Some("32+".parse().unwrap()),
            ..cpu.clone()
        }),
        ["m6i.2xlarge"]
    );
    assert_eq!(
        types(&OfferQuery {
            spot: true,
            ..cpu.clone()
        }),
        ["m6i.xlarge", "m6i.large", "m6i.2xlarge"]
    );
    assert_eq!(
        types(&OfferQuery {
            region: Some("us-west-2".into()),
            ..cpu.clone()
        }),
        ["m6i.2xlarge"]
    );
    assert_eq!(
        types(&OfferQuery {
            zone: Some("use1-az1".into()),
            ..cpu.clone()
        }),
        ["m6i.large", "m6i.xlarge"]
    );
    assert_eq!(
        types(&OfferQuery {
            max_price: Some(dec("0.1")),
            ..cpu.clone()
        }),
        ["m6i.large"]
    );
    assert_eq!(
        types(&OfferQuery {
            cloud: Some("AWS".into()),
            ..cpu.clone()
        })
        .len(),
        3
    );
    assert!(
        types(&OfferQuery {
            cloud: Some("gcp".into()),
            ..cpu
        })
        .is_empty()
    );
    assert_eq!(types(&OfferQuery::default()).len(), 4);
    assert_eq!(types(&OfferQuery::accelerator("L4", None)), ["g6.xlarge"]);
}

#[test]
fn resolve_accelerator_names_and_hints() {
    let catalog = gcp_fixture();
    assert_eq!(catalog.resolve_accelerator("nvidia-l4").unwrap(), "L4");
    assert_eq!(catalog.resolve_accelerator("h100").unwrap(), "H100");
    let err = catalog.resolve_accelerator("H10").unwrap_err().to_string();
    assert_eq!(err, "unknown accelerator \"H10\"; did you mean \"H100\"?");
}

#[test]
fn bad_files_give_one_clear_error_each() {
    let good_header = AWS_HEADER;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "bad.csv: the file is empty; expected a CSV header line"),
        (b"\n\n".to_vec(), "bad.csv: the file is empty"),
        (
            b"InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,SpotPrice,Region\nm6i.large,,,2,8,0.1,us-east-1\n"
                .to_vec(),
            "bad.csv:1: missing column `Price`; the header has: InstanceType,",
        ),
        (
            format!("{good_header}\nm6i.large,,,2.0,8.0,,abc,0.04,us-east-1,use1-az1\n").into_bytes(),
            "bad.csv:2: column 7 (`Price`): expected a non-negative decimal price in $/hour of at most 1000000, or an empty field, found \"abc\"",
        ),
        (
            format!("{good_header}\nm6i.large,,,2.0,8.0,,-1,0.04,us-east-1,use1-az1\n").into_bytes(),
            "bad.csv:2: column 7 (`Price`)",
        ),
        (
            format!("{good_header}\nm6i.large,,,2.0,8.0,,0.1,0.04,us-east-1,use1-az1\nm6i.xlarge,,,4.0,16.0,,0.2,us-east-1,use1-az1\n")
                .into_bytes(),
            "bad.csv:3: expected 10 fields like the header, found 9",
        ),
        (
            format!("{good_header}\nm6i.large,,,two,8.0,,0.1,0.04,us-east-1,use1-az1\n").into_bytes(),
            "bad.csv:2: column 4 (`vCPUs`): expected a non-negative number",
        ),
        (
            format!("{good_header}\ng6.xlarge,L4,x,4,16,,0.8,0.3,us-east-1,use1-az1\n").into_bytes(),
            "bad.csv:2: column 3 (`AcceleratorCount`)",
        ),
        (format!("{good_header}\nm6i.large,,,2,8,,0.1,0.04,,use1-az1\n").into_bytes(), "column 9 (`Region`): expected a region name"),
        (vec![0xff, 0xfe, 0x00, 0x01, 0x80, 0x81, b'\n', 0x00, 0x9f], "bad.csv:1: not valid UTF-8 text (is this a binary file?)"),
        (
            [format!("{good_header}\nm6i.large,,,2,8,,0.1,0.04,us-east-1,").into_bytes(), vec![0xff, b'\n']].concat(),
            "bad.csv:2: not valid UTF-8 text",
        ),
        (format!("{good_header}\nm6i.large,,,\"2,8,,0.1,0.04,us-east-1,use1\n").into_bytes(), "bad.csv:2"),
    ];
    for (text, expected) in cases {
        let err = load_err(&text);
        assert!(
            err.starts_with(expected) || err.contains(expected),
            "expected {expected:?} in {err:?}"
        );
    }
}

#[test]
fn binary_junk_never_panics() {
    // A cheap deterministic fuzz: pseudo-random bytes, and random cuts of a valid file.
    let valid = format!("{AWS_HEADER}\nm6i.large,,,2.0,8.0,,0.096,0.04,us-east-1,use1-az1\n");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 300) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = Catalog::from_csv("aws", "junk.csv", &junk);
        let cut = (next() as usize) % valid.len();
        let mut mutated = valid.as_bytes()[..cut].to_vec();
        mutated.push(next() as u8);
        mutated.extend_from_slice(&valid.as_bytes()[cut..]);
        let _ = Catalog::from_csv("gcp", "mutated.csv", &mutated);
    }
}

#[test]
fn load_dir_reads_both_layouts_and_skips_non_offer_files() {
    let dir = std::env::temp_dir().join(format!("skyplan-catalog-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lambda")).unwrap();
    std::fs::write(
        dir.join("aws.csv"),
        format!("{AWS_HEADER}\nm6i.large,,,2.0,8.0,,0.096,0.04,us-east-1,use1-az1\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("lambda/vms.csv"),
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n\
         gpu_1x_h100_pcie,H100,1.0,26.0,200.0,2.49,europe-central-1,,\n",
    )
    .unwrap();
    std::fs::write(dir.join("accelerators.csv"), "AcceleratorName,Clouds\nA10,x\n").unwrap();
    let catalog = Catalog::load_dir(&dir).unwrap();
    assert_eq!(catalog.offers().len(), 2);
    assert_eq!(
        catalog.query(&OfferQuery::accelerator("H100", Some(1.0)))[0].cloud,
        "lambda"
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        Catalog::load_dir(&empty),
        Err(CatalogError::NoCatalogFiles { .. })
    ));
    assert!(matches!(
        Catalog::load_dir(&dir.join("missing")),
        Err(CatalogError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_shape_of_an_offer() {
    let catalog = gcp_fixture();
    let offer = catalog.query(&OfferQuery::accelerator("L4", Some(1.0)))[0];
    let json = serde_json::to_value(offer).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "cloud": "gcp", "region": "us-east4", "zone": "us-east4-a", "instance_type": "g2-standard-4",
            "accelerator": "L4", "accelerator_count": 1, "vcpus": 4.0, "memory_gib": 16.0,
            "price": "0.70452", "spot_price": "0.28181"
        })
    );
}
