//! The embedded catalog, built from the real public snapshots in `data/`: each trap in the data is
//! handled on purpose, and the result agrees with SkyPilot and with a direct scan of the files.

use std::collections::{BTreeMap, HashSet};

use skyplan::catalog::{AcceleratorFilter, OfferQuery};

use crate::util::data_dir;

fn catalog() -> skyplan::catalog::Catalog {
    skyplan::load_catalog(None).expect("embedded catalog loads")
}

#[test]
fn cheapest_l4_matches_skypilot() {
    // SkyPilot's optimizer picks GCP g2-standard-4 in us-east4 at 0.7045 $/h on this data.
    let catalog = catalog();
    let cheapest = catalog.query(&OfferQuery::accelerator("L4", Some(1.0)))[0];
    assert_eq!(
        (
            cheapest.cloud.as_str(),
            cheapest.instance_type.as_str(),
            cheapest.region.as_str()
        ),
        ("gcp", "g2-standard-4", "us-east4")
    );
    assert_eq!(cheapest.price.unwrap().to_string(), "0.70452"); // 0.14631 (VM) + 0.55821 (L4)
}

#[test]
fn embedded_catalog_equals_loading_data_dir() {
    let embedded = catalog();
    let from_dir = skyplan::load_catalog(Some(data_dir())).unwrap();
    assert_eq!(embedded.offers(), from_dir.offers());
}

fn per_cloud(name: &str, count: f64) -> BTreeMap<String, usize> {
    let catalog = catalog();
    let mut counts = BTreeMap::new();
    for offer in catalog.query(&OfferQuery::accelerator(name, Some(count))) {
        *counts.entry(offer.cloud.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn every_place_in_the_snapshot_is_offered() {
    // Counts from an independent scan of data/*.csv (one offer per instance type and place with
    // any price; GCP: machine type rows whose GPUs have a price row in the same zone).
    let expect = |pairs: &[(&str, usize)]| {
        pairs
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(per_cloud("L4", 1.0), expect(&[("aws", 203), ("gcp", 210)]));
    assert_eq!(
        per_cloud("H100", 8.0),
        expect(&[("aws", 30), ("gcp", 21), ("lambda", 17), ("nebius", 1)])
    );
    assert_eq!(
        per_cloud("A100-80GB", 8.0),
        expect(&[
            ("aws", 10),
            ("azure", 3),
            ("gcp", 6),
            ("lambda", 17),
            ("runpod", 25)
        ])
    );
}

#[test]
fn prices_are_the_source_rows_verbatim() {
    // For every non-GCP offer, (instance type, region, zone, price, spot price) is a row of the file.
    let catalog = catalog();
    for cloud in ["aws", "azure", "lambda", "runpod", "nebius"] {
        let mut reader = csv::Reader::from_path(data_dir().join(format!("{cloud}.csv"))).unwrap();
        let headers = reader.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (it, region, zone, price, spot) = (
            col("InstanceType").unwrap(),
            col("Region").unwrap(),
            col("AvailabilityZone"),
            col("Price").unwrap(),
            col("SpotPrice").unwrap(),
        );
        let rows: HashSet<(String, String, String, String, String)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                let z = zone.map_or(String::new(), |z| r[z].to_string());
                (
                    r[it].to_string(),
                    r[region].to_string(),
                    z,
                    r[price].to_string(),
                    r[spot].to_string(),
                )
            })
            .collect();
        let offers: Vec<_> = catalog.offers().iter().filter(|o| o.cloud == cloud).collect();
        assert!(!offers.is_empty(), "{cloud}");
        for offer in offers {
            let key = (
                offer.instance_type.clone(),
                offer.region.clone(),
                offer.zone.clone().unwrap_or_default(),
                offer.price.map(|p| p.to_string()).unwrap_or_default(),
                offer.spot_price.map(|p| p.to_string()).unwrap_or_default(),
            );
            assert!(
                rows.contains(&key),
                "{cloud}: offer not verbatim in the source: {key:?}"
            );
        }
    }
}

#[test]
fn traps_in_the_real_data() {
    let catalog = catalog();
    // AWS zones are zone IDs.
    let aws = catalog.query(&OfferQuery {
        cloud: Some("aws".into()),
        ..Default::default()
    });
    assert!(
        aws.iter()
            .all(|o| o.zone.as_deref().is_some_and(|z| z.contains("-az")))
    );
    // Azure rows have regions but no zones.
    assert!(
        catalog
            .offers()
            .iter()
            .filter(|o| o.cloud == "azure")
            .all(|o| o.zone.is_none())
    );
    // p5e.48xlarge has no on-demand price anywhere: only offered on spot, where it has a price.
    let mut h200 = OfferQuery::accelerator("H200", Some(8.0));
    h200.instance_type = Some("p5e.48xlarge".into());
    assert!(catalog.query(&h200).is_empty());
    h200.spot = true;
    assert_eq!(catalog.query(&h200).len(), 4); // 3 of the 7 rows have no spot price either
    // p4de.24xlarge conflicting duplicates: resolved to one offer per zone, with warnings.
    let p4de: Vec<_> = catalog
        .offers()
        .iter()
        .filter(|o| o.instance_type == "p4de.24xlarge")
        .collect();
    let zones: HashSet<_> = p4de.iter().map(|o| o.zone.clone()).collect();
    assert_eq!(p4de.len(), zones.len());
    assert_eq!(catalog.report().conflicts_resolved, 5);
    assert_eq!(
        catalog
            .report()
            .warnings
            .iter()
            .filter(|w| w.contains("p4de.24xlarge"))
            .count(),
        5
    );
    // GCP TPU exact duplicate rows collapse.
    assert_eq!(catalog.report().exact_duplicates, 154);
    // A CPU-only request never lands on a GCP GPU machine family.
    let cpu = OfferQuery {
        accelerator: AcceleratorFilter::None,
        cloud: Some("gcp".into()),
        ..Default::default()
    };
    let cpu_offers = catalog.query(&cpu);
    assert!(!cpu_offers.is_empty());
    for offer in cpu_offers {
        assert!(
            ["a2-", "a3-", "g2-"]
                .iter()
                .all(|f| !offer.instance_type.starts_with(f)),
            "CPU-only offer on a GPU machine: {offer:?}"
        );
    }
}
