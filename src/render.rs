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

/// The "considered resources" table of one planned task: one row per (cloud, accelerator,
/// market) group, cheapest first, the chosen group marked with `✔`.
pub fn considered_table(task: &skyplan_optimizer::PlannedTask) -> String {
    let mut out = table(&[
        "CLOUD",
        "INSTANCE TYPE",
        "vCPUs",
        "MEMORY",
        "ACCELERATOR",
        "REGION/ZONE",
        "$/h",
        "OPTIONS",
        "CHOSEN",
    ]);
    for group in &task.considered {
        // The chosen group shows the chosen placement; the others their cheapest.
        let placement = if group.chosen {
            &task.chosen
        } else {
            &group.cheapest
        };
        let place = match &placement.zone {
            Some(zone) => zone.clone(),
            None => placement.region.clone(),
        };
        let market = if placement.use_spot { " [spot]" } else { "" };
        out.add_row(vec![
            placement.cloud.clone(),
            format!("{}{market}", placement.instance_type),
            amount(placement.vcpus, ""),
            amount(placement.memory_gib, " GB"),
            placement.accelerator_label(),
            place,
            placement.hourly_price.to_string(),
            group.candidates.to_string(),
            if group.chosen {
                "✔".to_string()
            } else {
                String::new()
            },
        ]);
    }
    out.to_string()
}

/// A launch plan as text: the plan (see [`plan_text`]), then one line per cheaper offer on a
/// cloud that is not enabled.
pub fn launch_plan_text(plan: &skyplan_providers::LaunchPlan) -> String {
    let mut text = plan_text(&plan.plan);
    for note in &plan.notes {
        text.push_str(&format!("\nNote: {note}"));
    }
    text
}

/// The whole plan as text: per task its considered table, then the totals and the solver.
pub fn plan_text(plan: &skyplan_optimizer::Plan) -> String {
    let mut text = String::new();
    for task in &plan.tasks {
        let nodes = task.chosen.num_nodes;
        text.push_str(&format!(
            "Task {:?} ({nodes} node{}, {} h): considered resources\n{}\n",
            task.name,
            if nodes == 1 { "" } else { "s" },
            format_count(task.duration_hours),
            considered_table(task)
        ));
    }
    text.push_str(&format!(
        "Plan: {} $ total (compute {} $, egress {} $), makespan {} h; objective {}, solver {}, {:.1} ms",
        plan.total_cost,
        plan.compute_cost,
        plan.egress_cost,
        format_count(plan.makespan_hours),
        plan.objective.name(),
        serde_json::to_value(plan.solver)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        plan.solve_ms
    ));
    if let Some(gap) = plan.mip_gap {
        text.push_str(&format!(
            "; stopped at a {:.3}% gap{}",
            gap * 100.0,
            if plan.hit_time_limit { " (time limit)" } else { "" }
        ));
    }
    text
}

/// The `skyplan status` table.
pub fn status_table(report: &skyplan_providers::StatusReport) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_header([
        "NAME",
        "INFRA",
        "RESOURCES",
        "STATUS",
        "JOBS",
        "LAUNCHED",
    ]);
    for view in &report.clusters {
        let record = &view.record;
        let placement = record.placement.as_ref();
        let infra = placement
            .map(|p| {
                [Some(p.cloud.as_str()), Some(p.region.as_str()), p.zone.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        let resources = match placement {
            Some(p) if p.num_nodes > 1 => format!("{}x {}", p.num_nodes, p.instance_type),
            Some(p) => p.instance_type.clone(),
            None => "-".to_string(),
        };
        let status = match &view.live_error {
            Some(error) if view.live.is_none() => format!("{} ({error})", view.state),
            _ => view.state.to_string(),
        };
        let jobs = view
            .jobs
            .last()
            .map(|j| match j.exit_code {
                Some(code) => format!("{} {} (exit {code})", j.id, j.status),
                // Not refreshed: the provider did not show the cluster.
                None if view.live.is_none() && !j.status.is_finished() => {
                    format!("{} {} (last seen)", j.id, j.status)
                }
                None => format!("{} {}", j.id, j.status),
            })
            .unwrap_or_else(|| "-".to_string());
        let name = match (&record.pipeline, &record.task_name) {
            (Some(pipeline), Some(task)) => format!("{} ({pipeline}/{task})", record.name),
            _ => record.name.clone(),
        };
        table.add_row(vec![
            name,
            if infra.is_empty() { "-".to_string() } else { infra },
            resources,
            status,
            jobs,
            ago(record.created_at),
        ]);
    }
    let mut out = table.to_string();
    if !report.unrecorded.is_empty() {
        let names: Vec<String> = report
            .unrecorded
            .iter()
            .map(|c| format!("{} ({})", c.name, c.provider))
            .collect();
        out.push_str(&format!(
            "\n\nNot in the state store (an interrupted launch?); `skyplan down NAME` removes them: {}",
            names.join(", ")
        ));
    }
    if !report.unlisted.is_empty() {
        out.push_str("\n\n");
        out.push_str(&unlisted_text(report));
    }
    out
}

/// The providers `status` could not list, one line each with why (their clusters are unknown,
/// not absent); empty when every provider answered.
pub fn unlisted_text(report: &skyplan_providers::StatusReport) -> String {
    report
        .unlisted
        .iter()
        .map(|u| format!("{}: could not list its clusters: {}", u.provider, u.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ago(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let seconds = (now - unix).max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}
