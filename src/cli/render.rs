//! `skyplan render TASK.yaml --target kubernetes`: print the Kubernetes objects the backend
//! creates for a task (Pod per node, Services, and the Secret under `--include-secrets`) as YAML
//! that `kubectl apply -f -` accepts. The objects come from the backend's own function
//! (`build_manifests`) with the same inputs, so the rendered Pod is the created Pod:
//!
//! - the cluster name is `-c NAME` or the task's name made valid, with no random part;
//! - the pods' shape is that of a placement: `--instance-type` (a Kubernetes instance type as
//!   `launch --dryrun` prints it, e.g. `8CPU--32GB--L4:1`), else the cheapest offer of
//!   `--context`'s live nodes, else the task's first resource alternative;
//! - the GPU node label is chosen from `--context`'s nodes by the backend's rule; offline (the
//!   default, no cluster contacted) the affinity uses `skypilot.co/accelerator`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use skyplan::catalog::Catalog;
use skyplan::optimizer::Placement;
use skyplan::optimizer::spec::{
    Pipeline, SecretString, TaskOverrides, parse_env_override, parse_secret_override, parse_task_file,
};
use skyplan::providers::kubernetes::capacity::{parse_instance_type, slice_offer};
use skyplan::providers::kubernetes::{
    KubernetesConfig, NodeFree, PodShape, Pricing, RenderOptions, context_offers, gpu_node_label,
    render_manifests, task_placement,
};
use skyplan::providers::{KubernetesProvider, TaskRun};

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
    /// Cluster name used in object names and labels (default: the task's name made valid, the
    /// same on every run; a pipeline's tasks get NAME-1, NAME-2, ...).
    #[arg(short = 'c', long = "cluster", value_name = "NAME")]
    pub cluster: Option<String>,
    /// Namespace (default: `kubernetes.namespace` of config.yaml, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Set or override an env (`K=V`).
    #[arg(long = "env", value_name = "K=V")]
    pub envs: Vec<String>,
    /// Set a secret (`K=V`, as `launch --secret`), or declare one without a value (`K`): it is
    /// a key of the Secret, to be given when the Secret is created (with `--include-secrets` a
    /// value is needed).
    #[arg(long = "secret", value_name = "K[=V]")]
    pub secrets: Vec<String>,
    /// Print the Secret with the real secret values (default: leave it out and say how to
    /// create it; no secret value is printed).
    #[arg(long)]
    pub include_secrets: bool,
    /// Shape the pods as this Kubernetes placement (`8CPU--32GB--L4:1`, as `launch --dryrun`
    /// names it) instead of the task's first resource alternative. One task only.
    #[arg(long, value_name = "TYPE")]
    pub instance_type: Option<String>,
    /// Read this configured kubeconfig context (contacts the cluster): the GPU node label comes
    /// from its nodes as a launch there would choose it, and without `--instance-type` the pods
    /// take the shape of the cheapest offer of its live nodes.
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
}

/// A context's live nodes and pricing, read for `--context`.
struct Live {
    context: String,
    nodes: Vec<NodeFree>,
    pricing: Pricing,
}

/// Runs `render`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let Target::Kubernetes = args.target;
    let mut pipeline = parse_task_file(&args.task)?;
    // Each parser's error names its own flag and the name, never the value.
    let envs = args
        .envs
        .iter()
        .map(|v| parse_env_override(v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut secrets = Vec::new();
    for text in &args.secrets {
        if text.contains('=') {
            secrets.push(parse_secret_override(text)?);
            continue;
        }
        // `--secret K`: declared here, its value given when the Secret is created.
        let (name, _) = parse_secret_override(&format!("{text}="))?;
        for spec in &mut pipeline.tasks {
            let value = spec.envs.remove(&name).flatten().map(SecretString::new);
            let declared = spec.secrets.entry(name.clone()).or_insert(None);
            if declared.is_none() {
                *declared = value;
            }
        }
    }
    if !args.include_secrets {
        // Secret values are left out of the output: unset ones need no value here (before the
        // overrides, so that `--env NAME=VALUE` still sets one).
        for spec in &mut pipeline.tasks {
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
                *value = Some(SecretString::new(""));
            }
        }
    }
    pipeline.apply_overrides(&TaskOverrides {
        envs,
        secrets,
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
        None => skyplan::launch::cluster_name_for_task(
            pipeline
                .tasks
                .first()
                .and_then(|t| t.name.as_deref())
                .unwrap_or(&stem),
        ),
    };
    skyplan::providers::check_cluster_name(&base)?;
    let live = match &args.context {
        Some(context) => Some(read_context(&home, context)?),
        None => None,
    };
    let placements = placements(&pipeline, args.instance_type.as_deref(), live.as_ref())?;
    let options = RenderOptions {
        include_secrets: args.include_secrets,
        request_id: None,
    };
    let single = pipeline.tasks.len() == 1;
    let mut out = String::new();
    let any_gpu = placements
        .iter()
        .any(|p| PodShape::for_placement(p).accelerator.is_some());
    if live.is_none() && any_gpu {
        out.push_str(
            "# Rendered offline: GPU pods require skypilot.co/accelerator; --context CONTEXT takes the\n\
             # label that context's nodes carry, as a launch there does.\n",
        );
    }
    if args.instance_type.is_none() && live.is_none() {
        out.push_str(
            "# Pods are shaped as the task's first resource alternative; --instance-type TYPE (as\n\
             # `launch --dryrun` names a Kubernetes placement) or --context shapes them as a launch does.\n",
        );
    }
    for (index, (spec, placement)) in pipeline.tasks.iter().zip(&placements).enumerate() {
        let run = TaskRun::for_alternative(spec, placement.alternative)?;
        let mut shape = PodShape::for_placement(placement);
        if let (Some(live), Some(model)) = (&live, shape.accelerator.clone()) {
            let label = gpu_node_label(&live.nodes, &model).with_context(|| {
                format!(
                    "context {} has no {model} nodes: a launch there would not place this task",
                    live.context
                )
            })?;
            shape = shape.with_gpu_label(Some(label));
        }
        let cluster = if single {
            base.clone()
        } else {
            format!("{base}-{}", index + 1)
        };
        out.push_str(&render_manifests(&run, &cluster, &namespace, &shape, &options)?);
    }
    super::print_text(out.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// The nodes of `context`, which must be one the `kubernetes` backend of `home` is configured
/// for (as a launch would only go there).
fn read_context(home: &std::path::Path, context: &str) -> anyhow::Result<Live> {
    let provider = KubernetesProvider::from_home(home)?
        .context("--context: no kubeconfig found and no `kubernetes:` section in config.yaml")?;
    if !provider.contexts().iter().any(|c| c == context) {
        anyhow::bail!(
            "--context {context}: not a context the kubernetes backend is configured for ({}); list it under `kubernetes.contexts` in config.yaml",
            provider.contexts().join(", ")
        );
    }
    let nodes = skyplan::launch::runtime()?
        .block_on(provider.context_capacity(context))
        .with_context(|| format!("reading the nodes of context {context}"))?;
    Ok(Live {
        context: context.to_string(),
        nodes,
        pricing: provider.config().pricing.clone(),
    })
}

/// One placement per task: planned on the one offer `--instance-type` names, else on the live
/// offers of `--context`, else the task's first resource alternative as it is.
fn placements(
    pipeline: &Pipeline,
    instance_type: Option<&str>,
    live: Option<&Live>,
) -> anyhow::Result<Vec<Placement>> {
    let catalog = match (instance_type, live) {
        (None, None) => return Ok(pipeline.tasks.iter().map(task_placement).collect()),
        (Some(name), _) => {
            if pipeline.tasks.len() != 1 {
                anyhow::bail!(
                    "--instance-type shapes one task; {} has {} (render them one by one)",
                    pipeline.name.as_deref().unwrap_or("the pipeline"),
                    pipeline.tasks.len()
                );
            }
            let size = parse_instance_type(name).with_context(|| {
                format!("--instance-type {name}: not a Kubernetes instance type such as 8CPU--32GB--L4:1 or 4CPU--16GB")
            })?;
            let gpu = size.gpu.map(|(model, count)| {
                let canonical = skyplan::catalog::canonical_accelerator_with_memory(&model, None);
                (canonical.unwrap_or(model), count)
            });
            let context = match live {
                Some(live) => live.context.clone(),
                None => task_placement(&pipeline.tasks[0]).region,
            };
            let pricing = live.map(|l| l.pricing.clone()).unwrap_or_default();
            let gpu = gpu.as_ref().map(|(m, c)| (m.as_str(), *c));
            Catalog::from_offers(vec![slice_offer(
                &context,
                size.vcpus,
                size.memory_gib,
                gpu,
                &pricing,
            )])
        }
        (None, Some(live)) => {
            Catalog::from_offers(context_offers(&live.context, &live.nodes, &live.pricing).0)
        }
    };
    let what = match (instance_type, live) {
        (Some(name), _) => format!("--instance-type {name}"),
        (None, live) => format!(
            "the live offers of context {}",
            live.map(|l| l.context.as_str()).unwrap_or_default()
        ),
    };
    let plan = skyplan::plan::plan_pipeline(&catalog, pipeline, &skyplan::plan::default_policy()?)
        .with_context(|| format!("{what} cannot run the task"))?;
    Ok(plan.tasks.into_iter().map(|t| t.chosen).collect())
}
