//! Opening a store that would trap the user: damaged, foreign, newer, read-only, a home that
//! is a file. Each either opens (moving the bad file aside) or fails in plain words that say
//! what to do.

use std::path::Path;

use proptest::prelude::*;
use skyplan_providers::{RecordStatus, StateStore, StoreOptions};

use crate::util::Home;

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// A real store with `n` clusters, closed (no `-wal` left), returned as its bytes.
fn real_store_bytes(n: usize) -> Vec<u8> {
    static CACHE: std::sync::Mutex<Vec<(usize, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, bytes)) = cache.iter().find(|(size, _)| *size == n) {
        return bytes.clone();
    }
    let bytes = build_store_bytes(n);
    cache.push((n, bytes.clone()));
    bytes
}

fn build_store_bytes(n: usize) -> Vec<u8> {
    let home = Home::new();
    {
        let store = home.store();
        for i in 0..n {
            let name = format!("cluster-{i:03}-{}", "x".repeat(60));
            assert!(
                store
                    .try_begin_launch(&name, "req", None)
                    .expect("begin")
                    .is_none()
            );
        }
    }
    std::fs::read(home.path().join("state.db")).expect("read state.db")
}

/// Asserts `store` is a fresh, writable store.
fn assert_fresh_and_writable(store: &StateStore) {
    assert!(store.clusters().expect("clusters").is_empty());
    assert!(
        store
            .try_begin_launch("after", "req", None)
            .expect("begin")
            .is_none()
    );
    store.set_status("after", RecordStatus::Up).expect("write");
    assert_eq!(store.clusters().expect("clusters").len(), 1);
}

/// Asserts the message is plain: no SQLite codes, SQL or library wording.
#[track_caller]
fn assert_plain(message: &str) {
    for internal in [
        "SQLITE_",
        "Sqlite",
        "SqliteFailure",
        "ErrorCode",
        "SELECT",
        "no such table",
        "syntax error",
    ] {
        assert!(!message.contains(internal), "{internal:?} leaks in: {message}");
    }
}

#[test]
fn random_bytes_as_state_db_are_moved_aside_with_wal_files_and_a_fresh_store_opens() {
    let home = Home::new();
    let db = home.path().join("state.db");
    let garbage = random_bytes(4096, 12);
    std::fs::write(&db, &garbage).expect("write");
    std::fs::write(home.path().join("state.db-wal"), b"not a wal").expect("write");
    std::fs::write(home.path().join("state.db-shm"), b"not a shm").expect("write");
    let store = StateStore::open(home.path()).expect("opens anyway");
    let recovered = store.recovered().expect("says it recovered").clone();
    assert_eq!(recovered.reason, "it is not an SQLite database");
    let name = recovered
        .moved_to
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("state.db.corrupt-"), "{name}");
    assert_eq!(std::fs::read(&recovered.moved_to).expect("kept"), garbage);
    let beside = |suffix: &str| format!("{}{suffix}", recovered.moved_to.display());
    assert_eq!(std::fs::read(beside("-wal")).expect("wal kept"), b"not a wal");
    assert_eq!(std::fs::read(beside("-shm")).expect("shm kept"), b"not a shm");
    let message = recovered.to_string();
    for needed in [
        "moved it aside to",
        "skyplan down NAME",
        "skyplan down --all",
        "labels",
    ] {
        assert!(message.contains(needed), "{needed:?} missing in: {message}");
    }
    assert_plain(&message);
    assert_fresh_and_writable(&store);
    // The next open finds the fresh store and recovers nothing.
    drop(store);
    assert!(home.store().recovered().is_none());
}

#[test]
fn a_truncated_store_is_moved_aside() {
    let bytes = real_store_bytes(200);
    assert!(
        bytes.len() > 4 * 4096,
        "{} bytes: too small to truncate",
        bytes.len()
    );
    let home = Home::new();
    std::fs::write(home.path().join("state.db"), &bytes[..bytes.len() / 2]).expect("write");
    let store = StateStore::open(home.path()).expect("opens anyway");
    let recovered = store.recovered().expect("recovered");
    assert!(
        recovered.reason.starts_with("it is damaged"),
        "{}",
        recovered.reason
    );
    assert_plain(&recovered.to_string());
    assert_fresh_and_writable(&store);
}

#[test]
fn a_foreign_database_is_moved_aside_in_plain_words() {
    let home = Home::new();
    let db = home.path().join("state.db");
    {
        let foreign = rusqlite::Connection::open(&db).expect("create");
        foreign
            .execute_batch("CREATE TABLE users (id INTEGER, email TEXT); PRAGMA user_version = 7;")
            .expect("foreign schema");
    }
    let store = StateStore::open(home.path()).expect("opens anyway");
    let recovered = store.recovered().expect("recovered");
    assert_eq!(
        recovered.reason,
        "it holds no skyplan store (schema version 7, tables users; missing tables clusters, jobs, attempts)"
    );
    assert_plain(&recovered.to_string());
    assert_fresh_and_writable(&store);
}

#[test]
fn our_tables_without_our_columns_are_moved_aside() {
    let home = Home::new();
    let db = home.path().join("state.db");
    {
        let odd = rusqlite::Connection::open(&db).expect("create");
        odd.execute_batch(
            "CREATE TABLE clusters (name TEXT); CREATE TABLE jobs (cluster TEXT);
             CREATE TABLE attempts (cluster TEXT); PRAGMA user_version = 2;",
        )
        .expect("schema");
    }
    let store = StateStore::open(home.path()).expect("opens anyway");
    let reason = &store.recovered().expect("recovered").reason;
    assert!(
        reason.starts_with("its tables are not skyplan's schema 2: missing columns clusters.provider,"),
        "{reason}"
    );
    assert!(reason.contains("attempts.at"), "{reason}");
    assert_fresh_and_writable(&store);
}

#[test]
fn a_newer_skyplans_store_is_left_in_place_with_the_way_out() {
    let home = Home::new();
    home.store();
    let db = home.path().join("state.db");
    rusqlite::Connection::open(&db)
        .expect("open")
        .pragma_update(None, "user_version", 99)
        .expect("version");
    let err = StateStore::open(home.path()).expect_err("newer");
    let message = err.to_string();
    assert!(
        message.contains("written by a newer skyplan (schema version 99; this one reads up to 2)"),
        "{message}"
    );
    assert!(
        message.contains(&format!("mv {} {}.corrupt", db.display(), db.display())),
        "{message}"
    );
    assert!(db.exists());
    assert_plain(&message);
}

#[test]
fn a_state_db_that_is_a_directory_is_moved_aside() {
    let home = Home::new();
    std::fs::create_dir(home.path().join("state.db")).expect("dir");
    let store = StateStore::open(home.path()).expect("opens anyway");
    let recovered = store.recovered().expect("recovered");
    assert_eq!(recovered.reason, "it is not a file");
    assert!(recovered.moved_to.is_dir());
    assert_fresh_and_writable(&store);
}

#[test]
fn an_unusable_store_that_is_not_moved_says_the_command_that_moves_it() {
    let home = Home::new();
    let db = home.path().join("state.db");
    std::fs::write(&db, random_bytes(4096, 7)).expect("write");
    let err = StateStore::open_with(home.path(), &StoreOptions { read_only: true }).expect_err("not moved");
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "state store: {db} cannot be used (it is not an SQLite database): the store was opened \
             read-only; move it aside yourself: mv {db} {db}.corrupt",
            db = db.display()
        )
    );
    assert_eq!(std::fs::read(&db).expect("left").len(), 4096);
}

#[test]
fn two_processes_finding_the_same_damaged_store_share_one_fresh_store() {
    let home = Home::new();
    std::fs::write(home.path().join("state.db"), random_bytes(4096, 3)).expect("write");
    let path = home.path().to_path_buf();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let store = StateStore::open(&path).expect("open");
                let name = format!("c{i}");
                assert!(
                    store
                        .try_begin_launch(&name, "req", None)
                        .expect("begin")
                        .is_none()
                );
                store.recovered().cloned()
            })
        })
        .collect();
    let recovered = handles
        .into_iter()
        .filter_map(|h| h.join().expect("thread"))
        .collect::<Vec<_>>();
    assert!(!recovered.is_empty());
    let moved: Vec<_> = std::fs::read_dir(home.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".corrupt-") && !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?} {recovered:?}");
    // Every writer's record is in the one fresh store.
    assert_eq!(home.store().clusters().expect("clusters").len(), 4);
}

#[test]
fn a_read_only_store_reads_and_refuses_writes_naming_the_home() {
    let home = Home::new();
    {
        let store = home.store();
        assert!(
            store
                .try_begin_launch("dev", "req", None)
                .expect("begin")
                .is_none()
        );
        store
            .upsert_job(&skyplan_providers::JobRecord::running("dev", 1, "dev"))
            .expect("job");
    }
    let before = std::fs::read(home.path().join("state.db")).expect("read");
    let store = StateStore::open_with(home.path(), &StoreOptions { read_only: true }).expect("open");
    assert!(store.is_read_only());
    assert_eq!(store.clusters().expect("clusters")[0].name, "dev");
    assert_eq!(store.jobs("dev").expect("jobs").len(), 1);
    let err = store.try_begin_launch("new", "req", None).expect_err("read-only");
    assert_eq!(
        err.to_string(),
        format!(
            "state store: recording cluster \"new\": SKYPLAN_HOME ({}) is read-only (the store was \
             opened read-only)",
            home.path().display()
        )
    );
    assert!(store.set_status("dev", RecordStatus::Up).is_err());
    // What `status` and `down` of an unrecorded cluster do still works.
    store
        .update_job_state("dev", 1, skyplan_providers::JobState::Succeeded, Some(0))
        .expect("a live refresh is skipped");
    assert!(!store.remove_cluster("elsewhere").expect("nothing to remove"));
    assert!(store.remove_cluster("dev").is_err());
    drop(store);
    assert_eq!(std::fs::read(home.path().join("state.db")).expect("read"), before);
}

#[test]
fn a_read_only_home_without_a_store_reads_as_empty() {
    let home = Home::new();
    let store = StateStore::open_with(home.path(), &StoreOptions { read_only: true }).expect("open");
    assert!(store.clusters().expect("clusters").is_empty());
    assert!(store.cluster("dev").expect("cluster").is_none());
    assert!(store.try_begin_launch("dev", "req", None).is_err());
    assert!(!home.path().join("state.db").exists());
}

/// Whether this process can write into a directory it made read-only (root can).
fn writes_despite_permissions(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let wrote = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(probe);
    wrote
}

#[test]
fn a_home_without_write_permission_opens_for_reading() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    {
        let store = home.store();
        assert!(
            store
                .try_begin_launch("dev", "req", None)
                .expect("begin")
                .is_none()
        );
    }
    let set_mode = |mode| {
        for path in [home.path().join("state.db"), home.path().to_path_buf()] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    };
    set_mode(0o555);
    if writes_despite_permissions(home.path()) {
        set_mode(0o755);
        println!(
            "note: this process writes through file permissions (root); read-only is covered by StoreOptions"
        );
        return;
    }
    let opened = StateStore::open(home.path());
    let result = opened.map(|store| {
        let names: Vec<String> = store
            .clusters()
            .expect("clusters")
            .into_iter()
            .map(|c| c.name)
            .collect();
        let write = store.try_begin_launch("new", "req", None).map(|_| ());
        (store.is_read_only(), names, write.map_err(|e| e.to_string()))
    });
    set_mode(0o755);
    let (read_only, names, write) = result.expect("opens read-only");
    assert!(read_only);
    assert_eq!(names, ["dev"]);
    let err = write.expect_err("writes fail");
    assert!(
        err.ends_with(&format!("SKYPLAN_HOME ({}) is read-only", home.path().display())),
        "{err}"
    );
}

#[test]
fn a_home_that_is_a_file_is_named_as_such() {
    let home = Home::new();
    let file = home.path().join("home-file");
    std::fs::write(&file, "").expect("write");
    let err = StateStore::open(&file).expect_err("a file");
    let message = err.to_string();
    assert!(
        message.ends_with(&format!(
            "SKYPLAN_HOME {} is a file, expected a directory",
            file.display()
        )),
        "{message}"
    );
    assert!(!message.contains("os error"), "{message}");
    let below = file.join("deeper/home");
    let message = StateStore::open(&below).expect_err("under a file").to_string();
    assert!(
        message.ends_with(&format!(
            "SKYPLAN_HOME {} is inside {}, which is a file, expected a directory",
            below.display(),
            file.display()
        )),
        "{message}"
    );
}

#[test]
fn a_writer_waits_for_another_connections_lock_instead_of_failing() {
    let home = Home::new();
    let store = home.store();
    assert!(
        store
            .try_begin_launch("dev", "req", None)
            .expect("begin")
            .is_none()
    );
    let db = home.path().join("state.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut other = rusqlite::Connection::open(&db).expect("open");
        let tx = other
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("lock");
        locked_tx.send(()).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(500));
        tx.commit().expect("release");
    });
    locked_rx.recv().expect("locked");
    let start = std::time::Instant::now();
    store
        .set_status("dev", RecordStatus::Up)
        .expect("waits, then writes");
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    holder.join().expect("holder");
    assert_eq!(
        store.cluster("dev").expect("read").expect("record").status,
        RecordStatus::Up
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any bytes as `state.db` (some behind SQLite's header): open never panics, and a
    /// writable home always ends with a working store.
    #[test]
    fn any_bytes_as_state_db_open_to_a_working_store(
        bytes in proptest::collection::vec(any::<u8>(), 0..6000),
        with_header in any::<bool>(),
    ) {
        let home = Home::new();
        let mut content = if with_header { b"SQLite format 3\0".to_vec() } else { Vec::new() };
        content.extend(bytes);
        std::fs::write(home.path().join("state.db"), &content).expect("write");
        match StateStore::open(home.path()) {
            Ok(store) => {
                if let Some(recovered) = store.recovered() {
                    assert_plain(&recovered.to_string());
                }
                store.clusters().expect("clusters");
                prop_assert!(store.try_begin_launch("dev", "req", None).expect("begin").is_none());
            }
            Err(err) => {
                let message = err.to_string();
                assert_plain(&message);
                prop_assert!(message.contains("mv "), "no way out in: {message}");
            }
        }
    }

    /// A real store with bytes overwritten at random places: open never panics; it recovers
    /// or reads, and reading never panics either.
    #[test]
    fn a_real_store_with_damaged_bytes_never_panics(
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..40),
    ) {
        let mut bytes = real_store_bytes(40);
        for (at, byte) in damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let home = Home::new();
        std::fs::write(home.path().join("state.db"), &bytes).expect("write");
        if let Ok(store) = StateStore::open(home.path()) {
            let _ = store.clusters();
            let _ = store.try_begin_launch("dev", "req", None);
        }
    }
}
