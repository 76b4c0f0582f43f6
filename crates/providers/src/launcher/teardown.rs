//! `down` and `status`: tearing a cluster down everywhere it might be (the state store plus every
//! provider's `list()`, so crashed launches are found), and the live view of recorded clusters.

use std::collections::BTreeSet;

use serde::Serialize;

use super::Providers;
use crate::store::{ClusterRecord, JobRecord, RecordStatus, StateStore};
use crate::{ClusterStatus, ClusterSummary, ProviderError, TeardownOutcome};

/// What `down` did for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownOutcome {
    /// The cluster.
    pub name: String,
    /// Providers asked to tear it down, with their answers.
    pub torn_down: Vec<(String, TeardownOutcome)>,
    /// Whether a state-store record was removed.
    pub record_removed: bool,
    /// Problems that did not stop the teardown (a provider whose `list()` failed).
    pub warnings: Vec<String>,
}

impl DownOutcome {
    /// Whether anything existed (a record, or resources at some provider).
    pub fn found(&self) -> bool {
        self.record_removed
            || self
                .torn_down
                .iter()
                .any(|(_, o)| *o == TeardownOutcome::Requested)
    }
}

/// Tears down cluster `name`: at the provider its record names, and at every provider whose
/// `list()` finds resources labeled with it (a launch killed before it could record anything),
/// then removes the record. Idempotent: a second call finds nothing and succeeds.
///
/// The record is kept (and an error returned) when a teardown fails, or when the record names a
/// provider that is not configured while the cluster may still exist.
pub async fn teardown_cluster(
    store: &StateStore,
    providers: &Providers,
    name: &str,
) -> Result<DownOutcome, ProviderError> {
    let record = store.cluster(name)?;
    let mut outcome = DownOutcome {
        name: name.to_string(),
        torn_down: Vec::new(),
        record_removed: false,
        warnings: Vec::new(),
    };
    let mut asked = BTreeSet::new();
    if let Some(record) = &record
        && let Some(cloud) = &record.provider
    {
        match providers.get(cloud) {
            Some(provider) => {
                outcome
                    .torn_down
                    .push((cloud.clone(), provider.teardown(name).await?));
                asked.insert(cloud.clone());
            }
            None if record.status == RecordStatus::Failed => outcome.warnings.push(format!(
                "its last attempt was on {cloud}, which is not configured here; nothing should be left there"
            )),
            None => return Err(ProviderError::NoProvider { cloud: cloud.clone() }),
        }
    }
    for (id, provider) in providers {
        if asked.contains(id) {
            continue;
        }
        match provider.list().await {
            Ok(clusters) => {
                if clusters.iter().any(|c| c.name == name) {
                    outcome
                        .torn_down
                        .push((id.clone(), provider.teardown(name).await?));
                }
            }
            Err(error) => outcome
                .warnings
                .push(format!("could not list clusters on {id}: {error}")),
        }
    }
    outcome.record_removed = store.remove_cluster(name)?;
    Ok(outcome)
}

/// A cluster as `skyplan status` shows it: the record, the provider's live view, and the jobs.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The state-store record.
    pub record: ClusterRecord,
    /// The provider's live status, when it answered.
    pub live: Option<ClusterStatus>,
    /// Why there is no live status (provider missing, unreachable, cluster gone).
    pub live_error: Option<String>,
    /// Recorded jobs, refreshed from the live status.
    pub jobs: Vec<JobRecord>,
}

/// Everything `skyplan status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Recorded clusters, by name.
    pub clusters: Vec<ClusterView>,
    /// Clusters providers hold that the store does not know (crashed launches); `down` removes
    /// them.
    pub unrecorded: Vec<ClusterSummary>,
}

/// Reads every recorded cluster's live status from its provider (updating recorded jobs), and
/// every provider's `list()` for clusters the store does not know.
pub async fn status_report(store: &StateStore, providers: &Providers) -> Result<StatusReport, ProviderError> {
    let records = store.clusters()?;
    let mut views = Vec::with_capacity(records.len());
    for record in &records {
        views.push(refresh_cluster(store, providers, record).await?);
    }
    let known: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
    let mut unrecorded = Vec::new();
    for provider in providers.values() {
        if let Ok(clusters) = provider.list().await {
            unrecorded.extend(clusters.into_iter().filter(|c| !known.contains(c.name.as_str())));
        }
    }
    Ok(StatusReport {
        clusters: views,
        unrecorded,
    })
}

/// One cluster's live view (see [`status_report`]).
pub async fn refresh_cluster(
    store: &StateStore,
    providers: &Providers,
    record: &ClusterRecord,
) -> Result<ClusterView, ProviderError> {
    let mut live = None;
    let mut live_error = None;
    if record.status == RecordStatus::Failed {
        live_error = Some("launch failed; `skyplan down` removes the record".to_string());
    } else {
        match record.provider.as_ref().and_then(|p| providers.get(p)) {
            None => {
                live_error = Some(match &record.provider {
                    Some(cloud) => format!("no provider for cloud {cloud} is configured"),
                    None => "not provisioned yet".to_string(),
                })
            }
            Some(provider) => match provider.status(&record.name).await {
                Ok(status) => {
                    for job in &status.jobs {
                        store.update_job_state(&record.name, job.id, job.state, job.exit_code)?;
                    }
                    live = Some(status);
                }
                Err(error) => live_error = Some(error.to_string()),
            },
        }
    }
    Ok(ClusterView {
        record: record.clone(),
        live,
        live_error,
        jobs: store.jobs(&record.name)?,
    })
}
