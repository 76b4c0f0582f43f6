//! The `aws` backend (feature `aws`): runs tasks on EC2 instances through the real `aws-sdk-ec2`
//! client.
//!
//! - Credentials and the default region come from the standard AWS chain (environment, shared
//!   config and credentials files, web identity, containers, instance roles); the standard
//!   `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_EC2`) redirects every EC2 call, which is how tests
//!   point it at a local moto. [`AwsSettings`] sets the same things explicitly.
//! - `provision` launches all nodes with one `RunInstances` in the placement's zone (an
//!   all-or-nothing request), from the region's newest Ubuntu (or, for GPU shapes, Deep Learning)
//!   image unless `image_id` names an AMI, with the user data of [`userdata`], spot market
//!   options for `use_spot`, a client token, tags naming the cluster and the request (and the
//!   task's `labels`, see [`label_tags`]), a gp3 root volume of `disk_size` GB, and a security
//!   group for `ports`. It then tags the instances with the node IPs, which the user data
//!   waits for.
//! - `SKYPLAN_AWS_REGIONS` ([`AwsSettings::regions`]) is one setting for both sides: the
//!   launcher plans only on those regions ([`Provider::serves`]) and `list` looks only there,
//!   while `status`, `logs` and `teardown` also look where the state store recorded the cluster.
//! - `status` and `logs` read each node's console output ([`userdata`] explains why), and
//!   `teardown` terminates whatever carries the cluster's tag in those regions — also what a
//!   crashed launch left — deletes its security group, then describes the cluster's instances
//!   again: "terminated" only when none is left.
//! - EC2 error codes become [`ProviderError`]s in [`classify`] and nowhere else.
//!
//! Tag keys use `:` instead of `/` (`skyplan.dev:cluster`): EC2 refuses to launch an instance
//! whose tag keys hold a `/` when its tags are readable from the instance metadata, which the
//! node-IPs hand-off needs. [`Provider::list`] reports them under the usual label names.

pub mod prices;
#[cfg(feature = "aws-testing")]
pub mod testing;
pub mod userdata;

mod clusters;
mod create;
mod ec2;
mod errors;
mod logs;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, ProvideCredentials, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, Instance, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceMetadataOptionsRequest, InstanceMetadataTagsState,
    InstanceStateName, InstanceType, IpPermission, IpRange, MarketType, ResourceType, SpotInstanceType,
    SpotMarketOptions, Tag, TagSpecification, UserIdGroupPair, VolumeType,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::{
    Capabilities, ClusterHandle, ClusterRef, ClusterState, ClusterStatus, ClusterSummary, JobState,
    JobStatus, LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider, ProviderError,
    ProvisionRequest, Scope, TeardownOutcome,
};
use userdata::{UserDataContext, parse_console, render_user_data};

/// The provider id, and the cloud name of its offers.
pub const AWS: &str = "aws";
/// The tag with the cluster name on every instance, volume and security group.
pub const CLUSTER_TAG: &str = "skyplan.dev:cluster";
/// The tag with the request id that created the cluster.
pub const REQUEST_TAG: &str = "skyplan.dev:request";
/// The tag with the task name.
pub const TASK_TAG: &str = "skyplan.dev:task";
/// The tag with the node IPs in rank order, comma-separated; the user data waits for it.
pub const NODE_IPS_TAG: &str = "skyplan.dev:node-ips";
/// Canonical's account, owner of the Ubuntu images.
const CANONICAL: &str = "099720109477";
/// Amazon's account that publishes the Deep Learning images.
const DEEP_LEARNING_OWNER: &str = "898082745236";
/// Instance states of a cluster that exists. `shutting-down` is left out: teardown has been
/// requested for those (a second `down` is "already gone"), and their security group waits
/// for them in [`AwsProvider::teardown`].
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];
/// EC2's limit on user data, before base64.
const USER_DATA_LIMIT: usize = 16 * 1024;

pub use ec2::label_tags;
pub use errors::{classify, client_token, map_sdk_error};
pub use settings::{AwsSettings, credentials_configured};

use ec2::*;
use logs::*;

/// A default image: its id and, when `DescribeImages` names it, its root device.
#[derive(Debug, Clone)]
struct DefaultImage {
    id: String,
    root_device: Option<String>,
}

/// Runs tasks on EC2 instances.
pub struct AwsProvider {
    settings: AwsSettings,
    sdk: OnceCell<aws_config::SdkConfig>,
    clients: Mutex<HashMap<String, Client>>,
    regions: OnceCell<Vec<String>>,
    zones: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Default image and its root device by (region, instance type, GPU shape).
    images: Mutex<HashMap<(String, String, bool), DefaultImage>>,
    cluster_regions: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AwsProvider {
    /// A provider with `settings`; nothing is contacted until the first call.
    pub fn new(settings: AwsSettings) -> Self {
        AwsProvider {
            settings,
            sdk: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
            regions: OnceCell::new(),
            zones: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
            cluster_regions: Mutex::new(HashMap::new()),
        }
    }

    /// The provider of the standard AWS chain, when it has credentials to work with
    /// ([`credentials_configured`]); `None` otherwise, so that machines without AWS never call it.
    /// `SKYPLAN_AWS_REGIONS` (comma-separated) limits the regions planned on and searched by
    /// `list` and `down` (which also look where a cluster was recorded);
    /// `SKYPLAN_AWS_POLL_INTERVAL` (seconds) sets how often logs and status re-read consoles.
    pub fn from_env() -> Result<Option<Self>, ProviderError> {
        if !credentials_configured() {
            return Ok(None);
        }
        let mut settings = AwsSettings::default();
        if let Ok(regions) = std::env::var("SKYPLAN_AWS_REGIONS") {
            let regions: Vec<String> = regions
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
            if !regions.is_empty() {
                settings.regions = Some(regions);
            }
        }
        if let Ok(text) = std::env::var("SKYPLAN_AWS_POLL_INTERVAL") {
            let seconds: f64 = text
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                .ok_or_else(|| ProviderError::InvalidRequest {
                    message: format!(
                        "SKYPLAN_AWS_POLL_INTERVAL: expected seconds between 0 and 3600 such as 2.5, found {text:?}"
                    ),
                })?;
            settings.poll_interval = Duration::from_secs_f64(seconds);
        }
        Ok(Some(Self::new(settings)))
    }

    /// The settings in use.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    fn default_region(&self) -> String {
        self.settings
            .default_region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_string())
    }

    async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    // Always explicit, so that no region lookup reaches for instance metadata.
                    .region(Region::new(self.default_region()))
                    .retry_config(
                        RetryConfig::standard().with_max_attempts(self.settings.max_attempts.max(1)),
                    )
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(60))
                            .build(),
                    );
                if let Some(url) = &self.settings.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                if let Some((id, secret)) = &self.settings.credentials {
                    loader = loader.credentials_provider(Credentials::new(
                        id.clone(),
                        secret.clone(),
                        None,
                        None,
                        "skyplan-settings",
                    ));
                }
                loader.load().await
            })
            .await
    }

    async fn client(&self, region: &str) -> Client {
        if let Some(client) = lock(&self.clients).get(region) {
            return client.clone();
        }
        let sdk = self.sdk_config().await;
        let config = aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .build();
        let client = Client::from_conf(config);
        lock(&self.clients).insert(region.to_string(), client.clone());
        client
    }

    /// Resolves credentials now: `Auth` with the chain's reason when there are none.
    pub async fn credentials(&self) -> Result<String, ProviderError> {
        let sdk = self.sdk_config().await;
        let provider = sdk.credentials_provider().ok_or_else(|| ProviderError::Auth {
            message: "aws: no credentials provider configured".to_string(),
        })?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|err| ProviderError::Auth {
                message: format!("aws: no usable credentials: {}", DisplayErrorContext(&err)),
            })?;
        Ok(credentials.access_key_id().to_string())
    }

    /// The regions `list` and `teardown` search: the configured ones, else `DescribeRegions`.
    pub async fn regions(&self) -> Result<Vec<String>, ProviderError> {
        if let Some(regions) = &self.settings.regions {
            return Ok(regions.clone());
        }
        self.regions
            .get_or_try_init(|| async {
                let region = self.default_region();
                let answer = self
                    .client(&region)
                    .await
                    .describe_regions()
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(&region, "DescribeRegions", e))?;
                let mut names: Vec<String> = answer
                    .regions()
                    .iter()
                    .filter_map(|r| r.region_name().map(str::to_string))
                    .collect();
                names.sort();
                Ok(names)
            })
            .await
            .cloned()
    }

    /// `(zone name, zone id)` of every zone of `region`.
    pub async fn zones(&self, region: &str) -> Result<Vec<(String, String)>, ProviderError> {
        if let Some(zones) = lock(&self.zones).get(region) {
            return Ok(zones.clone());
        }
        let answer = self
            .client(region)
            .await
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "DescribeAvailabilityZones", e))?;
        let zones: Vec<(String, String)> = answer
            .availability_zones()
            .iter()
            .filter_map(|z| Some((z.zone_name()?.to_string(), z.zone_id()?.to_string())))
            .collect();
        lock(&self.zones).insert(region.to_string(), zones.clone());
        Ok(zones)
    }

    /// The zone name for a catalog zone (an id such as `use1-az1`, or a name).
    async fn zone_name(&self, region: &str, zone: &str) -> Result<String, ProviderError> {
        let zones = self.zones(region).await?;
        zones
            .iter()
            .find(|(name, id)| id == zone || name == zone)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| ProviderError::InsufficientCapacity {
                scope: Scope::Zone,
                message: format!(
                    "zone {zone} is not available to this account in {region} (it has {})",
                    zones
                        .iter()
                        .map(|(n, i)| format!("{n}={i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The image for `instance_type` in `region`: the newest Deep Learning (GPU shapes) or
    /// Ubuntu image of the instance type's architecture, with its root device as the same
    /// `DescribeImages` answer names it.
    async fn default_image(
        &self,
        region: &str,
        instance_type: &str,
        gpu: bool,
    ) -> Result<DefaultImage, ProviderError> {
        let key = (region.to_string(), instance_type.to_string(), gpu);
        if let Some(image) = lock(&self.images).get(&key) {
            return Ok(image.clone());
        }
        let client = self.client(region).await;
        let types = client
            .describe_instance_types()
            .instance_types(InstanceType::from(instance_type))
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "DescribeInstanceTypes", e))?;
        let arch = types
            .instance_types()
            .first()
            .and_then(|t| t.processor_info())
            .and_then(|p| p.supported_architectures().first())
            .map_or("x86_64".to_string(), |a| a.as_str().to_string());
        let ubuntu_arch = if arch == "arm64" { "arm64" } else { "amd64" };
        let mut searches = Vec::new();
        if gpu {
            searches.push((DEEP_LEARNING_OWNER, "Deep Learning*Ubuntu*".to_string()));
        }
        searches.push((
            CANONICAL,
            format!("ubuntu/images/*ubuntu-*-{ubuntu_arch}-server-*"),
        ));
        for (owner, pattern) in searches {
            let images = client
                .describe_images()
                .owners(owner)
                .filters(Filter::builder().name("name").values(pattern).build())
                .filters(
                    Filter::builder()
                        .name("architecture")
                        .values(arch.clone())
                        .build(),
                )
                .filters(Filter::builder().name("state").values("available").build())
                .send()
                .await
                .map_err(|e| map_sdk_error(region, "DescribeImages", e))?;
            let newest = images
                .images()
                .iter()
                .filter(|i| i.image_id().is_some())
                .max_by(|a, b| a.creation_date().cmp(&b.creation_date()));
            if let Some(image) = newest
                && let Some(id) = image.image_id()
            {
                let found = DefaultImage {
                    id: id.to_string(),
                    root_device: image.root_device_name().map(str::to_string),
                };
                lock(&self.images).insert(key, found.clone());
                return Ok(found);
            }
        }
        Err(ProviderError::InsufficientCapacity {
            scope: Scope::Region,
            message: format!(
                "no Ubuntu image for {arch} found in {region}; set resources.image_id to an AMI"
            ),
        })
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn id(&self) -> &str {
        AWS
    }

    fn serves(&self, offer: &skyplan_catalog::Offer) -> bool {
        self.settings
            .regions
            .as_ref()
            .is_none_or(|regions| regions.contains(&offer.region))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            spot: true,
            multi_node: true,
            docker_images: true,
            ports: true,
            exec: false,
            workdir: false,
            file_mounts: false,
            bucket_mounts: false,
            disk_size: true,
        }
    }

    /// None: AWS prices and shapes come from the catalog (refresh spot prices with
    /// `skyplan catalog refresh --cloud aws`), and capacity shows only when a launch tries.
    async fn offers(&self) -> Result<LiveOffers, ProviderError> {
        Ok(LiveOffers::default())
    }

    async fn check(&self) -> Result<String, ProviderError> {
        let key = self.credentials().await?;
        let regions = self.regions().await?;
        let endpoint = self
            .sdk_config()
            .await
            .endpoint_url()
            .map_or_else(|| "AWS".to_string(), str::to_string);
        Ok(format!(
            "access key {}… at {endpoint}: {} regions ({})",
            key.chars().take(4).collect::<String>(),
            regions.len(),
            if regions.len() > 4 {
                format!("{}, ...", regions[..4].join(", "))
            } else {
                regions.join(", ")
            }
        ))
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        let placement = &request.placement;
        if placement.cloud != AWS {
            return Err(ProviderError::InvalidRequest {
                message: format!("placement on {} handed to the aws provider", placement.cloud),
            });
        }
        self.capabilities().check(AWS, &request.task, placement)?;
        // Bad labels fail here, before a security group or an instance exists.
        label_tags(&request.task.labels)?;
        let region = placement.region.as_str();
        let existing = self.cluster_instances(region, &request.cluster).await?;
        if let Some(first) = existing.first() {
            return if tag_value(first.tags(), REQUEST_TAG) == Some(request.request_id.as_str()) {
                // A repeat (or a retry after a failure past RunInstances): finish the hand-off.
                self.tag_node_ips(region, &existing).await?;
                Ok(handle(&request.cluster, &request.request_id, &existing))
            } else {
                Err(ProviderError::InvalidRequest {
                    message: format!(
                        "cluster {:?} exists already in aws {region} (created by another request)",
                        request.cluster
                    ),
                })
            };
        }
        if let Some(other) = self.holding_elsewhere(region, &request.cluster).await {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "cluster {:?} exists already in aws {other} (a cluster name is one cluster; pick another name or `skyplan down` it)",
                    request.cluster
                ),
            });
        }
        self.create(request).await
    }

    async fn status(&self, at: ClusterRef<'_>) -> Result<ClusterStatus, ProviderError> {
        let cluster = at.name;
        let (region, instances) = self
            .find_cluster(at)
            .await?
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        let states: Vec<Option<InstanceStateName>> = instances.iter().map(state_of).collect();
        let state = if states.iter().all(|s| *s == Some(InstanceStateName::Running)) {
            ClusterState::Up
        } else if states.contains(&Some(InstanceStateName::Pending)) {
            ClusterState::Provisioning
        } else {
            ClusterState::Failed
        };
        let job = self.job_status(&region, &instances).await?;
        Ok(ClusterStatus {
            cluster: cluster.to_string(),
            state,
            nodes: node_infos(&instances),
            jobs: vec![job],
        })
    }

    async fn list(&self) -> Result<Vec<ClusterSummary>, ProviderError> {
        let regions = self.regions().await?;
        let answers = futures::future::join_all(regions.iter().map(|r| self.list_in(r))).await;
        let mut clusters = Vec::new();
        for answer in answers {
            clusters.extend(answer?);
        }
        Ok(clusters)
    }

    async fn logs(&self, at: ClusterRef<'_>, options: &LogOptions) -> Result<LogStream, ProviderError> {
        let cluster = at.name;
        let (region, instances) = self
            .find_cluster(at)
            .await?
            .ok_or_else(|| ProviderError::cluster_not_found(cluster))?;
        if let Some(job) = options.job
            && job != 1
        {
            return Err(ProviderError::NotFound {
                what: format!("job {job} of cluster {cluster:?}"),
            });
        }
        let this = Arc::new(LogReader {
            client: self.client(&region).await,
            poll_interval: self.settings.poll_interval,
            region,
            follow: options.follow,
            tail: options.tail,
        });
        let mut streams = Vec::new();
        for node in node_infos(&instances).into_iter().zip(&instances) {
            let (info, instance) = node;
            if options.node.is_some_and(|n| n != info.rank) {
                continue;
            }
            let Some(id) = instance.instance_id() else {
                continue;
            };
            streams.push(this.clone().node_lines(id.to_string(), info.rank));
        }
        if streams.is_empty() {
            return Err(ProviderError::NotFound {
                what: format!("node {:?} of cluster {cluster:?}", options.node),
            });
        }
        Ok(futures::stream::select_all(streams).boxed())
    }

    async fn teardown(&self, cluster: ClusterRef<'_>) -> Result<TeardownOutcome, ProviderError> {
        // Every searched region, since a crashed launch may have left more; and the regions it
        // was recorded and launched in, should the searched ones leave them out.
        self.delete_everywhere(cluster).await
    }
}
