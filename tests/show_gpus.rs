//! `skyplan show-gpus` end to end: output shapes and errors.

use crate::util::{skyplan, temp_dir};

#[test]
fn json_lists_offers_cheapest_first() {
    let run = skyplan(&["show-gpus", "L4:1", "--json"]).success();
    let offers = run.json();
    let offers = offers.as_array().unwrap();
    assert_eq!(offers.len(), 413);
    let first = &offers[0];
    for field in [
        "cloud",
        "region",
        "zone",
        "instance_type",
        "accelerator",
        "accelerator_count",
        "vcpus",
        "memory_gib",
        "price",
        "spot_price",
    ] {
        assert!(first.get(field).is_some(), "missing {field}");
    }
    assert_eq!(first["price"], "0.70452");
    assert_eq!(first["accelerator_count"], 1);
    let prices: Vec<rust_decimal::Decimal> = offers
        .iter()
        .map(|o| o["price"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "not cheapest first");
}

#[test]
fn spot_filter_orders_by_spot_price() {
    let run = skyplan(&["show-gpus", "H100:8", "--spot", "--json"]).success();
    let offers = run.json();
    let prices: Vec<rust_decimal::Decimal> = offers
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["spot_price"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(!prices.is_empty());
    assert!(prices.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn summary_table_and_filters() {
    let run = skyplan(&["show-gpus"]).success();
    assert!(run.stdout.starts_with(" ACCELERATOR"), "{}", run.stdout);
    assert!(
        run.stdout.contains("0.70452 (L4:1 gcp us-east4)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("tpu-"));
    assert!(
        skyplan(&["show-gpus", "--all"])
            .success()
            .stdout
            .contains("tpu-v5p-8")
    );
    let aws = skyplan(&[
        "show-gpus",
        "nvidia-l4:1",
        "--cloud",
        "aws",
        "--region",
        "us-east-1",
    ])
    .success();
    assert!(
        aws.stdout
            .lines()
            .skip(1)
            .all(|l| l.contains(" aws ") && l.contains("us-east-1")),
        "{}",
        aws.stdout
    );
    // Zones of a region fold into one row unless --all.
    let folded = aws.stdout.lines().count();
    let every = skyplan(&[
        "show-gpus",
        "L4:1",
        "--cloud",
        "aws",
        "--region",
        "us-east-1",
        "--all",
    ])
    .success();
    assert!(every.stdout.lines().count() > folded);
}

#[test]
fn bad_requests_fail_clearly() {
    let run = skyplan(&["show-gpus", "L4:x"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("invalid accelerator request \"L4:x\""),
        "{}",
        run.stderr
    );
    let run = skyplan(&["show-gpus", "H10"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("did you mean \"H100\"?"), "{}", run.stderr);
    let run = skyplan(&["show-gpus", "--cloud", "nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("expected one of: aws, azure, gcp"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_catalog_dirs_fail_with_file_and_line() {
    let header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region";
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "missing column",
            b"InstanceType,Price\nm6i.large,0.1\n".to_vec(),
            "aws.csv:1: missing column `AcceleratorName`",
        ),
        (
            "non-numeric price",
            format!("{header}\nm6i.large,,,2,8,cheap,,us-east-1\n").into_bytes(),
            "aws.csv:2: column 6 (`Price`)",
        ),
        (
            "wrong field count",
            format!("{header}\nm6i.large,,,2,8,0.1\n").into_bytes(),
            "aws.csv:2: expected 8 fields like the header, found 6",
        ),
        ("empty file", Vec::new(), "aws.csv: the file is empty"),
        (
            "binary junk",
            vec![0x7f, 0x45, 0x4c, 0x46, 0xff, 0x00, 0xc3, 0x28, b'\n', 0x01],
            "aws.csv:1: not valid UTF-8",
        ),
    ];
    for (what, contents, expected) in cases {
        let dir = temp_dir("bad-catalog");
        std::fs::write(dir.join("aws.csv"), contents).unwrap();
        let run = skyplan(&["--catalog-dir", dir.to_str().unwrap(), "show-gpus"]);
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{what}: expected {expected:?} in {:?}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{what}");
    }
    let empty = temp_dir("empty-catalog");
    let run = skyplan(&["show-gpus", "--catalog-dir", empty.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no catalog CSV files found"),
        "{}",
        run.stderr
    );
}
