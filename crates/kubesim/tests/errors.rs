//! Every kind of bad request gets a proper `Status` answer, and the server keeps serving.

use crate::util::{expect_status, expect_status_typed, raw, start};

const PODS: &str = "/clusters/test/api/v1/namespaces/default/pods";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_status_errors() {
    let sim = start().await;
    let good = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ok"},"spec":{"nodeName":"nowhere","containers":[{"name":"c","image":"x","command":["true"]}]}}"#;

    let message = expect_status(
        &sim,
        "POST",
        PODS,
        r#"{"metadata": {"name": "broken""#,
        400,
        "BadRequest",
    )
    .await;
    assert!(message.contains("json parse error"), "{message}");

    let message = expect_status(
        &sim,
        "POST",
        PODS,
        r#"{"metadata":{"name":"typo"},"spec":{"containers":[{"name":"c","image":"x","comand":["true"]}]}}"#,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        message.contains("strict decoding error: unknown field \"spec.containers[0].comand\""),
        "{message}"
    );

    let message = expect_status(
        &sim,
        "POST",
        PODS,
        r#"{"metadata":{"name":"t"},"spec":{"containers":7}}"#,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        message.starts_with("Pod in version \"v1\" cannot be handled as a Pod"),
        "{message}"
    );

    let message = expect_status(
        &sim,
        "POST",
        "/clusters/test/api/v1/namespaces/nope/pods",
        good,
        404,
        "NotFound",
    )
    .await;
    assert_eq!(message, "namespaces \"nope\" not found");

    let message = expect_status(
        &sim,
        "GET",
        &format!("{PODS}?labelSelector=app%20in%20(a"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert!(message.contains("parentheses"), "{message}");
    let message = expect_status(
        &sim,
        "GET",
        &format!("{PODS}?fieldSelector=spec.colour%3Dred"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert_eq!(message, "field label not supported: spec.colour");

    let message = expect_status(
        &sim,
        "POST",
        PODS,
        r#"{"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c"}]}}"#,
        422,
        "Invalid",
    )
    .await;
    assert!(
        message.starts_with("Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value"),
        "{message}"
    );
    assert!(
        message.contains("spec.containers[0].image: Required value"),
        "{message}"
    );

    let (code, head, _) = raw(&sim, "POST", PODS, "application/json", good).await;
    assert_eq!(code, 201, "{head}");
    let message = expect_status(&sim, "POST", PODS, good, 409, "AlreadyExists").await;
    assert_eq!(message, "pods \"ok\" already exists");

    let message = expect_status(&sim, "GET", &format!("{PODS}/missing"), "", 404, "NotFound").await;
    assert_eq!(message, "pods \"missing\" not found");
    let message = expect_status(&sim, "GET", "/clusters/test/api/v1/widgets", "", 404, "NotFound").await;
    assert!(
        message.contains("kubesim, a Kubernetes API simulator, does not serve it"),
        "{message}"
    );
    let message = expect_status(&sim, "POST", &format!("{PODS}/ok/attach"), "", 404, "NotFound").await;
    assert!(message.ends_with("does not support pods/attach"), "{message}");
    let message = expect_status(
        &sim,
        "GET",
        &format!("{PODS}?limit=1&continue=nonsense"),
        "",
        400,
        "BadRequest",
    )
    .await;
    assert!(message.starts_with("continue key is not valid"), "{message}");
    expect_status(&sim, "GET", "/clusters/nosuch/api/v1/pods", "", 404, "NotFound").await;
    expect_status(&sim, "PUT", PODS, good, 405, "MethodNotAllowed").await;
    expect_status(
        &sim,
        "POST",
        "/clusters/test/api/v1/pods",
        good,
        400,
        "BadRequest",
    )
    .await;
    expect_status_typed(
        &sim,
        "PATCH",
        &format!("{PODS}/ok"),
        "application/apply-patch+yaml",
        "x: 1",
        415,
        "UnsupportedMediaType",
    )
    .await;
    expect_status(
        &sim,
        "GET",
        &format!("{PODS}/ok/log?tailLines=many"),
        "",
        400,
        "BadRequest",
    )
    .await;
    let message = expect_status(
        &sim,
        "PUT",
        &format!("{PODS}/ok"),
        &good.replace("\"name\":\"ok\"}", "\"name\":\"ok\",\"resourceVersion\":\"1\"}"),
        409,
        "Conflict",
    )
    .await;
    assert!(message.contains("the object has been modified"), "{message}");
    let message = expect_status(
        &sim,
        "DELETE",
        "/clusters/test/api/v1/namespaces/default",
        "",
        403,
        "Forbidden",
    )
    .await;
    assert!(message.contains("may not be deleted"), "{message}");

    // Still alive and well.
    let (code, _, body) = raw(&sim, "GET", &format!("{PODS}/ok"), "application/json", "").await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_validation_warn_and_ignore_accept_unknown_fields() {
    let sim = start().await;
    let body = r#"{"metadata":{"name":"lenient"},"spec":{"nodeName":"nowhere","containers":[{"name":"c","image":"x","extra":1}]}}"#;
    let (code, head, _) = raw(
        &sim,
        "POST",
        &format!("{PODS}?fieldValidation=Warn"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(code, 201);
    assert!(
        head.to_lowercase()
            .contains("warning: 299 - \"unknown field \\\"spec.containers[0].extra\\\"\""),
        "{head}"
    );
    let (code, _, created) = raw(
        &sim,
        "POST",
        &format!("{PODS}?fieldValidation=Ignore"),
        "application/json",
        &body.replace("lenient", "lenient2"),
    )
    .await;
    assert_eq!(code, 201);
    assert!(
        !created.contains("extra"),
        "unknown fields are dropped: {created}"
    );
    expect_status(
        &sim,
        "POST",
        &format!("{PODS}?fieldValidation=Sometimes"),
        body,
        400,
        "BadRequest",
    )
    .await;
}
