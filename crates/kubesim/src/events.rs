//! Recording core/v1 Events, as the scheduler and the kubelet do (`Scheduled`, `FailedScheduling`,
//! `Pulled`, `Started`, `BackOff`, ...).

use serde_json::{Value, json};

use crate::store::{Kind, Store, meta_str};
use crate::util::{new_uid, now_rfc3339};

/// Records a core/v1 Event about `involved` (a pod or node).
pub(crate) fn record_event(
    store: &mut Store,
    involved: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
) {
    let now = now_rfc3339();
    let name = meta_str(involved, "name");
    let namespace = match meta_str(involved, "namespace") {
        "" => "default",
        ns => ns,
    };
    let nanos = crate::util::now().as_nanosecond();
    let mut source = json!({"component": component});
    if let Some(host) = host {
        source["host"] = json!(host);
    }
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": namespace, "uid": new_uid(), "creationTimestamp": now},
        "involvedObject": {
            "kind": involved["kind"], "namespace": meta_str(involved, "namespace"), "name": name,
            "uid": meta_str(involved, "uid"), "apiVersion": "v1", "resourceVersion": meta_str(involved, "resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": event_type,
        "reportingComponent": component,
        "reportingInstance": host.unwrap_or(""),
    });
    if let Err(err) = store.create(Kind::Event, event) {
        tracing::debug!(%reason, ?err, "event not recorded");
    }
}
