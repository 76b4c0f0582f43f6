//! The store's writes: launches, attempts, statuses, jobs, removal. Each is one short
//! transaction, and each fails on a read-only store with an error naming the home (except
//! refreshing a job's state from a live view, which a read-only `status` skips).

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use skyplan_optimizer::Placement;

use super::records::{CLUSTER_COLUMNS, ClusterRecord, JobRecord, RecordStatus, cluster_row, job_state_str};
use super::{StateStore, db_error, now, to_json};
use crate::{JobState, ProviderError, TaskRun};

impl StateStore {
    /// Records the intent to launch cluster `name` (status `INIT`) unless a record exists.
    /// Returns `None` when recorded, or the existing record. A `FAILED` record (a launch that
    /// created nothing) is replaced.
    pub fn try_begin_launch(
        &self,
        name: &str,
        request_id: &str,
        task: Option<&TaskRun>,
    ) -> Result<Option<ClusterRecord>, ProviderError> {
        self.writable(format!("recording cluster {name:?}"))?;
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
            .map_err(db_error(format!("reading cluster {name:?}")))?
            .transpose()
            .map_err(|problem| ProviderError::InvalidRequest {
                message: format!(
                    "cluster {name:?} has a record in {} that cannot be read ({problem}); \
                     `skyplan down {name}` removes it",
                    self.path.display()
                ),
            })?;
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
        self.writable(format!("recording attempt {n} of {name:?}"))?;
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
        self.writable(format!("recording attempt {n} of {name:?}"))?;
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
        self.writable(format!("recording the end of attempt {n} of {name:?}"))?;
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
        self.writable(format!("recording the pipeline of {name:?}"))?;
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
        self.writable(format!("updating cluster {name:?}"))?;
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
        self.writable(format!("recording job {} of {:?}", job.id, job.cluster))?;
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

    /// Updates a recorded job's state from a provider's live view (no-op for unknown jobs, and
    /// for a read-only store: the live view is shown anyway, the record catches up later).
    pub fn update_job_state(
        &self,
        name: &str,
        id: u64,
        state: JobState,
        exit_code: Option<i32>,
    ) -> Result<(), ProviderError> {
        if self.read_only {
            tracing::debug!("read-only store: not recording job {id} of {name:?} as {state:?}");
            return Ok(());
        }
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

    /// Deletes cluster `name` with its jobs and attempts. Returns whether a record existed.
    /// A read-only store fails only when there is something to remove.
    pub fn remove_cluster(&self, name: &str) -> Result<bool, ProviderError> {
        if self.read_only {
            let connection = self.lock();
            let mut recorded = false;
            for table in ["clusters", "jobs", "attempts"] {
                let column = if table == "clusters" { "name" } else { "cluster" };
                recorded |= connection
                    .query_row(
                        &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = ?1)"),
                        [name],
                        |row| row.get::<_, bool>(0),
                    )
                    .map_err(db_error(format!("reading cluster {name:?}")))?;
            }
            drop(connection);
            if !recorded {
                return Ok(false);
            }
            self.writable(format!("removing cluster {name:?}"))?;
        }
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
}
