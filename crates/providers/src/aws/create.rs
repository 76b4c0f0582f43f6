//! `provision`'s new clusters: one `RunInstances` for all nodes (image, user data, market,
//! tags, security group), then the node-IPs tag the user data waits for.

use super::*;

impl AwsProvider {
    pub(super) async fn create(&self, request: &ProvisionRequest) -> Result<ClusterHandle, ProviderError> {
        let placement = &request.placement;
        let region = placement.region.as_str();
        let zone = match &placement.zone {
            Some(zone) => Some(self.zone_name(region, zone).await?),
            None => None,
        };
        let gpu = placement.accelerator.is_some() && placement.accelerator_count > 0.0;
        let image = match request.task.image_id.as_deref() {
            Some(ami) if ami.starts_with("ami-") => DefaultImage {
                id: ami.to_string(),
                root_device: None,
            },
            Some(other) if !other.starts_with("docker:") => {
                return Err(ProviderError::InvalidRequest {
                    message: format!(
                        "resources.image_id: expected an AMI id (ami-...) or docker:IMAGE for aws, found {other:?}"
                    ),
                });
            }
            _ => self.default_image(region, &placement.instance_type, gpu).await?,
        };
        // The root device to size: the image's own (`/dev/sda1` on Ubuntu, `/dev/xvda` elsewhere),
        // asked for only when the image search did not name it.
        let root = match (request.task.disk_size_gb, &image.root_device) {
            (None, _) => String::new(),
            (Some(_), Some(device)) => device.clone(),
            (Some(_), None) => self.root_device(region, &image.id).await?,
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
            .image_id(image.id)
            .instance_type(InstanceType::from(placement.instance_type.as_str()))
            .min_count(num_nodes as i32)
            .max_count(num_nodes as i32)
            .user_data(STANDARD.encode(script))
            .client_token(client_token(&request.request_id))
            .tag_specifications(request_tags(ResourceType::Instance, request)?)
            .tag_specifications(request_tags(ResourceType::Volume, request)?)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .instance_metadata_tags(InstanceMetadataTagsState::Enabled)
                    .build(),
            );
        if let Some(gb) = request.task.disk_size_gb {
            run = run.block_device_mappings(root_volume(&root, gb)?);
        }
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
    pub(super) async fn tag_node_ips(
        &self,
        region: &str,
        instances: &[Instance],
    ) -> Result<(), ProviderError> {
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
        let client = self.client(region).await;
        until_known("CreateTags", self.settings.poll_interval, || async {
            client
                .create_tags()
                .set_resources(Some(ids.clone()))
                .tags(tag(NODE_IPS_TAG, &ips))
                .send()
                .await
                .map_err(|e| map_sdk_error(region, "CreateTags", e))
        })
        .await?;
        Ok(())
    }

    /// The cluster's security group (created, or found from an earlier try): the task's ports
    /// open to the world, and all traffic between the cluster's nodes.
    pub(super) async fn security_group(
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
            .tag_specifications(request_tags(ResourceType::SecurityGroup, request)?)
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
    pub(super) async fn security_groups(
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

    /// The root device name of `image` in `region` (`DescribeImages`).
    pub(super) async fn root_device(&self, region: &str, image: &str) -> Result<String, ProviderError> {
        let answer = self
            .client(region)
            .await
            .describe_images()
            .image_ids(image)
            .send()
            .await
            .map_err(|e| map_sdk_error(region, "DescribeImages", e))?;
        answer
            .images()
            .first()
            .and_then(|i| i.root_device_name())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::InvalidRequest {
                message: format!(
                    "resources.disk_size: image {image} in aws {region} names no root device to size"
                ),
            })
    }
}

/// The root volume of `gb` GB (gp3, deleted with the instance) on `device`.
fn root_volume(device: &str, gb: u32) -> Result<BlockDeviceMapping, ProviderError> {
    // EC2's gp3 volumes hold 1 to 16,384 GiB.
    let size = i32::try_from(gb)
        .ok()
        .filter(|size| (1..=16_384).contains(size))
        .ok_or_else(|| ProviderError::InvalidRequest {
            message: format!("resources.disk_size: {gb} GB, and an EC2 gp3 root volume holds 1 to 16384"),
        })?;
    Ok(BlockDeviceMapping::builder()
        .device_name(device)
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(size)
                .volume_type(VolumeType::Gp3)
                .delete_on_termination(true)
                .build(),
        )
        .build())
}
