//! The store's row types and how a row becomes one: every column is checked for the type and
//! values it must hold, and a row that holds something else becomes a [`RowProblem`] naming
//! the row and the column (the caller reports and skips it) instead of failing the whole read
//! or being read as a silent default.

use rusqlite::types::ValueRef;
use serde::Serialize;
use skyplan_optimizer::Placement;

use crate::JobState;

/// A cluster's recorded lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    /// Intent recorded; provisioning may be under way (or was interrupted).
    Init,
    /// Provisioned.
    Up,
    /// Every placement failed; nothing should exist, but `down` checks and removes the record.
    Failed,
}

impl RecordStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Init => "INIT",
            RecordStatus::Up => "UP",
            RecordStatus::Failed => "FAILED",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "INIT" => Some(RecordStatus::Init),
            "UP" => Some(RecordStatus::Up),
            "FAILED" => Some(RecordStatus::Failed),
            _ => None,
        }
    }
}

impl std::fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cluster row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRecord {
    /// Cluster name.
    pub name: String,
    /// Provider id of the current (or last tried) placement.
    pub provider: Option<String>,
    /// The current (or last tried) placement (`None` before the first attempt). A row whose
    /// stored placement cannot be read is skipped with a warning, not read as `None`.
    pub placement: Option<Placement>,
    /// Lifecycle.
    pub status: RecordStatus,
    /// Request id of the current (or last tried) provision.
    pub request_id: Option<String>,
    /// The task, redacted, as JSON.
    pub task: Option<serde_json::Value>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// The pipeline this cluster's task belongs to (several tasks), if any.
    pub pipeline: Option<String>,
    /// The task's name within its pipeline.
    pub task_name: Option<String>,
}

/// A job row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    /// Cluster name.
    pub cluster: String,
    /// Job id on the cluster.
    pub id: u64,
    /// Task name.
    pub name: String,
    /// Last known state.
    pub status: JobState,
    /// Exit code once finished.
    pub exit_code: Option<i32>,
    /// Where the provider keeps its log, if it is a file here.
    pub log_path: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, once finished.
    pub ended_at: Option<i64>,
}

impl JobRecord {
    /// A job that has just started: running, no exit code or log file yet, started now.
    pub fn running(cluster: &str, id: u64, name: &str) -> Self {
        JobRecord {
            cluster: cluster.to_string(),
            id,
            name: name.to_string(),
            status: JobState::Running,
            exit_code: None,
            log_path: None,
            started_at: crate::launcher::unix_now(),
            ended_at: None,
        }
    }
}

/// A launch attempt row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// Cluster name.
    pub cluster: String,
    /// 1-based attempt number.
    pub n: u32,
    /// Provider id.
    pub provider: String,
    /// The placement tried, as JSON.
    pub placement: serde_json::Value,
    /// `pending`, `succeeded`, `retry`, `blocked` or `stopped`.
    pub outcome: String,
    /// The error's kind, when it failed.
    pub error_kind: Option<String>,
    /// The error (redacted), when it failed.
    pub error: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

pub(super) fn job_state_str(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "PENDING",
        JobState::Running => "RUNNING",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "CANCELLED",
    }
}

fn parse_job_state(text: &str) -> Option<JobState> {
    match text {
        "PENDING" => Some(JobState::Pending),
        "RUNNING" => Some(JobState::Running),
        "SUCCEEDED" => Some(JobState::Succeeded),
        "FAILED" => Some(JobState::Failed),
        "CANCELLED" => Some(JobState::Cancelled),
        _ => None,
    }
}

/// A row that cannot be read: which row (`cluster "dev"`, `job 3 of cluster "dev"`) and what
/// is wrong with which column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RowProblem {
    /// The row, in words.
    pub row: String,
    /// The column at fault.
    pub column: &'static str,
    /// What it holds and what was expected.
    pub problem: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: column {} {}", self.row, self.column, self.problem)
    }
}

/// A column's fault, before the row it belongs to is named.
struct BadColumn {
    column: &'static str,
    problem: String,
}

type Column<T> = Result<T, BadColumn>;

/// A column's value in words, for messages.
fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(n) => format!("the integer {n}"),
        ValueRef::Real(x) => format!("the number {x}"),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let short: String = text.chars().take(40).collect();
            if short.len() < text.len() {
                format!("the text {short:?}…")
            } else {
                format!("the text {short:?}")
            }
        }
        ValueRef::Blob(bytes) => format!("a blob of {} bytes", bytes.len()),
    }
}

fn value<'r>(row: &'r rusqlite::Row<'_>, idx: usize, column: &'static str) -> Column<ValueRef<'r>> {
    row.get_ref(idx).map_err(|_| BadColumn {
        column,
        problem: "cannot be read".to_string(),
    })
}

fn bad<T>(column: &'static str, found: ValueRef<'_>, expected: &str) -> Column<T> {
    Err(BadColumn {
        column,
        problem: format!("holds {}, expected {expected}", describe(found)),
    })
}

fn opt_text(row: &rusqlite::Row<'_>, idx: usize, column: &'static str) -> Column<Option<String>> {
    match value(row, idx, column)? {
        ValueRef::Null => Ok(None),
        found @ ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(text.to_string())),
            Err(_) => bad(column, found, "UTF-8 text"),
        },
        found => bad(column, found, "text"),
    }
}

fn text(row: &rusqlite::Row<'_>, idx: usize, column: &'static str) -> Column<String> {
    match opt_text(row, idx, column)? {
        Some(text) => Ok(text),
        None => bad(column, ValueRef::Null, "text"),
    }
}

fn opt_integer(row: &rusqlite::Row<'_>, idx: usize, column: &'static str) -> Column<Option<i64>> {
    match value(row, idx, column)? {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n)),
        found => bad(column, found, "an integer"),
    }
}

fn integer(row: &rusqlite::Row<'_>, idx: usize, column: &'static str) -> Column<i64> {
    match opt_integer(row, idx, column)? {
        Some(n) => Ok(n),
        None => bad(column, ValueRef::Null, "an integer"),
    }
}

/// An integer column converted to `T` (e.g. a non-negative id), `expected` saying which.
fn ranged<T: TryFrom<i64>>(n: i64, column: &'static str, expected: &str) -> Column<T> {
    T::try_from(n).or_else(|_| bad(column, ValueRef::Integer(n), expected))
}

/// A JSON text column, parsed as `T` (`what` names it in messages).
fn opt_json<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
    column: &'static str,
    what: &str,
) -> Column<Option<T>> {
    let Some(text) = opt_text(row, idx, column)? else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).or_else(|_| {
        bad(
            column,
            ValueRef::Text(text.as_bytes()),
            &format!("{what} as JSON"),
        )
    })
}

/// The columns [`cluster_row`] reads, in order.
pub(super) const CLUSTER_COLUMNS: &str =
    "name, provider, placement, status, request_id, task, created_at, updated_at, pipeline, task_name";

/// A row of `SELECT CLUSTER_COLUMNS FROM clusters`.
pub(super) fn cluster_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ClusterRecord, RowProblem>> {
    let name = text(row, 0, "name");
    let record = |name: String| -> Column<ClusterRecord> {
        let status_text = text(row, 3, "status")?;
        let Some(status) = RecordStatus::parse(&status_text) else {
            return bad(
                "status",
                ValueRef::Text(status_text.as_bytes()),
                "INIT, UP or FAILED",
            );
        };
        Ok(ClusterRecord {
            name,
            provider: opt_text(row, 1, "provider")?,
            placement: opt_json(row, 2, "placement", "a placement")?,
            status,
            request_id: opt_text(row, 4, "request_id")?,
            task: opt_json(row, 5, "task", "a task")?,
            created_at: integer(row, 6, "created_at")?,
            updated_at: integer(row, 7, "updated_at")?,
            pipeline: opt_text(row, 8, "pipeline")?,
            task_name: opt_text(row, 9, "task_name")?,
        })
    };
    Ok(match name {
        Ok(name) => record(name.clone()).map_err(|bad| named(format!("cluster {name:?}"), bad)),
        Err(bad) => Err(named("a cluster row".to_string(), bad)),
    })
}

/// The columns [`job_row`] reads, in order.
pub(super) const JOB_COLUMNS: &str = "cluster, id, name, status, exit_code, log_path, started_at, ended_at";

/// A row of `SELECT JOB_COLUMNS FROM jobs`.
pub(super) fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<JobRecord, RowProblem>> {
    let key = || -> Column<(String, u64)> {
        let cluster = text(row, 0, "cluster")?;
        let id = ranged(integer(row, 1, "id")?, "id", "a job id (0 or more)")?;
        Ok((cluster, id))
    };
    let (cluster, id) = match key() {
        Ok(key) => key,
        Err(bad) => {
            let row_name = match text(row, 0, "cluster") {
                Ok(cluster) => format!("a job of cluster {cluster:?}"),
                Err(_) => "a job row".to_string(),
            };
            return Ok(Err(named(row_name, bad)));
        }
    };
    let record = || -> Column<JobRecord> {
        let status_text = text(row, 3, "status")?;
        let Some(status) = parse_job_state(&status_text) else {
            return bad(
                "status",
                ValueRef::Text(status_text.as_bytes()),
                "PENDING, RUNNING, SUCCEEDED or FAILED",
            );
        };
        let exit_code = opt_integer(row, 4, "exit_code")?
            .map(|n| ranged(n, "exit_code", "an exit code (a 32-bit integer)"))
            .transpose()?;
        Ok(JobRecord {
            cluster: cluster.clone(),
            id,
            name: text(row, 2, "name")?,
            status,
            exit_code,
            log_path: opt_text(row, 5, "log_path")?,
            started_at: integer(row, 6, "started_at")?,
            ended_at: opt_integer(row, 7, "ended_at")?,
        })
    };
    Ok(record().map_err(|bad| named(format!("job {id} of cluster {cluster:?}"), bad)))
}

/// The columns [`attempt_row`] reads, in order.
pub(super) const ATTEMPT_COLUMNS: &str = "cluster, n, provider, placement, outcome, error_kind, error, at";

/// A row of `SELECT ATTEMPT_COLUMNS FROM attempts`.
pub(super) fn attempt_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<AttemptRecord, RowProblem>> {
    let key = || -> Column<(String, u32)> {
        let cluster = text(row, 0, "cluster")?;
        let n = ranged(integer(row, 1, "n")?, "n", "an attempt number (0 or more)")?;
        Ok((cluster, n))
    };
    let (cluster, n) = match key() {
        Ok(key) => key,
        Err(bad) => {
            let row_name = match text(row, 0, "cluster") {
                Ok(cluster) => format!("an attempt of cluster {cluster:?}"),
                Err(_) => "an attempt row".to_string(),
            };
            return Ok(Err(named(row_name, bad)));
        }
    };
    let record = || -> Column<AttemptRecord> {
        let placement = opt_json(row, 3, "placement", "a placement")?;
        Ok(AttemptRecord {
            cluster: cluster.clone(),
            n,
            provider: text(row, 2, "provider")?,
            placement: match placement {
                Some(placement) => placement,
                None => return bad("placement", ValueRef::Null, "a placement as JSON"),
            },
            outcome: text(row, 4, "outcome")?,
            error_kind: opt_text(row, 5, "error_kind")?,
            error: opt_text(row, 6, "error")?,
            at: integer(row, 7, "at")?,
        })
    };
    Ok(record().map_err(|bad| named(format!("attempt {n} of cluster {cluster:?}"), bad)))
}

fn named(row: String, bad: BadColumn) -> RowProblem {
    RowProblem {
        row,
        column: bad.column,
        problem: bad.problem,
    }
}
