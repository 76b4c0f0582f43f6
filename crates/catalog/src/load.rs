//! Reading SkyPilot-format catalog CSVs: header-driven (any column order, extra columns ignored),
//! strict about values, and never panicking on any input. Produces [`Offer`]s plus a report of
//! what was collapsed, resolved or left out, and why.

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::accelerator::KNOWN_ACCELERATORS;
use crate::money::MAX_HOURLY_PRICE;
use crate::rows::{LoadReport, Row};
use crate::{CatalogError, Offer, gcp};

/// Columns every offer file must have.
const REQUIRED: [&str; 8] = [
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "Price",
    "SpotPrice",
    "Region",
];

/// (instance type, accelerator, count bits, region, zone): one shape in one place.
type RowKey = (String, Option<String>, u64, String, Option<String>);

struct Columns {
    names: Vec<String>,
    instance_type: usize,
    accelerator: usize,
    count: usize,
    vcpus: usize,
    memory: usize,
    price: usize,
    spot: usize,
    region: usize,
    zone: Option<usize>,
    gpu_info: Option<usize>,
}

/// Parses one catalog file's text into offers for `cloud`. `file` names it in errors.
pub(crate) fn parse_offers(
    file: &str,
    cloud: &str,
    bytes: &[u8],
) -> Result<(Vec<Offer>, LoadReport), CatalogError> {
    let (rows, mut report) = parse_rows(file, bytes)?;
    let offers = if cloud == "gcp" {
        gcp::combine(file, rows, &mut report)?
    } else {
        let mut offers = Vec::with_capacity(rows.len());
        for row in rows {
            if row.instance_type.is_empty() {
                report.warnings.push(format!(
                    "{file}:{}: row has no InstanceType; only GCP lists attachable accelerators this way, left out",
                    row.line
                ));
                continue;
            }
            if row.price.is_none() && row.spot_price.is_none() {
                report.unpriced += 1;
                continue;
            }
            offers.push(row.into_offer(cloud));
        }
        offers
    };
    Ok((offers, report))
}

fn parse_rows(file: &str, bytes: &[u8]) -> Result<(Vec<Row>, LoadReport), CatalogError> {
    let empty = || CatalogError::Empty {
        file: file.to_string(),
        expected: REQUIRED.join(","),
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(empty());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let csv_error = |e: csv::Error| match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => CatalogError::FieldCount {
            file: file.to_string(),
            line: pos.as_ref().map_or(0, |p| p.line()),
            expected: *expected_len as usize,
            found: *len as usize,
        },
        _ => CatalogError::Csv {
            file: file.to_string(),
            line: e.position().map_or(0, |p| p.line()),
            source: e,
        },
    };
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(empty());
    }
    let header: Vec<String> = record
        .iter()
        .map(|f| std::str::from_utf8(f).map(|s| s.trim().trim_start_matches('\u{feff}').to_string()))
        .collect::<Result<_, _>>()
        .map_err(|_| CatalogError::NotText {
            file: file.to_string(),
            line: 1,
        })?;
    let columns = Columns::from_header(file, header)?;

    let mut rows: Vec<Row> = Vec::new();
    let mut report = LoadReport::default();
    // Key: (instance type, accelerator, count, region, zone) -> index in `rows` and raw fields.
    let mut seen: HashMap<RowKey, (usize, Vec<u8>)> = HashMap::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1
            && record
                .get(0)
                .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
        {
            continue; // a blank line
        }
        report.rows += 1;
        let row = columns.row(file, line, &record)?;
        let raw: Vec<u8> = record.as_slice().to_vec();
        let key = (
            row.instance_type.clone(),
            row.accelerator.clone(),
            row.count.to_bits(),
            row.region.clone(),
            row.zone.clone(),
        );
        match seen.get(&key) {
            None => {
                seen.insert(key, (rows.len(), raw));
                rows.push(row);
            }
            Some((_, earlier_raw)) if *earlier_raw == raw => report.exact_duplicates += 1,
            Some((index, _)) => {
                report.conflicts_resolved += 1;
                let earlier = &rows[*index];
                let (keep_new, why) = prefer(earlier, &row);
                let (kept, dropped) = if keep_new {
                    (row.line, earlier.line)
                } else {
                    (earlier.line, row.line)
                };
                report.warnings.push(format!(
                    "{file}:{}: conflicting rows for {} in {}/{} (lines {} and {}); kept line {kept}, dropped line {dropped} ({why})",
                    row.line,
                    display_type(&row),
                    row.region,
                    row.zone.as_deref().unwrap_or("-"),
                    earlier.line,
                    row.line,
                ));
                if keep_new {
                    rows[*index] = row;
                }
            }
        }
    }
    Ok((rows, report))
}

fn display_type(row: &Row) -> String {
    if row.instance_type.is_empty() {
        format!("{}:{}", row.accelerator.as_deref().unwrap_or("-"), row.count)
    } else {
        row.instance_type.clone()
    }
}

/// Deterministic choice between two conflicting rows: prefer the row whose `GpuInfo` names the
/// same accelerator as its `AcceleratorName` column (self-consistent data); otherwise keep the
/// earlier row. Returns whether to keep the later row, and why.
fn prefer(earlier: &Row, later: &Row) -> (bool, &'static str) {
    let consistent = |row: &Row| match (&row.accelerator, &row.gpu_info_name) {
        (Some(acc), Some(info)) => crate::canonical_accelerator(info, &[]).as_deref() == Some(acc.as_str()),
        _ => true,
    };
    match (consistent(earlier), consistent(later)) {
        (false, true) => (true, "its GpuInfo agrees with AcceleratorName"),
        (true, false) => (false, "its GpuInfo agrees with AcceleratorName"),
        _ => (false, "first in file order"),
    }
}

impl Columns {
    fn from_header(file: &str, names: Vec<String>) -> Result<Columns, CatalogError> {
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let need = |name: &'static str| {
            find(name).ok_or_else(|| CatalogError::MissingColumn {
                file: file.to_string(),
                column: name,
                found: names.join(","),
            })
        };
        Ok(Columns {
            instance_type: need(REQUIRED[0])?,
            accelerator: need(REQUIRED[1])?,
            count: need(REQUIRED[2])?,
            vcpus: need(REQUIRED[3])?,
            memory: need(REQUIRED[4])?,
            price: need(REQUIRED[5])?,
            spot: need(REQUIRED[6])?,
            region: need(REQUIRED[7])?,
            zone: find("AvailabilityZone"),
            gpu_info: find("GpuInfo"),
            names,
        })
    }

    fn row(&self, file: &str, line: u64, record: &csv::ByteRecord) -> Result<Row, CatalogError> {
        let text = |index: usize| -> Result<&str, CatalogError> {
            let bytes = record.get(index).unwrap_or_default();
            std::str::from_utf8(bytes)
                .map(str::trim)
                .map_err(|_| CatalogError::NotText {
                    file: file.to_string(),
                    line,
                })
        };
        let invalid = |index: usize, value: &str, expected: &'static str| CatalogError::InvalidValue {
            file: file.to_string(),
            line,
            column: self.names[index].clone(),
            column_number: index + 1,
            value: value.to_string(),
            expected,
        };
        let number = |index: usize| -> Result<Option<f64>, CatalogError> {
            let value = text(index)?;
            if value.is_empty() {
                return Ok(None);
            }
            match value.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
                _ => Err(invalid(index, value, "a non-negative number or an empty field")),
            }
        };
        let price = |index: usize| -> Result<Option<Decimal>, CatalogError> {
            let value = text(index)?;
            if value.is_empty() {
                return Ok(None);
            }
            match Decimal::from_str(value).or_else(|_| Decimal::from_scientific(value)) {
                Ok(p) if !p.is_sign_negative() && p <= MAX_HOURLY_PRICE => Ok(Some(p)),
                _ => Err(invalid(
                    index,
                    value,
                    "a non-negative decimal price in $/hour of at most 1000000, or an empty field",
                )),
            }
        };
        // Everything is read (and so validated) even where a column ends up unused.
        let instance_type = text(self.instance_type)?.to_string();
        let accelerator_text = text(self.accelerator)?;
        let count = number(self.count)?;
        let vcpus = number(self.vcpus)?;
        let memory_gib = number(self.memory)?;
        let price_value = price(self.price)?;
        let spot_value = price(self.spot)?;
        let region = text(self.region)?.to_string();
        if region.is_empty() {
            return Err(invalid(self.region, "", "a region name"));
        }
        let zone = match self.zone {
            Some(index) => Some(text(index)?.to_string()).filter(|z| !z.is_empty()),
            None => None,
        };
        let (gpu_info_name, gpu_memory_mib) = match self.gpu_info {
            Some(index) => parse_gpu_info(text(index)?),
            None => (None, None),
        };
        let accelerator = if accelerator_text.is_empty() {
            None
        } else {
            Some(
                KNOWN_ACCELERATORS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(accelerator_text))
                    .map_or_else(|| accelerator_text.to_string(), |k| (*k).to_string()),
            )
        };
        let count = match (&accelerator, count) {
            (Some(_), Some(c)) if c > 0.0 => c,
            (Some(_), _) => {
                return Err(invalid(
                    self.count,
                    text(self.count)?,
                    "a positive accelerator count when AcceleratorName is set",
                ));
            }
            (None, _) => 0.0,
        };
        Ok(Row {
            line,
            instance_type,
            accelerator,
            count,
            vcpus,
            memory_gib,
            gpu_info_name,
            gpu_memory_mib,
            price: price_value,
            spot_price: spot_value,
            region,
            zone,
        })
    }
}

/// Pulls the first GPU's `Name` and `MemoryInfo.SizeInMiB` out of SkyPilot's `GpuInfo` column (a
/// Python dict literal, or on some clouds just the GPU name). Unknown shapes give `None`s.
fn parse_gpu_info(info: &str) -> (Option<String>, Option<u64>) {
    if info.is_empty() {
        return (None, None);
    }
    if !info.starts_with('{') {
        return (Some(info.to_string()), None);
    }
    let name = info
        .split_once("'Name': '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name.to_string());
    let memory = info.split_once("'SizeInMiB': ").and_then(|(_, rest)| {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    });
    (name, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_info_shapes() {
        let info = "{'Gpus': [{'Name': 'A10G', 'Manufacturer': 'NVIDIA', 'Count': 1, 'MemoryInfo': {'SizeInMiB': 22888}}], 'TotalGpuMemoryInMiB': 22888}";
        assert_eq!(parse_gpu_info(info), (Some("A10G".into()), Some(22888)));
        assert_eq!(
            parse_gpu_info("{'Gpus': [{'MemoryInfo': {'SizeInMiB': 24576}}]}"),
            (None, Some(24576))
        );
        assert_eq!(parse_gpu_info("H100"), (Some("H100".into()), None));
        assert_eq!(parse_gpu_info(""), (None, None));
        assert_eq!(parse_gpu_info("{'Name': '"), (None, None));
    }
}
