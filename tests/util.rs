//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(
            self.code, 0,
            "skyplan failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs the `skyplan` binary with `args`, an isolated home, and no catalog override from the
/// environment.
pub fn skyplan(args: &[&str]) -> Run {
    skyplan_with(args, &[])
}

/// Like [`skyplan`], with extra environment variables.
pub fn skyplan_with(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = skyplan_command(args, envs).output().expect("run skyplan");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The command [`skyplan_with`] runs, for tests that start it and act while it runs.
pub fn skyplan_command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let home = temp_dir("home");
    let mut command = Command::new(env!("CARGO_BIN_EXE_skyplan"));
    command
        .args(args)
        .env("SKYPLAN_HOME", &home)
        // Never the developer's kubeconfig or home files: tests that want Kubernetes pass one.
        .env("HOME", &home)
        // Never this machine's GPUs: a stand-in `nvidia-smi` that finds no driver comes first.
        .env("PATH", test_path())
        .env_remove("KUBECONFIG")
        .env_remove("SKYPLAN_CATALOG_DIR")
        .env_remove("SKYPLAN_LOG");
    // Never the developer's AWS account, nor instance metadata: tests that want AWS pass a
    // local moto's environment.
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        command.env_remove(name);
    }
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/skyplan-test/credentials",
        )
        .env("AWS_CONFIG_FILE", "/nonexistent/skyplan-test/config");
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

/// `PATH` for the CLI under test: a directory of stand-ins first (an `nvidia-smi` that finds no
/// driver, so a machine's real GPUs never change what a test plans), then the system's `PATH`.
/// A test that wants GPUs puts its own `nvidia-smi` in front of this.
pub fn test_path() -> std::ffi::OsString {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let bin = temp_dir("stand-ins");
        let smi = bin.join("nvidia-smi");
        std::fs::write(
            &smi,
            "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\" >&2\nexit 9\n",
        )
        .expect("write the nvidia-smi stand-in");
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&smi)
            .status()
            .expect("chmod");
        assert!(status.success(), "chmod +x {}", smi.display());
        bin
    });
    let mut paths = vec![bin.clone()];
    if let Some(system) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&system));
    }
    std::env::join_paths(paths).expect("PATH entries without ':'")
}

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_dirs_of_finished_runs);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("skyplan-it-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Removes the temp dirs that earlier test processes left (named `skyplan-it-PID-…` for a PID
/// that no longer runs), so runs do not pile up directories in the temp dir.
fn remove_dirs_of_finished_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("skyplan-it-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The repository's `data/` directory.
pub fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data"))
}

/// A running kubesim serving the clusters of `clusters` (a clusters-file text), with the runtime
/// that serves it: keep both alive for as long as the test uses it.
#[cfg(feature = "kubesim")]
pub fn start_kubesim(clusters: &str) -> (tokio::runtime::Runtime, skyplan_kubesim::RunningSim) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime
        .block_on(skyplan_kubesim::Simulator::start(
            skyplan_kubesim::ClustersFile::from_yaml_str(clusters).expect("clusters file"),
            skyplan_kubesim::SimOptions::default(),
        ))
        .expect("kubesim starts");
    (runtime, sim)
}

/// Writes `home/config.yaml` with a `kubernetes:` section using `kubeconfig` and `contexts`, plus
/// `extra` lines (each indented two spaces, e.g. `"  provision_timeout: 120\n"`).
#[cfg(feature = "kubesim")]
pub fn kubernetes_config(home: &Path, kubeconfig: &Path, contexts: &str, extra: &str) {
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "kubernetes:\n  kubeconfig: {}\n  contexts: [{contexts}]\n{extra}",
            kubeconfig.display()
        ),
    )
    .expect("write config.yaml");
}

/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Waits (at most 10 s) until process `pid` no longer runs; whether it is gone.
pub fn wait_gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !alive(pid)
}
