//! What a launch reports while it runs and after it failed: [`LaunchEvent`]s for a spinner or
//! plain lines, the [`Attempt`] history, and one-line descriptions of placements and failover
//! actions.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use skyplan_optimizer::Placement;

use crate::{ClusterHandle, FailoverAction, ProviderError};

/// One failed try of a placement.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub n: u32,
    /// The placement tried.
    pub placement: Placement,
    /// What went wrong (secrets redacted).
    #[serde(serialize_with = "error_text")]
    pub error: ProviderError,
    /// What the launcher did about it.
    pub action: FailoverAction,
}

fn error_text<S: serde::Serializer>(error: &ProviderError, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&error.to_string())
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}. {}: {} -> {}",
            self.n,
            describe_placement(&self.placement),
            self.error,
            describe_action(&self.action)
        )
    }
}

/// A placement in one line: `aws/us-east-1/use1-az1 g6.xlarge (L4:1) x2, spot, $1.6096/h`.
pub fn describe_placement(placement: &Placement) -> String {
    let mut place = format!("{}/{}", placement.cloud, placement.region);
    if let Some(zone) = &placement.zone {
        place.push('/');
        place.push_str(zone);
    }
    let mut text = format!("{place} {}", placement.instance_type);
    if placement.accelerator.is_some() {
        text.push_str(&format!(" ({})", placement.accelerator_label()));
    }
    if placement.num_nodes > 1 {
        text.push_str(&format!(" x{}", placement.num_nodes));
    }
    if placement.use_spot {
        text.push_str(", spot");
    }
    text.push_str(&format!(", ${}/h", placement.hourly_price.normalize()));
    text
}

/// A failover action in words: `blocked zone aws/us-east-1/use1-az1`, `retrying`, `stopped`.
pub fn describe_action(action: &FailoverAction) -> String {
    match action {
        FailoverAction::Retry => "retrying".to_string(),
        FailoverAction::Stop => "stopped (not failing over)".to_string(),
        FailoverAction::Block(blocked) => {
            let place: Vec<&str> = [&blocked.cloud, &blocked.region, &blocked.zone]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .collect();
            let scope = if blocked.instance_type.is_some() {
                "instance type"
            } else if blocked.zone.is_some() {
                "zone"
            } else if blocked.region.is_some() {
                "region"
            } else {
                "cloud"
            };
            let mut text = format!("blocked {scope} {}", place.join("/"));
            if let Some(instance_type) = &blocked.instance_type {
                text.push_str(&format!(" {instance_type}"));
            }
            text
        }
    }
}

/// Launch progress, for a spinner on a terminal or plain lines otherwise.
#[derive(Debug, Clone, Copy)]
pub enum LaunchEvent<'a> {
    /// Solving (again, after `blocked` blocks).
    Planning {
        /// The cluster.
        cluster: &'a str,
        /// Blocked patterns so far.
        blocked: usize,
    },
    /// A provider's live offers could not be read; the static catalog is used for it.
    OffersUnavailable {
        /// The provider.
        provider: &'a str,
        /// Why.
        error: &'a ProviderError,
    },
    /// Provisioning attempt `n` on `placement`.
    Trying {
        /// Attempt number.
        n: u32,
        /// The placement.
        placement: &'a Placement,
    },
    /// Attempt `n` is still provisioning after `elapsed`; `note` says what it waits for, when
    /// the provider can tell (pod phase and scheduler reason).
    Waiting {
        /// Attempt number.
        n: u32,
        /// The placement.
        placement: &'a Placement,
        /// Time since the attempt started.
        elapsed: Duration,
        /// What the provider waits for now.
        note: Option<&'a str>,
    },
    /// A transient error; retrying after `delay`.
    Retrying {
        /// Attempt number.
        n: u32,
        /// Retry number (1-based).
        retry: u32,
        /// The error.
        error: &'a ProviderError,
        /// The backoff delay.
        delay: Duration,
    },
    /// Attempt `n` failed.
    Failed {
        /// The attempt.
        attempt: &'a Attempt,
    },
    /// The cluster is up and its job started.
    Provisioned {
        /// The placement.
        placement: &'a Placement,
        /// What was created.
        handle: &'a ClusterHandle,
    },
}

impl fmt::Display for LaunchEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchEvent::Planning { cluster, blocked: 0 } => write!(f, "planning {cluster}"),
            LaunchEvent::Planning { cluster, blocked } => {
                write!(f, "re-planning {cluster} ({blocked} places blocked)")
            }
            LaunchEvent::OffersUnavailable { provider, error } => {
                write!(f, "live offers of {provider} unavailable: {error}")
            }
            LaunchEvent::Trying { n, placement } => {
                write!(f, "attempt {n}: provisioning {}", describe_placement(placement))
            }
            LaunchEvent::Waiting {
                n,
                placement,
                elapsed,
                note,
            } => {
                write!(
                    f,
                    "attempt {n}: still provisioning {} ({}s)",
                    describe_placement(placement),
                    elapsed.as_secs()
                )?;
                match note {
                    Some(note) => write!(f, ": {note}"),
                    None => Ok(()),
                }
            }
            LaunchEvent::Retrying {
                n,
                retry,
                error,
                delay,
            } => write!(
                f,
                "attempt {n}: {error}; retry {retry} in {:.1}s",
                delay.as_secs_f64()
            ),
            LaunchEvent::Failed { attempt } => write!(f, "attempt {attempt}"),
            LaunchEvent::Provisioned { placement, handle } => write!(
                f,
                "cluster {} is up on {}",
                handle.cluster,
                describe_placement(placement)
            ),
        }
    }
}

/// Receives [`LaunchEvent`]s. The CLI shows a spinner on a terminal and plain lines otherwise.
pub trait Progress: Send + Sync {
    /// Called for each event, in order.
    fn event(&self, event: &LaunchEvent<'_>);
}

/// Ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &LaunchEvent<'_>) {}
}

/// Forwards each event's text to a function (tests collect them; CLIs print them).
pub struct LineProgress<F: Fn(String) + Send + Sync>(pub F);

impl<F: Fn(String) + Send + Sync> Progress for LineProgress<F> {
    fn event(&self, event: &LaunchEvent<'_>) {
        (self.0)(event.to_string());
    }
}
