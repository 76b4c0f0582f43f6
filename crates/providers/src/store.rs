//! The state store: clusters (placement, status), jobs and launch attempts in SQLite at
//! `$SKYPLAN_HOME/state.db`.
//!
//! Safe under concurrent CLI invocations: WAL mode, a busy timeout, and short transactions
//! (`BEGIN IMMEDIATE` where a read decides a write). The schema is versioned with
//! `PRAGMA user_version`. Secrets never reach it: tasks are stored in their redacted
//! serialization only.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use skyplan_optimizer::Placement;

use crate::{JobState, ProviderError, TaskRun};

/// The schema version this code writes.
const SCHEMA_VERSION: i32 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS clusters (
    name        TEXT PRIMARY KEY,
    provider    TEXT,
    placement   TEXT,
    status      TEXT NOT NULL,
    request_id  TEXT,
    task        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    cluster     TEXT NOT NULL,
    id          INTEGER NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    log_path    TEXT,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    PRIMARY KEY (cluster, id)
);
CREATE TABLE IF NOT EXISTS attempts (
    cluster     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    provider    TEXT NOT NULL,
    placement   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error_kind  TEXT,
    error       TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (cluster, n)
);
";

/// Version 2: clusters know the pipeline and task they run (a pipeline's tasks each have a
/// cluster).
const SCHEMA_V2: &str = "
ALTER TABLE clusters ADD COLUMN pipeline TEXT;
ALTER TABLE clusters ADD COLUMN task_name TEXT;
";

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
    fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Init => "INIT",
            RecordStatus::Up => "UP",
            RecordStatus::Failed => "FAILED",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "UP" => RecordStatus::Up,
            "FAILED" => RecordStatus::Failed,
            _ => RecordStatus::Init,
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
    /// The current (or last tried) placement (`None` before the first attempt, or when the
    /// stored one cannot be read).
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

/// The SQLite state store. Cheap to share (`Arc`); each call is one short transaction.
///
/// ```
/// use skyplan_providers::{RecordStatus, StateStore};
/// let home = std::env::temp_dir().join(format!("skyplan-store-doc-{}", std::process::id()));
/// let store = StateStore::open(&home).unwrap();
/// assert!(store.try_begin_launch("dev", "req-1", None).unwrap().is_none());
/// // A second launch of the same name sees the first one's record.
/// let existing = store.try_begin_launch("dev", "req-2", None).unwrap().unwrap();
/// assert_eq!(existing.status, RecordStatus::Init);
/// assert!(store.remove_cluster("dev").unwrap());
/// # let _ = std::fs::remove_dir_all(home);
/// ```
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs `op` again while SQLite answers "busy" for a lock its busy handler does not wait for,
/// for up to 10 seconds.
fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let start = std::time::Instant::now();
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if matches!(
                    err.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && start.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(..20)));
            }
            other => return other,
        }
    }
}

fn db_error(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ProviderError {
    let context = context.into();
    move |err| ProviderError::state(context, err)
}

fn to_json(value: &impl Serialize, what: &str) -> Result<String, ProviderError> {
    serde_json::to_string(value).map_err(|err| ProviderError::state(format!("serializing {what}"), err))
}

fn from_json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn job_state_str(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "PENDING",
        JobState::Running => "RUNNING",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed => "FAILED",
    }
}

fn parse_job_state(text: &str) -> JobState {
    match text {
        "PENDING" => JobState::Pending,
        "RUNNING" => JobState::Running,
        "SUCCEEDED" => JobState::Succeeded,
        _ => JobState::Failed,
    }
}

const CLUSTER_COLUMNS: &str =
    "name, provider, placement, status, request_id, task, created_at, updated_at, pipeline, task_name";

fn cluster_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClusterRecord> {
    Ok(ClusterRecord {
        name: row.get(0)?,
        provider: row.get(1)?,
        placement: row
            .get::<_, Option<String>>(2)?
            .and_then(|text| serde_json::from_str(&text).ok()),
        status: RecordStatus::parse(&row.get::<_, String>(3)?),
        request_id: row.get(4)?,
        task: from_json(row.get(5)?),
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        pipeline: row.get(8)?,
        task_name: row.get(9)?,
    })
}

impl StateStore {
    /// Opens (creating if needed) `home/state.db`, in WAL mode, migrating the schema.
    pub fn open(home: &Path) -> Result<Self, ProviderError> {
        std::fs::create_dir_all(home)
            .map_err(|err| ProviderError::io(format!("creating {}", home.display()), err))?;
        let path = home.join("state.db");
        let opened = format!("opening {}", path.display());
        let connection = Connection::open(&path).map_err(db_error(&opened))?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(db_error(&opened))?;
        // Switching to WAL needs a moment of exclusivity that SQLite's busy handler does not
        // wait for (two first opens at once get SQLITE_BUSY), so retry briefly. The mode is
        // persistent: later opens find it set and skip the switch.
        retry_busy(|| {
            let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                connection.pragma_update(None, "journal_mode", "WAL")?;
            }
            Ok(())
        })
        .map_err(db_error(&opened))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_error(&opened))?;
        let mut store = StateStore {
            path,
            connection: Mutex::new(connection),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), ProviderError> {
        let connection = self
            .connection
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error("starting the schema migration"))?;
        let version: i32 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(db_error("reading the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "the state store was written by a newer skyplan (schema {version}, this one knows {SCHEMA_VERSION})"
                ),
            });
        }
        if version < 1 {
            tx.execute_batch(SCHEMA_V1)
                .map_err(db_error("creating the schema"))?;
        }
        if version < 2 {
            tx.execute_batch(SCHEMA_V2)
                .map_err(db_error("migrating the schema to version 2"))?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_error("writing the schema version"))?;
        tx.commit().map_err(db_error("committing the schema"))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the intent to launch cluster `name` (status `INIT`) unless a record exists.
    /// Returns `None` when recorded, or the existing record. A `FAILED` record (a launch that
    /// created nothing) is replaced.
    pub fn try_begin_launch(
        &self,
        name: &str,
        request_id: &str,
        task: Option<&TaskRun>,
    ) -> Result<Option<ClusterRecord>, ProviderError> {
        let task_json = task.map(|t| to_json(t, "the task")).transpose()?;
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error("starting a launch"))?;
        let existing = tx
            .query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
                [name],
                cluster_row,
            )
            .optional()
            .map_err(db_error(format!("reading cluster {name:?}")))?;
        if let Some(existing) = existing {
            if existing.status != RecordStatus::Failed {
                return Ok(Some(existing));
            }
            for table in ["jobs", "attempts"] {
                tx.execute(&format!("DELETE FROM {table} WHERE cluster = ?1"), [name])
                    .map_err(db_error(format!("clearing the failed launch of {name:?}")))?;
            }
            tx.execute("DELETE FROM clusters WHERE name = ?1", [name])
                .map_err(db_error(format!("clearing the failed launch of {name:?}")))?;
        }
        let at = now();
        tx.execute(
            "INSERT INTO clusters (name, status, request_id, task, created_at, updated_at)
             VALUES (?1, 'INIT', ?2, ?3, ?4, ?4)",
            params![name, request_id, task_json, at],
        )
        .map_err(db_error(format!("recording cluster {name:?}")))?;
        tx.commit().map_err(db_error("committing a launch"))?;
        Ok(None)
    }

    /// Records that attempt `n` is about to provision `placement` on `provider` with
    /// `request_id`: an attempt row (`pending`) and the cluster's current placement.
    pub fn record_intent(
        &self,
        name: &str,
        n: u32,
        provider: &str,
        placement: &Placement,
        request_id: &str,
    ) -> Result<(), ProviderError> {
        let placement_json = to_json(placement, "the placement")?;
        let mut connection = self.lock();
        let tx = connection
            .transaction()
            .map_err(db_error("starting an attempt"))?;
        let at = now();
        tx.execute(
            "INSERT OR REPLACE INTO attempts (cluster, n, provider, placement, outcome, at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            params![name, n, provider, placement_json, at],
        )
        .map_err(db_error(format!("recording attempt {n} of {name:?}")))?;
        tx.execute(
            "UPDATE clusters SET provider = ?2, placement = ?3, request_id = ?4, updated_at = ?5
             WHERE name = ?1",
            params![name, provider, placement_json, request_id, at],
        )
        .map_err(db_error(format!("recording the placement of {name:?}")))?;
        tx.commit().map_err(db_error("committing an attempt"))
    }

    /// Records an attempt that never reached a provider (no provider for the cloud, or the
    /// provider cannot run the task), with how it ended.
    pub fn record_skipped_attempt(
        &self,
        name: &str,
        n: u32,
        cloud: &str,
        placement: &Placement,
        outcome: &str,
        error: &ProviderError,
    ) -> Result<(), ProviderError> {
        let placement_json = to_json(placement, "the placement")?;
        let connection = self.lock();
        connection
            .execute(
                "INSERT OR REPLACE INTO attempts
                 (cluster, n, provider, placement, outcome, error_kind, error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    name,
                    n,
                    cloud,
                    placement_json,
                    outcome,
                    error.kind(),
                    error.to_string(),
                    now()
                ],
            )
            .map_err(db_error(format!("recording attempt {n} of {name:?}")))?;
        Ok(())
    }

    /// Records how attempt `n` ended (`succeeded`, `retry`, `blocked`, `stopped`) and its error.
    pub fn finish_attempt(
        &self,
        name: &str,
        n: u32,
        outcome: &str,
        error: Option<&ProviderError>,
    ) -> Result<(), ProviderError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE attempts SET outcome = ?3, error_kind = ?4, error = ?5, at = ?6
                 WHERE cluster = ?1 AND n = ?2",
                params![
                    name,
                    n,
                    outcome,
                    error.map(ProviderError::kind),
                    error.map(ToString::to_string),
                    now()
                ],
            )
            .map_err(db_error(format!("recording the end of attempt {n} of {name:?}")))?;
        Ok(())
    }

    /// Records that cluster `name` runs task `task` of pipeline `pipeline`.
    pub fn set_pipeline(&self, name: &str, pipeline: &str, task: &str) -> Result<(), ProviderError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE clusters SET pipeline = ?2, task_name = ?3 WHERE name = ?1",
                params![name, pipeline, task],
            )
            .map_err(db_error(format!("recording the pipeline of {name:?}")))?;
        Ok(())
    }

    /// Sets a cluster's status.
    pub fn set_status(&self, name: &str, status: RecordStatus) -> Result<(), ProviderError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE clusters SET status = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, status.as_str(), now()],
            )
            .map_err(db_error(format!("updating cluster {name:?}")))?;
        Ok(())
    }

    /// Records a job (or updates its state, exit code and log path).
    pub fn upsert_job(&self, job: &JobRecord) -> Result<(), ProviderError> {
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO jobs (cluster, id, name, status, exit_code, log_path, started_at, ended_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (cluster, id) DO UPDATE SET status = excluded.status,
                   exit_code = excluded.exit_code, log_path = COALESCE(excluded.log_path, log_path),
                   ended_at = COALESCE(ended_at, excluded.ended_at)",
                params![
                    job.cluster,
                    job.id as i64,
                    job.name,
                    job_state_str(job.status),
                    job.exit_code,
                    job.log_path,
                    job.started_at,
                    job.ended_at
                ],
            )
            .map_err(db_error(format!("recording job {} of {:?}", job.id, job.cluster)))?;
        Ok(())
    }

    /// Updates a recorded job's state from a provider's live view (no-op for unknown jobs).
    pub fn update_job_state(
        &self,
        name: &str,
        id: u64,
        state: JobState,
        exit_code: Option<i32>,
    ) -> Result<(), ProviderError> {
        let connection = self.lock();
        let ended = state.is_finished().then(now);
        connection
            .execute(
                "UPDATE jobs SET status = ?3, exit_code = ?4, ended_at = COALESCE(ended_at, ?5)
                 WHERE cluster = ?1 AND id = ?2",
                params![name, id as i64, job_state_str(state), exit_code, ended],
            )
            .map_err(db_error(format!("updating job {id} of {name:?}")))?;
        Ok(())
    }

    /// The record of cluster `name`.
    pub fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, ProviderError> {
        let connection = self.lock();
        connection
            .query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
                [name],
                cluster_row,
            )
            .optional()
            .map_err(db_error(format!("reading cluster {name:?}")))
    }

    /// Every cluster record, by name.
    pub fn clusters(&self) -> Result<Vec<ClusterRecord>, ProviderError> {
        self.query_list(
            &format!("SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"),
            [],
            "listing clusters",
            cluster_row,
        )
    }

    /// The jobs of cluster `name`, oldest first.
    pub fn jobs(&self, name: &str) -> Result<Vec<JobRecord>, ProviderError> {
        self.query_list(
            "SELECT cluster, id, name, status, exit_code, log_path, started_at, ended_at
             FROM jobs WHERE cluster = ?1 ORDER BY id",
            [name],
            "listing jobs",
            |row| {
                Ok(JobRecord {
                    cluster: row.get(0)?,
                    id: row.get::<_, i64>(1)?.max(0) as u64,
                    name: row.get(2)?,
                    status: parse_job_state(&row.get::<_, String>(3)?),
                    exit_code: row.get(4)?,
                    log_path: row.get(5)?,
                    started_at: row.get(6)?,
                    ended_at: row.get(7)?,
                })
            },
        )
    }

    /// The launch attempts of cluster `name`, in order.
    pub fn attempts(&self, name: &str) -> Result<Vec<AttemptRecord>, ProviderError> {
        self.query_list(
            "SELECT cluster, n, provider, placement, outcome, error_kind, error, at
             FROM attempts WHERE cluster = ?1 ORDER BY n",
            [name],
            "listing attempts",
            |row| {
                Ok(AttemptRecord {
                    cluster: row.get(0)?,
                    n: row.get(1)?,
                    provider: row.get(2)?,
                    placement: from_json(row.get(3)?).unwrap_or(serde_json::Value::Null),
                    outcome: row.get(4)?,
                    error_kind: row.get(5)?,
                    error: row.get(6)?,
                    at: row.get(7)?,
                })
            },
        )
    }

    /// Runs a query and maps every row; `what` names the operation in errors.
    fn query_list<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, ProviderError> {
        let connection = self.lock();
        let mut statement = connection.prepare(sql).map_err(db_error(what))?;
        let rows = statement.query_map(params, map).map_err(db_error(what))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_error(what))
    }

    /// Deletes cluster `name` with its jobs and attempts. Returns whether a record existed.
    pub fn remove_cluster(&self, name: &str) -> Result<bool, ProviderError> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error("starting a removal"))?;
        for table in ["jobs", "attempts"] {
            tx.execute(&format!("DELETE FROM {table} WHERE cluster = ?1"), [name])
                .map_err(db_error(format!("removing {table} of {name:?}")))?;
        }
        let removed = tx
            .execute("DELETE FROM clusters WHERE name = ?1", [name])
            .map_err(db_error(format!("removing cluster {name:?}")))?;
        tx.commit().map_err(db_error("committing a removal"))?;
        Ok(removed > 0)
    }

    /// Runs SQLite's integrity check and the store's own invariants (every job and attempt
    /// belongs to a cluster; at most one `pending` attempt per cluster). Returns the problems.
    pub fn check_consistency(&self) -> Result<Vec<String>, ProviderError> {
        let connection = self.lock();
        let mut problems = Vec::new();
        let integrity: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(db_error("checking integrity"))?;
        if integrity != "ok" {
            problems.push(format!("integrity_check: {integrity}"));
        }
        let queries = [
            (
                "jobs without a cluster",
                "SELECT COUNT(*) FROM jobs WHERE cluster NOT IN (SELECT name FROM clusters)",
            ),
            (
                "attempts without a cluster",
                "SELECT COUNT(*) FROM attempts WHERE cluster NOT IN (SELECT name FROM clusters)",
            ),
            (
                "clusters with several pending attempts",
                "SELECT COUNT(*) FROM (SELECT cluster FROM attempts WHERE outcome = 'pending'
                 GROUP BY cluster HAVING COUNT(*) > 1)",
            ),
            (
                "UP clusters without a succeeded attempt",
                "SELECT COUNT(*) FROM clusters c WHERE c.status = 'UP' AND NOT EXISTS
                 (SELECT 1 FROM attempts a WHERE a.cluster = c.name AND a.outcome = 'succeeded')",
            ),
        ];
        for (what, sql) in queries {
            let count: i64 = connection
                .query_row(sql, [], |row| row.get(0))
                .map_err(db_error("checking consistency"))?;
            if count > 0 {
                problems.push(format!("{count} {what}"));
            }
        }
        Ok(problems)
    }
}
