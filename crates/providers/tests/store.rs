//! The state store under concurrency, and `down` after a launch that died half-way; its
//! hardening against files and rows that would trap the user in the submodules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skyplan_catalog::Catalog;
use skyplan_optimizer::TaskNode;
use skyplan_providers::fake::{FakeProvider, placement};
use skyplan_providers::{
    LOCAL, LaunchRequest, NoProgress, Provider, Providers, ProvisionRequest, RecordStatus, StateStore,
    TaskRun, TeardownOutcome, status_report, teardown_cluster,
};

use crate::util::{Home, launcher, pid_exists, runtime};

/// Opening damaged, foreign, newer and read-only stores, and homes that are files.
mod recovery;
/// Bad rows: skipped with a warning naming the row and column.
mod rows;

fn local_request(cluster: &str, run: &str) -> LaunchRequest {
    LaunchRequest {
        cluster: cluster.to_string(),
        task: TaskNode::new(cluster, vec![]),
        run: TaskRun::command(cluster, run),
    }
}

#[test]
fn concurrent_launches_with_different_names_both_succeed() {
    let home = Home::new();
    let path = home.path().to_path_buf();
    // Two "CLI invocations": separate threads, runtimes, store connections and providers.
    let handles: Vec<_> = ["alpha", "beta"]
        .into_iter()
        .map(|name| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Arc::new(StateStore::open(&path).expect("store"));
                let local = Arc::new(skyplan_providers::LocalProvider::new(&path).with_gpus(Vec::new()));
                let launcher = launcher(Catalog::default(), store).with_provider(local);
                runtime()
                    .block_on(launcher.launch(&local_request(name, "echo $SKYPLAN_NODE_RANK"), &NoProgress))
            })
        })
        .collect();
    for handle in handles {
        let outcome = handle.join().expect("thread").expect("launch");
        assert_eq!(outcome.placement.cloud, LOCAL);
    }
    let store = home.store();
    let names: Vec<(String, RecordStatus)> = store
        .clusters()
        .expect("clusters")
        .into_iter()
        .map(|c| (c.name, c.status))
        .collect();
    assert_eq!(
        names,
        [
            ("alpha".to_string(), RecordStatus::Up),
            ("beta".to_string(), RecordStatus::Up)
        ]
    );
    assert_eq!(store.check_consistency().expect("check"), Vec::<String>::new());
    let providers: Providers = [(LOCAL.to_string(), home.local() as Arc<dyn Provider>)].into();
    runtime().block_on(async {
        for name in ["alpha", "beta"] {
            teardown_cluster(&store, &providers, name).await.expect("down");
        }
    });
    assert!(store.clusters().expect("clusters").is_empty());
}

#[test]
fn the_same_name_launched_concurrently_wins_once() {
    let home = Home::new();
    let path = home.path().to_path_buf();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Arc::new(StateStore::open(&path).expect("store"));
                let fake = Arc::new(FakeProvider::new("aws"));
                let launcher = launcher(crate::util::aws_catalog(), store).with_provider(fake);
                let request = LaunchRequest {
                    cluster: "same".to_string(),
                    task: crate::util::four_cpu_task("same"),
                    run: TaskRun::command("same", "true"),
                };
                runtime().block_on(launcher.launch(&request, &NoProgress)).is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(wins, 1);
    assert!(home.store().check_consistency().expect("check").is_empty());
}

#[test]
fn many_writers_never_see_busy_errors() {
    let home = Home::new();
    let path = home.path().to_path_buf();
    let handles: Vec<_> = (0..6)
        .map(|thread| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = StateStore::open(&path).expect("store");
                assert!(store.recovered().is_none(), "{:?}", store.recovered());
                for i in 0..15 {
                    let name = format!("c{thread}-{i}");
                    assert!(
                        store
                            .try_begin_launch(&name, "req", None)
                            .expect("begin")
                            .is_none()
                    );
                    let p = placement("aws", "us-east-1", Some("use1-az1"), "m6i.large");
                    store.record_intent(&name, 1, "aws", &p, "req-1").expect("intent");
                    store.finish_attempt(&name, 1, "succeeded", None).expect("finish");
                    store.set_status(&name, RecordStatus::Up).expect("status");
                    if i % 3 == 0 {
                        assert!(store.remove_cluster(&name).expect("remove"));
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("writer thread");
    }
    let store = home.store();
    assert_eq!(store.clusters().expect("clusters").len(), 6 * 10);
    assert!(store.check_consistency().expect("check").is_empty());
}

#[test]
fn down_cleans_up_a_cluster_whose_launch_died_before_recording_it() {
    let home = Home::new();
    let local = home.local();
    let store = home.store();
    // The launch recorded its intent, provisioned, and died before recording the result...
    assert!(
        store
            .try_begin_launch("crashed", "req", None)
            .expect("begin")
            .is_none()
    );
    let mut p = placement(LOCAL, LOCAL, None, "local");
    p.hourly_price = rust_decimal::Decimal::ZERO;
    store
        .record_intent("crashed", 1, LOCAL, &p, "req-1")
        .expect("intent");
    // ...and another never got as far as the store at all.
    let rt = runtime();
    let mut pids = Vec::new();
    for (name, request_id) in [("crashed", "req-1"), ("orphan", "orphan-1")] {
        let request = ProvisionRequest {
            request_id: request_id.to_string(),
            cluster: name.to_string(),
            placement: p.clone(),
            task: TaskRun::command(name, "sleep 300"),
        };
        rt.block_on(local.provision(&request)).expect("provision");
        let pid_file = home.path().join(format!("local/{name}/jobs/1/node-0.pid"));
        let start = Instant::now();
        while !pid_file.exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        pids.push(pid);
    }
    // A fresh "process": new provider and store instances.
    let providers: Providers = [
        (LOCAL.to_string(), home.local() as Arc<dyn Provider>),
        (
            "aws".to_string(),
            Arc::new(FakeProvider::new("aws")) as Arc<dyn Provider>,
        ),
    ]
    .into();
    let store = home.store();
    rt.block_on(async {
        let report = status_report(&store, &providers).await.expect("status");
        let unrecorded: Vec<&str> = report.unrecorded.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(unrecorded, ["orphan"]);
        assert_eq!(report.clusters[0].record.status, RecordStatus::Init);

        let crashed = teardown_cluster(&store, &providers, "crashed")
            .await
            .expect("down");
        assert!(crashed.record_removed);
        assert_eq!(
            crashed.torn_down,
            [(LOCAL.to_string(), TeardownOutcome::Terminated)]
        );
        let orphan = teardown_cluster(&store, &providers, "orphan")
            .await
            .expect("down");
        assert!(!orphan.record_removed);
        assert_eq!(
            orphan.torn_down,
            [(LOCAL.to_string(), TeardownOutcome::Terminated)]
        );
        let again = teardown_cluster(&store, &providers, "orphan")
            .await
            .expect("down again");
        assert!(!again.found());
    });
    let start = Instant::now();
    while pids.iter().any(|&pid| pid_exists(pid)) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pids.iter().all(|&pid| !pid_exists(pid)),
        "processes survived down"
    );
    assert!(local.cluster_dir("crashed").parent().is_some_and(|root| {
        std::fs::read_dir(root)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }));
    assert!(store.clusters().expect("clusters").is_empty());
}
