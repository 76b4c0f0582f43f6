//! Human-readable renderings of catalog data (the tables `skyplan show-gpus` prints). Pure
//! functions from data to `String`, so tests can snapshot them.

use std::collections::BTreeMap;

use comfy_table::{Table, presets};
use skyplan_catalog::{AcceleratorSummary, Offer, format_count};

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.iter().copied());
    table
}

fn money(price: Option<rust_decimal::Decimal>) -> String {
    price.map_or_else(|| "-".to_string(), |p| p.to_string())
}

fn amount(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{}{unit}", format_count(v)))
}

/// One row per accelerator: counts on offer, clouds, cheapest on-demand and spot offers.
pub fn accelerator_summary_table(summaries: &[AcceleratorSummary<'_>]) -> String {
    let mut out = table(&[
        "ACCELERATOR",
        "COUNTS",
        "CLOUDS",
        "CHEAPEST $/h",
        "CHEAPEST SPOT $/h",
    ]);
    let cheapest = |offer: Option<&Offer>, spot: bool| match offer {
        Some(o) => format!(
            "{} ({} {} {})",
            money(o.price_for(spot)),
            o.accelerator_label(),
            o.cloud,
            o.region
        ),
        None => "-".to_string(),
    };
    for s in summaries {
        let counts: Vec<String> = s.counts.iter().map(|c| format_count(*c)).collect();
        out.add_row(vec![
            s.name.clone(),
            counts.join(", "),
            s.clouds.join(", "),
            cheapest(s.cheapest, false),
            cheapest(s.cheapest_spot, true),
        ]);
    }
    out.to_string()
}

/// Offers, in the order given. With `every_zone` false, offers that differ only by zone are
/// folded into their cheapest zone with a `(+N)` count.
pub fn offers_table(offers: &[&Offer], every_zone: bool) -> String {
    let mut rows: Vec<(&Offer, usize)> = Vec::new();
    if every_zone {
        rows = offers.iter().map(|o| (*o, 0)).collect();
    } else {
        let mut seen: BTreeMap<(&str, &str, &str, String), usize> = BTreeMap::new();
        for offer in offers {
            let key = (
                offer.cloud.as_str(),
                offer.instance_type.as_str(),
                offer.region.as_str(),
                offer.accelerator_label(),
            );
            match seen.get(&key) {
                Some(&row) => rows[row].1 += 1,
                None => {
                    seen.insert(key, rows.len());
                    rows.push((offer, 0));
                }
            }
        }
    }
    let mut out = table(&[
        "CLOUD",
        "INSTANCE TYPE",
        "ACCELERATOR",
        "vCPUs",
        "MEMORY",
        "REGION",
        "ZONE",
        "$/h",
        "SPOT $/h",
    ]);
    for (offer, more_zones) in rows {
        let zone = match (&offer.zone, more_zones) {
            (Some(z), 0) => z.clone(),
            (Some(z), n) => format!("{z} (+{n})"),
            (None, _) => "-".to_string(),
        };
        out.add_row(vec![
            offer.cloud.clone(),
            offer.instance_type.clone(),
            offer.accelerator_label(),
            amount(offer.vcpus, ""),
            amount(offer.memory_gib, " GB"),
            offer.region.clone(),
            zone,
            money(offer.price),
            money(offer.spot_price),
        ]);
    }
    out.to_string()
}
