//! Task specs: SkyPilot-compatible task YAML parsed into typed values ([`TaskSpec`],
//! [`ResourcesSpec`], [`Pipeline`]) with errors that name the file, the field path, the line and
//! column, and what was expected.
//!
//! The boundary: text in, plain data out. Reading the file in [`parse_task_file`] is the only
//! IO; nothing here knows catalogs, prices or providers. The optimizer consumes
//! [`ResourcesSpec::alternatives`] and the pipeline's edges.
//!
//! - `yaml`: YAML text to located nodes (`serde-saphyr`), plus the shared checking helpers.
//! - `task`: top-level fields, envs and secrets (redaction lives here).
//! - `env`: env names, the reserved ones, and the `envs` / `secrets` entries.
//! - `secret`: [`SecretString`] and the scrubbing of secret values from text.
//! - `file_mounts`: the `file_mounts` section.
//! - `resources`: the `resources` section and its expansion into [`ResourceRequest`]s.
//! - `pipeline`: multi-document files, `depends_on`, and command-line overrides.
//!
//! ```
//! use skyplan_spec::{parse_task_str, TaskOverrides, AlternativeMode};
//! let yaml = "envs:\n  HF_TOKEN:\nresources:\n  accelerators: {L4, A10G}\n  ports: 8000\nrun: serve\n";
//! let mut pipeline = parse_task_str(yaml, "task.yaml").unwrap();
//! // HF_TOKEN is null in the file: it must come from `--env HF_TOKEN=...`.
//! assert!(pipeline.apply_overrides(&TaskOverrides::default()).is_err());
//! let overrides = TaskOverrides { envs: vec![("HF_TOKEN".into(), "hf_x".into())], ..Default::default() };
//! pipeline.apply_overrides(&overrides).unwrap();
//! let alternatives = pipeline.tasks[0].alternatives();
//! assert_eq!(alternatives.mode, AlternativeMode::AnyOf);
//! assert_eq!(alternatives.requests.len(), 2);
//! assert!(!format!("{:?}", pipeline.tasks[0]).contains("hf_x"));
//! ```

pub mod duration;
mod env;
mod error;
mod file_mounts;
mod infra;
mod pipeline;
mod resources;
mod resources_parse;
mod secret;
mod task;
mod yaml;

use std::path::Path;

pub use env::{RESERVED_ENV_NAMES, RESERVED_NODE_VARIABLES, reserved_env_reason};
pub use error::{Position, SpecError};
pub use infra::{
    Infra, InfraError, KNOWN_CLOUDS, canonical_cloud, normalize_cloud, parse_accelerator, parse_infra,
    parse_positive_amount,
};
pub use pipeline::parse_secret_override;
pub use pipeline::{Pipeline, TaskOverrides, parse_env_override};
pub use resources::{
    AcceleratorSpec, AlternativeMode, Alternatives, PortRange, ResourceFields, ResourceRequest, ResourcesSpec,
};
pub use task::MAX_NUM_NODES;
pub use task::{
    FileMount, REDACTED, SecretString, SpecLocations, TaskSpec, is_secret_env, is_valid_env_name,
    parse_duration_hours, redact_text,
};
pub use yaml::{SHOWN_VALUE_CHARS, quote_short};

/// Reads and parses a task file. A single document is a one-task pipeline; several documents
/// (`---`) are a chain, or the DAG their `depends_on` fields declare.
pub fn parse_task_file(path: &Path) -> Result<Pipeline, SpecError> {
    let bytes = std::fs::read(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_name = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|_| SpecError::Yaml {
        at: Box::new(Position {
            file: file_name.clone(),
            line: None,
            column: None,
        }),
        message: "the file is not UTF-8 text".to_string(),
    })?;
    parse_task_str(&text, &file_name)
}

/// Parses task YAML; `file_name` is used in error messages.
pub fn parse_task_str(text: &str, file_name: &str) -> Result<Pipeline, SpecError> {
    let ctx = yaml::Ctx { file: file_name };
    let documents = yaml::load_documents(text, file_name)?;
    pipeline::build_pipeline(ctx, &documents)
}

#[cfg(test)]
mod tests;
