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
//!   options for `use_spot`, a client token and tags naming the cluster and the request, and a
//!   security group for `ports`. It then tags the instances with the node IPs, which the user data
//!   waits for.
//! - `status` and `logs` read each node's console output ([`userdata`] explains why), and
//!   `teardown` terminates whatever carries the cluster's tag in any region — also what a
//!   crashed launch left — and deletes its security group.
//! - EC2 error codes become [`ProviderError`]s in [`classify`] and nowhere else.
//!
//! Tag keys use `:` instead of `/` (`skyplan.dev:cluster`): EC2 refuses to launch an instance
//! whose tag keys hold a `/` when its tags are readable from the instance metadata, which the
//! node-IPs hand-off needs. [`Provider::list`] reports them under the usual label names.

pub mod prices;
#[cfg(feature = "aws-testing")]
pub mod testing;
pub mod userdata;

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
    Filter, HttpTokensState, Instance, InstanceInterruptionBehavior, InstanceMarketOptionsRequest,
    InstanceMetadataOptionsRequest, InstanceMetadataTagsState, InstanceStateName, InstanceType, IpPermission,
    IpRange, MarketType, ResourceType, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
    UserIdGroupPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::{
    Capabilities, ClusterHandle, ClusterState, ClusterStatus, ClusterSummary, JobState, JobStatus,
    LiveOffers, LogLine, LogOptions, LogStream, NodeInfo, Provider, ProviderError, ProvisionRequest, Scope,
    TeardownOutcome,
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
    /// Regions `list` and `teardown` look in (default: every region `DescribeRegions` returns).
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

/// Runs tasks on EC2 instances.
pub struct AwsProvider {
    settings: AwsSettings,
    sdk: OnceCell<aws_config::SdkConfig>,
    clients: Mutex<HashMap<String, Client>>,
    regions: OnceCell<Vec<String>>,
    zones: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Default image by (region, instance type, GPU shape).
    images: Mutex<HashMap<(String, String, bool), String>>,
    cluster_regions: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
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
    /// `SKYPLAN_AWS_REGIONS` (comma-separated) limits the regions searched by `list` and `down`;
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
    /// Ubuntu image of the instance type's architecture.
    async fn default_image(
        &self,
        region: &str,
        instance_type: &str,
        gpu: bool,
    ) -> Result<String, ProviderError> {
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
            if let Some(id) = newest.and_then(|i| i.image_id()) {
                lock(&self.images).insert(key, id.to_string());
                return Ok(id.to_string());
            }
        }
        Err(ProviderError::InsufficientCapacity {
            scope: Scope::Region,
            message: format!(
                "no Ubuntu image for {arch} found in {region}; set resources.image_id to an AMI"
            ),
        })
    }

    /// Live instances carrying the cluster's tag in `region`.
    async fn cluster_instances(&self, region: &str, cluster: &str) -> Result<Vec<Instance>, ProviderError> {
        let filters = vec![cluster_filter(cluster), live_state_filter()];
        let mut instances = self.describe_instances(region, filters).await?;
        instances.sort_by_key(|i| i.ami_launch_index().unwrap_or(0));
        Ok(instances)
    }

    async fn describe_instances(
        &self,
        region: &str,
        filters: Vec<Filter>,
    ) -> Result<Vec<Instance>, ProviderError> {
        describe_instances(&self.client(region).await, region, filters).await
    }

    /// The region holding `cluster`'s instances, and the instances by rank.
    async fn find_cluster(&self, cluster: &str) -> Result<Option<(String, Vec<Instance>)>, ProviderError> {
        let cached = lock(&self.cluster_regions).get(cluster).cloned();
        if let Some(region) = cached {
            let instances = self.cluster_instances(&region, cluster).await?;
            if !instances.is_empty() {
                return Ok(Some((region, instances)));
            }
        }
        let regions = self.regions().await?;
        let answers = futures::future::join_all(
            regions
                .iter()
                .map(|region| async move { (region, self.cluster_instances(region, cluster).await) }),
        )
        .await;
        for (region, answer) in answers {
            let instances = answer?;
            if !instances.is_empty() {
                lock(&self.cluster_regions).insert(cluster.to_string(), region.clone());
                return Ok(Some((region.clone(), instances)));
            }
        }
        Ok(None)
    }

    async fn console(&self, region: &str, instance_id: &str) -> Result<String, ProviderError> {
        console_output(&self.client(region).await, region, instance_id).await
    }

    async fn create(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        let placement = &request.placement;
        let region = placement.region.as_str();
        let zone = match &placement.zone {
            Some(zone) => Some(self.zone_name(region, zone).await?),
            None => None,
        };
        let gpu = placement.accelerator.is_some() && placement.accelerator_count > 0.0;
        let image = match request.task.image_id.as_deref() {
            Some(ami) if ami.starts_with("ami-") => ami.to_string(),
            Some(other) if !other.starts_with("docker:") => {
                return Err(ProviderError::InvalidRequest {
                    message: format!(
                        "resources.image_id: expected an AMI id (ami-...) or docker:IMAGE for aws, found {other:?}"
                    ),
                });
            }
            _ => self.default_image(region, &placement.instance_type, gpu).await?,
        };
        let num_nodes = placement.num_nodes.max(request.task.num_nodes).max(1);
        let script = render_user_data(
            &request.task,
            &UserDataContext {
                cluster: &request.cluster,
                request_id: &request.request_id,
                num_nodes,
                gpus_per_node: placement.accelerator_count,
            },
        );
        if script.len() > USER_DATA_LIMIT {
            return Err(ProviderError::InvalidRequest {
                message: format!(
                    "the user data for this task is {} bytes and EC2 allows {USER_DATA_LIMIT}: setup, run and envs \
                     travel in it; move long scripts into files the task fetches",
                    script.len()
                ),
            });
        }
        let security_group = if request.task.ports.is_empty() {
            None
        } else {
            Some(self.security_group(region, request).await?)
        };
        let mut run = self
            .client(region)
            .await
            .run_instances()
            .image_id(image)
            .instance_type(InstanceType::from(placement.instance_type.as_str()))
            .min_count(num_nodes as i32)
            .max_count(num_nodes as i32)
            .user_data(STANDARD.encode(script))
            .client_token(client_token(&request.request_id))
            .tag_specifications(request_tags(ResourceType::Instance, request))
            .tag_specifications(request_tags(ResourceType::Volume, request))
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .instance_metadata_tags(InstanceMetadataTagsState::Enabled)
                    .build(),
            );
        if let Some(zone) = &zone {
            run = run.placement(
                aws_sdk_ec2::types::Placement::builder()
                    .availability_zone(zone)
                    .build(),
            );
        }
        if let Some(group) = &security_group {
            run = run.security_group_ids(group);
        }
        if placement.use_spot {
            run = run.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let started = Instant::now();
        let answer = run
            .customize()
            // Capacity errors come back as server errors, which the SDK would retry: failover
            // must hear of them at once, and throttling is retried by the launcher's backoff.
            .config_override(aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled()))
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "RunInstances", e))?;
        lock(&self.cluster_regions).insert(request.cluster.clone(), region.to_string());
        let mut instances = answer.instances().to_vec();
        instances.sort_by_key(|i| i.ami_launch_index().unwrap_or(0));
        tracing::debug!(
            "aws {region}: RunInstances of {} x {} took {:.2}s",
            instances.len(),
            placement.instance_type,
            started.elapsed().as_secs_f64()
        );
        self.tag_node_ips(region, &instances).await?;
        Ok(handle(&request.cluster, &request.request_id, &instances))
    }

    /// Tags every instance with the node IPs (rank order), unless they all have the tag.
    async fn tag_node_ips(&self, region: &str, instances: &[Instance]) -> Result<(), ProviderError> {
        if instances
            .iter()
            .all(|i| tag_value(i.tags(), NODE_IPS_TAG).is_some())
        {
            return Ok(());
        }
        let ips = instances
            .iter()
            .map(|i| i.private_ip_address().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",");
        let ids: Vec<String> = instances
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        self.client(region)
            .await
            .create_tags()
            .set_resources(Some(ids))
            .tags(tag(NODE_IPS_TAG, &ips))
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "CreateTags", e))?;
        Ok(())
    }

    /// The cluster's security group (created, or found from an earlier try): the task's ports
    /// open to the world, and all traffic between the cluster's nodes.
    async fn security_group(
        &self,
        region: &str,
        request: &ProvisionRequest,
    ) -> Result<String, ProviderError> {
        let client = self.client(region).await;
        let name = format!("skyplan-{}", request.cluster);
        let existing = client
            .describe_security_groups()
            .filters(Filter::builder().name("group-name").values(&name).build())
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "DescribeSecurityGroups", e))?;
        if let Some(id) = existing.security_groups().first().and_then(|g| g.group_id()) {
            return Ok(id.to_string());
        }
        let created = client
            .create_security_group()
            .group_name(&name)
            .description(format!("skyplan cluster {}: ports of its task", request.cluster))
            .tag_specifications(request_tags(ResourceType::SecurityGroup, request))
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "CreateSecurityGroup", e))?;
        let id = created
            .group_id()
            .ok_or_else(|| ProviderError::Transient {
                message: format!("aws {region}: CreateSecurityGroup answered without a group id"),
            })?
            .to_string();
        let mut permissions: Vec<IpPermission> = request
            .task
            .ports
            .iter()
            .map(|range| {
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(i32::from(range.start))
                    .to_port(i32::from(range.end))
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build()
            })
            .collect();
        permissions.push(
            IpPermission::builder()
                .ip_protocol("-1")
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&id).build())
                .build(),
        );
        client
            .authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(permissions))
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "AuthorizeSecurityGroupIngress", e))?;
        Ok(id)
    }

    /// Security groups carrying the cluster's tag (`None`: every cluster's) in `region`, as
    /// `(group id, tags)`.
    async fn security_groups(
        &self,
        region: &str,
        cluster: Option<&str>,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, ProviderError> {
        let filter = cluster.map_or_else(any_cluster_filter, cluster_filter);
        let answer = self
            .client(region)
            .await
            .describe_security_groups()
            .filters(filter)
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "DescribeSecurityGroups", e))?;
        Ok(answer
            .security_groups()
            .iter()
            .filter_map(|g| Some((g.group_id()?.to_string(), tag_map(g.tags()))))
            .collect())
    }

    /// Terminates the cluster's instances in `region`, waits for them to end (bounded), then
    /// deletes its security groups. Whether anything was there.
    async fn delete_in(&self, region: &str, cluster: &str) -> Result<bool, ProviderError> {
        let instances = self.cluster_instances(region, cluster).await?;
        let groups = self.security_groups(region, Some(cluster)).await?;
        if instances.is_empty() && groups.is_empty() {
            return Ok(false);
        }
        let client = self.client(region).await;
        let ids: Vec<String> = instances
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if !ids.is_empty() {
            client
                .terminate_instances()
                .set_instance_ids(Some(ids))
                .send()
                .await
                .map_err(|e| map_sdk_error(region, "TerminateInstances", e))?;
        }
        let deadline = Instant::now() + self.settings.teardown_wait;
        for (group, _) in groups {
            loop {
                match client.delete_security_group().group_id(&group).send().await {
                    Ok(_) => break,
                    Err(err) if err.code() == Some("InvalidGroup.NotFound") => break,
                    // Instances that are still shutting down keep their group in use.
                    Err(err) if err.code() == Some("DependencyViolation") && Instant::now() < deadline => {
                        tokio::time::sleep(self.settings.poll_interval.min(Duration::from_secs(5))).await;
                    }
                    Err(err) => return Err(map_sdk_error(region, "DeleteSecurityGroup", err)),
                }
            }
        }
        lock(&self.cluster_regions).remove(cluster);
        Ok(true)
    }

    /// The summary of every cluster tagged in `region`.
    async fn list_in(&self, region: &str) -> Result<Vec<ClusterSummary>, ProviderError> {
        let instances = self
            .describe_instances(region, vec![any_cluster_filter(), live_state_filter()])
            .await?;
        let mut tagged: Vec<BTreeMap<String, String>> = instances.iter().map(|i| tag_map(i.tags())).collect();
        tagged.extend(
            self.security_groups(region, None)
                .await?
                .into_iter()
                .map(|(_, tags)| tags),
        );
        let mut found: BTreeMap<String, ClusterSummary> = BTreeMap::new();
        for tags in tagged {
            let Some(name) = tags.get(CLUSTER_TAG).cloned() else {
                continue;
            };
            let entry = found.entry(name.clone()).or_insert_with(|| ClusterSummary {
                name,
                provider: AWS.to_string(),
                region: region.to_string(),
                request_id: None,
                labels: BTreeMap::new(),
            });
            if entry.request_id.is_none() {
                entry.request_id = tags.get(REQUEST_TAG).cloned();
            }
            for (key, value) in tags {
                if let Some(label) = key.strip_prefix("skyplan.dev:")
                    && key != NODE_IPS_TAG
                {
                    entry.labels.insert(format!("skyplan.dev/{label}"), value);
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Job 1's status from the nodes' consoles.
    async fn job_status(&self, region: &str, instances: &[Instance]) -> Result<JobStatus, ProviderError> {
        let consoles = futures::future::join_all(instances.iter().map(|i| async move {
            match i.instance_id() {
                Some(id) if state_of(i) == Some(InstanceStateName::Running) => {
                    self.console(region, id).await.map(Some)
                }
                _ => Ok(None),
            }
        }))
        .await;
        let mut node_exit_codes = Vec::new();
        let mut lost = false;
        for (instance, console) in instances.iter().zip(consoles) {
            let code = console?.and_then(|text| parse_console(&text, 1).exit_code);
            if code.is_none()
                && matches!(
                    state_of(instance),
                    Some(InstanceStateName::Stopping | InstanceStateName::Stopped)
                )
            {
                lost = true;
            }
            node_exit_codes.push(code);
        }
        let all_running = instances
            .iter()
            .all(|i| state_of(i) == Some(InstanceStateName::Running));
        let finished = node_exit_codes.iter().all(Option::is_some);
        let failed_code = node_exit_codes.iter().flatten().copied().find(|c| *c != 0);
        let (state, exit_code) = if finished {
            match failed_code {
                Some(code) => (JobState::Failed, Some(code)),
                None => (JobState::Succeeded, Some(0)),
            }
        } else if lost {
            (JobState::Failed, None)
        } else if all_running {
            (JobState::Running, None)
        } else {
            (JobState::Pending, None)
        };
        Ok(JobStatus {
            id: 1,
            name: instances
                .first()
                .and_then(|i| tag_value(i.tags(), TASK_TAG))
                .unwrap_or("task")
                .to_string(),
            state,
            exit_code,
            node_exit_codes,
        })
    }
}

async fn describe_instances(
    client: &Client,
    region: &str,
    filters: Vec<Filter>,
) -> Result<Vec<Instance>, ProviderError> {
    let mut pages = client
        .describe_instances()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    let mut instances = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map_sdk_error(region, "DescribeInstances", e))?;
        for reservation in page.reservations() {
            instances.extend(reservation.instances().iter().cloned());
        }
    }
    Ok(instances)
}

/// A node's console output, decoded.
async fn console_output(client: &Client, region: &str, instance_id: &str) -> Result<String, ProviderError> {
    let answer = client
        .get_console_output()
        .instance_id(instance_id)
        .latest(true)
        .send()
        .await
        .map_err(|e| map_sdk_error(region, "GetConsoleOutput", e))?;
    let Some(encoded) = answer.output() else {
        return Ok(String::new());
    };
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|err| ProviderError::Transient {
            message: format!("aws {region}: console output of {instance_id} is not base64: {err}"),
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

/// Resources tagged with `cluster`'s name.
fn cluster_filter(cluster: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{CLUSTER_TAG}"))
        .values(cluster)
        .build()
}

/// Resources tagged with any cluster's name.
fn any_cluster_filter() -> Filter {
    Filter::builder().name("tag-key").values(CLUSTER_TAG).build()
}

/// The tags every resource of a request carries, for resources of `kind`.
fn request_tags(kind: ResourceType, request: &ProvisionRequest) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(CLUSTER_TAG, &request.cluster))
        .tags(tag(REQUEST_TAG, &request.request_id))
        .tags(tag(TASK_TAG, &request.task.name))
        .tags(tag("Name", &request.cluster))
        .build()
}

fn live_state_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
        .build()
}

fn state_of(instance: &Instance) -> Option<InstanceStateName> {
    instance.state().and_then(|s| s.name()).cloned()
}

fn handle(cluster: &str, request_id: &str, instances: &[Instance]) -> ClusterHandle {
    ClusterHandle {
        cluster: cluster.to_string(),
        provider: AWS.to_string(),
        request_id: request_id.to_string(),
        nodes: node_infos(instances),
        job_id: Some(1),
    }
}

fn node_infos(instances: &[Instance]) -> Vec<NodeInfo> {
    instances
        .iter()
        .enumerate()
        .map(|(n, i)| NodeInfo {
            rank: i.ami_launch_index().map_or(n as u32, |r| r.max(0) as u32),
            ip: i.private_ip_address().unwrap_or_default().to_string(),
        })
        .collect()
}

/// EC2's idempotency token for a request id: the id itself when it fits EC2's 64 ASCII
/// characters, else a stable digest of it (FNV-1a, so it is the same in every process).
pub fn client_token(request_id: &str) -> String {
    if request_id.len() <= 64 && request_id.is_ascii() {
        return request_id.to_string();
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in request_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let head: String = request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    format!("{head}-{hash:016x}")
}

/// The failover vocabulary for an EC2 error: its `code`, the HTTP `status`, and a message that
/// names the region and the call. The one place that decides what each EC2 error means.
///
/// ```
/// use skyplan_providers::{ProviderError, Scope};
/// use skyplan_providers::aws::classify;
/// let capacity = classify(Some("InsufficientInstanceCapacity"), Some(500), "no g6.xlarge".into());
/// assert!(matches!(capacity, ProviderError::InsufficientCapacity { scope: Scope::InstanceType, .. }));
/// let quota = classify(Some("VcpuLimitExceeded"), Some(400), "vCPU limit".into());
/// assert!(matches!(quota, ProviderError::QuotaExceeded { scope: Scope::Region, .. }));
/// let throttled = classify(Some("RequestLimitExceeded"), Some(503), "slow down".into());
/// assert!(matches!(throttled, ProviderError::Transient { .. }));
/// ```
pub fn classify(code: Option<&str>, status: Option<u16>, message: String) -> ProviderError {
    match code.unwrap_or_default() {
        // This instance type, in this zone and market, has no capacity now.
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "SpotMaxPriceTooLow"
        | "MaxSpotInstanceCountExceeded"
        | "Unsupported"
        | "InsufficientFreeAddressesInSubnet" => ProviderError::InsufficientCapacity {
            scope: Scope::InstanceType,
            message,
        },
        "VcpuLimitExceeded" | "InstanceLimitExceeded" | "MaxSpotFleetRequestCountExceeded" => {
            ProviderError::QuotaExceeded {
                scope: Scope::Region,
                message,
            }
        }
        // The account cannot use this region at all.
        "OptInRequired" | "PendingVerification" => ProviderError::QuotaExceeded {
            scope: Scope::Region,
            message,
        },
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "RequestExpired"
        | "MissingAuthenticationToken"
        | "Blocked" => ProviderError::Auth { message },
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable"
        | "RequestTimeout" => ProviderError::Transient { message },
        code if code.ends_with(".NotFound") => ProviderError::NotFound { what: message },
        _ => match status {
            Some(401 | 403) => ProviderError::Auth { message },
            Some(429 | 500..=599) | None => ProviderError::Transient { message },
            Some(_) => ProviderError::InvalidRequest { message },
        },
    }
}

/// [`classify`] for an SDK error of `call` in `region`: service errors by their code, failures
/// to connect or to read an answer as transient, requests the SDK could not build as invalid.
pub fn map_sdk_error<E>(region: &str, call: &str, err: SdkError<E>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    let message = format!("aws {region}: {call}: {detail}");
    match err {
        SdkError::ConstructionFailure(_) => ProviderError::InvalidRequest { message },
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => classify(code.as_deref(), status, message),
        // Timeouts, connection failures, and whatever else the SDK may add.
        _ => {
            // A missing or refused credential surfaces here too, before anything is sent.
            if detail.contains("credentials") || detail.contains("identity") {
                ProviderError::Auth { message }
            } else {
                ProviderError::Transient { message }
            }
        }
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn id(&self) -> &str {
        AWS
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
            disk_size: false,
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
        self.create(request).await
    }

    async fn status(&self, cluster: &str) -> Result<ClusterStatus, ProviderError> {
        let (region, instances) = self
            .find_cluster(cluster)
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

    async fn logs(&self, cluster: &str, options: &LogOptions) -> Result<LogStream, ProviderError> {
        let (region, instances) = self
            .find_cluster(cluster)
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

    async fn teardown(&self, cluster: &str) -> Result<TeardownOutcome, ProviderError> {
        // Every region, since a crashed launch may have left more; and the region this
        // provider launched it in, should the searched regions leave it out.
        let known = lock(&self.cluster_regions).get(cluster).cloned();
        let mut regions = self.regions().await?;
        if let Some(known) = known
            && !regions.contains(&known)
        {
            regions.push(known);
        }
        let answers = futures::future::join_all(regions.iter().map(|r| self.delete_in(r, cluster))).await;
        let mut found = false;
        for answer in answers {
            found |= answer?;
        }
        Ok(if found {
            TeardownOutcome::Requested
        } else {
            TeardownOutcome::AlreadyGone
        })
    }
}

/// Where one node's log stream is.
struct NodeLog {
    reader: Arc<LogReader>,
    instance_id: String,
    /// Job lines already emitted.
    seen: usize,
    /// Lines to keep at the first read (`--tail`), until it is applied.
    tail: Option<usize>,
    done: bool,
}

/// Reads console output for a log stream.
struct LogReader {
    client: Client,
    poll_interval: Duration,
    region: String,
    follow: bool,
    tail: Option<usize>,
}

impl LogReader {
    /// One node's job lines: what is there now, then (with `follow`) new lines as they come,
    /// until the job's exit line or the instance ends.
    fn node_lines(self: Arc<Self>, instance_id: String, rank: u32) -> LogStream {
        let start = NodeLog {
            reader: self.clone(),
            instance_id,
            seen: 0,
            tail: self.tail,
            done: false,
        };
        futures::stream::unfold(start, move |mut node| async move {
            if node.done {
                return None;
            }
            let mut first = true;
            loop {
                if !first {
                    tokio::time::sleep(node.reader.poll_interval).await;
                }
                first = false;
                let text =
                    match console_output(&node.reader.client, &node.reader.region, &node.instance_id).await {
                        Ok(text) => text,
                        Err(err) if err.is_not_found() => return None,
                        Err(err) => {
                            node.done = true;
                            return Some((vec![Err(err)], node));
                        }
                    };
                let job = parse_console(&text, 1);
                // `tail` applies to what is there at the first read only.
                if let Some(tail) = node.tail.take() {
                    node.seen = job.lines.len().saturating_sub(tail);
                }
                let new: Vec<Result<LogLine, ProviderError>> = job
                    .lines
                    .iter()
                    .skip(node.seen)
                    .map(|text| {
                        Ok(LogLine {
                            node: rank,
                            text: text.clone(),
                        })
                    })
                    .collect();
                node.seen = node.seen.max(job.lines.len());
                node.done = job.exit_code.is_some()
                    || !node.reader.follow
                    || !node.reader.instance_alive(&node.instance_id).await;
                if !new.is_empty() || node.done {
                    return Some((new, node));
                }
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }

    async fn instance_alive(&self, id: &str) -> bool {
        let filters = vec![
            Filter::builder().name("instance-id").values(id).build(),
            live_state_filter(),
        ];
        match describe_instances(&self.client, &self.region, filters).await {
            Ok(instances) => !instances.is_empty(),
            // Unknown: keep following; the next poll asks again.
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_its_action() {
        let kind = |code: &str, status: u16| classify(Some(code), Some(status), String::new()).kind();
        for code in [
            "InsufficientInstanceCapacity",
            "InsufficientHostCapacity",
            "SpotMaxPriceTooLow",
            "MaxSpotInstanceCountExceeded",
            "Unsupported",
        ] {
            assert_eq!(kind(code, 500), "insufficient_capacity", "{code}");
        }
        for code in ["VcpuLimitExceeded", "InstanceLimitExceeded"] {
            assert_eq!(kind(code, 400), "quota_exceeded", "{code}");
        }
        for code in ["AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId"] {
            assert_eq!(kind(code, 401), "auth", "{code}");
        }
        for code in [
            "RequestLimitExceeded",
            "Throttling",
            "InternalError",
            "Unavailable",
        ] {
            assert_eq!(kind(code, 503), "transient", "{code}");
        }
        assert_eq!(kind("InvalidInstanceID.NotFound", 400), "not_found");
        assert_eq!(kind("InvalidParameterValue", 400), "invalid_request");
        assert_eq!(kind("SomethingNew", 503), "transient");
        assert_eq!(kind("SomethingNew", 403), "auth");
        assert_eq!(classify(None, None, String::new()).kind(), "transient");
    }

    #[test]
    fn client_tokens_fit_and_are_stable() {
        assert_eq!(client_token("short-1"), "short-1");
        let long = format!("{}-0123456789abcdef-1", "c".repeat(63));
        let token = client_token(&long);
        assert!(token.len() <= 64, "{token}");
        assert_eq!(token, client_token(&long));
        assert_ne!(token, client_token(&long.replace("-1", "-2")));
    }
}
