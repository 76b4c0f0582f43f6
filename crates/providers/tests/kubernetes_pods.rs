//! Pods as a real cluster treats them, against the stricter kubesim: graceful deletion (the
//! backend's teardown waits, a second one says already gone), images that cannot be pulled,
//! and containers that take a while to be created.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skyplan_kubesim::ClustersFile;
use skyplan_providers::{KubernetesProvider, Provider, ProviderError, TaskRun};

use crate::kubernetes::{provider, small_request, start_sim, start_sim_with};
use crate::util::runtime;

#[test]
fn teardown_waits_for_the_grace_period_then_says_terminating_and_a_second_one_already_gone() {
    runtime().block_on(async {
        let sim = start_sim().await;
        let provider = provider(&sim, &["alpha"], Duration::from_secs(10));
        let request = |name: &str, run: &str| small_request(name, TaskRun::command("t", run));
        let running = |provider: Arc<KubernetesProvider>, name: &'static str| async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let status = provider.status(name.into()).await.expect("status");
                if status
                    .jobs
                    .iter()
                    .any(|j| j.state == skyplan_providers::JobState::Running)
                {
                    return;
                }
                assert!(Instant::now() < deadline, "{name} never ran: {status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        // Stops on SIGTERM: gone within the wait, so teardown says terminated.
        provider
            .provision(&request("polite", "sleep 300"))
            .await
            .expect("provision");
        running(provider.clone(), "polite").await;
        let outcome = provider.teardown("polite".into()).await.expect("down");
        assert_eq!(outcome, skyplan_providers::TeardownOutcome::Terminated);
        // Ignores SIGTERM (30 s grace): still terminating after the bounded wait, said so.
        provider
            .provision(&request("stubborn", "trap '' TERM; sleep 300"))
            .await
            .expect("provision");
        running(provider.clone(), "stubborn").await;
        let started = Instant::now();
        let outcome = provider.teardown("stubborn".into()).await.expect("down");
        assert!(
            started.elapsed() >= Duration::from_secs(9),
            "{:?}",
            started.elapsed()
        );
        match &outcome {
            skyplan_providers::TeardownOutcome::Terminating { remaining } => {
                assert!(
                    remaining
                        .iter()
                        .any(|r| r.contains("stubborn-0") && r.contains("terminating")),
                    "{remaining:?}"
                );
            }
            other => panic!("expected terminating, got {other:?}"),
        }
        // Pods in their grace period are going: not listed, and a second teardown finds nothing.
        let listed = provider.list().await.expect("list");
        assert!(listed.iter().all(|c| c.name != "stubborn"), "{listed:?}");
        let again = provider.teardown("stubborn".into()).await.expect("down again");
        assert_eq!(again, skyplan_providers::TeardownOutcome::AlreadyGone);
    });
}

#[test]
fn a_pod_whose_image_cannot_be_pulled_fails_provision_with_the_reason() {
    runtime().block_on(async {
        let clusters = "clusters:\n  - name: alpha\n    unpullable_images: ['registry.invalid/*']\n    nodes:\n      - name: alpha-cpu\n        allocatable: { cpu: 4, memory: 16Gi }\n";
        let sim = start_sim_with(clusters).await;
        let provider = provider(&sim, &["alpha"], Duration::from_secs(10));
        let mut task = TaskRun::command("t", "echo never");
        task.image_id = Some("docker:registry.invalid/private:1".into());
        let request = small_request("pull", task);
        let started = Instant::now();
        let err = provider.provision(&request).await.expect_err("the image cannot be pulled");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert!(matches!(err, ProviderError::Unschedulable { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("pod pull-0 cannot start: ErrImagePull") && err.contains("registry.invalid/private:1"),
            "{err}"
        );
        // Nothing is left once it is torn down.
        provider.teardown("pull".into()).await.expect("down");
        assert!(provider.list().await.expect("list").is_empty());
    });
}

#[test]
fn provision_waits_while_containers_are_created() {
    runtime().block_on(async {
        let clusters = "clusters:\n  - name: alpha\n    container_start_delay: 2\n    nodes:\n      - name: alpha-cpu\n        allocatable: { cpu: 4, memory: 16Gi }\n";
        let bad = clusters.replace("container_start_delay: 2", "container_start_delay: -1");
        let err = ClustersFile::from_yaml_str(&bad).expect_err("negative delay").to_string();
        assert!(err.contains("clusters[0].container_start_delay"), "{err}");
        let sim = start_sim_with(clusters).await;
        let provider = provider(&sim, &["alpha"], Duration::from_secs(10));
        let request = small_request("slow", TaskRun::command("t", "sleep 300"));
        let provision = provider.provision(&request);
        tokio::pin!(provision);
        // While it waits, the progress note says what for.
        let mut note = None;
        let started = Instant::now();
        let handle = loop {
            tokio::select! {
                handle = &mut provision => break handle.expect("provision"),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    note = note.or_else(|| provider.wait_note("slow"));
                }
            }
        };
        assert!(started.elapsed() >= Duration::from_millis(1900), "{:?}", started.elapsed());
        assert_eq!(handle.nodes.len(), 1);
        let note = note.expect("a wait note while containers were created");
        assert!(note.contains("slow-0") && note.contains("ContainerCreating"), "{note}");
        provider.teardown("slow".into()).await.expect("down");
    });
}
