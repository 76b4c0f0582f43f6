//! Jobs on a cluster as providers report them: their state, exit codes and times, and which
//! of them [`crate::Provider::cancel`] stops.

use std::fmt;

use serde::Serialize;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted, not started.
    Pending,
    /// `setup` or `run` is running on at least one node.
    Running,
    /// Every node exited 0.
    Succeeded,
    /// A node exited non-zero, or was lost.
    Failed,
    /// Stopped by [`Provider::cancel`] (`skyplan cancel`).
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        })
    }
}

/// One job on a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatus {
    /// Job id, 1-based per cluster.
    pub id: u64,
    /// Task name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// The job's exit code: the first non-zero node exit code in rank order, else 0; `None`
    /// while running or when a node was lost.
    pub exit_code: Option<i32>,
    /// Per node (rank order): its exit code once it has one.
    pub node_exit_codes: Vec<Option<i32>>,
    /// When the job started running (unix seconds), where the provider knows.
    pub started_at: Option<i64>,
    /// When its last node ended (unix seconds), where the provider knows.
    pub ended_at: Option<i64>,
}

/// Which jobs [`Provider::cancel`] stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSelection {
    /// Every job that has not ended.
    All,
    /// These job ids.
    Ids(Vec<u64>),
}
