//! Validation of admitted objects (names, labels, pod containers and resources, service ports,
//! taints and tolerations), with field causes worded like the API server's.

use serde_json::Value;

use crate::config::{is_dns_label, is_dns_subdomain};
use crate::quantity::parse_milli;
use crate::scheduler::{PodRequirements, TaintEffect};
use crate::selector::{valid_label_key, valid_label_value};
use crate::status::{ApiError, Cause};
use crate::store::Kind;

/// Validates an admitted object: `422 Invalid` with one cause per bad field.
pub(super) fn validate(kind: Kind, object: &Value) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    let name_ok = match kind {
        Kind::Namespace | Kind::Service => is_dns_label(name),
        _ => is_dns_subdomain(name),
    };
    if !name_ok {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character",
        ));
    }
    for (key, value) in object["metadata"]["labels"].as_object().into_iter().flatten() {
        if !valid_label_key(key) {
            causes.push(Cause::invalid(
                "metadata.labels",
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
        if !value.as_str().is_some_and(valid_label_value) {
            causes.push(Cause::invalid(
                "metadata.labels",
                value.as_str().unwrap_or_default(),
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
    }
    match kind {
        Kind::Pod => validate_pod(object, &mut causes),
        Kind::Service => {
            for (i, port) in object["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !port["port"].as_i64().is_some_and(|p| (1..=65_535).contains(&p)) {
                    causes.push(Cause::invalid(
                        format!("spec.ports[{i}].port"),
                        &port["port"].to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        Kind::Node => {
            for (i, taint) in object["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let effect = taint["effect"].as_str().unwrap_or_default();
                if TaintEffect::parse(effect).is_none() {
                    causes.push(Cause::not_supported(
                        format!("spec.taints[{i}].effect"),
                        effect,
                        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                    ));
                }
            }
        }
        Kind::Namespace | Kind::Secret | Kind::Event => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind.kind(), name, causes))
    }
}

fn validate_pod(pod: &Value, causes: &mut Vec<Cause>) {
    let spec = &pod["spec"];
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        causes.push(Cause::required("spec.containers"));
    }
    let mut names = std::collections::BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let field = format!("spec.{list}[{i}]");
            let name = c["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{field}.name")));
            } else if !is_dns_label(name) {
                causes.push(Cause::invalid(
                    format!("{field}.name"),
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                ));
            } else if !names.insert(name.to_owned()) {
                causes.push(Cause::duplicate(format!("{field}.name"), name));
            }
            if c["image"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{field}.image")));
            }
            let policy = c["imagePullPolicy"].as_str().unwrap_or_default();
            if !["Always", "IfNotPresent", "Never"].contains(&policy) {
                causes.push(Cause::not_supported(
                    format!("{field}.imagePullPolicy"),
                    policy,
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
            for which in ["requests", "limits"] {
                for (resource, quantity) in c["resources"][which].as_object().into_iter().flatten() {
                    let text = quantity.as_str().unwrap_or_default();
                    match parse_milli(text) {
                        Err(_) => causes.push(Cause::invalid(
                            format!("{field}.resources.{which}[{resource}]"),
                            text,
                            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                        )),
                        Ok(m) if m < 0 => causes.push(Cause::invalid(format!("{field}.resources.{which}[{resource}]"), text, "must be greater than or equal to 0")),
                        Ok(m) if which == "requests" => {
                            let limit = c["resources"]["limits"][resource].as_str().and_then(|l| parse_milli(l).ok());
                            if limit.is_some_and(|l| m > l) {
                                causes.push(Cause::invalid(format!("{field}.resources.requests"), text, &format!("must be less than or equal to {resource} limit")));
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
            for (j, env) in c["env"].as_array().into_iter().flatten().enumerate() {
                if env["name"].as_str().is_none_or(str::is_empty) {
                    causes.push(Cause::required(format!("{field}.env[{j}].name")));
                }
            }
            for (j, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
                if !port["containerPort"]
                    .as_i64()
                    .is_some_and(|p| (1..=65_535).contains(&p))
                {
                    causes.push(Cause::invalid(
                        format!("{field}.ports[{j}].containerPort"),
                        &port["containerPort"].to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    let restart = spec["restartPolicy"].as_str().unwrap_or_default();
    if !["Always", "OnFailure", "Never"].contains(&restart) {
        causes.push(Cause::not_supported(
            "spec.restartPolicy",
            restart,
            &["Always", "OnFailure", "Never"],
        ));
    }
    for (key, value) in spec["nodeSelector"].as_object().into_iter().flatten() {
        if !valid_label_key(key) || !value.as_str().is_some_and(valid_label_value) {
            causes.push(Cause::invalid(
                "spec.nodeSelector",
                key,
                "must be a valid label key and value",
            ));
        }
    }
    for (i, t) in spec["tolerations"].as_array().into_iter().flatten().enumerate() {
        let operator = t["operator"].as_str().unwrap_or("Equal");
        if !["Equal", "Exists"].contains(&operator) {
            causes.push(Cause::not_supported(
                format!("spec.tolerations[{i}].operator"),
                operator,
                &["Equal", "Exists"],
            ));
        }
        if operator == "Exists" && t["value"].as_str().is_some_and(|v| !v.is_empty()) {
            causes.push(Cause::invalid(
                format!("spec.tolerations[{i}].operator"),
                operator,
                "value must be empty when `operator` is 'Exists'",
            ));
        }
        let effect = t["effect"].as_str().unwrap_or_default();
        if !effect.is_empty() && TaintEffect::parse(effect).is_none() {
            causes.push(Cause::not_supported(
                format!("spec.tolerations[{i}].effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    if causes.is_empty()
        && let Ok(pod) = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(pod.clone())
        && let Err(why) = PodRequirements::from_pod(&pod)
    {
        causes.push(Cause::invalid("spec.affinity", "", &why));
    }
}
