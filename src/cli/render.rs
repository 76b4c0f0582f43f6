//! `skyplan render TASK.yaml --target kubernetes`: print the Kubernetes objects the backend would
//! create for a task (Secret, Pod per node, Services) as YAML that `kubectl apply -f -` accepts,
//! with secret values redacted. Pure: no cluster is contacted, so the GPU node affinity uses
//! `skypilot.co/accelerator` (a live launch uses the label found on the cluster's nodes).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use skyplan::optimizer::spec::{TaskOverrides, parse_env_override, parse_task_file};
use skyplan::providers::TaskRun;
use skyplan::providers::kubernetes::{KubernetesConfig, PodShape, render_manifests};

use super::Cli;

/// What to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Kubernetes manifests.
    Kubernetes,
}

/// Arguments of `render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task file (SkyPilot YAML; several documents make a pipeline).
    #[arg(value_name = "TASK.yaml")]
    pub task: PathBuf,
    /// What to render for.
    #[arg(long, value_enum, default_value_t = Target::Kubernetes)]
    pub target: Target,
    /// Cluster name used in object names and labels (default: derived from the task name).
    #[arg(short = 'c', long = "cluster", value_name = "NAME")]
    pub cluster: Option<String>,
    /// Namespace (default: `kubernetes.namespace` of config.yaml, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Set or override an env (`K=V`).
    #[arg(long = "env", value_name = "K=V")]
    pub envs: Vec<String>,
}

/// Runs `render`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let Target::Kubernetes = args.target;
    let mut pipeline = parse_task_file(&args.task)?;
    let envs = args
        .envs
        .iter()
        .map(|v| {
            parse_env_override(v)
                .with_context(|| format!("--env {}", v.split('=').next().unwrap_or_default()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    pipeline.apply_overrides(&TaskOverrides {
        envs,
        ..TaskOverrides::default()
    })?;
    let home = skyplan::home_dir(cli.home.as_deref())?;
    let namespace = match &args.namespace {
        Some(namespace) => namespace.clone(),
        None => KubernetesConfig::load(&home)?
            .map(|c| c.namespace().to_string())
            .unwrap_or_else(|| "default".to_string()),
    };
    let stem = args
        .task
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("task")
        .to_string();
    let base = match &args.cluster {
        Some(name) => name.clone(),
        None => skyplan::launch::default_cluster_name(
            pipeline
                .tasks
                .first()
                .and_then(|t| t.name.as_deref())
                .unwrap_or(&stem),
        ),
    };
    skyplan::providers::check_cluster_name(&base)?;
    let single = pipeline.tasks.len() == 1;
    let mut out = String::new();
    for (index, spec) in pipeline.tasks.iter_mut().enumerate() {
        // Secret values are redacted in the output: unset ones need no value here.
        let secret_names: Vec<String> = spec
            .envs
            .iter()
            .filter(|(name, value)| value.is_none() && spec.is_secret(name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in secret_names {
            spec.envs.insert(name, Some(String::new()));
        }
        for value in spec.secrets.values_mut().filter(|v| v.is_none()) {
            *value = Some(skyplan::optimizer::spec::SecretString::new(""));
        }
        let run = TaskRun::from_spec(spec)?;
        let cluster = if single {
            base.clone()
        } else {
            format!("{base}-{}", index + 1)
        };
        out.push_str(&render_manifests(
            &run,
            &cluster,
            &namespace,
            &PodShape::for_task(spec),
        )?);
    }
    super::print_text(out.trim_end())?;
    Ok(ExitCode::SUCCESS)
}
