//! API errors as Kubernetes `Status` objects (`404 NotFound`, `409 AlreadyExists`, `422 Invalid`, ...).
//!
//! Every failure the server answers goes through [`ApiError`], so clients such as `kube` and `kubectl`
//! get the same machine-readable `reason`, `code` and `details` a real API server sends.

use serde_json::{Value, json};

/// One field-level cause of a `422 Invalid` answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    /// Field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueNotSupported`, `FieldValueForbidden`.
    pub reason: &'static str,
    /// Human message, e.g. `Required value` or `Invalid value: "x": must be ...`.
    pub message: String,
}

impl Cause {
    pub(crate) fn required(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value:?}: {detail}"),
        }
    }

    pub(crate) fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value:?}"),
        }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }

    pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        }
    }
}

/// An error answer: HTTP code, Kubernetes `reason`, message and optional `details`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: None,
        }
    }

    /// `404 NotFound`: `pods "x" not found`.
    pub(crate) fn not_found(resource: &str, name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "kind": resource})),
            ..Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
        }
    }

    /// `404 NotFound` for a path the simulator does not serve, saying so (the status code and
    /// reason are what clients act on; the message is for people).
    pub(crate) fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({path}): kubesim, a Kubernetes API \
                 simulator, does not serve it (it serves core v1 namespaces, nodes, pods with status and \
                 log, services, secrets and events)"
            ),
        )
    }

    /// `404 NotFound` for a subresource the simulator does not support (`pods/exec`).
    pub(crate) fn unsupported_subresource(resource: &str, subresource: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource: kubesim, a Kubernetes API simulator, \
                 does not support {resource}/{subresource}"
            ),
        )
    }

    /// `409 AlreadyExists`.
    pub(crate) fn already_exists(resource: &str, name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "kind": resource})),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{resource} \"{name}\" already exists"),
            )
        }
    }

    /// `409 Conflict` for a stale `resourceVersion`.
    pub(crate) fn conflict(resource: &str, name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "kind": resource})),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; \
                     please apply your changes to the latest version and try again"
                ),
            )
        }
    }

    /// `400 BadRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    /// `403 Forbidden`.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message.into())
    }

    /// `405 MethodNotAllowed`.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    /// `406 NotAcceptable` / `415 UnsupportedMediaType`.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// `410 Gone` with reason `Expired`, for a resourceVersion older than the kept history.
    pub(crate) fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// `422 Invalid` with field causes: `Pod "x" is invalid: spec.containers[0].image: Required value`.
    pub(crate) fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        Self {
            details: Some(json!({"name": name, "kind": kind, "causes": causes})),
            ..Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {joined}"))
        }
    }

    /// `500 InternalError`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message.into())
    }

    /// The `Status` object sent as the body.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_joins_causes_like_kubernetes() {
        let one = ApiError::invalid("Pod", "p", vec![Cause::required("spec.containers[0].image")]);
        assert_eq!(
            one.message,
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(
            one.to_status()["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
        let two = ApiError::invalid("Pod", "p", vec![Cause::required("a"), Cause::duplicate("b", "x")]);
        assert_eq!(
            two.message,
            "Pod \"p\" is invalid: [a: Required value, b: Duplicate value: \"x\"]"
        );
        assert_eq!(ApiError::not_found("pods", "x").to_status()["code"], 404);
    }
}
