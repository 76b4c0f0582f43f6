//! Rows a foreign writer or a bug left behind: each bad row is skipped with a warning that
//! names the file, the row and the column, and the good rows still read.

use skyplan_providers::{JobRecord, JobState, RecordStatus, StateStore};

use crate::util::Home;

/// Runs `sql` on the store's file through a second connection, as another writer would.
fn execute(home: &Home, sql: &str) {
    rusqlite::Connection::open(home.path().join("state.db"))
        .expect("open")
        .execute_batch(sql)
        .expect("damage");
}

fn store_with_cluster(home: &Home, name: &str) -> std::sync::Arc<StateStore> {
    let store = home.store();
    assert!(
        store
            .try_begin_launch(name, "req", None)
            .expect("begin")
            .is_none()
    );
    store
}

#[test]
fn bad_job_rows_are_skipped_with_a_warning_naming_job_and_column() {
    let home = Home::new();
    let store = store_with_cluster(&home, "dev");
    store
        .upsert_job(&JobRecord::running("dev", 1, "good"))
        .expect("job");
    execute(
        &home,
        "INSERT INTO jobs (cluster, id, name, status, started_at) VALUES ('dev', 2, 'a', 'BOGUS', 0);
         INSERT INTO jobs (cluster, id, name, status, started_at) VALUES ('dev', -3, 'b', 'RUNNING', 0);
         INSERT INTO jobs (cluster, id, name, status, exit_code, started_at)
             VALUES ('dev', 4, 'c', 'FAILED', 1099511627776, 0);
         INSERT INTO jobs (cluster, id, name, status, started_at) VALUES ('dev', 5, 'd', 'RUNNING', 'yesterday');
         INSERT INTO jobs (cluster, id, name, status, started_at, ended_at) VALUES ('dev', 6, 'e', 'RUNNING', 0, 1.5);",
    );
    let jobs = store.jobs("dev").expect("status still reads");
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [1]);
    assert_eq!(jobs[0].status, JobState::Running);
    let db = store.path().display().to_string();
    assert_eq!(
        store.take_warnings(),
        [
            format!(
                "{db}: a job of cluster \"dev\": column id holds the integer -3, expected a job id (0 or more); row skipped"
            ),
            format!(
                "{db}: job 2 of cluster \"dev\": column status holds the text \"BOGUS\", expected PENDING, RUNNING, SUCCEEDED or FAILED; row skipped"
            ),
            format!(
                "{db}: job 4 of cluster \"dev\": column exit_code holds the integer 1099511627776, expected an exit code (a 32-bit integer); row skipped"
            ),
            format!(
                "{db}: job 5 of cluster \"dev\": column started_at holds the text \"yesterday\", expected an integer; row skipped"
            ),
            format!(
                "{db}: job 6 of cluster \"dev\": column ended_at holds the number 1.5, expected an integer; row skipped"
            ),
        ]
    );
    // Taken once; reading again finds them again.
    assert!(store.take_warnings().is_empty());
    store.jobs("dev").expect("jobs");
    store.jobs("dev").expect("jobs");
    assert_eq!(
        store.take_warnings().len(),
        5,
        "one warning per row, however often read"
    );
}

#[test]
fn bad_cluster_rows_are_skipped_and_down_still_removes_them() {
    let home = Home::new();
    let store = store_with_cluster(&home, "good");
    execute(
        &home,
        "INSERT INTO clusters (name, placement, status, created_at, updated_at)
             VALUES ('bad-placement', '{not json', 'UP', 0, 0);
         INSERT INTO clusters (name, status, created_at, updated_at) VALUES ('bad-status', 'RUNNING?', 0, 0);
         INSERT INTO clusters (name, status, created_at, updated_at) VALUES (NULL, 'UP', 0, 0);
         INSERT INTO clusters (name, status, task, created_at, updated_at) VALUES ('bad-task', 'UP', x'00ff', 0, 0);",
    );
    let names: Vec<String> = store
        .clusters()
        .expect("clusters")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["good"]);
    let db = store.path().display().to_string();
    assert_eq!(
        store.take_warnings(),
        [
            format!("{db}: a cluster row: column name holds NULL, expected text; row skipped"),
            format!(
                "{db}: cluster \"bad-placement\": column placement holds the text \"{{not json\", expected a placement as JSON; row skipped"
            ),
            format!(
                "{db}: cluster \"bad-status\": column status holds the text \"RUNNING?\", expected INIT, UP or FAILED; row skipped"
            ),
            format!(
                "{db}: cluster \"bad-task\": column task holds a blob of 2 bytes, expected text; row skipped"
            ),
        ]
    );
    // `down NAME` reads the record (none, so it asks the providers' labels) and removes the row.
    assert!(store.cluster("bad-status").expect("no error").is_none());
    assert_eq!(store.take_warnings().len(), 1);
    let err = store
        .try_begin_launch("bad-status", "req", None)
        .expect_err("unreadable record");
    assert!(
        err.to_string().ends_with("`skyplan down bad-status` removes it"),
        "{err}"
    );
    assert!(store.remove_cluster("bad-status").expect("remove"));
    assert!(
        store
            .try_begin_launch("bad-status", "req", None)
            .expect("begin")
            .is_none()
    );
    store.set_status("bad-status", RecordStatus::Up).expect("status");
}

#[test]
fn bad_attempt_rows_are_skipped() {
    let home = Home::new();
    let store = store_with_cluster(&home, "dev");
    let placement = skyplan_providers::fake::placement("aws", "us-east-1", None, "m6i.large");
    store
        .record_intent("dev", 1, "aws", &placement, "req-1")
        .expect("intent");
    execute(
        &home,
        "INSERT INTO attempts (cluster, n, provider, placement, outcome, at) VALUES ('dev', 2, 'aws', '[', 'retry', 0);
         INSERT INTO attempts (cluster, n, provider, placement, outcome, at) VALUES ('dev', 99999999999, 'aws', '{}', 'retry', 0);",
    );
    let attempts = store.attempts("dev").expect("attempts");
    assert_eq!(attempts.iter().map(|a| a.n).collect::<Vec<_>>(), [1]);
    let warnings = store.take_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("attempt 2 of cluster \"dev\": column placement"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("an attempt of cluster \"dev\": column n holds the integer 99999999999"),
        "{warnings:?}"
    );
}
