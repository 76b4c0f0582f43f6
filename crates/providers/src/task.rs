//! What a provider runs: [`TaskRun`], the launch-time form of a task (commands, envs, secrets,
//! nodes) with secrets split out of the plain envs, and the node variables every backend sets
//! (`SKYPLAN_NODE_RANK`, ... and SkyPilot's `SKYPILOT_*` spellings).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use skyplan_spec::{FileMount, PortRange, SecretString, TaskSpec, redact_text};

use crate::ProviderError;

/// One task as a provider runs it. `Debug` and `Serialize` show secrets as `<redacted>`; the
/// values are reachable only through [`SecretString::expose`] when starting processes.
///
/// ```
/// use skyplan_spec::parse_task_str;
/// use skyplan_providers::TaskRun;
/// let yaml = "envs:\n  MODEL: gemma\n  HF_TOKEN: hf_abc\nrun: echo $MODEL\n";
/// let pipeline = parse_task_str(yaml, "task.yaml").unwrap();
/// let run = TaskRun::from_spec(&pipeline.tasks[0]).unwrap();
/// assert_eq!(run.envs.get("MODEL").map(String::as_str), Some("gemma"));
/// assert!(run.secrets.contains_key("HF_TOKEN") && !run.envs.contains_key("HF_TOKEN"));
/// assert!(!format!("{run:?}").contains("hf_abc"));
/// assert!(!serde_json::to_string(&run).unwrap().contains("hf_abc"));
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct TaskRun {
    /// Task name (for job listings).
    pub name: String,
    /// Commands run once per node before `run`; a failure fails the job.
    pub setup: Option<String>,
    /// The job's commands.
    pub run: Option<String>,
    /// Non-secret environment.
    pub envs: BTreeMap<String, String>,
    /// Secret environment (declared `secrets` and token-like envs).
    pub secrets: BTreeMap<String, SecretString>,
    /// Local directory copied to each node's working directory.
    pub workdir: Option<PathBuf>,
    /// VM image, or container image when it starts with `docker:`.
    pub image_id: Option<String>,
    /// Ports to open.
    pub ports: Vec<PortRange>,
    /// Path on each node → what to put there (local sources are copied before setup).
    pub file_mounts: BTreeMap<String, FileMount>,
    /// Boot disk size in GB, when the task asks for one.
    pub disk_size_gb: Option<u32>,
    /// The task's `labels`: put on what the backend creates, next to the cluster label.
    pub labels: BTreeMap<String, String>,
    /// Nodes; all run `setup` and `run` with their own rank.
    pub num_nodes: u32,
    /// vCPUs each node asked for (the chosen alternative's `cpus`), for backends whose nodes
    /// share one machine (`local` checks that all of them fit).
    pub cpus_per_node: Option<f64>,
    /// Memory in GB each node asked for (the chosen alternative's `memory`), likewise.
    pub memory_gb_per_node: Option<f64>,
}

/// A view of a [`TaskRun`] for `Debug` and `Serialize`: secrets as `<redacted>`, and secret
/// values written literally into `setup` or `run` scrubbed too.
#[derive(Debug, Serialize)]
struct RedactedRun<'a> {
    name: &'a str,
    setup: Option<String>,
    run: Option<String>,
    envs: &'a BTreeMap<String, String>,
    secrets: &'a BTreeMap<String, SecretString>,
    workdir: &'a Option<PathBuf>,
    image_id: &'a Option<String>,
    ports: &'a [PortRange],
    file_mounts: &'a BTreeMap<String, FileMount>,
    disk_size_gb: Option<u32>,
    labels: &'a BTreeMap<String, String>,
    num_nodes: u32,
}

impl TaskRun {
    fn redacted_view(&self) -> RedactedRun<'_> {
        RedactedRun {
            name: &self.name,
            setup: self.setup.as_deref().map(|s| self.redact(s)),
            run: self.run.as_deref().map(|s| self.redact(s)),
            envs: &self.envs,
            secrets: &self.secrets,
            workdir: &self.workdir,
            image_id: &self.image_id,
            ports: &self.ports,
            file_mounts: &self.file_mounts,
            disk_size_gb: self.disk_size_gb,
            labels: &self.labels,
            num_nodes: self.num_nodes,
        }
    }
}

impl std::fmt::Debug for TaskRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskRun ")?;
        std::fmt::Debug::fmt(&self.redacted_view(), f)
    }
}

impl Serialize for TaskRun {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted_view().serialize(serializer)
    }
}

impl TaskRun {
    /// A one-node task running `run`.
    pub fn command(name: impl Into<String>, run: impl Into<String>) -> Self {
        TaskRun {
            name: name.into(),
            run: Some(run.into()),
            num_nodes: 1,
            ..Default::default()
        }
    }

    /// The launch-time form of a parsed task for its first resource alternative; see
    /// [`TaskRun::for_alternative`].
    pub fn from_spec(spec: &TaskSpec) -> Result<Self, ProviderError> {
        Self::for_alternative(spec, 0)
    }

    /// The launch-time form of a parsed task placed on its resource alternative `alternative`
    /// (the [`Placement::alternative`](skyplan_optimizer::Placement::alternative) the plan
    /// chose): token-like envs ([`TaskSpec::is_secret`]) move to `secrets`; `image_id`, `ports`,
    /// `disk_size` and `labels` come from that alternative. Fails when an env or secret still
    /// has no value (give it with `--env NAME=VALUE`), or when `alternative` does not exist.
    pub fn for_alternative(spec: &TaskSpec, alternative: usize) -> Result<Self, ProviderError> {
        spec.check_values().map_err(|err| ProviderError::InvalidRequest {
            message: err.to_string(),
        })?;
        let mut envs = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for (name, value) in &spec.envs {
            let Some(value) = value else { continue };
            if spec.is_secret(name) {
                secrets.insert(name.clone(), SecretString::new(value.clone()));
            } else {
                envs.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in &spec.secrets {
            if let Some(value) = value {
                secrets.insert(name.clone(), value.clone());
            }
        }
        let alternatives = spec.alternatives();
        let chosen = match alternatives.requests.get(alternative) {
            Some(request) => Some(request),
            None if alternative == 0 => None,
            None => {
                return Err(ProviderError::InvalidRequest {
                    message: format!(
                        "task {:?} has {} resource alternatives; alternative {alternative} does not exist",
                        spec.name.as_deref().unwrap_or("task"),
                        alternatives.requests.len()
                    ),
                });
            }
        };
        Ok(TaskRun {
            name: spec.name.clone().unwrap_or_else(|| "task".to_string()),
            setup: spec.setup.clone(),
            run: spec.run.clone(),
            envs,
            secrets,
            workdir: spec.workdir.as_ref().map(PathBuf::from),
            image_id: chosen.and_then(|r| r.image_id.clone()),
            ports: chosen.map(|r| r.ports.clone()).unwrap_or_default(),
            file_mounts: spec.file_mounts.clone(),
            disk_size_gb: chosen.and_then(|r| r.disk_size_gb),
            labels: chosen.map(|r| r.labels.clone()).unwrap_or_default(),
            num_nodes: spec.num_nodes.max(1),
            cpus_per_node: chosen.and_then(|r| r.cpus).map(|a| a.value),
            memory_gb_per_node: chosen.and_then(|r| r.memory).map(|a| a.value),
        })
    }

    /// The container image when `image_id` is `docker:IMAGE`.
    pub fn docker_image(&self) -> Option<&str> {
        self.image_id.as_deref().and_then(|id| id.strip_prefix("docker:"))
    }

    /// Every secret value, for scrubbing text with [`redact_text`].
    pub fn secret_values(&self) -> Vec<&str> {
        self.secrets
            .values()
            .map(SecretString::expose)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// `text` with this task's secret values replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        redact_text(text, &self.secret_values())
    }
}

/// Scrubs secret values (named in `SKYPLAN_REDACT_VARS`, read from the environment) from every
/// line, longest first, and prints it after `SKYPLAN_LINE_PREFIX` (if set), flushing each line so
/// logs stream. Used by the job scripts of the `local` and `aws` backends.
#[cfg(any(feature = "local", feature = "aws"))]
pub(crate) const REDACT_AWK: &str = r##"# Written by skyplan: replaces the values of the variables named in SKYPLAN_REDACT_VARS,
# and prints each line after SKYPLAN_LINE_PREFIX (with "#N" in it replaced by the line number).
BEGIN {
  n = split(ENVIRON["SKYPLAN_REDACT_VARS"], names, " ")
  k = 0
  for (i = 1; i <= n; i++) { v = ENVIRON[names[i]]; if (length(v) > 0) { k++; vals[k] = v } }
  for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (length(vals[j]) > length(vals[i])) { t = vals[i]; vals[i] = vals[j]; vals[j] = t }
}
{
  line = $0
  for (i = 1; i <= k; i++) {
    out = ""
    v = vals[i]
    while ((p = index(line, v)) > 0) { out = out substr(line, 1, p - 1) "<redacted>"; line = substr(line, p + length(v)) }
    line = out line
  }
  prefix = ENVIRON["SKYPLAN_LINE_PREFIX"]
  sub(/#N/, "#" NR, prefix)
  print prefix line
  fflush()
}
"##;

/// Single-quotes `text` for bash (`it's` → `'it'\''s'`).
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The variables every node gets, under skyplan's and SkyPilot's names: rank, the newline-
/// separated node IPs (rank order), the node count and the accelerators per node.
///
/// ```
/// let vars = skyplan_providers::node_variables(1, &["10.0.0.1".into(), "10.0.0.2".into()], 0.0);
/// assert_eq!(vars["SKYPLAN_NODE_RANK"], "1");
/// assert_eq!(vars["SKYPILOT_NODE_IPS"], "10.0.0.1\n10.0.0.2");
/// assert_eq!(vars["SKYPILOT_NUM_NODES"], "2");
/// assert_eq!(vars["SKYPLAN_NUM_GPUS_PER_NODE"], "0");
/// ```
pub fn node_variables(rank: u32, ips: &[String], gpus_per_node: f64) -> BTreeMap<String, String> {
    let values = [
        ("NODE_RANK", rank.to_string()),
        ("NODE_IPS", ips.join("\n")),
        ("NUM_NODES", ips.len().to_string()),
        ("NUM_GPUS_PER_NODE", skyplan_catalog::format_count(gpus_per_node)),
    ];
    let mut out = BTreeMap::new();
    for (suffix, value) in values {
        out.insert(format!("SKYPLAN_{suffix}"), value.clone());
        out.insert(format!("SKYPILOT_{suffix}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_spec::parse_task_str;

    #[test]
    fn declared_secrets_and_token_envs_are_secret() {
        let yaml =
            "envs:\n  A: plain\n  DB_PASSWORD: pw\nsecrets:\n  API: s3cret\nnum_nodes: 2\nsetup: s\nrun: r\n";
        let pipeline = parse_task_str(yaml, "t.yaml").expect("valid task");
        let run = TaskRun::from_spec(&pipeline.tasks[0]).expect("values given");
        assert_eq!(run.envs.keys().collect::<Vec<_>>(), ["A"]);
        assert_eq!(run.secrets.keys().collect::<Vec<_>>(), ["API", "DB_PASSWORD"]);
        assert_eq!(run.num_nodes, 2);
        assert_eq!(run.redact("pw and s3cret"), "<redacted> and <redacted>");
    }

    #[test]
    fn secrets_written_into_commands_are_scrubbed_from_debug_and_json() {
        let mut run = TaskRun::command("t", "login --token hf_literal");
        run.secrets
            .insert("HF_TOKEN".into(), SecretString::new("hf_literal"));
        assert!(!format!("{run:?}").contains("hf_literal"));
        let json = serde_json::to_string(&run).expect("json");
        assert!(
            json.contains("login --token <redacted>") && !json.contains("hf_literal"),
            "{json}"
        );
    }

    #[test]
    fn missing_values_are_invalid_requests() {
        let pipeline = parse_task_str("envs:\n  HF_TOKEN:\nrun: x\n", "t.yaml").expect("valid task");
        let err = TaskRun::from_spec(&pipeline.tasks[0]).expect_err("no value");
        assert!(matches!(err, ProviderError::InvalidRequest { .. }), "{err}");
    }

    #[test]
    fn docker_image_comes_from_resources() {
        let yaml = "resources:\n  image_id: docker:vllm/vllm-openai:latest\n  ports: 8000\nrun: x\n";
        let pipeline = parse_task_str(yaml, "t.yaml").expect("valid task");
        let run = TaskRun::from_spec(&pipeline.tasks[0]).expect("values given");
        assert_eq!(run.docker_image(), Some("vllm/vllm-openai:latest"));
        assert_eq!(run.ports, vec![PortRange::single(8000)]);
    }
}
