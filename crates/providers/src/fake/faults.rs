//! Errors primed on a fake: at which step, for which places, how many times.

use skyplan_optimizer::Placement;

use crate::ProviderError;

/// Where in a fake's work a primed error strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `provision`, before anything is created.
    Provision,
    /// `provision`, after the first node is created and before the others (and before the job
    /// starts): the partial cluster is left for `teardown`, as a real cloud leaves it. A repeat
    /// with the same request id finishes it.
    AfterCreate,
    /// `status`.
    Status,
    /// `list`.
    List,
    /// `logs`.
    Logs,
    /// `teardown`, before anything is deleted.
    Teardown,
    /// `exec`.
    Exec,
    /// `cancel`.
    Cancel,
}

/// Which requests a primed error applies to; `None` fields match anything. For steps on an
/// existing cluster (status, logs, teardown, exec) it is matched against the cluster's
/// placement; `list` and unknown clusters match only [`ErrorMatch::any`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorMatch {
    /// Cloud.
    pub cloud: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: Option<String>,
}

impl ErrorMatch {
    /// Matches every request.
    pub fn any() -> Self {
        ErrorMatch::default()
    }

    /// Matches one zone of a region.
    pub fn zone(region: &str, zone: &str) -> Self {
        ErrorMatch {
            region: Some(region.to_string()),
            zone: Some(zone.to_string()),
            ..Default::default()
        }
    }

    /// Matches a whole region.
    pub fn region(region: &str) -> Self {
        ErrorMatch {
            region: Some(region.to_string()),
            ..Default::default()
        }
    }

    /// Matches the exact place and shape of `placement`.
    pub fn placement(placement: &Placement) -> Self {
        ErrorMatch {
            cloud: Some(placement.cloud.clone()),
            region: Some(placement.region.clone()),
            zone: placement.zone.clone(),
            instance_type: Some(placement.instance_type.clone()),
        }
    }

    /// Whether a request for `placement` matches.
    pub fn matches(&self, placement: &Placement) -> bool {
        self.cloud.as_deref().is_none_or(|c| c == placement.cloud)
            && self.region.as_deref().is_none_or(|r| r == placement.region)
            && self
                .zone
                .as_deref()
                .is_none_or(|z| placement.zone.as_deref() == Some(z))
            && self
                .instance_type
                .as_deref()
                .is_none_or(|t| t == placement.instance_type)
    }

    fn is_any(&self) -> bool {
        *self == ErrorMatch::any()
    }
}

#[derive(Debug)]
struct Primed {
    step: Step,
    matcher: ErrorMatch,
    error: ProviderError,
    remaining: usize,
}

/// Primed errors, checked in the order they were primed.
#[derive(Debug, Default)]
pub(super) struct Faults(Vec<Primed>);

impl Faults {
    pub(super) fn prime(&mut self, step: Step, matcher: ErrorMatch, error: ProviderError, times: usize) {
        self.0.push(Primed {
            step,
            matcher,
            error,
            remaining: times,
        });
    }

    /// The error for `step` at `placement` (`None`: no cluster to match), used up once.
    pub(super) fn take(&mut self, step: Step, placement: Option<&Placement>) -> Result<(), ProviderError> {
        let hit = self.0.iter_mut().find(|p| {
            p.remaining > 0
                && p.step == step
                && placement.map_or(p.matcher.is_any(), |placement| p.matcher.matches(placement))
        });
        match hit {
            Some(primed) => {
                primed.remaining -= 1;
                Err(primed.error.clone())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::placement;

    #[test]
    fn matchers_use_wildcards() {
        let p = placement("aws", "us-east-1", Some("use1-az1"), "m6i.large");
        assert!(ErrorMatch::any().matches(&p));
        assert!(ErrorMatch::zone("us-east-1", "use1-az1").matches(&p));
        assert!(!ErrorMatch::zone("us-east-1", "use1-az2").matches(&p));
        assert!(ErrorMatch::region("us-east-1").matches(&p));
        assert!(ErrorMatch::placement(&p).matches(&p));
    }

    #[test]
    fn primed_errors_strike_their_step_and_are_used_up() {
        let p = placement("aws", "us-east-1", Some("use1-az1"), "m6i.large");
        let mut faults = Faults::default();
        let error = ProviderError::Transient {
            message: "boom".to_string(),
        };
        faults.prime(Step::Teardown, ErrorMatch::region("us-east-1"), error, 1);
        assert!(faults.take(Step::Status, Some(&p)).is_ok());
        assert!(
            faults.take(Step::Teardown, None).is_ok(),
            "a region matcher needs a cluster"
        );
        assert!(faults.take(Step::Teardown, Some(&p)).is_err());
        assert!(faults.take(Step::Teardown, Some(&p)).is_ok(), "used up");
    }
}
