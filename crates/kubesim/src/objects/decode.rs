//! Decoding a request body through the `k8s-openapi` types, and the `fieldValidation` handling of
//! fields those types do not know.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::status::ApiError;
use crate::store::Kind;

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub(crate) fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("Strict") | Some("") => Ok(Self::Strict),
            Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}; supported values: \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(body: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Paths of fields present (and not null) in `input` but absent from its typed round trip.
fn unknown_fields(input: &Value, output: &Value, path: &str, found: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            for (key, value) in input {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match output.get(key) {
                    None if !value.is_null() => found.push(child),
                    Some(out) => unknown_fields(value, out, &child, found),
                    None => {}
                }
            }
        }
        (Value::Array(input), Value::Array(output)) => {
            for (i, (a, b)) in input.iter().zip(output).enumerate() {
                unknown_fields(a, b, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Decodes a request body for `kind`: returns the normalized object and warnings.
pub(crate) fn decode(
    kind: Kind,
    body: &[u8],
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{0} in version \"v1\" cannot be handled as a {0}: {why}",
            kind.kind()
        ))
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| cannot(format!("json parse error: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(cannot("the body must be a JSON object".into()));
    };
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && api_version != "v1"
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (v1)"
        )));
    }
    if let Some(body_kind) = map.get("kind").and_then(Value::as_str)
        && body_kind != kind.kind()
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({body_kind}) does not match the expected kind ({})",
            kind.kind()
        )));
    }
    use k8s_openapi::api::core::v1 as core;
    let normalized = match kind {
        Kind::Namespace => roundtrip::<core::Namespace>(&value),
        Kind::Node => roundtrip::<core::Node>(&value),
        Kind::Pod => roundtrip::<core::Pod>(&value),
        Kind::Service => roundtrip::<core::Service>(&value),
        Kind::Secret => roundtrip::<core::Secret>(&value),
        Kind::Event => roundtrip::<core::Event>(&value),
    }
    .map_err(cannot)?;
    let mut unknown = Vec::new();
    unknown_fields(&value, &normalized, "", &mut unknown);
    let unknown: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
    match validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            Err(cannot(format!("strict decoding error: {}", unknown.join(", "))))
        }
        FieldValidation::Warn => Ok((normalized, unknown)),
        _ => Ok((normalized, Vec::new())),
    }
}
