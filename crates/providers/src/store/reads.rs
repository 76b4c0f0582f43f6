//! The store's reads: clusters, jobs, attempts (each row checked, unreadable ones skipped with
//! a warning), and the consistency check.

use super::records::{
    ATTEMPT_COLUMNS, AttemptRecord, CLUSTER_COLUMNS, ClusterRecord, JOB_COLUMNS, JobRecord, RowProblem,
    attempt_row, cluster_row, job_row,
};
use super::{StateStore, db_error};
use crate::ProviderError;

impl StateStore {
    /// The record of cluster `name`; `None` also when its row cannot be read (a warning, see
    /// [`StateStore::take_warnings`]), so that `down NAME` still finds it by its labels.
    pub fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, ProviderError> {
        let rows = self.query_rows(
            &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?1"),
            [name],
            "reading a cluster",
            cluster_row,
        )?;
        Ok(rows.into_iter().next())
    }

    /// Every cluster record, by name; rows that cannot be read are skipped with a warning.
    pub fn clusters(&self) -> Result<Vec<ClusterRecord>, ProviderError> {
        self.query_rows(
            &format!("SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name"),
            [],
            "listing clusters",
            cluster_row,
        )
    }

    /// The jobs of cluster `name`, oldest first; rows that cannot be read are skipped with a
    /// warning.
    pub fn jobs(&self, name: &str) -> Result<Vec<JobRecord>, ProviderError> {
        self.query_rows(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = ?1 ORDER BY id"),
            [name],
            "listing jobs",
            job_row,
        )
    }

    /// The launch attempts of cluster `name`, in order; rows that cannot be read are skipped
    /// with a warning.
    pub fn attempts(&self, name: &str) -> Result<Vec<AttemptRecord>, ProviderError> {
        self.query_rows(
            &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE cluster = ?1 ORDER BY n"),
            [name],
            "listing attempts",
            attempt_row,
        )
    }

    /// Runs a query and reads every row with `read`, skipping (and warning about) the rows it
    /// cannot read; `what` names the operation in errors.
    fn query_rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T, RowProblem>>,
    ) -> Result<Vec<T>, ProviderError> {
        let rows = {
            let connection = self.lock();
            let mut statement = connection.prepare(sql).map_err(db_error(what))?;
            let rows = statement.query_map(params, read).map_err(db_error(what))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error(what))?
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                Ok(record) => records.push(record),
                Err(problem) => self.warn_skipped(&problem),
            }
        }
        Ok(records)
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
