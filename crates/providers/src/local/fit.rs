//! Whether a cluster fits this machine: the `local` backend's nodes are processes sharing one
//! machine, so `num_nodes` × the per-node request (vCPUs, memory, GPUs of the placed model) must
//! fit what the machine has. The optimizer sees each node as a whole machine, and a capacity row
//! would also count the sequential tasks of a pipeline against each other, so the check is made
//! here, per cluster, before anything is created.

use crate::{ProviderError, ProvisionRequest, Scope};

/// What this machine has, as the local offers report it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Machine {
    /// vCPUs.
    pub cpus: f64,
    /// Memory in GiB, when known.
    pub memory_gib: Option<f64>,
    /// GPUs by canonical model name.
    pub gpus: Vec<String>,
}

/// `Ok` when all nodes of `request` fit `machine` together; otherwise
/// [`ProviderError::InsufficientCapacity`] for the whole backend (failover tries another place),
/// naming the total asked for and what the machine has.
pub(super) fn check_fits(machine: &Machine, request: &ProvisionRequest) -> Result<(), ProviderError> {
    let nodes = request.placement.num_nodes.max(request.task.num_nodes).max(1);
    let short = |what: String| ProviderError::InsufficientCapacity {
        scope: Scope::Region,
        message: format!("local nodes share this machine: {what}"),
    };
    let total = |per_node: f64| per_node * f64::from(nodes);
    let count = skyplan_catalog::format_count;
    if let Some(per_node) = request.task.cpus_per_node
        && total(per_node) > machine.cpus
    {
        return Err(short(format!(
            "{nodes} nodes × {} vCPUs = {} vCPUs, and it has {}",
            count(per_node),
            count(total(per_node)),
            count(machine.cpus)
        )));
    }
    if let (Some(per_node), Some(memory)) = (request.task.memory_gb_per_node, machine.memory_gib)
        && total(per_node) > memory
    {
        return Err(short(format!(
            "{nodes} nodes × {} GB memory = {} GB, and it has {memory} GB",
            count(per_node),
            count(total(per_node))
        )));
    }
    let per_node = request.placement.accelerator_count;
    if per_node > 0.0 {
        let model = request.placement.accelerator.as_deref().unwrap_or("GPU");
        let have = machine.gpus.iter().filter(|name| name.as_str() == model).count() as f64;
        if total(per_node) > have {
            return Err(short(format!(
                "{nodes} nodes × {} {model} = {}, and it has {}",
                count(per_node),
                count(total(per_node)),
                count(have)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_optimizer::Placement;

    use crate::TaskRun;

    fn request(
        nodes: u32,
        cpus: Option<f64>,
        memory: Option<f64>,
        gpus: Option<(&str, f64)>,
    ) -> ProvisionRequest {
        let placement = Placement {
            cloud: "local".to_string(),
            region: "local".to_string(),
            zone: None,
            instance_type: "local".to_string(),
            accelerator: gpus.map(|(model, _)| model.to_string()),
            accelerator_count: gpus.map_or(0.0, |(_, count)| count),
            vcpus: Some(2.0),
            memory_gib: Some(23.5),
            use_spot: false,
            hourly_price: rust_decimal::Decimal::ZERO,
            num_nodes: nodes,
            alternative: 0,
        };
        ProvisionRequest {
            request_id: String::new(),
            cluster: "c".to_string(),
            placement,
            task: TaskRun {
                num_nodes: nodes,
                cpus_per_node: cpus,
                memory_gb_per_node: memory,
                ..TaskRun::default()
            },
        }
    }

    fn two_cpus_one_h200() -> Machine {
        Machine {
            cpus: 2.0,
            memory_gib: Some(23.5),
            gpus: vec!["H200".to_string()],
        }
    }

    #[track_caller]
    fn message(result: Result<(), ProviderError>) -> String {
        match result {
            Err(
                err @ ProviderError::InsufficientCapacity {
                    scope: Scope::Region, ..
                },
            ) => err.to_string(),
            other => panic!("expected a capacity error, got {other:?}"),
        }
    }

    #[test]
    fn totals_must_fit_the_machine() {
        let machine = two_cpus_one_h200();
        assert_eq!(
            message(check_fits(&machine, &request(6, Some(2.0), None, None))),
            "insufficient capacity (Region): local nodes share this machine: 6 nodes × 2 vCPUs = 12 vCPUs, and it has 2"
        );
        assert!(
            message(check_fits(&machine, &request(2, None, Some(16.0), None)))
                .ends_with("2 nodes × 16 GB memory = 32 GB, and it has 23.5 GB")
        );
        assert!(
            message(check_fits(&machine, &request(2, None, None, Some(("H200", 1.0)))))
                .ends_with("2 nodes × 1 H200 = 2, and it has 1")
        );
        assert!(
            message(check_fits(&machine, &request(1, None, None, Some(("L4", 1.0)))))
                .ends_with("1 nodes × 1 L4 = 1, and it has 0")
        );
    }

    #[test]
    fn what_fits_or_asks_nothing_passes() {
        let machine = two_cpus_one_h200();
        for fits in [
            request(2, Some(1.0), Some(11.0), None),
            request(1, Some(2.0), Some(23.5), Some(("H200", 1.0))),
            // No per-node request: the nodes share the machine as they can.
            request(6, None, None, None),
        ] {
            assert!(check_fits(&machine, &fits).is_ok(), "{fits:?}");
        }
        let unknown_memory = Machine {
            memory_gib: None,
            ..machine
        };
        assert!(check_fits(&unknown_memory, &request(4, None, Some(64.0), None)).is_ok());
    }
}
