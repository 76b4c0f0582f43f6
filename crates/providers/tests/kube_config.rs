//! The `kubernetes:` section of `config.yaml` and kubeconfig files under arbitrary bytes and
//! structured mutations: loading never panics, and every error names the file (and, for
//! `config.yaml`, the line or field). Each property runs a bounded number of cases (see its
//! `proptest_config`); the whole file stays well under a few seconds.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use skyplan_providers::ProviderError;
use skyplan_providers::kubernetes::{KubernetesConfig, KubernetesProvider, check_server_url};

const FILE: &str = "/home/u/.skyplan/config.yaml";

/// A valid `kubernetes:` section using every field.
const VALID_CONFIG: &str = "kubernetes:
  contexts: [ctx]
  namespace: team-a
  provision_timeout: 30s
  request_timeout: 5
  pricing:
    gpu_hour: {H100: 2.5, L4: 0.4}
    vcpu_hour: 0.02
    memory_gib_hour: 0.001
";

/// A valid kubeconfig with one context.
const VALID_KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
contexts:
- name: ctx
  context:
    cluster: c
    user: u
    namespace: default
current-context: ctx
users:
- name: u
  user:
    token: abc
";

/// Values that a mutation puts in place of a scalar.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e20".to_string()),
        Just("18446744073709551616".to_string()),
        Just("'1e18m'".to_string()),
        Just("1e300".to_string()),
        Just("-1".to_string()),
        Just(".nan".to_string()),
        Just(".inf".to_string()),
        Just("''".to_string()),
        Just("~".to_string()),
        Just("[1, 2]".to_string()),
        Just("{a: b}".to_string()),
        Just("79228162514264337593543950336".to_string()),
        Just("localhost".to_string()),
        Just("UPPER_case".to_string()),
        Just("&a x".to_string()),
        Just("*a".to_string()),
        Just("!!binary aGk=".to_string()),
        "[a-z0-9:/._-]{0,20}".prop_map(|s| s),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
    ]
}

/// `text` with the value of line `line` (after its first `: `, or a `- ` item) replaced.
fn mutate(text: &str, line: usize, value: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let index = line % lines.len();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i != index {
                return (*l).to_string();
            }
            match l.split_once(": ") {
                Some((key, _)) => format!("{key}: {value}"),
                None => format!("{l} {value}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn config_error_is_located(text: &str) {
    match KubernetesConfig::from_config_yaml(text, FILE) {
        Ok(_) => {}
        Err(ProviderError::InvalidRequest { message }) => {
            assert!(message.starts_with(FILE), "not located: {message}");
            assert!(!message.contains('\n'), "more than one line: {message}");
            assert!(message.len() < 1200, "too long ({}): {message}", message.len());
            for internal in [
                "from_str_multiple",
                "DuplicateKeyPolicy",
                "untagged enum",
                "budget breached",
            ] {
                assert!(!message.contains(internal), "library wording: {message}");
            }
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

/// A fresh home whose config.yaml points at a kubeconfig holding `kubeconfig`.
fn home_with(kubeconfig: &[u8]) -> (PathBuf, PathBuf) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let home = std::env::temp_dir().join(format!("skyplan-kubeconfig-prop-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let path = home.join("kubeconfig.yaml");
    std::fs::write(&path, kubeconfig).unwrap();
    std::fs::write(
        home.join("config.yaml"),
        format!("kubernetes:\n  kubeconfig: {}\n", path.display()),
    )
    .unwrap();
    (home, path)
}

fn kubeconfig_error_is_located(home: &Path, path: &Path) {
    match KubernetesProvider::from_home(home) {
        Ok(_) => {}
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "does not name the kubeconfig: {message}"
            );
            assert!(message.len() < 2000, "too long ({}): {message}", message.len());
        }
    }
}

#[test]
fn the_valid_inputs_load() {
    let config = KubernetesConfig::from_config_yaml(VALID_CONFIG, FILE)
        .unwrap()
        .unwrap();
    assert_eq!(config.namespace(), "team-a");
    assert_eq!(config.request_timeout().as_secs(), 5);
    let (home, _) = home_with(VALID_KUBECONFIG.as_bytes());
    assert!(KubernetesProvider::from_home(&home).unwrap().is_some());
    let _ = std::fs::remove_dir_all(&home);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn config_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        config_error_is_located(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_mutations_are_located_errors(line in 0usize..20, value in hostile_value()) {
        config_error_is_located(&mutate(VALID_CONFIG, line, &value));
    }

    #[test]
    fn kubeconfig_mutations_name_the_file(line in 0usize..20, value in hostile_value()) {
        let (home, path) = home_with(mutate(VALID_KUBECONFIG, line, &value).as_bytes());
        kubeconfig_error_is_located(&home, &path);
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn server_urls_never_panic(url in "\\PC{0,40}") {
        let _ = check_server_url(&url);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn kubeconfig_arbitrary_bytes_name_the_file(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (home, path) = home_with(&bytes);
        kubeconfig_error_is_located(&home, &path);
        let _ = std::fs::remove_dir_all(&home);
    }
}
