//! OpenAPI v3, as an API server publishes it for clients that validate or explain objects
//! (kubectl's validation before `apply` and `create`, `kubectl explain`): `/openapi/v3` lists the
//! group versions served, `/openapi/v3/api/v1` describes core `v1` — every path the simulator
//! serves, each operation with the kind it takes and the query parameters it honours
//! (`fieldValidation`, `dryRun`), and the object schemas, generated from the `k8s-openapi` types
//! (with their `x-kubernetes-group-version-kind`). OpenAPI v2 (`/openapi/v2`) is not served:
//! clients fall back to v3, as they do against any API server since 1.27.

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Status};
use serde_json::{Map, Value, json};

use crate::store::Kind;

/// The `/openapi/v3` answer for a cluster served under `prefix` (`/clusters/NAME`): where the
/// core `v1` document is, with a hash that changes when the document does.
pub(crate) fn discovery(prefix: &str) -> Value {
    json!({"paths": {"api/v1": {"serverRelativeURL": format!("{prefix}/openapi/v3/api/v1?hash={}", document().0)}}})
}

/// The core `v1` OpenAPI document.
pub(crate) fn core_v1() -> &'static Value {
    &document().1
}

fn document() -> &'static (String, Value) {
    static DOCUMENT: OnceLock<(String, Value)> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let document = build();
        // A content hash (FNV-1a), as the API server's hash query parameter is one.
        let text = document.to_string();
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (format!("{hash:016X}"), document)
    })
}

/// The query parameters the simulator honours on writes.
const WRITE_PARAMETERS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];

fn schema_name(kind: Kind) -> String {
    format!("io.k8s.api.core.v1.{}", kind.kind())
}

fn gvk(kind: &str) -> Value {
    json!([{"group": "", "version": "v1", "kind": kind}])
}

fn build() -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<Namespace>();
    generator.subschema_for::<Node>();
    generator.subschema_for::<Pod>();
    generator.subschema_for::<Service>();
    generator.subschema_for::<Secret>();
    generator.subschema_for::<Event>();
    generator.subschema_for::<DeleteOptions>();
    generator.subschema_for::<Status>();
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    for kind in Kind::ALL {
        if let Some(Value::Object(schema)) = schemas.get_mut(&schema_name(kind)) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk(kind.kind()));
        }
    }
    let mut paths = Map::new();
    for kind in Kind::ALL {
        let collection = if kind.namespaced() {
            format!("/api/v1/namespaces/{{namespace}}/{}", kind.plural())
        } else {
            format!("/api/v1/{}", kind.plural())
        };
        let namespace = kind.namespaced().then(
            || json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}),
        );
        let name = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
        let scope: Vec<Value> = namespace.iter().cloned().collect();
        let mut item_scope = scope.clone();
        item_scope.push(name);
        paths.insert(
            collection.clone(),
            json!({
                "parameters": scope,
                "get": operation(kind, "list", &[]),
                "post": operation(kind, "post", WRITE_PARAMETERS),
                "delete": operation(kind, "deletecollection", &[]),
            }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "parameters": item_scope,
                "get": operation(kind, "get", &[]),
                "put": operation(kind, "put", WRITE_PARAMETERS),
                "patch": operation(kind, "patch", WRITE_PARAMETERS),
                "delete": operation(kind, "delete", &[]),
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kubesim, a simulator)", "version": crate::discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// One operation on `kind`, honouring the named query parameters.
fn operation(kind: Kind, action: &str, query: &[&str]) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(kind))});
    let parameters: Vec<Value> = query
        .iter()
        .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    let mut operation = json!({
        "operationId": format!("{action}CoreV1{}", kind.kind()),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind.kind()},
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference.clone()}}}},
    });
    if matches!(action, "post" | "put" | "patch") {
        operation["requestBody"] = json!({"content": {"application/json": {"schema": reference}}});
    }
    operation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_served_kind_and_its_parameters() {
        let document = core_v1();
        let schemas = &document["components"]["schemas"];
        for kind in Kind::ALL {
            let schema = &schemas[schema_name(kind)];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"],
                gvk(kind.kind()),
                "{kind:?}"
            );
            assert_eq!(schema["type"], "object", "{kind:?}");
        }
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["type"], "array", "{containers}");
        let post = &document["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"];
        let names: Vec<&str> = post["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"fieldValidation") && names.contains(&"dryRun"),
            "{names:?}"
        );
        assert!(document["paths"]["/api/v1/nodes/{name}"]["get"].is_object());
        // Every reference resolves.
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(schemas.get(name).is_some(), "dangling $ref {name}");
        }
        let hashed = discovery("/clusters/a");
        let url = hashed["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or_default();
        assert!(url.starts_with("/clusters/a/openapi/v3/api/v1?hash="), "{url}");
    }
}
