//! The loader on hostile input, as a property: arbitrary bytes, and valid AWS and GCP files with
//! one field replaced by arbitrary text or an extreme number (prices near `Decimal::MAX`, `NaN`,
//! `1e400`, ...) or one byte inserted. Loading never panics; every error names the file and a
//! line (`FILE:LINE: ...`, line ≥ 1), except the one for an empty file, which has no line; every
//! loaded price is within the bound (GCP sums at most twice it).

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{AWS_HEADER, GCP_HEADER};
use crate::Catalog;
use crate::money::MAX_HOURLY_PRICE;

fn valid_aws() -> String {
    format!(
        "{AWS_HEADER}\n\
         m6i.large,,,2.0,8.0,,0.096,0.04,us-east-1,use1-az1\n\
         g6.xlarge,L4,1,4,16,,0.8048,0.3,us-east-1,use1-az1\n\
         p5.48xlarge,H100,8,192,2048,,98.32,,us-east-1,use1-az2\n"
    )
}

fn valid_gcp() -> String {
    format!(
        "{GCP_HEADER}\n\
         a3-highgpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,10.0,3.0\n\
         n1-standard-16,16.0,60.0,,,,us-east4,us-east4-a,0.76,0.16\n\
         ,,,H100,8,,us-east4,us-east4-a,70.0,\n\
         ,,,T4,1,,us-east4,us-east4-a,0.35,0.07\n"
    )
}

/// Field text that is hard on a parser: extremes of `Decimal` and `f64`, signs, exponents.
fn hostile_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("79228162514264337593543950335".to_string()),
        Just("79228162514264337593543950336".to_string()),
        Just("7.9e28".to_string()),
        Just("4e28".to_string()),
        Just("1e28".to_string()),
        Just("1000000".to_string()),
        Just("1000000.0000000000000000000001".to_string()),
        Just("0.0000000000000000000000000001".to_string()),
        Just("-0".to_string()),
        Just("1e400".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("\"".to_string()),
        Just(String::new()),
        "[0-9eE.+-]{0,32}",
        ".{0,16}",
    ]
}

/// Checks one load's outcome against the properties in the module docs.
fn check(file: &str, result: Result<Catalog, crate::CatalogError>) -> Result<(), TestCaseError> {
    match result {
        Ok(catalog) => {
            let bound = MAX_HOURLY_PRICE * Decimal::TWO;
            for offer in catalog.offers() {
                for price in [offer.price, offer.spot_price].into_iter().flatten() {
                    prop_assert!(price <= bound, "price {price} beyond the bound");
                }
            }
        }
        Err(err) => {
            let text = err.to_string();
            if text.starts_with(&format!("{file}: the file is empty")) {
                return Ok(());
            }
            let rest = text.strip_prefix(&format!("{file}:"));
            let line = rest.and_then(|r| r.split_once(':')).map(|(n, _)| n);
            let number = line.and_then(|n| n.parse::<u64>().ok());
            prop_assert!(
                number.is_some_and(|n| n >= 1),
                "error without FILE:LINE: {text:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), gcp in any::<bool>()) {
        let cloud = if gcp { "gcp" } else { "aws" };
        check("junk.csv", Catalog::from_csv(cloud, "junk.csv", &bytes))?;
    }

    #[test]
    fn mutated_rows_never_panic_and_errors_are_located(
        gcp in any::<bool>(),
        line in 1usize..5,
        field in 0usize..10,
        value in hostile_field(),
        insert in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let (cloud, text) = if gcp { ("gcp", valid_gcp()) } else { ("aws", valid_aws()) };
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let line = line.min(lines.len() - 1);
        let mut fields: Vec<String> = lines[line].split(',').map(str::to_string).collect();
        let field = field % fields.len();
        fields[field] = value;
        lines[line] = fields.join(",");
        let mut bytes = (lines.join("\n") + "\n").into_bytes();
        if let Some((at, byte)) = insert {
            bytes.insert(at.index(bytes.len() + 1), byte);
        }
        check("mutated.csv", Catalog::from_csv(cloud, "mutated.csv", &bytes))?;
    }
}
