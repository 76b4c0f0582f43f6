//! Unit tests of the fake kubelet: `$(VAR)` expansion and the pod phase derived from container
//! states.

use std::collections::BTreeMap;

use serde_json::json;

use super::env::expand;
use super::pod::recompute_phase;

#[test]
fn expands_variable_references() {
    let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
    assert_eq!(expand("x$(A)y $(B) $$(A) $", &env), "x1y $(B) $(A) $");
}

#[test]
fn phase_follows_container_states() {
    let mut pod = json!({"status": {"phase": "Pending", "containerStatuses": [
        {"name": "a", "ready": true, "state": {"running": {}}},
        {"name": "b", "ready": false, "state": {"terminated": {"exitCode": 0}}}
    ]}});
    recompute_phase(&mut pod);
    assert_eq!(pod["status"]["phase"], "Running");
    pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
    recompute_phase(&mut pod);
    assert_eq!(pod["status"]["phase"], "Failed");
    pod["status"]["containerStatuses"][0]["state"] = json!({"running": {}});
    recompute_phase(&mut pod);
    assert_eq!(pod["status"]["phase"], "Failed", "terminal phases stick");
}
