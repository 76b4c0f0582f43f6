//! The state store: clusters (placement, status), jobs and launch attempts in SQLite at
//! `$SKYPLAN_HOME/state.db`.
//!
//! Safe under concurrent CLI invocations: WAL mode, a bounded busy timeout, and short
//! transactions (`BEGIN IMMEDIATE` where a read decides a write). The schema is versioned with
//! `PRAGMA user_version`. Secrets never reach it: tasks are stored in their redacted
//! serialization only.
//!
//! No state of the file traps the user: [`open`](StateStore::open) moves a damaged or foreign
//! `state.db` aside and starts afresh (providers' labels still find every cluster), opens a
//! read-only home for reading, and a row that cannot be read is skipped with a warning
//! ([`StateStore::take_warnings`]) instead of failing the whole listing.
//!
//! - `open.rs`: opening, recovery, read-only mode.
//! - `schema.rs`: the schema, migrations, and the check that a file is ours.
//! - `records.rs`: the row types and checked row reading.
//! - `writes.rs` / `reads.rs`: the store's operations.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde::Serialize;

use crate::ProviderError;

mod open;
mod reads;
mod records;
mod schema;
mod writes;

pub use records::{AttemptRecord, ClusterRecord, JobRecord, RecordStatus};

/// How [`StateStore::open_with`] opens the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Open for reading only, as a home that cannot be written is opened anyway: reads work,
    /// writes fail with an error saying the store is read-only, and a damaged file is not
    /// moved aside (the error says how to do it).
    pub read_only: bool,
}

/// What [`StateStore::open`] did with a `state.db` it could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreRecovery {
    /// Where the old file is now (its `-wal` and `-shm` files beside it, same name plus suffix).
    pub moved_to: PathBuf,
    /// Why it could not be used, in plain words (e.g. "it is not an SQLite database").
    pub reason: String,
}

impl std::fmt::Display for StoreRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the state store could not be used ({}): moved it aside to {} and started a fresh one. \
             Clusters it recorded may still run: `skyplan status` lists them as unrecorded, and \
             `skyplan down NAME` or `skyplan down --all` find them by their provider labels",
            self.reason,
            self.moved_to.display()
        )
    }
}

/// Why the store cannot be opened or written, in words a user can act on. The source of a
/// [`ProviderError::State`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreProblem {
    /// `SKYPLAN_HOME` (or a directory above it) is a file.
    #[error("{}", home_is_a_file(home, file))]
    HomeIsAFile {
        /// The home asked for.
        home: PathBuf,
        /// The file in its place (the home, or a directory above it).
        file: PathBuf,
    },
    /// A write to a store opened read-only.
    #[error("SKYPLAN_HOME ({}) is read-only{}", home.display(), if *forced { " (the store was opened read-only)" } else { "" })]
    ReadOnly {
        /// The home.
        home: PathBuf,
        /// Whether the caller asked for read-only ([`StoreOptions::read_only`]).
        forced: bool,
    },
    /// The file is unusable and could not be moved aside.
    #[error("{why}; move it aside yourself: mv {} {}", shell_word(path), shell_word(&corrupt_path(path)))]
    CannotMoveAside {
        /// The database file.
        path: PathBuf,
        /// Why it was not moved.
        why: String,
    },
    /// A newer skyplan's store.
    #[error(
        "it was written by a newer skyplan (schema version {version}; this one reads up to {}): \
         upgrade skyplan, or move it aside to start afresh: mv {} {}",
        schema::SCHEMA_VERSION, shell_word(path), shell_word(&corrupt_path(path))
    )]
    Newer {
        /// Its schema version.
        version: i64,
        /// The database file.
        path: PathBuf,
    },
    /// Every file found was unusable, three times over: something keeps replacing it.
    #[error("another process keeps replacing the file; try again")]
    KeepsChanging,
}

fn home_is_a_file(home: &Path, file: &Path) -> String {
    if home == file {
        format!("SKYPLAN_HOME {} is a file, expected a directory", home.display())
    } else {
        format!(
            "SKYPLAN_HOME {} is inside {}, which is a file, expected a directory",
            home.display(),
            file.display()
        )
    }
}

fn corrupt_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.corrupt", path.display()))
}

/// `path` as one shell word: as is when it holds only safe characters, else single-quoted.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~+,:@%".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
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
/// assert!(store.recovered().is_none() && store.take_warnings().is_empty());
/// # let _ = std::fs::remove_dir_all(home);
/// ```
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    home: PathBuf,
    connection: Mutex<Connection>,
    read_only: bool,
    read_only_forced: bool,
    recovered: Option<StoreRecovery>,
    warnings: Mutex<Warnings>,
}

/// Skipped-row warnings not yet taken, and every one logged already (each is logged once).
#[derive(Debug, Default)]
struct Warnings {
    pending: Vec<String>,
    logged: HashSet<String>,
}

impl StateStore {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening did with a `state.db` it could not use, if anything: show it to the user.
    pub fn recovered(&self) -> Option<&StoreRecovery> {
        self.recovered.as_ref()
    }

    /// Whether the store is open for reading only (the home cannot be written, or
    /// [`StoreOptions::read_only`]); writes then fail saying so.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The rows skipped since the last call because they could not be read, one message each
    /// naming the file, the row (cluster, job) and the column. Each is also logged once as a
    /// warning when first met.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.lock_warnings().pending)
    }

    fn lock_warnings(&self) -> MutexGuard<'_, Warnings> {
        self.warnings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that a row was skipped.
    fn warn_skipped(&self, problem: &records::RowProblem) {
        let message = format!("{}: {problem}; row skipped", self.path.display());
        let mut warnings = self.lock_warnings();
        if !warnings.pending.contains(&message) {
            warnings.pending.push(message.clone());
        }
        if warnings.logged.insert(message.clone()) {
            tracing::warn!("{message}");
        }
    }

    /// Fails when the store is read-only; `doing` names the write in the error.
    fn writable(&self, doing: impl Into<String>) -> Result<(), ProviderError> {
        if !self.read_only {
            return Ok(());
        }
        Err(ProviderError::State {
            context: doing.into(),
            source: std::sync::Arc::new(StoreProblem::ReadOnly {
                home: self.home.clone(),
                forced: self.read_only_forced,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn db_error(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ProviderError {
    let context = context.into();
    move |err| ProviderError::state(context, err)
}

fn to_json(value: &impl Serialize, what: &str) -> Result<String, ProviderError> {
    serde_json::to_string(value).map_err(|err| ProviderError::state(format!("serializing {what}"), err))
}
