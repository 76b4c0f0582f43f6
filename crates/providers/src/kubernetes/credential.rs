//! Kubeconfig credential plugins (`users[].user.exec`), run by skyplan rather than by kube so
//! that they are bounded: the plugin runs as a child process in its own process group under
//! `kubernetes.request_timeout`, the group is killed when that passes, and what it printed (an
//! `ExecCredential`) becomes static credentials for kube, with the expiry the client cache
//! rebuilds at.

use std::time::{Duration, SystemTime};

use kube::config::{AuthInfo, ExecConfig, ExecInteractiveMode};
use serde_json::{Value, json};

use super::client::{one_line, shorten};
use crate::ProviderError;

/// What a credential plugin answered.
#[derive(Debug, Default)]
pub(super) struct PluginCredential {
    token: Option<String>,
    client_certificate_pem: Option<String>,
    client_key_pem: Option<String>,
    /// When the credential expires, if the plugin said.
    pub(super) expires: Option<SystemTime>,
}

/// Runs a kubeconfig `exec` credential plugin as kubectl does (its `args` and `env`,
/// `KUBERNETES_EXEC_INFO`, never interactive), within `timeout`; on timeout its process group is
/// killed. `owner` says whose plugin it is, for errors.
pub(super) async fn run_exec_plugin(
    exec: &ExecConfig,
    timeout: Duration,
    owner: &str,
) -> Result<PluginCredential, ProviderError> {
    let Some(program) = exec.command.as_deref().filter(|c| !c.is_empty()) else {
        return Err(ProviderError::InvalidRequest {
            message: format!("{owner}: `user.exec.command` is missing"),
        });
    };
    let mut command = tokio::process::Command::new(program);
    command.args(exec.args.iter().flatten());
    for pair in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (pair.get("name"), pair.get("value")) {
            command.env(name, value);
        }
    }
    for name in exec.drop_env.iter().flatten() {
        command.env_remove(name);
    }
    let mut spec = json!({"interactive": false});
    if exec.provide_cluster_info
        && let Some(cluster) = &exec.cluster
    {
        spec["cluster"] = serde_json::to_value(cluster).unwrap_or(Value::Null);
    }
    let info = json!({
        "apiVersion": exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".to_string()),
        "kind": "ExecCredential",
        "spec": spec,
    });
    command
        .env("KUBERNETES_EXEC_INFO", info.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let what = format!("the credential plugin {:?} of {owner}", shorten(program));
    if exec.interactive_mode == Some(ExecInteractiveMode::Always) {
        tracing::warn!("{what} asks to be interactive; skyplan runs it without a terminal");
    }
    let child = command.spawn().map_err(|err| ProviderError::Auth {
        message: format!(
            "{what} could not be started: {err}{}",
            exec.install_hint
                .as_deref()
                .map(|hint| format!(" ({})", one_line(hint.trim())))
                .unwrap_or_default()
        ),
    })?;
    let group = child.id();
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.map_err(|err| ProviderError::io(format!("running {what}"), err))?,
        Err(_) => {
            // The child itself is killed on drop; its helpers share its process group.
            if let Some(group) = group.and_then(|g| i32::try_from(g).ok()) {
                kill_process_group(group);
            }
            return Err(ProviderError::Timeout {
                what: format!("{what} to print a credential (kubernetes.request_timeout in config.yaml)"),
                seconds: timeout.as_secs_f64(),
            });
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(ProviderError::Auth {
            message: format!("{what} failed ({}): {}", output.status, shorten(last.trim())),
        });
    }
    parse_exec_credential(&output.stdout).map_err(|reason| ProviderError::Auth {
        message: format!("{what}: {reason}"),
    })
}

#[cfg(unix)]
fn kill_process_group(group: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        // Already gone is fine.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_process_group(_group: i32) {}

/// Reads an `ExecCredential` (JSON with `status.token`, or `status.clientCertificateData` and
/// `status.clientKeyData`, and optionally `status.expirationTimestamp`).
fn parse_exec_credential(stdout: &[u8]) -> Result<PluginCredential, String> {
    const EXPECTED: &str = "expected an ExecCredential: JSON with status.token, or status.clientCertificateData and status.clientKeyData";
    let value: Value =
        serde_json::from_slice(stdout).map_err(|_| format!("its output is not JSON; {EXPECTED}"))?;
    let status = value
        .get("status")
        .filter(|s| s.is_object())
        .ok_or_else(|| format!("its output has no `status`; {EXPECTED}"))?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match status.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("status.{key} is not a string; {EXPECTED}")),
        }
    };
    let credential = PluginCredential {
        token: text("token")?,
        client_certificate_pem: text("clientCertificateData")?,
        client_key_pem: text("clientKeyData")?,
        expires: match text("expirationTimestamp")? {
            None => None,
            Some(stamp) => Some(
                parse_rfc3339(&stamp)
                    .ok_or_else(|| format!("status.expirationTimestamp {stamp:?} is not an RFC 3339 time"))?,
            ),
        },
    };
    let certificate = credential.client_certificate_pem.is_some() && credential.client_key_pem.is_some();
    if credential.token.is_none() && !certificate {
        return Err(format!(
            "its output has neither a token nor a client certificate and key; {EXPECTED}"
        ));
    }
    Ok(credential)
}

/// The user's credentials with the plugin replaced by what it printed (kube takes an inline
/// token before anything else, and `*-data` fields as base64 of PEM, as in a kubeconfig).
pub(super) fn static_credentials(auth: &AuthInfo, credential: &PluginCredential) -> Result<AuthInfo, String> {
    use base64::Engine as _;
    let mut value = serde_json::to_value(auth).map_err(|_| "the user entry cannot be copied".to_string())?;
    let Some(fields) = value.as_object_mut() else {
        return Err("the user entry is not a mapping".to_string());
    };
    fields.remove("exec");
    if let Some(token) = &credential.token {
        fields.insert("token".to_string(), json!(token));
    }
    if let (Some(cert), Some(key)) = (&credential.client_certificate_pem, &credential.client_key_pem) {
        let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
        fields.insert("client-certificate-data".to_string(), json!(encode(cert)));
        fields.insert("client-key-data".to_string(), json!(encode(key)));
        fields.remove("client-certificate");
        fields.remove("client-key");
    }
    serde_json::from_value(value).map_err(|_| "its credential cannot be used".to_string())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` as a time; `None` for anything else.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (clock, offset_seconds) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let split = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(split);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        let hours: i64 = hours.parse().ok()?;
        let minutes: i64 = minutes.parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (clock, sign * (hours * 3600 + minutes * 60))
    };
    let clock = clock.split('.').next()?;
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !(1970..=9999).contains(&year) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    u64::try_from(seconds)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_credentials() {
        let token = parse_exec_credential(
            br#"{"kind":"ExecCredential","status":{"token":"t0k","expirationTimestamp":"2030-01-02T03:04:05Z"}}"#,
        )
        .expect("token");
        assert_eq!(token.token.as_deref(), Some("t0k"));
        assert_eq!(token.expires, parse_rfc3339("2030-01-02T04:04:05+01:00"));
        assert_eq!(
            parse_rfc3339("1970-01-02T00:00:00.5Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_200))
        );
        for bad in [
            &b"not json"[..],
            br#"{"status":{}}"#,
            br#"{"status":{"token":5}}"#,
            b"[]",
        ] {
            assert!(parse_exec_credential(bad).is_err());
        }
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2030-13-01T00:00:00Z").is_none());
    }

    #[test]
    fn plugin_tokens_replace_the_plugin() {
        let auth: AuthInfo =
            serde_json::from_value(json!({"exec": {"command": "x", "apiVersion": "v1"}})).expect("auth info");
        let credential = PluginCredential {
            token: Some("abc".into()),
            ..Default::default()
        };
        let replaced = static_credentials(&auth, &credential).expect("static");
        assert!(replaced.exec.is_none() && replaced.token.is_some());
    }
}
