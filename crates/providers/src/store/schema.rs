//! The store's schema, its versions (`PRAGMA user_version`) and migrations, and the check that
//! a database file is ours: an SQLite file that is damaged, or whose tables or version are not
//! skyplan's, is told apart from a fresh or a newer skyplan's store before anything is written.

use rusqlite::{Connection, TransactionBehavior};

use super::db_error;
use crate::ProviderError;

/// The schema version this code writes.
pub(super) const SCHEMA_VERSION: i64 = 2;

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

/// The columns each table has from version 1 on.
const COLUMNS_V1: [(&str, &[&str]); 3] = [
    (
        "clusters",
        &[
            "name",
            "provider",
            "placement",
            "status",
            "request_id",
            "task",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "jobs",
        &[
            "cluster",
            "id",
            "name",
            "status",
            "exit_code",
            "log_path",
            "started_at",
            "ended_at",
        ],
    ),
    (
        "attempts",
        &[
            "cluster",
            "n",
            "provider",
            "placement",
            "outcome",
            "error_kind",
            "error",
            "at",
        ],
    ),
];

/// The columns version 2 adds.
const COLUMNS_V2: [(&str, &[&str]); 1] = [("clusters", &["pipeline", "task_name"])];

/// What an opened database file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Health {
    /// No tables and no version yet: a new (or empty) file.
    Fresh,
    /// A skyplan store of this or an older version.
    Ours,
    /// A store of a newer skyplan (version given): left alone.
    Newer(i64),
    /// Not ours, or damaged: the reason, in plain words.
    Unusable(String),
}

/// Whether `error` says the file is not a database, or a damaged one.
pub(super) fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Reads what `connection`'s database holds: its version, tables and columns, and SQLite's
/// quick integrity check. The first read of the file: a file that is not a database fails here
/// (see [`is_damage`]), and is reported as [`Health::Unusable`].
pub(super) fn inspect(connection: &Connection) -> rusqlite::Result<Health> {
    match inspect_inner(connection) {
        Err(error) if is_damage(&error) => Ok(Health::Unusable(
            if error.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
                "it is not an SQLite database".to_string()
            } else {
                "it is damaged".to_string()
            },
        )),
        other => other,
    }
}

fn inspect_inner(connection: &Connection) -> rusqlite::Result<Health> {
    // One snapshot for every read below: a concurrent first open may commit the schema between
    // two of them (version 0 but the tables there would look foreign). Rolled back on drop.
    let _snapshot = connection.unchecked_transaction()?;
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let check: String = connection.query_row("PRAGMA quick_check(1)", [], |row| row.get(0))?;
    if check != "ok" {
        return Ok(Health::Unusable(format!(
            "it is damaged (SQLite's check says: {check})"
        )));
    }
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let tables = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if version == 0 && tables.is_empty() {
        return Ok(Health::Fresh);
    }
    let ours = |name: &str| COLUMNS_V1.iter().any(|(table, _)| *table == name);
    let foreign: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|name| !ours(name))
        .collect();
    let missing_tables: Vec<&str> = COLUMNS_V1
        .iter()
        .map(|(table, _)| *table)
        .filter(|table| !tables.iter().any(|t| t == table))
        .collect();
    if version <= 0 || !missing_tables.is_empty() {
        let mut reason = format!("it holds no skyplan store (schema version {version}");
        if !foreign.is_empty() {
            reason.push_str(&format!(", tables {}", foreign.join(", ")));
        }
        if !missing_tables.is_empty() {
            reason.push_str(&format!("; missing tables {}", missing_tables.join(", ")));
        }
        reason.push(')');
        return Ok(Health::Unusable(reason));
    }
    if version > SCHEMA_VERSION {
        return Ok(Health::Newer(version));
    }
    let mut missing = Vec::new();
    let expected = COLUMNS_V1
        .iter()
        .chain(COLUMNS_V2.iter().filter(|_| version >= 2));
    for (table, columns) in expected {
        let mut statement = connection.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let have = statement
            .query_map([table], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        missing.extend(
            columns
                .iter()
                .filter(|column| !have.iter().any(|h| h == *column))
                .map(|column| format!("{table}.{column}")),
        );
    }
    if missing.is_empty() {
        Ok(Health::Ours)
    } else {
        Ok(Health::Unusable(format!(
            "its tables are not skyplan's schema {version}: missing columns {}",
            missing.join(", ")
        )))
    }
}

/// Creates or upgrades the schema to [`SCHEMA_VERSION`] in one immediate transaction (a
/// concurrent opener that migrated first leaves nothing to do).
pub(super) fn migrate(connection: &mut Connection) -> Result<(), ProviderError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error("starting the schema migration"))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(db_error("reading the schema version"))?;
    if version >= SCHEMA_VERSION {
        // Ours and current, or a newer skyplan's that [`inspect`] already refused.
        return Ok(());
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
