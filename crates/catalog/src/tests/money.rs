//! Money at the edges of the catalog: prices beyond `MAX_HOURLY_PRICE` are located errors in
//! catalog files and overlays, and GCP's host + GPU sums are checked.

use rust_decimal::Decimal;

use super::{AWS_HEADER, GCP_HEADER, load, load_err};
use crate::rows::{LoadReport, Row};
use crate::{Catalog, CatalogError, parse_spot_overlay};

#[test]
fn prices_up_to_the_bound_load_and_beyond_it_are_located_errors() {
    let row = |price: &str| format!("{AWS_HEADER}\nm6i.large,,,2.0,8.0,,{price},,us-east-1,use1-az1\n");
    let catalog = load("aws", &row("1000000"));
    assert_eq!(catalog.offers()[0].price, Some(Decimal::from(1_000_000)));
    for price in [
        "1000000.01",
        "1e28",
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "7.9e28",
    ] {
        let err = load_err(row(price).as_bytes());
        assert_eq!(
            err,
            format!(
                "bad.csv:2: column 7 (`Price`): expected a non-negative decimal price in $/hour of at most 1000000, or an empty field, found {price:?}"
            )
        );
    }
    // The spot column too.
    let spot = format!("{AWS_HEADER}\nm6i.large,,,2.0,8.0,,0.1,4e28,us-east-1,use1-az1\n");
    assert!(load_err(spot.as_bytes()).starts_with("bad.csv:2: column 8 (`SpotPrice`)"));
}

#[test]
fn gcp_host_and_gpu_prices_beyond_the_bound_are_errors_not_an_overflow() {
    let text = format!(
        "{GCP_HEADER}\n\
         a3-highgpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,4e28,\n\
         ,,,H100,8,,us-east4,us-east4-a,4e28,\n"
    );
    let err = Catalog::from_csv("gcp", "gcp.csv", text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("gcp.csv:2: column 9 (`Price`)"), "{err}");
}

fn row(line: u64, instance_type: &str, accelerator: Option<&str>, count: f64, price: Decimal) -> Row {
    Row {
        line,
        instance_type: instance_type.to_string(),
        accelerator: accelerator.map(str::to_string),
        count,
        vcpus: Some(208.0),
        memory_gib: Some(1872.0),
        gpu_info_name: None,
        gpu_memory_mib: None,
        price: Some(price),
        spot_price: None,
        region: "us-east4".to_string(),
        zone: None,
    }
}

#[test]
fn gcp_sums_that_overflow_name_both_rows() {
    // Rows as a library caller could build them, past the file bound: the sum is checked.
    let big = Decimal::from_scientific("4e28").unwrap();
    let rows = vec![
        row(2, "a3-highgpu-8g", None, 0.0, big),
        row(3, "", Some("H100"), 8.0, big),
    ];
    let err = crate::gcp::combine("gcp.csv", rows, &mut LoadReport::default()).unwrap_err();
    assert!(matches!(err, CatalogError::Money { line: 2, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "gcp.csv:2: the prices of host line 2 and GPU line 3 cannot be combined"
    );
    let cause = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(cause.starts_with("4e28 $ + 4e28 $ is too large"), "{cause}");
    // Within range the same rows combine.
    let small = Decimal::new(5, 0);
    let rows = vec![
        row(2, "a3-highgpu-8g", None, 0.0, small),
        row(3, "", Some("H100"), 8.0, small),
    ];
    let offers = crate::gcp::combine("gcp.csv", rows, &mut LoadReport::default()).unwrap();
    assert_eq!(offers[0].price, Some(Decimal::new(10, 0)));
}

#[test]
fn overlay_prices_beyond_the_bound_are_located_errors() {
    let header = crate::SPOT_OVERLAY_HEADER.join(",");
    let text = format!("{header}\naws,us-east-1,,p5.48xlarge,1e28,2026-01-01T00:00:00Z\n");
    let err = parse_spot_overlay("spot.csv", text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("spot.csv:2: column 5"), "{err}");
    assert!(err.contains("at most 1000000"), "{err}");
    let text = format!("{header}\naws,us-east-1,,p5.48xlarge,1000000,2026-01-01T00:00:00Z\n");
    assert_eq!(parse_spot_overlay("spot.csv", text.as_bytes()).unwrap().len(), 1);
}
