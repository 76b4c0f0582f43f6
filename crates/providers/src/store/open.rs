//! Opening the store so that no state of `SKYPLAN_HOME` traps the user: a home that is a file
//! is named as such; a `state.db` that is damaged or not ours is moved aside (with its `-wal`
//! and `-shm` files) and a fresh store created, or, where moving fails, the error says the
//! command that does it; a read-only home (or `state.db`) is opened for reading only, falling
//! back to SQLite's `immutable` mode where a WAL database cannot get its `-shm` file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema::{self, Health};
use super::{StateStore, StoreOptions, StoreProblem, StoreRecovery, db_error, now};
use crate::ProviderError;

/// How long a statement waits for another connection's lock before failing "database is
/// locked". Every wait on the store is bounded by this.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection and how it was opened.
struct Opened {
    connection: Connection,
    read_only: bool,
}

/// What opening one file gave: a usable connection, or a reason to move the file aside.
enum Attempt {
    Usable(Opened),
    /// Why the file cannot be used, and which file it was (see [`file_id`]).
    Unusable(String, Option<FileId>),
}

/// A file's identity (device and inode), to move aside only the file found unusable and not
/// a fresh one another skyplan created meanwhile.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<FileId> {
    None
}

impl StateStore {
    /// Opens (creating if needed) `home/state.db`, in WAL mode, migrating the schema.
    ///
    /// A `state.db` that is damaged, not an SQLite database, or not skyplan's is moved aside
    /// and a fresh store created: [`StateStore::recovered`] says so (and it is logged as a
    /// warning). A home that cannot be written opens read-only ([`StateStore::is_read_only`]).
    pub fn open(home: &Path) -> Result<Self, ProviderError> {
        Self::open_with(home, &StoreOptions::default())
    }

    /// [`StateStore::open`] with options (e.g. read-only).
    pub fn open_with(home: &Path, options: &StoreOptions) -> Result<Self, ProviderError> {
        check_home(home)?;
        let path = home.join("state.db");
        let mut read_only = options.read_only;
        if !read_only {
            match std::fs::create_dir_all(home) {
                Ok(()) => {}
                Err(err) if is_read_only_error(&err) => read_only = true,
                Err(err) => {
                    return Err(ProviderError::io(format!("creating {}", home.display()), err));
                }
            }
        }
        let mut recovered = None;
        // At most: the damaged file, and a fresh one. A third round means another process keeps
        // replacing the file; say so rather than loop.
        for _ in 0..3 {
            let attempt = if read_only {
                open_read_only(&path)?
            } else {
                open_read_write(&path)?
            };
            let (reason, id) = match attempt {
                Attempt::Usable(opened) => {
                    if opened.read_only && !options.read_only {
                        tracing::info!(
                            "SKYPLAN_HOME {} is read-only: the state store is open for reading only",
                            home.display()
                        );
                    }
                    return Ok(StateStore {
                        path,
                        home: home.to_path_buf(),
                        connection: Mutex::new(opened.connection),
                        read_only: opened.read_only,
                        read_only_forced: options.read_only,
                        recovered,
                        warnings: Mutex::default(),
                    });
                }
                Attempt::Unusable(reason, id) => (reason, id),
            };
            if read_only {
                let why = if options.read_only {
                    "the store was opened read-only"
                } else {
                    "SKYPLAN_HOME is read-only"
                };
                return Err(cannot_use(&path, &reason, why.to_string()));
            }
            match move_aside(&path, id, &reason)? {
                Some(moved_to) => {
                    let recovery = StoreRecovery { moved_to, reason };
                    tracing::warn!("{recovery}");
                    recovered = Some(recovery);
                }
                None => tracing::warn!(
                    "the state store {} could not be used ({reason}) and another skyplan moved it \
                     aside meanwhile; `skyplan down --all` finds the clusters it recorded by their \
                     provider labels",
                    path.display()
                ),
            }
        }
        Err(ProviderError::State {
            context: format!("opening {}", path.display()),
            source: std::sync::Arc::new(StoreProblem::KeepsChanging),
        })
    }
}

/// Fails when `home`, or a directory it would be created in, is a file.
fn check_home(home: &Path) -> Result<(), ProviderError> {
    for dir in home.ancestors().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(ProviderError::State {
                    context: format!("opening the store in {}", home.display()),
                    source: std::sync::Arc::new(StoreProblem::HomeIsAFile {
                        home: home.to_path_buf(),
                        file: dir.to_path_buf(),
                    }),
                });
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            // Unreadable: creating or opening says more precisely what is wrong.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

fn is_read_only_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Whether SQLite failed because it may not write (or create) the file or its journal.
fn is_sqlite_read_only(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::PermissionDenied
        )
    )
}

fn open_read_write(path: &Path) -> Result<Attempt, ProviderError> {
    let opened = format!("opening {}", path.display());
    let id = file_id(path);
    if let Some(reason) = not_a_database(path) {
        return Ok(Attempt::Unusable(reason, id));
    }
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = match Connection::open_with_flags(path, flags) {
        Ok(connection) => connection,
        Err(err) if is_sqlite_read_only(&err) => return open_read_only(path),
        Err(err) => return Err(db_error(&opened)(err)),
    };
    connection.busy_timeout(BUSY_TIMEOUT).map_err(db_error(&opened))?;
    // SQLite opens a write-protected file for reading, silently.
    if connection
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(db_error(&opened))?
    {
        drop(connection);
        return open_read_only(path);
    }
    match schema::inspect(&connection) {
        Ok(Health::Fresh | Health::Ours) => {}
        Ok(Health::Unusable(reason)) => return Ok(Attempt::Unusable(reason, id)),
        Ok(Health::Newer(version)) => return Err(newer(path, version)),
        Err(err) if is_sqlite_read_only(&err) => return open_read_only(path),
        Err(err) => return Err(db_error(&opened)(err)),
    }
    // Switching to WAL needs a moment of exclusivity that SQLite's busy handler does not
    // wait for (two first opens at once get SQLITE_BUSY), so retry briefly. The mode is
    // persistent: later opens find it set and skip the switch.
    let wal = retry_busy(|| {
        let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            connection.pragma_update(None, "journal_mode", "WAL")?;
        }
        Ok(())
    });
    match wal {
        Ok(()) => {}
        // The file is writable but its directory is not (no `-wal` file can be created).
        Err(err) if is_sqlite_read_only(&err) => return open_read_only(path),
        Err(err) => return Err(db_error(&opened)(err)),
    }
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_error(&opened))?;
    let mut connection = connection;
    schema::migrate(&mut connection)?;
    Ok(Attempt::Usable(Opened {
        connection,
        read_only: false,
    }))
}

/// Opens `path` for reading only; an empty in-memory store when there is no file yet (so reads
/// find nothing and writes fail with the read-only error).
fn open_read_only(path: &Path) -> Result<Attempt, ProviderError> {
    let opened = format!("opening {} for reading", path.display());
    if !path.exists() {
        let mut connection = Connection::open_in_memory().map_err(db_error(&opened))?;
        schema::migrate(&mut connection)?;
        return Ok(Attempt::Usable(Opened {
            connection,
            read_only: true,
        }));
    }
    if let Some(reason) = not_a_database(path) {
        return Ok(Attempt::Unusable(reason, None));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let plain = Connection::open_with_flags(path, flags).and_then(|connection| {
        connection.busy_timeout(BUSY_TIMEOUT)?;
        let health = schema::inspect(&connection)?;
        Ok((connection, health))
    });
    let (connection, health) = match plain {
        Ok(found) => found,
        // A WAL database whose `-shm` file cannot be created (read-only directory): read the
        // database file alone. Changes only in a `-wal` file without its `-shm` are missed;
        // SQLite removes both on a clean close, and where both exist the plain open works.
        Err(err) if is_sqlite_read_only(&err) => open_immutable(path).map_err(db_error(&opened))?,
        Err(err) => return Err(db_error(&opened)(err)),
    };
    match health {
        Health::Ours => Ok(Attempt::Usable(Opened {
            connection,
            read_only: true,
        })),
        Health::Fresh => {
            // Nothing recorded yet, and no schema can be created: an empty in-memory store.
            drop(connection);
            let mut connection = Connection::open_in_memory().map_err(db_error(&opened))?;
            schema::migrate(&mut connection)?;
            Ok(Attempt::Usable(Opened {
                connection,
                read_only: true,
            }))
        }
        Health::Newer(version) => Err(newer(path, version)),
        Health::Unusable(reason) => Ok(Attempt::Unusable(reason, None)),
    }
}

/// Why `path` is plainly no SQLite database (not a file, or a file that does not start with
/// SQLite's header), found before SQLite opens it: SQLite deletes the `-wal` and `-shm` files
/// beside a file it does not take for a WAL database, and those belong with the file moved
/// aside. `None` when it may be one (or is missing, or empty: a new store).
fn not_a_database(path: &Path) -> Option<String> {
    use std::io::Read;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return Some("it is not a file".to_string());
    }
    let mut head = Vec::with_capacity(MAGIC.len());
    std::fs::File::open(path)
        .ok()?
        .take(MAGIC.len() as u64)
        .read_to_end(&mut head)
        .ok()?;
    // A header still being written by a concurrent first open is a prefix of the magic.
    (!MAGIC.starts_with(&head)).then(|| "it is not an SQLite database".to_string())
}

/// Opens `path` with SQLite's `immutable=1`: no locks, no `-shm` file.
pub(super) fn open_immutable(path: &Path) -> rusqlite::Result<(Connection, Health)> {
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(uri, flags)?;
    let health = schema::inspect(&connection)?;
    Ok((connection, health))
}

/// `path` percent-encoded for an SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut encoded = String::new();
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn newer(path: &Path, version: i64) -> ProviderError {
    ProviderError::State {
        context: format!("opening {}", path.display()),
        source: std::sync::Arc::new(StoreProblem::Newer {
            version,
            path: path.to_path_buf(),
        }),
    }
}

fn cannot_use(path: &Path, reason: &str, why_not_moved: String) -> ProviderError {
    ProviderError::State {
        context: format!("{} cannot be used ({reason})", path.display()),
        source: std::sync::Arc::new(StoreProblem::CannotMoveAside {
            path: path.to_path_buf(),
            why: why_not_moved,
        }),
    }
}

/// Moves `path` and its `-wal` and `-shm` files to `path.corrupt-<unix time>`. `None` when
/// `path` was gone already or is no longer the file `id` found unusable (another skyplan moved
/// it and created a fresh one).
fn move_aside(path: &Path, id: Option<FileId>, reason: &str) -> Result<Option<PathBuf>, ProviderError> {
    // Concurrent skyplans that found the same file unusable move it one at a time: under the
    // lock, a file that is no longer the one found unusable was moved (and perhaps replaced by
    // a fresh store, whose `-wal` and `-shm` must not be moved) by another.
    let _lock = lock_dir(path.parent().unwrap_or(Path::new(".")));
    if id.is_some() && file_id(path) != id {
        return Ok(None);
    }
    let stamp = now();
    let base = path.as_os_str().to_string_lossy().into_owned();
    let mut target = PathBuf::from(format!("{base}.corrupt-{stamp}"));
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = PathBuf::from(format!("{base}.corrupt-{stamp}-{n}"));
    }
    let failed = |err: std::io::Error| cannot_use(path, reason, format!("moving it aside failed: {err}"));
    // The `-wal` and `-shm` files first: once the database is gone from its path, another
    // skyplan may create a fresh one there, whose own `-wal` and `-shm` must stay.
    let mut moved = Vec::new();
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{base}{suffix}"));
        let to = PathBuf::from(format!("{}{suffix}", target.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => moved.push((from, to)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(failed(err)),
        }
    }
    match std::fs::rename(path, &target) {
        Ok(()) => {}
        Err(err) => {
            for (from, to) in moved {
                let _ = std::fs::rename(to, from);
            }
            return match err.kind() {
                std::io::ErrorKind::NotFound => Ok(None),
                _ => Err(failed(err)),
            };
        }
    }
    Ok(Some(target))
}

/// An exclusive lock on directory `dir` (advisory: only skyplan's own [`move_aside`] takes it),
/// held until dropped; `None` where the platform or file system does not lock directories,
/// which leaves only the file identity check.
fn lock_dir(dir: &Path) -> Option<std::fs::File> {
    let handle = std::fs::File::open(dir).ok()?;
    handle.lock().ok()?;
    Some(handle)
}

/// Runs `op` again while SQLite answers "busy" for a lock its busy handler does not wait for,
/// for up to [`BUSY_TIMEOUT`].
fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let start = std::time::Instant::now();
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if matches!(
                    err.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(..20)));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_waits_a_bounded_time_for_locks() {
        let home = tempfile::tempdir().expect("temp dir");
        let store = StateStore::open(home.path()).expect("open");
        let timeout: i64 = store
            .lock()
            .query_row("PRAGMA busy_timeout", [], |row| row.get(0))
            .expect("busy_timeout");
        assert_eq!(timeout, 10_000);
        let mode: String = store
            .lock()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_wal_store_reads_immutably_without_its_shm_file() {
        let home = tempfile::tempdir().expect("temp dir");
        let store = StateStore::open(home.path()).expect("open");
        assert!(
            store
                .try_begin_launch("dev", "req-1", None)
                .expect("begin")
                .is_none()
        );
        drop(store); // the last connection checkpoints and removes -wal and -shm
        let path = home.path().join("state.db");
        assert!(!home.path().join("state.db-shm").exists());
        let (connection, health) = open_immutable(&path).expect("immutable open");
        assert_eq!(health, Health::Ours);
        let name: String = connection
            .query_row("SELECT name FROM clusters", [], |row| row.get(0))
            .expect("read");
        assert_eq!(name, "dev");
        assert!(!home.path().join("state.db-shm").exists());
    }

    #[test]
    fn uri_paths_are_percent_encoded() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%f")), "/a%20b/c%3Fd%23e%25f");
    }
}
