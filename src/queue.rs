//! A cluster's job queue as `skyplan queue` shows it: each recorded job with its live state.
//!
//! ```
//! use skyplan::queue::format_duration;
//! assert_eq!(format_duration(65), "1m 5s");
//! assert_eq!(format_duration(7260), "2h 1m");
//! ```

use serde::Serialize;
use skyplan_providers::{ClusterView, JobState};

/// One job of a cluster's queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueJob {
    /// Job id on the cluster.
    pub id: u64,
    /// Task name.
    pub name: String,
    /// When it was submitted (unix seconds).
    pub submitted_at: i64,
    /// When it started running, where the provider says.
    pub started_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Seconds it ran (until now while it runs), where its start is known.
    pub duration_s: Option<i64>,
    /// Its state: live when the provider answered, else as last recorded.
    pub status: JobState,
    /// Its exit code once ended.
    pub exit_code: Option<i32>,
}

/// One cluster's queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Queue {
    /// Cluster name.
    pub cluster: String,
    /// The cluster's state as `status` shows it.
    pub state: String,
    /// Why the jobs' states are as last recorded (the provider did not answer).
    pub stale: Option<String>,
    /// Jobs, oldest first.
    pub jobs: Vec<QueueJob>,
}

/// The queue of `view`, at unix time `now`.
pub fn queue(view: &ClusterView, now: i64) -> Queue {
    let jobs = view
        .jobs
        .iter()
        .map(|record| {
            let live = view.live.as_ref().and_then(|l| l.job(record.id));
            let status = live.map_or(record.status, |j| j.state);
            let started_at = live.and_then(|j| j.started_at);
            let ended_at = live.and_then(|j| j.ended_at).or(record.ended_at);
            let duration_s = started_at.map(|start| {
                let end = if status.is_finished() {
                    ended_at.unwrap_or(now)
                } else {
                    now
                };
                end.saturating_sub(start).max(0)
            });
            QueueJob {
                id: record.id,
                name: record.name.clone(),
                submitted_at: record.started_at,
                started_at,
                ended_at,
                duration_s,
                status,
                exit_code: live.map_or(record.exit_code, |j| j.exit_code),
            }
        })
        .collect();
    Queue {
        cluster: view.record.name.clone(),
        state: view.state.to_string(),
        stale: if view.live.is_none() {
            view.live_error.clone()
        } else {
            None
        },
        jobs,
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `65` → `1m 5s`: the two largest units.
pub fn format_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// The queue as a table (ID first), with a line naming the cluster and, when the provider did
/// not answer, why the states are as last recorded.
pub fn queue_table(queue: &Queue, now: i64) -> String {
    let mut out = format!("Cluster {} ({})", queue.cluster, queue.state);
    if let Some(why) = &queue.stale {
        out.push_str(&format!("; job states as last recorded: {why}"));
    }
    if queue.jobs.is_empty() {
        out.push_str("\nNo jobs.");
        return out;
    }
    let ago = |unix: i64| format!("{} ago", format_duration(now - unix));
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING).set_header([
        "ID",
        "NAME",
        "SUBMITTED",
        "STARTED",
        "DURATION",
        "STATUS",
        "EXIT",
    ]);
    for job in &queue.jobs {
        table.add_row(vec![
            job.id.to_string(),
            job.name.clone(),
            ago(job.submitted_at),
            job.started_at.map_or("-".to_string(), ago),
            job.duration_s.map_or("-".to_string(), format_duration),
            job.status.to_string(),
            job.exit_code.map_or("-".to_string(), |c| c.to_string()),
        ]);
    }
    out.push('\n');
    out.push_str(&table.to_string());
    out
}
