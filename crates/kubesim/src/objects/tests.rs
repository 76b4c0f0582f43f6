//! Unit tests of admission: pod defaults (requests from limits, QoS class), rejections worded like
//! the API server (strict decoding, validation causes), and JSON merge patches.

use serde_json::{Value, json};

use super::{FieldValidation, admit_create, decode, merge_patch};
use crate::status::ApiError;
use crate::store::{Kind, Store};

fn create_pod(body: &str) -> Result<Value, ApiError> {
    let mut store = Store::default();
    store
        .create(Kind::Namespace, json!({"metadata": {"name": "default"}}))
        .unwrap();
    let (object, _) = decode(Kind::Pod, body.as_bytes(), FieldValidation::Strict)?;
    admit_create(Kind::Pod, Some("default"), object, &store)
}

#[test]
fn pods_get_defaults_and_requests_from_limits() {
    let pod = create_pod(
        r#"{"metadata":{"generateName":"job-"},"spec":{"containers":[{"name":"c","image":"busybox:1.36","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}"#,
    )
    .unwrap();
    assert!(pod["metadata"]["name"].as_str().unwrap().starts_with("job-"));
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "Burstable");
}

#[test]
fn bad_pods_are_rejected_with_kubernetes_wording() {
    let err = create_pod(r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}"#).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            422,
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        )
    );
    let err = create_pod(
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x","colour":1}]}}"#,
    )
    .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .contains("strict decoding error: unknown field \"spec.containers[0].colour\""),
        "{}",
        err.message
    );
    let err = create_pod(r#"{"metadata":{"name":"p"},"spec":{"containers":"nope"}}"#).unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("Pod in version \"v1\" cannot be handled as a Pod:"),
        "{}",
        err.message
    );
    let err = create_pod(r#"{"metadata":{"name":"p"#).unwrap_err();
    assert_eq!(err.code, 400);
    let err = create_pod(r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x","resources":{"requests":{"cpu":"lots"}}}]}}"#).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("spec.containers[0].resources.requests[cpu]"),
        "{}",
        err.message
    );
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1]});
    merge_patch(&mut target, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
    assert_eq!(target, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
}
