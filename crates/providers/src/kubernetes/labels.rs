//! The task's `labels` as Kubernetes labels: checked against the API server's rules (qualified
//! keys, 63-character values) before anything is sent, so that a bad label is an error naming
//! that label rather than a 422 from the server halfway through creating a cluster. Pure.

use std::collections::BTreeMap;

use crate::ProviderError;

/// The key prefix skyplan's own labels use (`skyplan.dev/cluster`, `skyplan.dev/node-rank`); a
/// task may not set labels under it.
pub const RESERVED_PREFIX: &str = "skyplan.dev/";

/// Checks every label of a task: keys are `[prefix/]name` (prefix a DNS subdomain of at most 253
/// characters, name at most 63 alphanumerics, `-`, `_` or `.`, starting and ending
/// alphanumeric), values are empty or a name, and no key is under [`RESERVED_PREFIX`]. The error
/// names the first bad label and why.
///
/// ```
/// # #[cfg(feature = "kubernetes")] {
/// use std::collections::BTreeMap;
/// use skyplan_providers::kubernetes::check_labels;
/// let good = BTreeMap::from([("team".to_string(), "ml".to_string()), ("example.com/env".to_string(), "dev".to_string())]);
/// assert!(check_labels(&good).is_ok());
/// let bad = BTreeMap::from([("team".to_string(), "ML research".to_string())]);
/// assert!(check_labels(&bad).unwrap_err().to_string().contains("label team=ML research"));
/// # }
/// ```
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ProviderError> {
    for (key, value) in labels {
        let reason =
            key_error(key).or_else(|| name_error(value, true).map(|reason| format!("the value {reason}")));
        if let Some(reason) = reason {
            return Err(ProviderError::InvalidRequest {
                message: format!("label {key}={value}: {reason} (Kubernetes label rules)"),
            });
        }
    }
    Ok(())
}

/// Why `key` is not a label key a task may set.
fn key_error(key: &str) -> Option<String> {
    if key.starts_with(RESERVED_PREFIX) {
        return Some(format!("keys under {RESERVED_PREFIX} are reserved for skyplan"));
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(reason) = subdomain_error(prefix)
    {
        return Some(format!("the key prefix {prefix:?} {reason}"));
    }
    name_error(name, false).map(|reason| format!("the key name {name:?} {reason}"))
}

/// Why `text` is not a label name (or, with `empty_ok`, a label value).
fn name_error(text: &str, empty_ok: bool) -> Option<String> {
    if text.is_empty() {
        return (!empty_ok).then(|| "must not be empty".to_string());
    }
    if text.len() > 63 {
        return Some(format!("is {} characters long (at most 63)", text.len()));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "holds {c:?} (only letters, digits, '-', '_' and '.' are allowed)"
        ));
    }
    let alphanumeric = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alphanumeric(text.chars().next()) || !alphanumeric(text.chars().last()) {
        return Some("must start and end with a letter or digit".to_string());
    }
    None
}

/// Why `prefix` is not a DNS subdomain (lower-case RFC 1123 labels joined by dots).
fn subdomain_error(prefix: &str) -> Option<String> {
    if prefix.is_empty() || prefix.len() > 253 {
        return Some("must be a DNS subdomain of 1 to 253 characters".to_string());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (!prefix.split('.').all(label_ok))
        .then(|| "must be a DNS subdomain (lower-case letters, digits, '-' and '.')".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, value: &str) -> Result<(), String> {
        check_labels(&BTreeMap::from([(key.to_string(), value.to_string())])).map_err(|e| e.to_string())
    }

    #[test]
    fn kubernetes_rules() {
        for (key, value) in [
            ("team", "ml"),
            ("app.kubernetes.io/name", "vllm"),
            ("example.com/empty", ""),
            ("a_b.c-d", "A_b.9"),
        ] {
            assert_eq!(check(key, value), Ok(()), "{key}={value}");
        }
        for (key, value, why) in [
            ("team", "ml research", "holds ' '"),
            ("team", "-ml", "must start and end"),
            ("team", &"x".repeat(64), "64 characters"),
            ("", "x", "must not be empty"),
            ("Example.com/x", "y", "key prefix \"Example.com\""),
            ("a/b/c", "y", "key name \"b/c\""),
            ("skyplan.dev/cluster", "other", "reserved for skyplan"),
        ] {
            let err = check(key, value).expect_err(key);
            assert!(
                err.contains(&format!("label {key}={value}")) && err.contains(why),
                "{err}"
            );
        }
    }
}
