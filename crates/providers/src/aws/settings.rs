//! [`AwsSettings`]: how the provider reaches EC2 when not entirely from the standard AWS
//! chain, and whether that chain has anything to work with here.

use super::*;

/// How the provider reaches EC2, when not entirely from the standard AWS chain.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Endpoint for every EC2 call (default: `AWS_ENDPOINT_URL[_EC2]`, else AWS's).
    pub endpoint_url: Option<String>,
    /// Static access key id and secret (default: the standard credentials chain).
    pub credentials: Option<(String, String)>,
    /// Region for calls that are not about a placement (listing regions, `skyplan check`).
    /// Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub default_region: Option<String>,
    /// Regions the launcher plans on and `list` and `teardown` look in (default: every region
    /// `DescribeRegions` returns); `status` and `teardown` also look where a cluster was
    /// recorded.
    pub regions: Option<Vec<String>>,
    /// How often `logs --follow` and `status` re-read console output.
    pub poll_interval: Duration,
    /// How long `teardown` waits for instances to end before deleting their security group.
    pub teardown_wait: Duration,
    /// Attempts of each read-only call (throttling, 5xx); `RunInstances` is tried once and its
    /// errors go to the launcher, which retries or fails over.
    pub max_attempts: u32,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(id, _)| format!("{id} / <redacted>")),
            )
            .field("default_region", &self.default_region)
            .field("regions", &self.regions)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            endpoint_url: None,
            credentials: None,
            default_region: None,
            regions: None,
            poll_interval: Duration::from_secs(5),
            teardown_wait: Duration::from_secs(300),
            max_attempts: 3,
        }
    }
}

/// Whether the standard AWS chain has something to work with here, without asking the network:
/// credentials or a profile in the environment, or a shared config or credentials file.
pub fn credentials_configured() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ]
    .iter()
    .any(|n| set(n))
    {
        return true;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
            .is_some_and(|p| p.is_file())
    };
    file("AWS_SHARED_CREDENTIALS_FILE", "credentials") || file("AWS_CONFIG_FILE", "config")
}
