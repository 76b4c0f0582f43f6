//! The one plan path: gather live offers and capacity from the enabled providers once, keep only
//! offers of enabled clouds, solve the whole pipeline once. `launch --dryrun` stops here;
//! `launch` provisions exactly this plan. Also: the "cheaper but not enabled" notes, and the
//! error that names the clouds that could run a task when no enabled one can.

use std::collections::BTreeMap;

use serde::Serialize;
use skyplan_catalog::Catalog;
use skyplan_optimizer::{OptimizerError, Plan, Policy, TaskGraph, candidates, solve};

use super::events::{LaunchEvent, Progress};
use super::{LaunchError, Launcher, PipelineRequest};

/// A plan made for launching: the joint placement of every task on the enabled providers (live
/// capacity included), plus notes for the user. Serializes as the [`Plan`] with a `notes` array.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchPlan {
    /// The joint plan.
    #[serde(flatten)]
    pub plan: Plan,
    /// One line per cheaper offer on a cloud that is not enabled.
    pub notes: Vec<String>,
    /// The enabled clouds planned on.
    pub clouds: Vec<String>,
    /// Offers the plan was solved on (static catalog of enabled clouds plus live offers).
    #[serde(skip)]
    pub(super) catalog: Catalog,
    /// The policy with live capacity rows (re-solves add blocks).
    #[serde(skip)]
    pub(super) policy: Policy,
}

/// A cloud that could run a task but is not enabled, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisabledCloud {
    /// Cloud name.
    pub cloud: String,
    /// Why it is not enabled.
    pub reason: String,
}

impl Launcher {
    /// Plans `request` for launching: live offers and capacity of the enabled providers (asked
    /// once, concurrently; one that does not answer is reported and planned without), offers of
    /// enabled clouds only, one solve of the whole pipeline. Creates nothing: `launch --dryrun`
    /// is this call. When no enabled cloud can run a task, the error names the clouds that could
    /// and why each is not enabled.
    pub async fn plan(
        &self,
        request: &PipelineRequest,
        progress: &dyn Progress,
    ) -> Result<LaunchPlan, LaunchError> {
        let graph = request.graph();
        let (full, policy) = self.live_catalog(progress).await;
        let clouds: Vec<String> = self.backends.enabled().map(str::to_string).collect();
        let enabled = Catalog::from_offers(
            full.offers()
                .iter()
                .filter(|o| self.plans_on(o))
                .cloned()
                .collect(),
        );
        progress.event(&LaunchEvent::Planning {
            cluster: request.name(),
            blocked: policy.blocked.len(),
        });
        match solve(&enabled, &graph, &policy) {
            Ok(plan) => {
                let notes = self.disabled_notes(&full, &graph, &policy, &plan);
                Ok(LaunchPlan {
                    plan,
                    notes,
                    clouds,
                    catalog: enabled,
                    policy,
                })
            }
            Err(error) => Err(self.explain_infeasible(&full, &graph, &policy, error)),
        }
    }

    /// Whether the plan may use `offer`: its cloud is enabled and its provider serves the place
    /// ([`crate::Provider::serves`]: e.g. inside `SKYPLAN_AWS_REGIONS`).
    fn plans_on(&self, offer: &skyplan_catalog::Offer) -> bool {
        self.backends.is_enabled(&offer.cloud)
            && self
                .backends
                .providers
                .get(&offer.cloud)
                .is_some_and(|p| p.serves(offer))
    }

    /// The static catalog plus every enabled provider's live offers, and the policy plus their
    /// capacity rows.
    pub(super) async fn live_catalog(&self, progress: &dyn Progress) -> (Catalog, Policy) {
        let mut catalog = self.catalog.clone();
        let mut policy = self.policy.clone();
        let enabled: Vec<_> = self
            .backends
            .providers
            .values()
            .filter(|p| self.backends.is_enabled(p.id()))
            .collect();
        let answers = futures::future::join_all(
            enabled
                .into_iter()
                .map(|p| async move { (p.id(), p.offers().await) }),
        )
        .await;
        for (provider, answer) in answers {
            match answer {
                Ok(live) => {
                    catalog.extend(live.offers);
                    policy.capacity.extend(live.capacity);
                }
                Err(error) => {
                    tracing::warn!("live offers of {provider}: {error}");
                    progress.event(&LaunchEvent::OffersUnavailable {
                        provider,
                        error: &error,
                    });
                }
            }
        }
        (catalog, policy)
    }

    /// "gcp g2-standard-4 at 0.70452 $/h is cheaper but gcp is not enabled (...): see `skyplan
    /// check`", for each task whose cheapest candidate over all clouds is on a disabled cloud
    /// and cheaper than what the plan chose.
    fn disabled_notes(&self, full: &Catalog, graph: &TaskGraph, policy: &Policy, plan: &Plan) -> Vec<String> {
        let mut notes = Vec::new();
        for (id, planned) in graph.task_ids().zip(&plan.tasks) {
            let Ok(all) = candidates(full, graph.task(id), policy) else {
                continue;
            };
            let Some(cheapest) = all.iter().find(|c| !self.backends.is_enabled(&c.offer.cloud)) else {
                continue;
            };
            if cheapest.hourly >= planned.chosen.hourly_price {
                continue;
            }
            let cloud = &cheapest.offer.cloud;
            let why = self
                .backends
                .why_disabled(cloud)
                .unwrap_or_else(|| "not enabled".to_string());
            let prefix = if plan.tasks.len() > 1 {
                format!("task {}: ", planned.name)
            } else {
                String::new()
            };
            notes.push(format!(
                "{prefix}{cloud} {} at {} $/h is cheaper but {cloud} is not enabled ({why}): see `skyplan check`",
                cheapest.offer.instance_type,
                cheapest.hourly.normalize()
            ));
        }
        notes
    }

    /// Turns "no enabled offer" into an error that says which clouds could run the task.
    fn explain_infeasible(
        &self,
        full: &Catalog,
        graph: &TaskGraph,
        policy: &Policy,
        error: OptimizerError,
    ) -> LaunchError {
        let OptimizerError::NoCandidates { task, .. } = &error else {
            return LaunchError::NoPlacement(error);
        };
        let Some(id) = graph.task_ids().find(|id| &graph.task(*id).name == task) else {
            return LaunchError::NoPlacement(error);
        };
        let Ok(all) = candidates(full, graph.task(id), policy) else {
            return LaunchError::NoPlacement(error);
        };
        let mut could: BTreeMap<String, String> = BTreeMap::new();
        for candidate in &all {
            let cloud = &candidate.offer.cloud;
            if !could.contains_key(cloud)
                && let Some(reason) = self.backends.why_disabled(cloud)
            {
                could.insert(cloud.clone(), reason);
            }
        }
        // Kubernetes offers are read live from configured clusters, so the catalog cannot say
        // whether one would fit; name the backend when it is off and the task may use it.
        let k8s = crate::registry::KUBERNETES_ID;
        let task_allows_k8s = graph.task(id).requirements.is_empty()
            || graph.task(id).requirements.iter().any(|r| {
                r.cloud
                    .as_deref()
                    .is_none_or(|c| skyplan_optimizer::normalize_cloud(c) == k8s)
            });
        if task_allows_k8s
            && !could.contains_key(k8s)
            && let Some(reason) = self.backends.why_disabled(k8s)
        {
            could.insert(
                k8s.to_string(),
                format!("{reason} (your own clusters are offered live)"),
            );
        }
        if could.is_empty() {
            // An enabled cloud with offers only outside the regions it is configured for.
            if let Some(outside) = all
                .iter()
                .find(|c| self.backends.is_enabled(&c.offer.cloud) && !self.plans_on(c.offer))
            {
                return LaunchError::OutsideConfigured {
                    task: task.clone(),
                    cloud: outside.offer.cloud.clone(),
                    cheapest: format!(
                        "{} in {} at {} $/h",
                        outside.offer.instance_type,
                        outside.offer.region,
                        outside.hourly.normalize()
                    ),
                };
            }
            return LaunchError::NoPlacement(error);
        }
        LaunchError::NotEnabled {
            task: task.clone(),
            clouds: could
                .into_iter()
                .map(|(cloud, reason)| DisabledCloud { cloud, reason })
                .collect(),
        }
    }
}
