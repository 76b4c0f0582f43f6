//! `down` and `status`: tearing a cluster down everywhere it might be (the state store plus every
//! provider's `list()`, so crashed launches are found), and the live view of recorded clusters.

use std::collections::BTreeSet;

use serde::Serialize;

use super::Providers;
use crate::store::{ClusterRecord, JobRecord, RecordStatus, StateStore};
use crate::{ClusterRef, ClusterStatus, ClusterSummary, ProviderError, TeardownOutcome};

impl<'a> From<&'a ClusterRecord> for ClusterRef<'a> {
    /// The cluster where its record says it was placed.
    fn from(record: &'a ClusterRecord) -> Self {
        ClusterRef::new(&record.name).at(
            record.placement.as_ref().map(|p| p.region.as_str()),
            record.placement.as_ref().and_then(|p| p.zone.as_deref()),
        )
    }
}

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
    /// Whether every place that may hold the cluster answered: false when a provider could
    /// not be asked, so nothing can be said of what it holds (`down` then exits non-zero).
    pub verified: bool,
}

impl DownOutcome {
    /// Whether anything existed (a record, or resources at some provider).
    pub fn found(&self) -> bool {
        self.record_removed || self.torn_down.iter().any(|(_, o)| o.existed())
    }

    /// What is still shutting down, each with its provider.
    pub fn terminating(&self) -> Vec<String> {
        self.torn_down
            .iter()
            .flat_map(|(provider, outcome)| match outcome {
                TeardownOutcome::Terminating { remaining } => {
                    remaining.iter().map(|r| format!("{r} ({provider})")).collect()
                }
                _ => Vec::new(),
            })
            .collect()
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
        verified: true,
    };
    let mut asked = BTreeSet::new();
    if let Some(record) = &record
        && let Some(cloud) = &record.provider
    {
        match providers.get(cloud) {
            Some(provider) => {
                outcome
                    .torn_down
                    .push((cloud.clone(), provider.teardown(ClusterRef::from(record)).await?));
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
                        .push((id.clone(), provider.teardown(name.into()).await?));
                }
            }
            Err(error) => {
                // Without a record naming another place, this provider may hold the cluster.
                if record.as_ref().is_none_or(|r| r.provider.is_none()) {
                    outcome.verified = false;
                }
                outcome
                    .warnings
                    .push(format!("could not list clusters on {id}: {error}"));
            }
        }
    }
    outcome.record_removed = store.remove_cluster(name)?;
    Ok(outcome)
}

/// The state `skyplan status` shows for a cluster: the provider's live state when it answered,
/// else what can truthfully be said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShownState {
    /// Recorded, not yet provisioned (or the launch was interrupted).
    Init,
    /// Provisioning (live).
    Provisioning,
    /// Up (live).
    Up,
    /// The launch failed, or the provider reports the cluster failed.
    Failed,
    /// The provider answered, and the cluster is not where it was recorded (nor where the
    /// provider looks).
    NotFound,
    /// The provider could not be asked (unreachable, not configured): nothing can be said.
    Unknown,
}

impl std::fmt::Display for ShownState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShownState::Init => "INIT",
            ShownState::Provisioning => "PROVISIONING",
            ShownState::Up => "UP",
            ShownState::Failed => "FAILED",
            ShownState::NotFound => "NOT FOUND",
            ShownState::Unknown => "UNKNOWN",
        })
    }
}

/// A cluster as `skyplan status` shows it: the record, the provider's live view, and the jobs.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// What `status` shows (the live state, or NOT_FOUND / UNKNOWN with `live_error`).
    pub state: ShownState,
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
    /// Providers that could not list what they hold, with why: their unrecorded clusters are
    /// unknown, not absent.
    pub unlisted: Vec<Unlisted>,
}

/// A provider whose clusters could not be listed (see [`StatusReport::unlisted`]).
#[derive(Debug, Clone, Serialize)]
pub struct Unlisted {
    /// The provider (cloud) id.
    pub provider: String,
    /// Why it could not list.
    pub reason: String,
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
    let mut unlisted = Vec::new();
    for provider in providers.values() {
        match provider.list().await {
            Ok(clusters) => {
                unrecorded.extend(clusters.into_iter().filter(|c| !known.contains(c.name.as_str())))
            }
            Err(err) => unlisted.push(Unlisted {
                provider: provider.id().to_string(),
                reason: err.to_string(),
            }),
        }
    }
    Ok(StatusReport {
        clusters: views,
        unrecorded,
        unlisted,
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
    let state;
    if record.status == RecordStatus::Failed {
        state = ShownState::Failed;
        live_error = Some("launch failed; `skyplan down` removes the record".to_string());
    } else {
        match record.provider.as_ref().and_then(|p| providers.get(p)) {
            None => {
                (state, live_error) = match &record.provider {
                    Some(cloud) => (
                        ShownState::Unknown,
                        Some(format!("no provider for cloud {cloud} is configured")),
                    ),
                    None => (ShownState::Init, Some("not provisioned yet".to_string())),
                }
            }
            Some(provider) => match provider.status(ClusterRef::from(record)).await {
                Ok(status) => {
                    for job in &status.jobs {
                        store.update_job_state(&record.name, job.id, job.state, job.exit_code)?;
                    }
                    state = match status.state {
                        crate::ClusterState::Provisioning => ShownState::Provisioning,
                        crate::ClusterState::Up => ShownState::Up,
                        crate::ClusterState::Failed => ShownState::Failed,
                    };
                    live = Some(status);
                }
                Err(error @ ProviderError::NotFound { .. }) => {
                    state = ShownState::NotFound;
                    let place = record
                        .placement
                        .as_ref()
                        .map(|p| format!(" (recorded on {} {})", p.cloud, p.region))
                        .unwrap_or_default();
                    live_error = Some(format!("{error}{place}"));
                }
                Err(error) => {
                    state = ShownState::Unknown;
                    live_error = Some(error.to_string());
                }
            },
        }
    }
    Ok(ClusterView {
        state,
        record: record.clone(),
        live,
        live_error,
        jobs: store.jobs(&record.name)?,
    })
}
