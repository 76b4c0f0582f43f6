//! `ProviderError`: what went wrong in a backend, typed so that the failover action follows from
//! the variant ([`ProviderError::failover`]) instead of from matching message strings. Backends map
//! their cloud's error codes to these variants in one place each.

use std::sync::Arc;

use skyplan_optimizer::{Blocked, Placement};

/// How far a capacity or quota problem reaches, which decides what failover blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Only this instance type in this zone and market (EC2's `InsufficientInstanceCapacity`).
    InstanceType,
    /// The whole zone; for placements without a zone (Kubernetes clusters), the region (the
    /// cluster).
    Zone,
    /// The whole region (a regional quota).
    Region,
    /// Every region of the cloud (a global quota, bad credentials).
    Cloud,
}

/// Errors a [`crate::Provider`] reports. Each variant says what the launcher does about it; the
/// mapping lives in [`ProviderError::failover`] and nowhere else.
///
/// Messages never hold secret values: backends must not put them there, and the launcher scrubs
/// the task's secret values with [`ProviderError::redacted`] before showing or storing anything.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The place has no capacity for this shape right now. Failover blocks `scope` (usually the
    /// zone, or the instance type in the zone) and tries the next placement.
    #[error("insufficient capacity ({scope:?}): {message}")]
    InsufficientCapacity {
        /// What the shortage covers.
        scope: Scope,
        /// The provider's explanation.
        message: String,
    },
    /// A quota is exhausted. Failover blocks `scope`: the region, or the cloud for global quotas.
    #[error("quota exceeded ({scope:?}): {message}")]
    QuotaExceeded {
        /// What the quota covers.
        scope: Scope,
        /// The provider's explanation (which quota, how much is left).
        message: String,
    },
    /// The scheduler cannot place the work (e.g. a pod stays pending). Failover blocks the zone,
    /// or the cluster when the placement has no zone.
    #[error("unschedulable: {message}")]
    Unschedulable {
        /// The scheduler's explanation.
        message: String,
    },
    /// The request itself is wrong (bad task, invalid name, a cluster that exists with another
    /// request id). Trying elsewhere would fail the same way: the launch stops.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// This provider cannot run this task at all (e.g. `docker:` images on `local`, spot where
    /// there is none). Failover skips the provider for this task.
    #[error("unsupported: {message}")]
    Unsupported {
        /// What is not supported.
        message: String,
    },
    /// Credentials are missing, expired or lack permissions. Failover blocks the provider.
    #[error("authentication failed: {message}")]
    Auth {
        /// The provider's explanation.
        message: String,
    },
    /// A temporary failure (throttling, a timeout, a 5xx). The launcher retries the same
    /// placement with the same request id, with bounded exponential backoff.
    #[error("transient error: {message}")]
    Transient {
        /// The provider's explanation.
        message: String,
    },
    /// The placement's cloud has no configured provider. Failover blocks that cloud.
    #[error("no provider for cloud {cloud}; configure it or run `skyplan check`")]
    NoProvider {
        /// The cloud of the placement.
        cloud: String,
    },
    /// The cluster (or job, node) does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `cluster "dev"`.
        what: String,
    },
    /// Waiting for a condition took longer than allowed.
    #[error("timed out after {seconds:.1}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        seconds: f64,
    },
    /// A teardown was asked for, but these resources of the cluster are still there (and not
    /// shutting down) when looked up again by its label.
    #[error("cluster {cluster:?} is not gone: still there: {}", remaining.join(", "))]
    TeardownIncomplete {
        /// The cluster.
        cluster: String,
        /// What is still there, each with where.
        remaining: Vec<String>,
    },
    /// Local IO failed (files, processes).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, naming the path.
        context: String,
        /// The cause.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The state store failed or holds data we cannot read.
    #[error("state store: {context}: {source}")]
    State {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

/// What the launcher does after a failed provision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "blocked")]
pub enum FailoverAction {
    /// Try the same placement again (same request id) after a backoff.
    Retry,
    /// Add this pattern to the policy's blocked list, re-solve, and try the next placement.
    Block(Blocked),
    /// Give up: trying elsewhere cannot help.
    Stop,
}

impl ProviderError {
    /// An [`ProviderError::Io`] error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ProviderError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// A [`ProviderError::State`] error with context.
    pub fn state(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ProviderError::State {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// A [`ProviderError::NotFound`] for cluster `name`.
    pub fn cluster_not_found(name: &str) -> Self {
        ProviderError::NotFound {
            what: format!("cluster {name:?}"),
        }
    }

    /// Whether this is [`ProviderError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::NotFound { .. })
    }

    /// Short machine-readable kind (`insufficient_capacity`, `quota_exceeded`, ...), for the
    /// state store and `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::InsufficientCapacity { .. } => "insufficient_capacity",
            ProviderError::QuotaExceeded { .. } => "quota_exceeded",
            ProviderError::Unschedulable { .. } => "unschedulable",
            ProviderError::InvalidRequest { .. } => "invalid_request",
            ProviderError::Unsupported { .. } => "unsupported",
            ProviderError::Auth { .. } => "auth",
            ProviderError::Transient { .. } => "transient",
            ProviderError::NoProvider { .. } => "no_provider",
            ProviderError::NotFound { .. } => "not_found",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::TeardownIncomplete { .. } => "teardown_incomplete",
            ProviderError::Io { .. } => "io",
            ProviderError::State { .. } => "state",
        }
    }

    /// What the launcher does when provisioning `placement` failed with this error. The single
    /// place where error kinds become failover decisions.
    ///
    /// ```
    /// use skyplan_providers::{FailoverAction, ProviderError, Scope};
    /// # let placement = skyplan_optimizer::Placement { cloud: "aws".into(), region: "us-east-1".into(),
    /// #     zone: Some("use1-az1".into()), instance_type: "p5.48xlarge".into(), accelerator: None,
    /// #     accelerator_count: 0.0, vcpus: None, memory_gib: None, use_spot: false,
    /// #     hourly_price: rust_decimal::Decimal::ONE, num_nodes: 1, alternative: 0 };
    /// let quota = ProviderError::QuotaExceeded { scope: Scope::Region, message: "vCPU limit".into() };
    /// let FailoverAction::Block(blocked) = quota.failover(&placement) else { panic!() };
    /// assert_eq!((blocked.cloud.as_deref(), blocked.region.as_deref(), blocked.zone.as_deref()),
    ///            (Some("aws"), Some("us-east-1"), None));
    /// let bad = ProviderError::InvalidRequest { message: "bad name".into() };
    /// assert_eq!(bad.failover(&placement), FailoverAction::Stop);
    /// ```
    pub fn failover(&self, placement: &Placement) -> FailoverAction {
        match self {
            ProviderError::InsufficientCapacity { scope, .. }
            | ProviderError::QuotaExceeded { scope, .. } => {
                FailoverAction::Block(block_scope(placement, *scope))
            }
            ProviderError::Unschedulable { .. } => FailoverAction::Block(block_scope(placement, Scope::Zone)),
            ProviderError::Unsupported { .. }
            | ProviderError::Auth { .. }
            | ProviderError::NoProvider { .. } => FailoverAction::Block(block_scope(placement, Scope::Cloud)),
            ProviderError::Transient { .. } => FailoverAction::Retry,
            ProviderError::InvalidRequest { .. }
            | ProviderError::NotFound { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::TeardownIncomplete { .. }
            | ProviderError::Io { .. }
            | ProviderError::State { .. } => FailoverAction::Stop,
        }
    }

    /// The same error with every occurrence of `secrets` in its messages replaced by
    /// `<redacted>`.
    pub fn redacted(self, secrets: &[&str]) -> Self {
        if secrets.iter().all(|s| s.is_empty()) {
            return self;
        }
        let scrub = |text: String| skyplan_spec::redact_text(&text, secrets);
        match self {
            ProviderError::InsufficientCapacity { scope, message } => ProviderError::InsufficientCapacity {
                scope,
                message: scrub(message),
            },
            ProviderError::QuotaExceeded { scope, message } => ProviderError::QuotaExceeded {
                scope,
                message: scrub(message),
            },
            ProviderError::Unschedulable { message } => ProviderError::Unschedulable {
                message: scrub(message),
            },
            ProviderError::InvalidRequest { message } => ProviderError::InvalidRequest {
                message: scrub(message),
            },
            ProviderError::Unsupported { message } => ProviderError::Unsupported {
                message: scrub(message),
            },
            ProviderError::Auth { message } => ProviderError::Auth {
                message: scrub(message),
            },
            ProviderError::Transient { message } => ProviderError::Transient {
                message: scrub(message),
            },
            ProviderError::NotFound { what } => ProviderError::NotFound { what: scrub(what) },
            ProviderError::Timeout { what, seconds } => ProviderError::Timeout {
                what: scrub(what),
                seconds,
            },
            ProviderError::Io { context, source } => ProviderError::Io {
                context: scrub(context),
                source,
            },
            ProviderError::State { context, source } => ProviderError::State {
                context: scrub(context),
                source,
            },
            other @ (ProviderError::NoProvider { .. } | ProviderError::TeardownIncomplete { .. }) => other,
        }
    }
}

/// The blocked pattern for `scope` around `placement`.
pub(crate) fn block_scope(placement: &Placement, scope: Scope) -> Blocked {
    let cloud = Some(placement.cloud.clone());
    let region = Some(placement.region.clone());
    match scope {
        Scope::InstanceType => Blocked {
            cloud,
            region,
            zone: placement.zone.clone(),
            instance_type: Some(placement.instance_type.clone()),
            spot: Some(placement.use_spot),
            ..Default::default()
        },
        // Without a zone, the region is the smallest place there is (a Kubernetes cluster).
        Scope::Zone => Blocked {
            cloud,
            region,
            zone: placement.zone.clone(),
            ..Default::default()
        },
        Scope::Region => Blocked {
            cloud,
            region,
            ..Default::default()
        },
        Scope::Cloud => Blocked {
            cloud,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_placement as testing_placement;

    #[test]
    fn every_kind_maps_to_one_action() {
        let placement = testing_placement("aws", "us-east-1", Some("use1-az1"), "g6.xlarge");
        let zone_block = |e: ProviderError| match e.failover(&placement) {
            FailoverAction::Block(b) => (b.region.clone(), b.zone.clone(), b.instance_type.clone()),
            other => panic!("expected a block, got {other:?}"),
        };
        let capacity = ProviderError::InsufficientCapacity {
            scope: Scope::Zone,
            message: "no".into(),
        };
        assert_eq!(
            zone_block(capacity),
            (Some("us-east-1".into()), Some("use1-az1".into()), None)
        );
        let instance = ProviderError::InsufficientCapacity {
            scope: Scope::InstanceType,
            message: "no".into(),
        };
        assert_eq!(zone_block(instance).2.as_deref(), Some("g6.xlarge"));
        let auth = ProviderError::Auth {
            message: "expired".into(),
        };
        assert_eq!(zone_block(auth), (None, None, None));
        assert_eq!(
            ProviderError::Transient {
                message: "503".into()
            }
            .failover(&placement),
            FailoverAction::Retry
        );
        assert_eq!(
            ProviderError::cluster_not_found("x").failover(&placement),
            FailoverAction::Stop
        );
    }

    #[test]
    fn zone_scope_without_zone_blocks_the_cluster() {
        let placement = testing_placement("kubernetes", "gke-l4", None, "node-pool-a");
        let err = ProviderError::Unschedulable {
            message: "0/3 nodes are available".into(),
        };
        let FailoverAction::Block(blocked) = err.failover(&placement) else {
            panic!("expected a block");
        };
        assert_eq!(blocked.region.as_deref(), Some("gke-l4"));
        assert_eq!(blocked.zone, None);
    }

    #[test]
    fn redaction_scrubs_messages() {
        let err = ProviderError::InvalidRequest {
            message: "token hf_secret rejected".into(),
        }
        .redacted(&["hf_secret"]);
        assert_eq!(err.to_string(), "invalid request: token <redacted> rejected");
    }
}
