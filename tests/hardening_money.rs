//! Money that cannot be computed is a clear error (exit code 1, the file and line or field at
//! fault named), never a panic: task durations beyond the documented bound, catalog prices near
//! `Decimal::MAX`, GCP host + GPU prices whose sum overflows, and configured cluster prices.

use std::path::{Path, PathBuf};

use crate::util::{Run, skyplan_with, temp_dir};

const AWS_HEADER: &str =
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone";
const GCP_HEADER: &str = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice";

/// Asserts a failed run that says what is wrong without a panic or library internals.
#[track_caller]
fn assert_clean_failure(run: &Run) {
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    for leak in [
        "panicked",
        "RUST_BACKTRACE",
        "overflowed",
        "Multiplication",
        "Addition",
    ] {
        assert!(!run.stderr.contains(leak), "{leak:?} in stderr: {}", run.stderr);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `skyplan` with `home` as `SKYPLAN_HOME`.
fn run_in(home: &Path, args: &[&str]) -> Run {
    skyplan_with(args, &[("SKYPLAN_HOME", home.to_str().unwrap())])
}

#[test]
fn a_duration_beyond_the_bound_is_a_located_error() {
    let dir = temp_dir("money-duration");
    for (duration, found) in [("1e27", "1e27"), ("1e30", "1e30"), ("1000001", "1000001")] {
        let task = write(
            &dir,
            "task.yaml",
            &format!(
                "resources:\n  accelerators: H100:8\nnum_nodes: 1000\nduration: {duration}\nrun: echo hi\n"
            ),
        );
        let run = run_in(&dir, &["launch", "--dryrun", task.to_str().unwrap()]);
        assert_clean_failure(&run);
        let at = format!(
            "{}:4:11: duration: expected a positive number of hours up to 1000000",
            task.display()
        );
        assert!(run.stderr.contains(&at), "{}", run.stderr);
        assert!(run.stderr.contains(&format!("found {found}")), "{}", run.stderr);
    }
    // At the bound, 1000 nodes of H100:8 are priced exactly (no overflow, no one-hour shortcut).
    let task = write(
        &dir,
        "task.yaml",
        "resources:\n  accelerators: H100:8\nnum_nodes: 1000\nduration: 1000000\nrun: echo hi\n",
    );
    let run = run_in(&dir, &["optimize", task.to_str().unwrap(), "--json"]).success();
    let plan = run.json();
    let hourly: rust_decimal::Decimal = plan["tasks"][0]["chosen"]["hourly_price"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let total: rust_decimal::Decimal = plan["total_cost"].as_str().unwrap().parse().unwrap();
    // `hourly_price` is the whole task's (all 1000 nodes).
    assert_eq!(
        total,
        hourly * rust_decimal::Decimal::from(1_000_000u64),
        "{plan}"
    );
    assert_eq!(plan["makespan_hours"], 1e6);
}

#[test]
fn a_catalog_price_near_decimal_max_is_a_located_error() {
    let dir = temp_dir("money-catalog");
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let aws = write(
        &catalog,
        "aws.csv",
        &format!(
            "{AWS_HEADER}\np5.48xlarge,H100,8,192,2048,79228162514264337593543950335,,us-east-1,use1-az1\n"
        ),
    );
    let task = write(
        &dir,
        "task.yaml",
        "resources:\n  accelerators: H100:8\nnum_nodes: 1000\nrun: echo hi\n",
    );
    let catalog_dir = catalog.to_str().unwrap();
    for args in [
        vec![
            "--catalog-dir",
            catalog_dir,
            "launch",
            "--dryrun",
            task.to_str().unwrap(),
        ],
        vec!["--catalog-dir", catalog_dir, "show-gpus"],
    ] {
        let run = run_in(&dir, &args);
        assert_clean_failure(&run);
        let at = format!(
            "{}:2: column 6 (`Price`): expected a non-negative decimal price in $/hour of at most 1000000",
            aws.display()
        );
        assert!(run.stderr.contains(&at), "{}", run.stderr);
        assert!(
            run.stderr.contains("found \"79228162514264337593543950335\""),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn gcp_host_and_gpu_prices_too_large_to_add_are_a_located_error() {
    let dir = temp_dir("money-gcp");
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let gcp = write(
        &catalog,
        "gcp.csv",
        &format!(
            "{GCP_HEADER}\n\
             a3-highgpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,4e28,\n\
             ,,,H100,8,,us-east4,us-east4-a,4e28,\n"
        ),
    );
    let task = write(
        &dir,
        "task.yaml",
        "resources:\n  accelerators: H100:8\nrun: echo hi\n",
    );
    let catalog_dir = catalog.to_str().unwrap();
    for args in [
        vec!["--catalog-dir", catalog_dir, "show-gpus"],
        vec!["--catalog-dir", catalog_dir, "show-gpus", "H100"],
        vec![
            "--catalog-dir",
            catalog_dir,
            "launch",
            "--dryrun",
            task.to_str().unwrap(),
        ],
    ] {
        let run = run_in(&dir, &args);
        assert_clean_failure(&run);
        let at = format!("{}:2: column 9 (`Price`)", gcp.display());
        assert!(run.stderr.contains(&at), "{}", run.stderr);
        assert!(run.stderr.contains("found \"4e28\""), "{}", run.stderr);
    }
    // Within the bound the same shape loads and the sum is the offer's price.
    write(
        &catalog,
        "gcp.csv",
        &format!(
            "{GCP_HEADER}\n\
             a3-highgpu-8g,208.0,1872.0,,,,us-east4,us-east4-a,500000,\n\
             ,,,H100,8,,us-east4,us-east4-a,500000,\n"
        ),
    );
    let run = run_in(
        &dir,
        &["--catalog-dir", catalog_dir, "show-gpus", "H100", "--json"],
    )
    .success();
    assert!(run.stdout.contains("\"1000000"), "{}", run.stdout);
}

#[test]
fn the_largest_inputs_keep_the_integer_programs_costs_representable() {
    // A diamond with priced data goes to the integer program, which takes costs as floats. The
    // input bounds (1000 nodes, 1e6 hours) keep every cost far below what it can compare
    // (1e15 $, checked there too); past them the task file is the error, located.
    let dir = temp_dir("money-ilp");
    let pipeline = |nodes: u64| {
        format!(
            "name: download\nresources:\n  cpus: 4\noutputs: 200\nrun: x\n---\n\
             name: tokenize\ndepends_on: download\nresources:\n  cpus: 32+\ninputs: 200\noutputs: 40\nrun: x\n---\n\
             name: images\ndepends_on: download\nresources:\n  accelerators: T4:1\ninputs: 200\nrun: x\n---\n\
             name: train\ndepends_on: [tokenize, images]\nnum_nodes: {nodes}\nresources:\n  accelerators: H100:8\n\
             duration: 1000000\nrun: x\n"
        )
    };
    let task = write(&dir, "dag.yaml", &pipeline(4_000_000_000));
    let run = run_in(&dir, &["optimize", task.to_str().unwrap()]);
    assert_clean_failure(&run);
    assert!(
        run.stderr
            .contains("dag.yaml:24:12: num_nodes: expected a whole number of nodes from 1 to 1000"),
        "{}",
        run.stderr
    );
    let task = write(&dir, "dag.yaml", &pipeline(1000));
    let plan = run_in(&dir, &["optimize", task.to_str().unwrap(), "--json"]).success();
    assert!(plan.stdout.contains("\"train\""), "{}", plan.stdout);
}

/// A kubesim cluster with one 8×H100 node, and homes whose `config.yaml` prices it at 1e28 $/h.
/// (A task pinned to `infra: k8s` gets only "no offer satisfies H100:8 on kubernetes" today: the
/// launcher's `explain_infeasible` drops the backend's reason when the catalog has no offer
/// either; FIXME there, not here.)
#[cfg(all(feature = "kubesim", feature = "kubernetes"))]
mod kubernetes {
    use super::{assert_clean_failure, run_in, write};
    use crate::util::{start_kubesim, temp_dir};

    const CLUSTERS: &str = r#"
clusters:
  - name: onprem
    nodes:
      - name: h100
        labels: { nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3 }
        allocatable: { cpu: 192, memory: 2048Gi, nvidia.com/gpu: 8 }
"#;

    #[test]
    fn configured_cluster_prices_beyond_the_bound_are_an_error_naming_the_file() {
        let (_runtime, sim) = start_kubesim(CLUSTERS);
        for (key, shown) in [
            ("gpu_hour: {H100: 1e28}", "1e28"),
            ("vcpu_hour: 1e28", "1e28"),
            ("memory_gib_hour: 1e28", "1e28"),
        ] {
            let home = temp_dir("money-k8s");
            let kubeconfig = home.join("kubeconfig.yaml");
            sim.write_kubeconfig(&kubeconfig).unwrap();
            let config = write(
                &home,
                "config.yaml",
                &format!(
                    "kubernetes:\n  kubeconfig: {}\n  contexts: [onprem]\n  pricing:\n    {key}\n",
                    kubeconfig.display()
                ),
            );
            let task = write(
                &home,
                "task.yaml",
                "resources:\n  accelerators: H100:8\nrun: echo hi\n",
            );
            let run = run_in(&home, &["launch", "--dryrun", task.to_str().unwrap()]);
            assert_clean_failure(&run);
            assert!(
                run.stderr.contains(&config.display().to_string()),
                "{}",
                run.stderr
            );
            assert!(
                run.stderr.contains(&format!(
                    "price {shown} $/h is above the largest accepted, 1000000 $/h"
                )),
                "{}",
                run.stderr
            );
        }
    }
}
