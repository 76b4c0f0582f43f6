//! Small EC2 helpers shared by the provider's calls: paged `DescribeInstances`, console
//! output, tags and filters (the cluster tag every resource carries), instance states and the
//! cluster handle made from instances.

use super::*;

pub(super) async fn describe_instances(
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

/// How long an instance id that `RunInstances` just returned may be unknown to other EC2
/// calls (EC2 is eventually consistent: they answer `InvalidInstanceID.NotFound` meanwhile).
pub(super) const CONSISTENCY_WAIT: Duration = Duration::from_secs(30);

/// Runs `call` (one naming instances by id that exist: just created, or just described) again
/// while EC2 answers NotFound, for at most [`CONSISTENCY_WAIT`].
pub(super) async fn until_known<T, F, Fut>(
    what: &str,
    poll: Duration,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let start = Instant::now();
    loop {
        match call().await {
            Err(err) if err.is_not_found() && start.elapsed() < CONSISTENCY_WAIT => {
                tracing::debug!("{what}: {err}; EC2 may not know a new instance yet, asking again");
                tokio::time::sleep(poll.clamp(Duration::from_millis(100), Duration::from_secs(2))).await;
            }
            Err(err) if err.is_not_found() => {
                return Err(ProviderError::Transient {
                    message: format!(
                        "{what}: EC2 still does not know the instances {}s after they were found: {err}",
                        CONSISTENCY_WAIT.as_secs()
                    ),
                });
            }
            other => return other,
        }
    }
}

/// A node's console output, decoded; empty while EC2 does not know a new instance yet (the
/// callers found it by `DescribeInstances`) or has nothing to show.
pub(super) async fn console_output(
    client: &Client,
    region: &str,
    instance_id: &str,
) -> Result<String, ProviderError> {
    let answer = client
        .get_console_output()
        .instance_id(instance_id)
        .latest(true)
        .send()
        .await
        .map_err(|e| map_sdk_error(region, "GetConsoleOutput", e));
    let answer = match answer {
        Err(err) if err.is_not_found() => {
            tracing::debug!("aws {region}: no console for {instance_id} yet: {err}");
            return Ok(String::new());
        }
        other => other?,
    };
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

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub(super) fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

/// Resources tagged with `cluster`'s name.
pub(super) fn cluster_filter(cluster: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{CLUSTER_TAG}"))
        .values(cluster)
        .build()
}

/// Resources tagged with any cluster's name.
pub(super) fn any_cluster_filter() -> Filter {
    Filter::builder().name("tag-key").values(CLUSTER_TAG).build()
}

/// The tags every resource of a request carries, for resources of `kind`.
/// The task's `labels` ride along as tags ([`label_tags`]).
pub(super) fn request_tags(
    kind: ResourceType,
    request: &ProvisionRequest,
) -> Result<TagSpecification, ProviderError> {
    let mut spec = TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(CLUSTER_TAG, &request.cluster))
        .tags(tag(REQUEST_TAG, &request.request_id))
        .tags(tag(TASK_TAG, &request.task.name))
        .tags(tag("Name", &request.cluster));
    for (key, value) in label_tags(&request.task.labels)? {
        spec = spec.tags(tag(&key, &value));
    }
    Ok(spec.build())
}

/// EC2's limit of tags on one resource; skyplan's own take 4 (5 with the node IPs).
const MAX_TAGS: usize = 50;

/// A task's `labels` as EC2 tags, checked before anything is created: a `/` in a key becomes
/// `:` (as in skyplan's own `skyplan.dev:cluster`: EC2 refuses `/` in keys while tags are
/// readable from instance metadata, which the node-IPs hand-off needs); keys are at most 128
/// characters of letters, digits and `+ - = . , _ : @`, values at most 256 characters; keys
/// under `aws:` (AWS's) and `skyplan.dev:` (ours) and `Name` are refused. The error names the
/// label.
///
/// ```
/// use std::collections::BTreeMap;
/// use skyplan_providers::aws::label_tags;
/// let labels = BTreeMap::from([("example.com/team".to_string(), "ml".to_string())]);
/// assert_eq!(label_tags(&labels).unwrap(), vec![("example.com:team".to_string(), "ml".to_string())]);
/// let bad = BTreeMap::from([("aws:x".to_string(), "y".to_string())]);
/// assert!(label_tags(&bad).unwrap_err().to_string().contains("label aws:x=y"));
/// ```
pub fn label_tags(labels: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, ProviderError> {
    if labels.len() + 5 > MAX_TAGS {
        return Err(ProviderError::InvalidRequest {
            message: format!(
                "labels: {} labels, and EC2 allows {} beside skyplan's own 5 tags",
                labels.len(),
                MAX_TAGS - 5
            ),
        });
    }
    let mut tags = Vec::new();
    for (key, value) in labels {
        let tag_key = key.replace('/', ":");
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+-=.,_:@".contains(c);
        let reason = if tag_key.is_empty() || tag_key.len() > 128 {
            Some(format!(
                "the key is {} characters long (EC2 allows 1 to 128)",
                tag_key.len()
            ))
        } else if let Some(c) = tag_key.chars().find(|c| !allowed(*c)) {
            Some(format!(
                "the key holds {c:?} (EC2 tags readable from instance metadata allow letters, digits and + - = . , _ : @)"
            ))
        } else if tag_key.to_ascii_lowercase().starts_with("aws:") {
            Some("keys under aws: are reserved for AWS".to_string())
        } else if tag_key.starts_with("skyplan.dev:") || tag_key == "Name" {
            Some("the key is one of skyplan's own tags".to_string())
        } else if value.chars().count() > 256 {
            Some(format!(
                "the value is {} characters long (EC2 allows 256)",
                value.chars().count()
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ProviderError::InvalidRequest {
                message: format!("label {key}={value}: {reason}"),
            });
        }
        tags.push((tag_key, value.clone()));
    }
    Ok(tags)
}

pub(super) fn live_state_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
        .build()
}

/// Instances that have not reached `terminated` (the live states and `shutting-down`).
pub(super) fn not_terminated_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            LIVE_STATES
                .iter()
                .chain(&["shutting-down"])
                .map(|s| s.to_string())
                .collect(),
        ))
        .build()
}

pub(super) fn state_of(instance: &Instance) -> Option<InstanceStateName> {
    instance.state().and_then(|s| s.name()).cloned()
}

pub(super) fn handle(cluster: &str, request_id: &str, instances: &[Instance]) -> ClusterHandle {
    ClusterHandle {
        cluster: cluster.to_string(),
        provider: AWS.to_string(),
        request_id: request_id.to_string(),
        nodes: node_infos(instances),
        job_id: Some(1),
    }
}

pub(super) fn node_infos(instances: &[Instance]) -> Vec<NodeInfo> {
    instances
        .iter()
        .enumerate()
        .map(|(n, i)| NodeInfo {
            rank: i.ami_launch_index().map_or(n as u32, |r| r.max(0) as u32),
            ip: i.private_ip_address().unwrap_or_default().to_string(),
        })
        .collect()
}
